package model

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func randLoRA(module string, r, in, out int, seed uint64) LoRAWeights {
	g := rand.New(rand.NewPCG(seed, 3))
	l := LoRAWeights{Module: module, R: r, In: in, Out: out, A: make([]float32, r*in), B: make([]float32, out*r)}
	for i := range l.A {
		l.A[i] = float32(g.NormFloat64())
	}
	for i := range l.B {
		l.B[i] = float32(g.NormFloat64())
	}
	return l
}

func TestPEFTRoundTrip(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "adapter")
	cfg := NewAdapterConfig(4, 8, true, []string{"qkv", "proj", "fc1", "fc2"}, "facebook/vjepa2-ac-vitg")
	var mods []LoRAWeights
	for i := range 2 {
		for j, m := range []struct {
			name    string
			in, out int
		}{{"attn.qkv", 16, 48}, {"attn.proj", 16, 16}, {"mlp.fc1", 16, 64}, {"mlp.fc2", 64, 16}} {
			mods = append(mods, randLoRA(fmt.Sprintf("predictor_blocks.%d.%s", i, m.name), 4, m.in, m.out, uint64(10*i+j)))
		}
	}
	if err := WritePEFTAdapter(dir, cfg, mods); err != nil {
		t.Fatal(err)
	}
	gotCfg, got, err := ReadPEFTAdapter(dir)
	if err != nil {
		t.Fatal(err)
	}
	if gotCfg.R != 4 || gotCfg.LoRAAlpha != 8 || !gotCfg.UseRSLoRA || !slices.Equal(gotCfg.TargetModules, cfg.TargetModules) || gotCfg.BaseModelNameOrPath != cfg.BaseModelNameOrPath {
		t.Errorf("config %+v, want %+v", gotCfg, cfg)
	}
	if s := gotCfg.Scaling(); s != 4 {
		t.Errorf("rsLoRA scaling %g, want alpha/sqrt(r) = 4", s)
	}
	if len(got) != len(mods) {
		t.Fatalf("%d modules, want %d", len(got), len(mods))
	}
	for i := range mods {
		w, g := mods[i], got[i]
		if g.Module != w.Module || g.R != w.R || g.In != w.In || g.Out != w.Out || !slices.Equal(g.A, w.A) || !slices.Equal(g.B, w.B) {
			t.Errorf("module %d: got %s r=%d in=%d out=%d, want %s r=%d in=%d out=%d (or data differ)", i, g.Module, g.R, g.In, g.Out, w.Module, w.R, w.In, w.Out)
		}
	}

	// The files are what PEFT expects: key names and shapes, and the config fields it reads.
	st, err := OpenSafetensors(filepath.Join(dir, AdapterWeightsFile))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	a, okA := st.Tensor("base_model.model.predictor_blocks.1.mlp.fc2.lora_A.weight")
	b, okB := st.Tensor("base_model.model.predictor_blocks.1.mlp.fc2.lora_B.weight")
	if !okA || !okB || !slices.Equal(a.Info().Shape, []int{4, 64}) || !slices.Equal(b.Info().Shape, []int{16, 4}) {
		t.Errorf("fc2 lora tensors missing or mis-shaped (A %v, B %v)", a, b)
	}
	raw, _ := os.ReadFile(filepath.Join(dir, AdapterConfigFile))
	var js map[string]any
	if err := json.Unmarshal(raw, &js); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]any{"peft_type": "LORA", "task_type": nil, "r": 4.0, "lora_alpha": 8.0, "lora_dropout": 0.0,
		"use_rslora": true, "bias": "none", "fan_in_fan_out": false, "inference_mode": true, "base_model_name_or_path": "facebook/vjepa2-ac-vitg"} {
		if got, ok := js[k]; !ok || got != want {
			t.Errorf("adapter_config.json %s = %v (present %v), want %v", k, got, ok, want)
		}
	}
	if !strings.Contains(string(raw), `"lora_alpha": 8,`) {
		t.Errorf("lora_alpha not written as an integer:\n%s", raw)
	}
}

