package model_test

import (
	"math"
	"path/filepath"
	"slices"
	"testing"

	"github.com/vjepa-vk/vjepa-vk/model"
	"github.com/vjepa-vk/vjepa-vk/vk"
	"github.com/vjepa-vk/vjepa-vk/vk/vktest"
)

// moduleCfg is a tiny predictor for a robot with 5-D actions and 3-D states.
var moduleCfg = model.PredictorConfig{EmbedDim: 20, Dim: 24, Depth: 2, Heads: 2, Grid: 2, MLPRatio: 2, ActionDim: 5, StateDim: 3}

// loadWithModules loads moduleCfg over 7-D base weights with its new encoders set to w (nil: InitModules).
func loadWithModules(t *testing.T, d *vk.Device, base model.MapWeights, top model.MapWeights) *model.Predictor {
	t.Helper()
	if top == nil {
		var err error
		if top, err = model.InitModules(moduleCfg, base); err != nil {
			t.Fatal(err)
		}
	}
	p, err := model.LoadPredictor(d, moduleCfg, model.Overlay{Top: top, Base: base}, model.FP32)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// moduleForward runs one pass on fixed inputs with output gradient G and returns L = Σ Out·G.
func moduleForward(t *testing.T, d *vk.Device, p *model.Predictor, backward bool) float64 {
	t.Helper()
	const B, T = 2, 2
	ps, err := p.NewPass(B, T, false)
	if err != nil {
		t.Fatal(err)
	}
	defer ps.Free()
	G := vktest.RandN(5, ps.Out.Numel())
	for i, u := range []struct {
		t vk.Tensor
		v []float32
	}{{ps.Z, vktest.RandN(1, ps.Z.Numel())}, {ps.Actions, vktest.RandN(2, B*T*5)}, {ps.States, vktest.RandN(3, B*T*3)}, {ps.DOut, G}} {
		if err := d.Upload(u.t, u.v); err != nil {
			t.Fatalf("upload %d: %v", i, err)
		}
	}
	s := vktest.Stream(t, d)
	ps.Forward(s)
	if backward {
		ps.Backward(s, false)
	}
	vktest.Run(t, s)
	out := vktest.Download(t, d, ps.Out)
	var l float64
	for i := range out {
		l += float64(out[i]) * float64(G[i])
	}
	return l
}

// TestModuleGrads checks the gradients of new 5-D action and 3-D state encoders (trained in full next
// to LoRA adapters) against central finite differences, on weights moved off their zero init so every
// term matters, and that InitModules' start gives exactly the base encoder's zero-input token.
func TestModuleGrads(t *testing.T) {
	d := vktest.Device(t)
	base := model.InitPredictor(moduleCfg.Official(), 5)
	if got := model.ModuleNames(moduleCfg); !slices.Equal(got, []string{"action_encoder", "state_encoder"}) {
		t.Fatalf("modules %v", got)
	}
	init, err := model.InitModules(moduleCfg, base)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"action_encoder", "state_encoder"} {
		if w := init[m+".weight"]; slices.ContainsFunc(w, func(v float32) bool { return v != 0 }) || !slices.Equal(init[m+".bias"], base[m+".bias"]) {
			t.Fatalf("%s: init weight not zero or bias not the base's", m)
		}
	}
	top := model.MapWeights{}
	for name, v := range init {
		r := vktest.RandN(uint64(len(name)), len(v))
		top[name] = make([]float32, len(v))
		for i := range v {
			top[name][i] = v[i] + 0.3*r[i]
		}
	}
	p := loadWithModules(t, d, base, top)
	defer p.Free()
	if err := p.AddLoRA(model.LoRAConfig{R: 2, Alpha: 4, Seed: 1}); err != nil {
		t.Fatal(err)
	}
	if err := p.TrainModules(); err != nil {
		t.Fatal(err)
	}
	moduleForward(t, d, p, true)
	mods := p.Modules()
	if len(mods) != 4 {
		t.Fatalf("%d module tensors, want 4", len(mods))
	}
	const eps = 1e-2
	worst := 0.0
	for _, m := range mods {
		g := vktest.Download(t, d, m.Grad)
		for _, i := range []int{0, len(g) / 2, len(g) - 1} {
			loss := func(delta float32) float64 {
				moved := model.MapWeights{}
				for k, v := range top {
					moved[k] = slices.Clone(v)
				}
				moved[m.Name][i] += delta
				q := loadWithModules(t, d, base, moved)
				defer q.Free()
				if err := q.AddLoRA(model.LoRAConfig{R: 2, Alpha: 4, Seed: 1}); err != nil {
					t.Fatal(err)
				}
				return moduleForward(t, d, q, false)
			}
			fd := (loss(eps) - loss(-eps)) / (2 * eps)
			e := math.Abs(fd-float64(g[i])) / math.Max(math.Abs(fd), 1e-1)
			worst = max(worst, e)
			if e > 2e-2 {
				t.Errorf("%s[%d]: gradient %.6g, finite difference %.6g", m.Name, i, g[i], fd)
			}
		}
	}
	t.Logf("worst relative difference to finite differences: %.2e", worst)
}

