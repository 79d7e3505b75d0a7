package train_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/vjepa-vk/vjepa-vk/data/lerobot"
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
// 4-D actions (new conditioning encoders trained in full, exported as modules_to_save; on v2.1
// normalized with meta/stats.json, which the adapter records), and with the end-effector pose converted
// to the official 7-D state and delta actions (the pretrained encoders, no modules; the conversion does
// not depend on the layout).
func TestTrainLeRobot(t *testing.T) {
	needFFmpeg(t)
	d := vktest.Device(t)
	// A copy of the v2.1 dataset with LeRobot's meta/stats.json, for data.lerobot.normalize.
	withStats := copyDir(t, leRobotV21, t.TempDir())
	stats := `{"observation.state": {"mean": [0.1, 0.4, 0, -2.2, 0, 0.4], "std": [0.3, 0.1, 0.02, 0.1, 0.02, 0.4], "min": [-1, -1, -1, -3, -1, 0], "max": [1, 1, 1, -1, 1, 1], "count": [72]},
		"action": {"mean": [0, 0.01, -0.01, 0.04], "std": [0.014, 0.037, 0.03, 0.11], "min": [-1, -1, -1, -1], "max": [1, 1, 1, 1], "count": [72]}}`
	if err := os.WriteFile(filepath.Join(withStats, lerobot.StatsFile), []byte(stats), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, source string
		extra        []string
		modules      map[string][]int // exported modules_to_save and their shapes, D = 96
	}{
		{"version=v2.1,state=6,action=4,normalize=mean_std", withStats, []string{"data.lerobot.normalize=mean_std"},
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
			// normalization.json: in the run's adapter, and in one exported from its last checkpoint.
			norm, err := os.ReadFile(filepath.Join(dir, train.AdapterDir, lerobot.NormalizationFile))
			if tc.source != withStats {
				if err == nil {
					t.Errorf("a run without data.lerobot.normalize wrote %s", lerobot.NormalizationFile)
				}
				return
			}
			var n lerobot.Normalization
			if err := json.Unmarshal(norm, &n); err != nil {
				t.Fatalf("%s: %v", lerobot.NormalizationFile, err)
			}
			if n.Mode != "mean_std" || n.Source != lerobot.StatsFile || fmt.Sprint(n.State.Mean) != "[0.1 0.4 0 -2.2 0 0.4]" || fmt.Sprint(n.Action.Std) != "[0.014 0.037 0.03 0.11]" {
				t.Errorf("%s = %+v, want mean_std with the statistics of %s", lerobot.NormalizationFile, n, lerobot.StatsFile)
			}
			// configs/lerobot-demo.yaml sums the actions of the 4 rows between sampled frames: inference
			// needs their number to map a raw action.
			if n.ActionRows != 4 {
				t.Errorf("%s: action_rows %d, want 4 (action_reduce sum at stride 4)", lerobot.NormalizationFile, n.ActionRows)
			}
			exported := t.TempDir()
			if _, err := train.ExportCheckpoint(filepath.Join(dir, "checkpoints", train.CheckpointName(2)), exported); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(mustReadFile(t, filepath.Join(exported, lerobot.NormalizationFile)), norm) {
				t.Errorf("export from the checkpoint wrote another %s than the run", lerobot.NormalizationFile)
			}
			// Other statistics under the same run: resuming it is refused.
			changed := strings.Replace(stats, `"mean": [0.1,`, `"mean": [0.2,`, 1)
			if err := os.WriteFile(filepath.Join(withStats, lerobot.StatsFile), []byte(changed), 0o644); err != nil {
				t.Fatal(err)
			}
			defer os.WriteFile(filepath.Join(withStats, lerobot.StatsFile), []byte(stats), 0o644)
			err = train.Train(context.Background(), leRobotConfig(t, dir, tc.source, 3, append(tc.extra, "checkpoint.resume=auto")...), train.Options{Device: d, Out: io.Discard})
			if err == nil || !strings.Contains(err.Error(), "statistics data.lerobot.normalize uses changed since the checkpoint") {
				t.Errorf("resuming with other statistics: %v, want a refusal", err)
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

// copyDir copies the files under src into dst and returns dst.
func copyDir(t *testing.T, src, dst string) string {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Join(dst, filepath.Dir(rel)), 0o755); err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

func mustReadFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
