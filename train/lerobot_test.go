package train_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/vjepa-vk/vjepa-vk/model"
	"github.com/vjepa-vk/vjepa-vk/train"
	"github.com/vjepa-vk/vjepa-vk/vk/vktest"
)

// The LeRobot datasets data/lerobot's tests read (written by tools/lerobotgen with Apache Arrow's parquet
// writer and FFmpeg): v2.1 with H.264 (3 episodes of 24 frames at 15 fps) and v3.0 with AV1 (4 episodes
// in 2 files). Both have a 6-D joint state, a 4-D action and the 7-D end-effector pose.
const (
	leRobotV21 = "../data/lerobot/testdata/v21_h264"
	leRobotV30 = "../data/lerobot/testdata/v30_av1"
)

func needFFmpeg(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Skip("ffmpeg not installed (apt-get install ffmpeg)")
	}
}

// leRobotConfig is configs/lerobot-demo.yaml on source, shrunk to a few steps, writing into dir:
// 4-frame clips at stride 4 (windows of 16 frames), batches of 2, one episode held out and validated
// after every step.
func leRobotConfig(t *testing.T, dir, source string, steps int, extra ...string) *train.Config {
	t.Helper()
	sets := append([]string{
		"data.source=" + source, "logging.dir=" + dir, "logging.progress=off",
		"training.steps=" + strconv.Itoa(steps), "training.schedule.warmup=1", "training.schedule.decay=1",
		"data.val_episodes=1", "training.val_every=1", "checkpoint.every=2", "data.shuffle_buffer=4",
	}, extra...)
	cfg, err := train.Load("../configs/lerobot-demo.yaml", sets)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// eePose maps the end-effector pose column to the official 7-D state and pose-delta actions.
var eePose = []string{"data.lerobot.state=observation.ee_pose", "data.lerobot.convert=ee_pose", "model.state_dim=7", "model.action_dim=7"}

// TestTrainLeRobot trains and validates on both LeRobot layouts with the dataset's own 6-D states and
// 4-D actions (new conditioning encoders trained in full, exported as modules_to_save), and with the
// end-effector pose converted to the official 7-D state and delta actions (the pretrained encoders, no
// modules; the conversion does not depend on the layout).
func TestTrainLeRobot(t *testing.T) {
	needFFmpeg(t)
	d := vktest.Device(t)
	for _, tc := range []struct {
		name, source string
		extra        []string
		modules      map[string][]int // exported modules_to_save and their shapes, D = 96
	}{
		{"version=v2.1,state=6,action=4", leRobotV21, nil,
			map[string][]int{"action_encoder.weight": {96, 4}, "action_encoder.bias": {96}, "state_encoder.weight": {96, 6}, "state_encoder.bias": {96}}},
		{"version=v3.0,state=6,action=4", leRobotV30, []string{"data.lerobot.action_reduce=mean"},
			map[string][]int{"action_encoder.weight": {96, 4}, "action_encoder.bias": {96}, "state_encoder.weight": {96, 6}, "state_encoder.bias": {96}}},
		{"version=v2.1,convert=ee_pose", leRobotV21, eePose, map[string][]int{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := train.Train(context.Background(), leRobotConfig(t, dir, tc.source, 2, tc.extra...), train.Options{Device: d, Out: io.Discard}); err != nil {
				t.Fatal(err)
			}
			m, err := train.ReadMetrics(filepath.Join(dir, train.MetricsFile))
			if err != nil {
				t.Fatal(err)
			}
			if len(m.Train) != 2 || len(m.Val) != 2 {
				t.Fatalf("logged %d steps and %d validations, want 2 and 2", len(m.Train), len(m.Val))
			}
			for _, s := range m.Train {
				if !(s.Loss > 0) || math.IsInf(s.Loss, 0) || !(s.GradNorm > 0) || s.Skipped {
					t.Errorf("step %d: loss %v, grad norm %v, skipped %v", s.Step, s.Loss, s.GradNorm, s.Skipped)
				}
			}
			for _, v := range m.Val {
				if !(v.Loss > 0) || math.IsInf(v.Loss, 0) || v.Clips != 2 { // one held-out episode, a batch of 2
					t.Errorf("validation at step %d: loss %v on %d clips, want a finite loss on 2", v.Step, v.Loss, v.Clips)
				}
			}
			ad, err := model.ReadAdapter(filepath.Join(dir, train.AdapterDir))
			if err != nil {
				t.Fatal(err)
			}
			shapes := map[string][]int{}
			for _, mod := range ad.Modules {
				shapes[mod.Name] = mod.Shape
			}
			if fmt.Sprint(shapes) != fmt.Sprint(tc.modules) {
				t.Errorf("exported modules %v, want %v", shapes, tc.modules)
			}
		})
	}
}

// TestResumeBitIdenticalLeRobot is TestResumeBitIdentical on a LeRobot run (v3.0, AV1, 6-D states and
// 4-D actions, so the conditioning encoders trained in full are checkpointed and restored too, with
// validation every step): 2k steps in one go, and k steps then a resumed run to 2k, give bit-identical
// losses, validation losses and exported adapters.
func TestResumeBitIdenticalLeRobot(t *testing.T) {
	if testing.Short() {
		t.Skip("trains twice")
	}
	needFFmpeg(t)
	d := vktest.Device(t)
	ctx := context.Background()
	const k = 2
	whole, parts := t.TempDir(), t.TempDir()
	if err := train.Train(ctx, leRobotConfig(t, whole, leRobotV30, 2*k), train.Options{Device: d, Out: io.Discard}); err != nil {
		t.Fatal(err)
	}
	if err := train.Train(ctx, leRobotConfig(t, parts, leRobotV30, 2*k), train.Options{Device: d, Out: io.Discard, MaxStep: k}); err != nil {
		t.Fatal(err)
	}
	if err := train.Train(ctx, leRobotConfig(t, parts, leRobotV30, 2*k, "checkpoint.resume=auto"), train.Options{Device: d, Out: io.Discard}); err != nil {
		t.Fatal(err)
	}
	read := func(dir string) *train.MetricsLog {
		m, err := train.ReadMetrics(filepath.Join(dir, train.MetricsFile))
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	a, b := read(whole), read(parts)
	if len(a.Train) != 2*k || len(b.Train) != 2*k || len(a.Val) != 2*k || len(b.Val) != 2*k {
		t.Fatalf("logged %d and %d steps, %d and %d validations, want %d each", len(a.Train), len(b.Train), len(a.Val), len(b.Val), 2*k)
	}
	for i := range a.Train {
		if a.Train[i].Loss != b.Train[i].Loss || a.Train[i].GradNorm != b.Train[i].GradNorm {
			t.Errorf("step %d: loss %v grad norm %v uninterrupted, %v %v resumed", a.Train[i].Step, a.Train[i].Loss, a.Train[i].GradNorm, b.Train[i].Loss, b.Train[i].GradNorm)
		}
		if a.Val[i].Loss != b.Val[i].Loss {
			t.Errorf("validation at step %d: loss %v uninterrupted, %v resumed", a.Val[i].Step, a.Val[i].Loss, b.Val[i].Loss)
		}
	}
	wa, wb := mustReadFile(t, filepath.Join(whole, train.AdapterDir, model.AdapterWeightsFile)), mustReadFile(t, filepath.Join(parts, train.AdapterDir, model.AdapterWeightsFile))
	if !bytes.Equal(wa, wb) {
		t.Error("exported adapters (with the conditioning encoders) differ between the uninterrupted and the resumed run")
	}
}

// TestFeatureCacheLeRobot encodes a LeRobot dataset with 6-D states and 4-D actions into a feature
// cache, trains from it, and checks that the cache holds those widths and that a cache built with
// another mapping of the columns is refused.
func TestFeatureCacheLeRobot(t *testing.T) {
	needFFmpeg(t)
	d := vktest.Device(t)
	ctx := context.Background()
	dir, cache := t.TempDir(), filepath.Join(t.TempDir(), "cache")
	noVal := []string{"data.val_episodes=0", "training.val_every=0", "checkpoint.every=0"}
	cfg := leRobotConfig(t, dir, leRobotV21, 2, noVal...)
	n, err := train.Encode(ctx, d, cfg, cache, train.EncodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if n != 3 { // three episodes, one clip each
		t.Fatalf("encoded %d clips, want 3", n)
	}
	index := string(mustReadFile(t, filepath.Join(cache, "index.json")))
	for _, want := range []string{`"state_dim": 6`, `"action_dim": 4`, `"version": 2`} {
		if !bytes.Contains([]byte(index), []byte(want)) {
			t.Fatalf("index.json has no %s:\n%s", want, index)
		}
	}
	if err := train.Train(ctx, leRobotConfig(t, dir, leRobotV21, 2, append(noVal, "data.feature_cache="+cache)...), train.Options{Device: d, Out: io.Discard}); err != nil {
		t.Fatal(err)
	}
	if got := len(losses(t, dir)); got != 2 {
		t.Fatalf("logged %d steps, want 2", got)
	}
	other := leRobotConfig(t, t.TempDir(), leRobotV21, 2, append(noVal, "data.feature_cache="+cache, "data.lerobot.action_reduce=first")...)
	if err := train.Train(ctx, other, train.Options{Device: d, Out: io.Discard}); err == nil {
		t.Fatal("a cache built with action_reduce sum was accepted for action_reduce first")
	}
}

func mustReadFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
