package train_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/vjepa-vk/vjepa-vk/model"
	"github.com/vjepa-vk/vjepa-vk/train"
	"github.com/vjepa-vk/vjepa-vk/vk/vktest"
)

// demoConfig is configs/demo.yaml shrunk to a few steps, writing into dir.
func demoConfig(t *testing.T, dir string, steps int, extra ...string) *train.Config {
	t.Helper()
	sets := append([]string{
		"data.source=../testdata/droid_sample", "logging.dir=" + dir, "logging.progress=off",
		"training.steps=" + strconv.Itoa(steps), "training.schedule.warmup=1", "training.schedule.decay=1",
		"training.val_every=0", "data.val_episodes=0", "checkpoint.every=2",
	}, extra...)
	cfg, err := train.Load("../configs/demo.yaml", sets)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func losses(t *testing.T, dir string) []train.StepMetrics {
	t.Helper()
	m, err := train.ReadMetrics(filepath.Join(dir, train.MetricsFile))
	if err != nil {
		t.Fatal(err)
	}
	return m.Train
}

// TestResumeBitIdentical trains 2k steps in one go, and k steps, then a resumed run to 2k: the losses of
// every step and the exported adapters must be bit-identical (deterministic kernels, data position and
// optimizer state restored exactly).
func TestResumeBitIdentical(t *testing.T) {
	if testing.Short() {
		t.Skip("trains twice")
	}
	d := vktest.Device(t)
	ctx := context.Background()
	for _, opt := range []string{"adamw", "adamw8bit"} {
		t.Run("optimizer="+opt, func(t *testing.T) {
			const k = 2
			whole, parts := t.TempDir(), t.TempDir()
			if err := train.Train(ctx, demoConfig(t, whole, 2*k, "training.optimizer="+opt), train.Options{Device: d, Out: io.Discard}); err != nil {
				t.Fatal(err)
			}
			if err := train.Train(ctx, demoConfig(t, parts, 2*k, "training.optimizer="+opt), train.Options{Device: d, Out: io.Discard, MaxStep: k}); err != nil {
				t.Fatal(err)
			}
			if got := len(losses(t, parts)); got != k {
				t.Fatalf("interrupted run logged %d steps, want %d", got, k)
			}
			if err := train.Train(ctx, demoConfig(t, parts, 2*k, "training.optimizer="+opt, "checkpoint.resume=auto"), train.Options{Device: d, Out: io.Discard}); err != nil {
				t.Fatal(err)
			}
			sameRuns(t, whole, parts, 2*k)
		})
	}
}

// sameRuns checks that the runs in dirs whole and resumed logged the same steps steps, bit for bit,
// and exported the same adapter.
func sameRuns(t *testing.T, whole, resumed string, steps int) {
	t.Helper()
	a, b := losses(t, whole), losses(t, resumed)
	if len(a) != steps || len(b) != steps {
		t.Fatalf("logged %d and %d steps, want %d", len(a), len(b), steps)
	}
	for i := range a {
		if a[i].Loss != b[i].Loss || a[i].GradNorm != b[i].GradNorm {
			t.Errorf("step %d: loss %v grad norm %v uninterrupted, %v %v resumed", a[i].Step, a[i].Loss, a[i].GradNorm, b[i].Loss, b[i].GradNorm)
		}
	}
	wa, err := os.ReadFile(filepath.Join(whole, "adapter", model.AdapterWeightsFile))
	if err != nil {
		t.Fatal(err)
	}
	wb, err := os.ReadFile(filepath.Join(resumed, "adapter", model.AdapterWeightsFile))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(wa, wb) {
		t.Error("exported adapters differ between the uninterrupted and the resumed run")
	}
}

// TestTrainLossFalls trains the demo model for a few dozen steps and checks that the loss goes down.
func TestTrainLossFalls(t *testing.T) {
	if testing.Short() {
		t.Skip("trains for a while")
	}
	d := vktest.Device(t)
	dir := t.TempDir()
	cfg := demoConfig(t, dir, 30, "training.lr=0.002", "checkpoint.every=0")
	if err := train.Train(context.Background(), cfg, train.Options{Device: d, Out: io.Discard}); err != nil {
		t.Fatal(err)
	}
	m := losses(t, dir)
	first, last := 0.0, 0.0
	for i := 0; i < 5; i++ {
		first += m[i].Loss / 5
		last += m[len(m)-1-i].Loss / 5
	}
	t.Logf("mean loss of the first 5 steps %.4f, of the last 5 %.4f", first, last)
	if !(last < 0.9*first) {
		t.Errorf("loss did not fall: first 5 steps %.4f, last 5 %.4f", first, last)
	}
}

// TestFeatureCache encodes the demo clips into a cache, trains from it, and checks that a cache built
// with another configuration is refused.
func TestFeatureCache(t *testing.T) {
	d := vktest.Device(t)
	ctx := context.Background()
	dir, cache := t.TempDir(), filepath.Join(t.TempDir(), "cache")
	cfg := demoConfig(t, dir, 3)
	n, err := train.Encode(ctx, d, cfg, cache, train.EncodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if n != 5 { // the demo sample has 6 episodes; demoConfig holds none out, all give a clip
		t.Logf("encoded %d clips", n)
	}
	if n < cfg.Data.BatchSize {
		t.Fatalf("encoded %d clips, fewer than a batch", n)
	}
	cached := demoConfig(t, dir, 3, "data.feature_cache="+cache, "checkpoint.every=0")
	if err := train.Train(ctx, cached, train.Options{Device: d, Out: io.Discard}); err != nil {
		t.Fatal(err)
	}
	if got := len(losses(t, dir)); got != 3 {
		t.Fatalf("logged %d steps, want 3", got)
	}
	other := demoConfig(t, t.TempDir(), 3, "data.feature_cache="+cache, "data.fps=2", "checkpoint.every=0")
	if err := train.Train(ctx, other, train.Options{Device: d, Out: io.Discard}); err == nil {
		t.Fatal("a cache built at fps 4 was accepted for fps 2")
	}
}

// TestInterruptDuringValidation cancels the run (as SIGINT does) just as validation of step 2 starts:
// the run must end like an interrupt during a step, with ErrInterrupted and a plain message, a checkpoint
// of step 2 and the validation of step 1 logged, instead of failing with "context canceled".
func TestInterruptDuringValidation(t *testing.T) {
	d := vktest.Device(t)
	dir := t.TempDir()
	cfg := demoConfig(t, dir, 50, "data.val_episodes=1", "training.val_every=1", "checkpoint.every=0")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &train.Output{Pattern: "step 2/", Do: cancel}
	cfg.Logging.Progress, cfg.Logging.Every = "plain", 1
	runErr := train.Train(ctx, cfg, train.Options{Device: d, Out: out})
	if !errors.Is(runErr, train.ErrInterrupted) || strings.Contains(runErr.Error(), "context canceled") {
		t.Fatalf("Train = %v, want an interruption (ErrInterrupted) with a plain message\noutput:\n%s", runErr, out)
	}
	ckpt, err := train.LatestCheckpoint(cfg.Checkpoint.Dir)
	if err != nil {
		t.Fatal(err)
	}
	h, err := train.ReadCheckpointHeader(ckpt)
	if err != nil {
		t.Fatal(err)
	}
	m, err := train.ReadMetrics(filepath.Join(dir, train.MetricsFile))
	if err != nil {
		t.Fatal(err)
	}
	if h.Step != 2 || len(m.Train) != 2 {
		t.Fatalf("checkpoint at step %d with %d logged steps; want step 2, the last finished one\noutput:\n%s", h.Step, len(m.Train), out)
	}
	if len(m.Val) != 1 || m.Val[0].Clips == 0 || len(m.Val[0].RolloutErr) != cfg.Training.AutoSteps {
		t.Fatalf("validation records %+v, want step 1's only", m.Val)
	}
	if !strings.Contains(runErr.Error(), "interrupted after step 2") {
		t.Errorf("message %q, want it to say the run stopped after step 2", runErr)
	}
}

// TestInterruptDuringStartup cancels before the first step, on a fresh run and on a resumed one: both end
// as interruptions naming what exists, write nothing, and leave no half-made run folder.
func TestInterruptDuringStartup(t *testing.T) {
	d := vktest.Device(t)
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	fresh := filepath.Join(t.TempDir(), "run")
	err := train.Train(cancelled, demoConfig(t, fresh, 4), train.Options{Device: d, Out: io.Discard})
	if !errors.Is(err, train.ErrInterrupted) || strings.Contains(err.Error(), "context canceled") {
		t.Fatalf("fresh run cancelled at start-up: %v, want ErrInterrupted with a plain message", err)
	}
	if _, serr := os.Stat(fresh); !errors.Is(serr, fs.ErrNotExist) {
		t.Errorf("a fresh run interrupted at start-up left %s behind (%v)", fresh, serr)
	}

	dir := t.TempDir()
	if err := train.Train(context.Background(), demoConfig(t, dir, 4), train.Options{Device: d, Out: io.Discard, MaxStep: 2}); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadDir(dir)
	err = train.Train(cancelled, demoConfig(t, dir, 4, "checkpoint.resume=auto"), train.Options{Device: d, Out: io.Discard})
	var ie *train.InterruptedError
	if !errors.As(err, &ie) || !ie.StartUp || ie.Step != 2 || !strings.Contains(err.Error(), "ckpt-000000002") {
		t.Fatalf("resumed run cancelled at start-up: %v, want an interruption naming the step-2 checkpoint", err)
	}
	if after, _ := os.ReadDir(dir); len(after) != len(before) {
		t.Errorf("run folder had %d entries, %d after an interrupted start-up", len(before), len(after))
	}
}

// TestTrainBannerSummary runs a few steps with validation and checks what the run prints before the
// first step (device, precision, trainable parameters, run dir, checkpoints) and after the last (where
// the adapter and the checkpoints are, the best validation loss as logged).
func TestTrainBannerSummary(t *testing.T) {
	d := vktest.Device(t)
	dir := t.TempDir()
	cfg := demoConfig(t, dir, 4, "data.val_episodes=1", "training.val_every=2", "checkpoint.every=2", "logging.progress=plain")
	var out bytes.Buffer
	if err := train.Train(context.Background(), cfg, train.Options{Device: d, Out: &out}); err != nil {
		t.Fatal(err)
	}
	m, err := train.ReadMetrics(filepath.Join(dir, train.MetricsFile))
	if err != nil {
		t.Fatal(err)
	}
	best := m.Val[0]
	for _, v := range m.Val {
		if v.Loss < best.Loss {
			best = v
		}
	}
	text := out.String()
	lines := strings.Split(text, "\n")
	want := []string{
		"training on " + d.Info.Name + " (" + d.Info.Type + ", Vulkan " + d.Info.APIVersion + ")",
		"  precision   fp32, loss scaling off, adamw, LoRA r=4 alpha 8 on qkv, proj, fc1, fc2 (fused)",
		"  trainable   12.3K parameters (5.15% of the predictor's 239K)",
		"  steps       4 of 2 clips × 4 frames (grad_accum 1), from step 0",
		"  run dir     " + dir + " (metrics.jsonl, TensorBoard events, adapter/)",
		"  checkpoints " + cfg.Checkpoint.Dir + ", every 2 steps",
	}
	for i, w := range want {
		if i >= len(lines) || lines[i] != w {
			t.Errorf("banner line %d = %q, want %q\n%s", i+1, lines[min(i, len(lines)-1)], w, text)
		}
	}
	summary := text[strings.Index(text, "finished at step"):]
	for _, w := range []string{
		"finished at step 4 of 4: 4 steps in ",
		"\n  adapter     " + filepath.Join(dir, "adapter") + " (PEFT: adapter_model.safetensors, adapter_config.json)\n",
		"\n  checkpoints " + cfg.Checkpoint.Dir + ": latest ckpt-000000004.safetensors",
		fmt.Sprintf("\n  best val    loss %.4f at step %d\n", best.Loss, best.Step),
		"\n  plots       vjepa-vk report " + dir + "; tensorboard --logdir " + dir,
	} {
		if !strings.Contains(summary, w) {
			t.Errorf("end summary lacks %q:\n%s", w, summary)
		}
	}
}
