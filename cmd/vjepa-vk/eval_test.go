package main

import (
	"context"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vjepa-vk/vjepa-vk/model"
	"github.com/vjepa-vk/vjepa-vk/model/modeltest"
	"github.com/vjepa-vk/vjepa-vk/train"
	"github.com/vjepa-vk/vjepa-vk/vk/vktest"
)

// writeAdapter writes a PEFT adapter for the config at cfgPath with seeded LoRA weights on every target
// of every block, and the config's own action/state encoders when its widths are not 7.
func writeAdapter(t *testing.T, cfgPath string, seed uint64) string {
	t.Helper()
	cfg, err := train.Load(cfgPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	D, r := cfg.Model.PredDim, cfg.LoRA.R
	pcfg := model.PredictorConfig{EmbedDim: cfg.Model.EmbedDim, Dim: D, Depth: cfg.Model.Depth, Heads: cfg.Model.Heads,
		Grid: cfg.Model.Img / cfg.Model.Patch, MLPRatio: cfg.Model.MLPRatio}
	mods := modeltest.LoRAWeights(pcfg, r, seed)
	ac := model.NewAdapterConfig(r, cfg.LoRA.Alpha, false, cfg.LoRA.Targets, "")
	var modules []model.ModuleTensor
	for _, m := range []struct {
		name  string
		width int
	}{{"action_encoder", cfg.Model.ActionDim}, {"state_encoder", cfg.Model.StateDim}} {
		if m.width == 0 || m.width == model.ActionDim {
			continue
		}
		ac.ModulesToSave = append(ac.ModulesToSave, m.name)
		modules = append(modules,
			model.ModuleTensor{Name: m.name + ".weight", Shape: []int{D, m.width}, Data: vktest.RandN(seed+200, D*m.width)},
			model.ModuleTensor{Name: m.name + ".bias", Shape: []int{D}, Data: vktest.RandN(seed+201, D)})
	}
	dir := filepath.Join(t.TempDir(), "adapter")
	if err := model.WritePEFTAdapter(dir, ac, mods, modules...); err != nil {
		t.Fatal(err)
	}
	return dir
}

// evalJSON is what the eval command tests read of the report.
type evalJSON struct {
	Clips    int `json:"clips"`
	Frames   int `json:"frames"`
	Horizon  int `json:"horizon"`
	Baseline struct {
		Rollout []float64 `json:"rollout_l1"`
	} `json:"copy_last_frame"`
	Models []struct {
		Name          string    `json:"name"`
		Normalization string    `json:"normalization"`
		TF            []float64 `json:"teacher_forcing_l1"`
		Rollout       []float64 `json:"rollout_l1"`
		Sensitivity   *struct {
			Recall1 float64 `json:"recall_at_1"`
		} `json:"action_sensitivity"`
		Inverse *struct {
			Transitions int `json:"transitions"`
			DROID       *struct {
				ErrorCM float64 `json:"error_cm"`
			} `json:"droid"`
		} `json:"inverse_dynamics"`
	} `json:"models"`
}

func TestEvalCommand(t *testing.T) {
	dir := t.TempDir()
	prefix := filepath.Join(dir, "eval")
	adapter := writeAdapter(t, demoConfig, 7)
	args := []string{"--config", demoConfig, "--set", "data.source=../../testdata/droid_sample", "--adapter", adapter, "--passes", "2", "--distractors", "3", "--inverse", "1",
		"--inverse-samples", "8", "--inverse-iterations", "2", "--out", prefix, "--json"}
	var r evalJSON
	commandJSON(t, runEval, args, &r)
	// configs/demo.yaml holds out 1 episode: two passes give two clips of 4 frames.
	if r.Clips != 2 || r.Frames != 4 || r.Horizon != 3 || len(r.Baseline.Rollout) != 3 || len(r.Models) != 2 {
		t.Fatalf("report: %+v", r)
	}
	if r.Models[0].Name != "base" || r.Models[1].Name != adapter {
		t.Errorf("models %q, %q; want base and the adapter", r.Models[0].Name, r.Models[1].Name)
	}
	for _, m := range r.Models {
		if len(m.TF) != 3 || len(m.Rollout) != 3 || m.Sensitivity == nil || m.Inverse == nil || m.Inverse.DROID == nil {
			t.Errorf("model %s: %+v", m.Name, m)
		}
	}
	if r.Models[0].Rollout[0] == r.Models[1].Rollout[0] {
		t.Errorf("the adapter does not change the rollout error %v", r.Models[0].Rollout[0])
	}
	b, err := os.ReadFile(prefix + ".json")
	if err != nil || !strings.Contains(string(b), `"copy_last_frame"`) {
		t.Errorf("eval.json: %v", err)
	}
	f, err := os.Open(prefix + ".png")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := png.Decode(f); err != nil {
		t.Errorf("eval.png: %v", err)
	}
}

// TestEvalLeRobot evaluates on the LeRobot demo (6-D states, 4-D actions): the base with the fresh
// encoders its training starts from, and an adapter with its own; inverse dynamics searches the range of
// the recorded actions.
func TestEvalLeRobot(t *testing.T) {
	requireFFmpeg(t)
	prefix := filepath.Join(t.TempDir(), "eval")
	args := []string{"--config", lerobotConfig, "--set", "data.source=../../testdata/lerobot_demo", "--adapter", writeAdapter(t, lerobotConfig, 9), "--clips", "2", "--distractors", "2",
		"--inverse", "1", "--inverse-samples", "8", "--inverse-iterations", "2", "--out", prefix, "--json"}
	var r evalJSON
	commandJSON(t, runEval, args, &r)
	if len(r.Models) != 2 || r.Clips < 1 || r.Models[1].Inverse == nil || r.Models[1].Inverse.DROID != nil {
		t.Errorf("LeRobot report: %+v", r)
	}
}

func TestEvalBadInput(t *testing.T) {
	dir := t.TempDir()
	base := []string{"--config", demoConfig, "--set", "data.source=../../testdata/droid_sample", "--out", filepath.Join(dir, "x")}
	with := func(extra ...string) []string { return append(append([]string(nil), base...), extra...) }
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"no config", []string{"--out", "x"}, "--config FILE is required"},
		{"one frame", with("--frames", "1"), "--frames 1"},
		{"horizon", with("--horizon", "4"), "--horizon 4: at most T-1 = 3"},
		{"passes", with("--passes", "0"), "--passes 0"},
		{"batch", with("--batch", "0"), "--batch 0"},
		{"negative distractors", with("--distractors", "-1"), "--distractors -1"},
		{"merge", with("--merge"), "--merge needs an --adapter"},
		{"empty out", with("--out", ""), "--out is empty"},
		{"precision", with("--precision", "int8"), `--precision "int8"`},
		{"cem", with("--inverse-samples", "1"), "topk"},
		{"maxnorm", with("--inverse-maxnorm", "0"), "maxnorm 0"},
		{"search", with("--search", "9=-1:1"), "component 9"},
		{"missing source", with("--source", filepath.Join(dir, "none")), "none"},
		{"missing adapter", with("--adapter", filepath.Join(dir, "nope"), "--inverse", "0", "--distractors", "0"), "nope"},
		{"adapter of other widths", with("--adapter", writeAdapter(t, lerobotConfig, 3), "--inverse", "0", "--distractors", "0"),
			"takes 6-D states and 4-D actions, ../../testdata/droid_sample gives 7-D and 7-D"},
		{"out in a missing folder", with("--out", filepath.Join(dir, "no", "such", "x"), "--inverse", "0", "--distractors", "0"), "no such file"},
		{"stray argument", with("stray"), "unexpected arguments"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := captureStdout(t, func() error { return runEval(context.Background(), c.args) })
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("eval %v: %v, want an error containing %q", c.args, err, c.want)
			}
		})
	}
	if code, _, stderr := run("eval", "--config", demoConfig, "--frames", "1"); code != exitUsage || !strings.Contains(stderr, "usage: vjepa-vk eval") {
		t.Errorf("eval --frames 1: exit %d, %q", code, stderr)
	}
}

// requireFFmpeg skips tests that decode LeRobot videos where FFmpeg is missing.
func requireFFmpeg(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Skip("ffmpeg not installed (apt-get install ffmpeg)")
	}
}
