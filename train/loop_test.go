package train_test

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strconv"
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
			a, b := losses(t, whole), losses(t, parts)
			if len(a) != 2*k || len(b) != 2*k {
				t.Fatalf("logged %d and %d steps, want %d", len(a), len(b), 2*k)
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
			wb, err := os.ReadFile(filepath.Join(parts, "adapter", model.AdapterWeightsFile))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(wa, wb) {
				t.Error("exported adapters differ between the uninterrupted and the resumed run")
			}
		})
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