// TestModulesOfficialWidths: with 7-D actions and states nothing is trained in full and a pass records
// exactly what it recorded before modules existed (the same outputs, bit for bit, as a predictor whose
// config leaves the widths at 0).
func TestModulesOfficialWidths(t *testing.T) {
	d := vktest.Device(t)
	cfg := moduleCfg
	cfg.ActionDim, cfg.StateDim = 7, 7
	if len(model.ModuleNames(cfg)) != 0 {
		t.Fatalf("modules %v for 7-D widths", model.ModuleNames(cfg))
	}
	w := model.InitPredictor(cfg.Official(), 3)
	out := func(c model.PredictorConfig) []float32 {
		p, err := model.LoadPredictor(d, c, w, model.FP32)
		if err != nil {
			t.Fatal(err)
		}
		defer p.Free()
		if err := p.TrainModules(); err != nil {
			t.Fatal(err)
		}
		if len(p.Modules()) != 0 {
			t.Fatalf("%d module tensors for 7-D widths", len(p.Modules()))
		}
		ps, err := p.NewPass(1, 2, false)
		if err != nil {
			t.Fatal(err)
		}
		defer ps.Free()
		for i, u := range []vk.Tensor{ps.Z, ps.Actions, ps.States} {
			if err := d.Upload(u, vktest.RandN(uint64(i), u.Numel())); err != nil {
				t.Fatal(err)
			}
		}
		s := vktest.Stream(t, d)
		ps.Forward(s)
		vktest.Run(t, s)
		return vktest.Download(t, d, ps.Out)
	}
	if a, b := out(cfg), out(cfg.Official()); !slices.Equal(a, b) {
		t.Fatal("7-D widths set explicitly change the output")
	}
}