func TestPEFTErrors(t *testing.T) {
	dir := t.TempDir()
	good := NewAdapterConfig(2, 4, false, []string{"qkv"}, "")
	if s := good.Scaling(); s != 2 {
		t.Errorf("plain LoRA scaling %g, want alpha/r = 2", s)
	}
	l := randLoRA("m", 2, 3, 5, 1)
	bad := []struct {
		name string
		cfg  func(c *AdapterConfig)
		mods []LoRAWeights
		want string
	}{
		{"rank", nil, []LoRAWeights{randLoRA("m", 3, 3, 5, 1)}, "rank 3, config r = 2"},
		{"lengths", nil, []LoRAWeights{{Module: "m", R: 2, In: 3, Out: 5, A: l.A, B: l.B[:3]}}, "len(B)=3"},
		{"dora", func(c *AdapterConfig) { c.UseDoRA = true }, nil, "use_dora"},
		{"pattern", func(c *AdapterConfig) { c.RankPattern = map[string]int{"x": 8} }, nil, "rank_pattern"},
		{"type", func(c *AdapterConfig) { c.PeftType = "IA3" }, nil, `peft_type "IA3"`},
	}
	for _, c := range bad {
		t.Run("case="+c.name, func(t *testing.T) {
			cfg := good
			if c.cfg != nil {
				c.cfg(&cfg)
			}
			err := WritePEFTAdapter(filepath.Join(dir, c.name), cfg, c.mods)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("WritePEFTAdapter: %v, want an error containing %q", err, c.want)
			}
		})
	}
	// A config PEFT wrote with target_modules as a regex string and extra fields we do not model.
	ad := filepath.Join(dir, "foreign")
	if err := WritePEFTAdapter(ad, good, []LoRAWeights{l}); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(ad, AdapterConfigFile), []byte(`{"peft_type":"LORA","r":2,"lora_alpha":4,"target_modules":".*qkv","megatron_core":"megatron.core","loftq_config":{},"layers_to_transform":3}`), 0o644)
	cfg, mods, err := ReadPEFTAdapter(ad)
	if err != nil || !slices.Equal(cfg.TargetModules, []string{".*qkv"}) || len(mods) != 1 {
		t.Errorf("foreign config: %+v, %d modules, %v", cfg, len(mods), err)
	}
	os.WriteFile(filepath.Join(ad, AdapterConfigFile), []byte(`{"peft_type":"LORA","r":3,"lora_alpha":4}`), 0o644)
	if _, _, err := ReadPEFTAdapter(ad); err == nil || !strings.Contains(err.Error(), "rank 2, adapter_config.json says r = 3") {
		t.Errorf("rank disagreement: %v", err)
	}
	// Only one half of a pair.
	half := filepath.Join(dir, "half.safetensors")
	WriteSafetensors(half, []RawTensor{{TensorInfo{"base_model.model.m.lora_A.weight", DTypeF32, []int{2, 3}}, f32bytes(l.A...)}}, nil)
	st, _ := OpenSafetensors(half)
	defer st.Close()
	if _, err := LoRAFromTensors(half, st.Refs(), ""); err == nil || !strings.Contains(err.Error(), "has only one of lora_A and lora_B") {
		t.Errorf("half pair: %v", err)
	}
}

func TestPEFTFixture(t *testing.T) {
	dir := fixtureDir(t, "ac_tiny")
	st, err := OpenSafetensors(filepath.Join(dir, "case.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	mods, err := LoRAFromTensors(st.Source, st.Refs(), "lora.")
	if err != nil {
		t.Fatal(err)
	}
	shapes := map[string][2]int{"attn.qkv": {128, 384}, "attn.proj": {128, 128}, "mlp.fc1": {128, 512}, "mlp.fc2": {512, 128}}
	if len(mods) != 8 {
		t.Fatalf("%d LoRA modules, want 8 (2 blocks × qkv, proj, fc1, fc2)", len(mods))
	}
	for _, m := range mods {
		kind := m.Module[strings.Index(m.Module, ".")+3:]
		s, ok := shapes[kind]
		if !ok || m.R != 4 || m.In != s[0] || m.Out != s[1] {
			t.Errorf("%s: r=%d in=%d out=%d, want r=4 in=%d out=%d", m.Module, m.R, m.In, m.Out, s[0], s[1])
		}
	}
	// Values from the file, read independently with Python's struct module.
	for _, m := range mods {
		if m.Module == "predictor_blocks.1.mlp.fc2" {
			var sum float64
			for _, v := range m.A {
				sum += float64(v)
			}
			if float64(m.A[0]) != 0.006199746858328581 || float64(m.A[len(m.A)-1]) != 0.10441988706588745 || math.Abs(sum-0.15277972171315923) > 1e-9 {
				t.Errorf("%s lora_A: first %v last %v sum %v, want 0.006199746858328581 0.10441988706588745 0.15277972171315923", m.Module, m.A[0], m.A[len(m.A)-1], sum)
			}
		}
	}
	// The gradients share the names under "grad."; they load the same way.
	grads, err := LoRAFromTensors(st.Source, st.Refs(), "grad.")
	if err != nil || len(grads) != 8 {
		t.Errorf("grad.* as LoRA pairs: %d, %v", len(grads), err)
	}
	// And a round trip through the PEFT directory layout keeps them bit for bit.
	out := filepath.Join(t.TempDir(), "adapter")
	if err := WritePEFTAdapter(out, NewAdapterConfig(4, 8, true, []string{"qkv", "proj", "fc1", "fc2"}, ""), mods); err != nil {
		t.Fatal(err)
	}
	_, back, err := ReadPEFTAdapter(out)
	if err != nil {
		t.Fatal(err)
	}
	for i := range mods {
		if !slices.Equal(back[i].A, mods[i].A) || !slices.Equal(back[i].B, mods[i].B) || back[i].Module != mods[i].Module {
			t.Errorf("module %s changed in the round trip", mods[i].Module)
		}
	}
}
