package model_test

import (
	"path/filepath"
	"sort"
	"testing"

	"github.com/vjepa-vk/vjepa-vk/model"
	"github.com/vjepa-vk/vjepa-vk/vk"
	"github.com/vjepa-vk/vjepa-vk/vk/vktest"
)

// TestMergeLoRA folds trained adapters into the base weights and checks that the merged predictor
// without adapters computes what the base predictor with adapters computes.
func TestMergeLoRA(t *testing.T) {
	d := vktest.Device(t)
	cfg := model.PredictorConfig{EmbedDim: 24, Dim: 32, Depth: 2, Heads: 2, Grid: 2, MLPRatio: 4}
	w := model.InitPredictor(cfg, 11)
	dir := t.TempDir()
	var raws []model.RawTensor
	names := make([]string, 0, len(w))
	for n := range w {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, in := range model.PredictorTensors(cfg) {
		b, _ := model.EncodeFloat32(model.DTypeF32, w[in.Name])
		raws = append(raws, model.RawTensor{TensorInfo: in, Data: b})
	}
	basePath := filepath.Join(dir, "base.safetensors")
	if err := model.WriteSafetensors(basePath, raws, nil); err != nil {
		t.Fatal(err)
	}

	lc := model.LoRAConfig{R: 2, Alpha: 4, RSLoRA: true, Targets: []string{"qkv", "fc2"}, Seed: 5}
	withLoRA, err := model.LoadPredictor(d, cfg, w, model.FP32)
	if err != nil {
		t.Fatal(err)
	}
	defer withLoRA.Free()
	if err := withLoRA.AddLoRA(lc); err != nil {
		t.Fatal(err)
	}
	var mods []model.LoRAWeights
	for i, a := range withLoRA.LoRAs {
		bv := vktest.Rand(uint64(i+1), a.B.Numel())
		if err := d.Upload(a.B, bv); err != nil {
			t.Fatal(err)
		}
		mods = append(mods, model.LoRAWeights{Module: a.Module, R: a.R, In: a.In, Out: a.Out, A: vktest.Download(t, d, a.A), B: bv})
	}
	ac := model.NewAdapterConfig(lc.R, lc.Alpha, true, lc.Targets, "base")
	adapterDir := filepath.Join(dir, "adapter")
	if err := model.WritePEFTAdapter(adapterDir, ac, mods); err != nil {
		t.Fatal(err)
	}
	ac2, mods2, err := model.ReadPEFTAdapter(adapterDir)
	if err != nil {
		t.Fatal(err)
	}
	sd, err := model.OpenStateDict(basePath, "")
	if err != nil {
		t.Fatal(err)
	}
	defer sd.Close()
	mergedPath := filepath.Join(dir, "merged.safetensors")
	if err := model.MergeLoRA(mergedPath, sd, ac2, mods2, model.DTypeF32); err != nil {
		t.Fatal(err)
	}
	msd, err := model.OpenStateDict(mergedPath, "")
	if err != nil {
		t.Fatal(err)
	}
	defer msd.Close()
	if err := model.CheckPredictor(mergedPath, cfg, msd.Infos()); err != nil {
		t.Fatal(err)
	}
	merged, err := model.LoadPredictor(d, cfg, msd, model.FP32)
	if err != nil {
		t.Fatal(err)
	}
	defer merged.Free()

	forward := func(p *model.Predictor) []float32 {
		ps, err := p.NewPass(2, 2, false)
		if err != nil {
			t.Fatal(err)
		}
		defer ps.Free()
		for i, u := range []struct {
			t vk.Tensor
			v []float32
		}{{ps.Z, vktest.RandN(1, ps.Z.Numel())}, {ps.Actions, vktest.Rand(2, ps.Actions.Numel())}, {ps.States, vktest.Rand(3, ps.States.Numel())}} {
			if err := d.Upload(u.t, u.v); err != nil {
				t.Fatalf("upload %d: %v", i, err)
			}
		}
		s := vktest.Stream(t, d)
		ps.Forward(s)
		vktest.Run(t, s)
		return vktest.Download(t, d, ps.Out)
	}
	want := forward(withLoRA)
	got := forward(merged)
	// Merging reassociates (W x + s·B(A x) vs (W + s·BA) x): f32 rounding only.
	vktest.Close(t, "merged vs adapters", got, vktest.F64(want), 1e-4, 1e-5)
}
