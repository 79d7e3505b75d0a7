package main

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/vjepa-vk/vjepa-vk/model"
	"github.com/vjepa-vk/vjepa-vk/train"
)

// fakeRun saves two trainer checkpoints of a demo-config run into RUN/checkpoints: step 2 with
// validation loss 0.5 (best) and step 4 with 0.7 (latest); each LoRA value encodes its step.
func fakeRun(t *testing.T) (run string, cfg *train.Config) {
	t.Helper()
	run = t.TempDir()
	cfg, err := train.Load("../../configs/demo.yaml", []string{"logging.dir=" + run, "data.source=x"})
	if err != nil {
		t.Fatal(err)
	}
	var yaml strings.Builder
	if err := train.Print(&yaml, cfg); err != nil {
		t.Fatal(err)
	}
	store := train.NewCheckpointStore(cfg.Checkpoint)
	r, in, out := cfg.LoRA.R, cfg.Model.PredDim, 3*cfg.Model.PredDim
	for _, st := range []struct {
		step int
		val  float64
	}{{2, 0.5}, {4, 0.7}} {
		fill := func(n int) []float32 { v := make([]float32, n); v[0] = float32(st.step); return v }
		prefix := "base_model.model.predictor_blocks.0.attn.qkv."
		ck := &train.Checkpoint{Header: train.CheckpointHeader{Step: st.step, ValLoss: &st.val, Config: yaml.String()},
			Tensors: []train.Tensor{
				train.F32Tensor(prefix+"lora_A.weight", []int{r, in}, fill(r*in)),
				train.F32Tensor(prefix+"lora_B.weight", []int{out, r}, fill(out*r)),
				train.F32Tensor("opt."+prefix+"lora_A.weight.m", []int{r, in}, make([]float32, r*in)),
			}}
		if _, err := store.Save(ck); err != nil {
			t.Fatal(err)
		}
	}
	return run, cfg
}

// TestExport writes the adapter of the best, the latest and a named checkpoint, with the saved config's
// rank and scaling, found through --run or --config.
func TestExport(t *testing.T) {
	run, cfg := fakeRun(t)
	ctx := context.Background()
	cfgFile := filepath.Join(t.TempDir(), "run.yaml")
	writeConfig(t, cfgFile, cfg)
	for _, tt := range []struct {
		args []string
		step float32
	}{
		{[]string{"--checkpoint", "best", "--run", run}, 2},
		{[]string{"--checkpoint", "latest", "--run", run}, 4},
		{[]string{"--run", run}, 4},
		{[]string{"--checkpoint", "best", "--config", cfgFile}, 2},
		{[]string{"--checkpoint", filepath.Join(run, "checkpoints", train.CheckpointName(2))}, 2},
		{[]string{"--checkpoint", filepath.Join(run, "checkpoints")}, 4},
	} {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "adapter")
			if err := runExport(ctx, append(tt.args, "--out", out)); err != nil {
				t.Fatal(err)
			}
			ac, mods, err := model.ReadPEFTAdapter(out)
			if err != nil {
				t.Fatal(err)
			}
			if ac.R != cfg.LoRA.R || ac.LoRAAlpha != cfg.LoRA.Alpha || !slices.Equal(ac.TargetModules, cfg.LoRA.Targets) {
				t.Errorf("adapter config r=%d alpha=%g targets %v, want the run's %d %g %v", ac.R, ac.LoRAAlpha, ac.TargetModules, cfg.LoRA.R, cfg.LoRA.Alpha, cfg.LoRA.Targets)
			}
			if len(mods) != 1 || mods[0].Module != "predictor_blocks.0.attn.qkv" || mods[0].A[0] != tt.step || mods[0].B[0] != tt.step {
				t.Errorf("adapters %v..., want the qkv adapter of step %v", mods, tt.step)
			}
		})
	}
	for _, bad := range [][]string{
		{"--checkpoint", "best", "--out", "x"},                                    // no run named
		{"--checkpoint", "best", "--run", run, "--config", cfgFile, "--out", "x"}, // both
		{"--checkpoint", "latest", "--run", run},                                  // no --out
		{"--checkpoint", filepath.Join(run, "missing"), "--out", "x"},
	} {
		if err := runExport(ctx, bad); err == nil {
			t.Errorf("export %v succeeded, want an error", bad)
		}
	}
}

func writeConfig(t *testing.T, path string, cfg *train.Config) {
	t.Helper()
	var b strings.Builder
	if err := train.Print(&b, cfg); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o666); err != nil {
		t.Fatal(err)
	}
}