// TestAdapterModulesRoundTrip exports adapters with trained modules in PEFT layout, reads them back with
// ReadAdapter, merges them into a 7-D base checkpoint and checks that the merged predictor (loaded with
// the widths the adapter gives) computes what the live one computes.
func TestAdapterModulesRoundTrip(t *testing.T) {
	d := vktest.Device(t)
	base := model.InitPredictor(moduleCfg.Official(), 9)
	dir := t.TempDir()
	var raws []model.RawTensor
	for _, in := range model.PredictorTensors(moduleCfg.Official()) {
		b, _ := model.EncodeFloat32(model.DTypeF32, base[in.Name])
		raws = append(raws, model.RawTensor{TensorInfo: in, Data: b})
	}
	basePath := filepath.Join(dir, "base.safetensors")
	if err := model.WriteSafetensors(basePath, raws, nil); err != nil {
		t.Fatal(err)
	}
	top, _ := model.InitModules(moduleCfg, base)
	for name, v := range top {
		for i, r := range vktest.RandN(uint64(len(name)), len(v)) {
			v[i] += 0.2 * r
		}
	}
	live := loadWithModules(t, d, base, top)
	defer live.Free()
	lc := model.LoRAConfig{R: 2, Alpha: 4, Targets: []string{"qkv", "fc1"}, Seed: 5}
	if err := live.AddLoRA(lc); err != nil {
		t.Fatal(err)
	}
	if err := live.TrainModules(); err != nil {
		t.Fatal(err)
	}
	var mods []model.LoRAWeights
	for i, a := range live.LoRAs {
		bv := vktest.Rand(uint64(i+1), a.B.Numel())
		if err := d.Upload(a.B, bv); err != nil {
			t.Fatal(err)
		}
		mods = append(mods, model.LoRAWeights{Module: a.Module, R: a.R, In: a.In, Out: a.Out, A: vktest.Download(t, d, a.A), B: bv})
	}
	var modules []model.ModuleTensor
	for _, m := range live.Modules() {
		modules = append(modules, model.ModuleTensor{Name: m.Name, Shape: m.Param.Shape, Data: vktest.Download(t, d, m.Param)})
	}
	ac := model.NewAdapterConfig(lc.R, lc.Alpha, false, lc.Targets, "base")
	if err := model.WritePEFTAdapter(filepath.Join(dir, "bad"), ac, mods, modules...); err == nil {
		t.Fatal("modules not named in modules_to_save were written")
	}
	ac.ModulesToSave = model.ModuleNames(moduleCfg)
	adapterDir := filepath.Join(dir, "adapter")
	if err := model.WritePEFTAdapter(adapterDir, ac, mods, modules...); err != nil {
		t.Fatal(err)
	}
	ad, err := model.ReadAdapter(adapterDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ad.LoRA) != len(mods) || len(ad.Modules) != 4 {
		t.Fatalf("read %d adapters and %d module tensors, want %d and 4", len(ad.LoRA), len(ad.Modules), len(mods))
	}
	pcfg, err := ad.PredictorConfig(moduleCfg.Official())
	if err != nil || pcfg != moduleCfg {
		t.Fatalf("config from the adapter %+v (%v), want %+v", pcfg, err, moduleCfg)
	}
	sd, err := model.OpenStateDict(basePath, "")
	if err != nil {
		t.Fatal(err)
	}
	defer sd.Close()
	mergedPath := filepath.Join(dir, "merged.safetensors")
	if err := model.MergeAdapter(mergedPath, sd, ad, model.DTypeF32); err != nil {
		t.Fatal(err)
	}
	msd, err := model.OpenStateDict(mergedPath, "")
	if err != nil {
		t.Fatal(err)
	}
	defer msd.Close()
	if err := model.CheckPredictor(mergedPath, pcfg, msd.Infos()); err != nil {
		t.Fatal(err)
	}
	merged, err := model.LoadPredictor(d, pcfg, msd, model.FP32)
	if err != nil {
		t.Fatal(err)
	}
	defer merged.Free()
	// The unmerged adapter on the base, through Overlay, must agree too.
	overlaid, err := model.LoadPredictor(d, pcfg, ad.Overlay(sd), model.FP32)
	if err != nil {
		t.Fatal(err)
	}
	defer overlaid.Free()
	want := moduleForward(t, d, live, false)
	for name, p := range map[string]*model.Predictor{"merged": merged} {
		if got := moduleForward(t, d, p, false); math.Abs(got-want) > 1e-4*math.Abs(want)+1e-4 {
			t.Errorf("%s: L = %.6f, live predictor %.6f", name, got, want)
		}
	}
	if err := overlaid.AddLoRA(lc); err != nil {
		t.Fatal(err)
	}
	for i, a := range overlaid.LoRAs {
		d.Upload(a.A, ad.LoRA[i].A)
		d.Upload(a.B, ad.LoRA[i].B)
	}
	if got := moduleForward(t, d, overlaid, false); got != want {
		t.Errorf("overlaid: L = %.9f, live predictor %.9f (want identical: same weights, same kernels)", got, want)
	}
}
