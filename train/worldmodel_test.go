package train_test

import (
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vjepa-vk/vjepa-vk/model"
	"github.com/vjepa-vk/vjepa-vk/model/modeltest"
	"github.com/vjepa-vk/vjepa-vk/plan"
	"github.com/vjepa-vk/vjepa-vk/train"
	"github.com/vjepa-vk/vjepa-vk/vk/vktest"
)

// demoAdapterCheckpoint writes a training checkpoint of the demo config holding seeded adapters (and an
// optimizer tensor the loader must ignore), as a run of `vjepa-vk train` leaves one.
func demoAdapterCheckpoint(t *testing.T) (string, *train.Config) {
	t.Helper()
	cfg, err := train.Load("../configs/demo.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	var yaml strings.Builder
	if err := train.Print(&yaml, cfg); err != nil {
		t.Fatal(err)
	}
	ck := &train.Checkpoint{Header: train.CheckpointHeader{Step: 7, Config: yaml.String()}}
	D, Hd, r := cfg.Model.PredDim, int(float64(cfg.Model.PredDim)*cfg.Model.MLPRatio), cfg.LoRA.R
	for i := range cfg.Model.Depth {
		for j, m := range []struct {
			name    string
			in, out int
		}{{"attn.qkv", D, 3 * D}, {"attn.proj", D, D}, {"mlp.fc1", D, Hd}, {"mlp.fc2", Hd, D}} {
			name := fmt.Sprintf("base_model.model.predictor_blocks.%d.%s", i, m.name)
			seed := uint64(40 + 10*i + j)
			ck.Tensors = append(ck.Tensors,
				train.F32Tensor(name+".lora_A.weight", []int{r, m.in}, vktest.RandN(seed, r*m.in)),
				train.F32Tensor(name+".lora_B.weight", []int{m.out, r}, vktest.Rand(seed+1, m.out*r)),
				train.F32Tensor("opt."+name+".lora_A.weight.m", []int{r, m.in}, make([]float32, r*m.in)))
		}
	}
	path := filepath.Join(t.TempDir(), train.CheckpointName(7))
	if err := train.WriteCheckpointFile(path, ck); err != nil {
		t.Fatal(err)
	}
	return path, cfg
}

// TestOpenWorldModel loads the demo's random base weights with an adapter from a training checkpoint,
// fused and merged, and checks that both score candidates alike and differently from the base model.
func TestOpenWorldModel(t *testing.T) {
	d := vktest.Device(t)
	path, cfg := demoAdapterCheckpoint(t)
	ac, mods, ckCfg, err := train.AdapterConfigOf(path)
	if err != nil {
		t.Fatal(err)
	}
	if ckCfg == nil || ckCfg.Model.PredDim != cfg.Model.PredDim || len(mods) != 4*cfg.Model.Depth || ac.R != cfg.LoRA.R {
		t.Fatalf("AdapterConfigOf: config %v, %d modules, r %d", ckCfg != nil, len(mods), ac.R)
	}
	score := func(o train.WorldModelOptions) []float64 {
		w, closeW, err := train.OpenWorldModel(d, cfg, o)
		if err != nil {
			t.Fatal(err)
		}
		defer closeW()
		rep := func(seed uint64) plan.Rep {
			v := vktest.RandN(seed, w.RepSize())
			return v
		}
		e, err := w.Score(rep(1), []plan.Rep{rep(2)}, []float64{0.4, 0, 0.3, 3, 0, 0, 0.5},
			[][][]float64{{{0.01, 0, 0, 0, 0, 0, 0.3}}, {{0, -0.02, 0.01, 0, 0, 0, 0}}})
		if err != nil {
			t.Fatal(err)
		}
		return []float64{e[0][0], e[1][0]}
	}
	fused := score(train.WorldModelOptions{Adapter: path, NoEncoder: true})
	merged := score(train.WorldModelOptions{Adapter: path, Merge: true, NoEncoder: true})
	base := score(train.WorldModelOptions{NoEncoder: true})
	for i := range fused {
		if math.Abs(fused[i]-merged[i]) > 1e-5*fused[i] {
			t.Errorf("candidate %d: fused %v, merged %v", i, fused[i], merged[i])
		}
		if math.Abs(fused[i]-base[i]) < 1e-5 {
			t.Errorf("candidate %d: the adapter changes the energy by %g only", i, fused[i]-base[i])
		}
	}
	// A PEFT folder of the same adapters gives the same energies.
	dir := t.TempDir()
	if err := model.WritePEFTAdapter(dir, ac, mods); err != nil {
		t.Fatal(err)
	}
	peft := score(train.WorldModelOptions{Adapter: dir, NoEncoder: true})
	for i := range peft {
		if peft[i] != fused[i] {
			t.Errorf("candidate %d: PEFT folder %v, training checkpoint %v", i, peft[i], fused[i])
		}
	}
	if _, _, _, err := train.AdapterConfigOf(filepath.Join(dir, "adapter_config.json")); err == nil {
		t.Error("AdapterConfigOf accepted a JSON file as a training checkpoint")
	}
}

// TestOpenWorldModelModules loads a predictor for a robot of its own widths (configs/lerobot-demo.yaml:
// 6-D states, 4-D actions): without an adapter it gets the fresh encoders its training starts from, with
// a PEFT adapter holding trained encoders (modules_to_save) it takes them, also under a 7-D config, and a
// config of other widths than the adapter's is refused.
func TestOpenWorldModelModules(t *testing.T) {
	d := vktest.Device(t)
	cfg, err := train.Load("../configs/lerobot-demo.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	D, r := cfg.Model.PredDim, cfg.LoRA.R
	pcfg := model.PredictorConfig{EmbedDim: cfg.Model.EmbedDim, Dim: D, Depth: cfg.Model.Depth, Heads: cfg.Model.Heads,
		Grid: cfg.Model.Img / cfg.Model.Patch, MLPRatio: cfg.Model.MLPRatio}
	mods := modeltest.LoRAWeights(pcfg, r, 60)
	modules := []model.ModuleTensor{
		{Name: "action_encoder.weight", Shape: []int{D, 4}, Data: vktest.RandN(90, D*4)},
		{Name: "action_encoder.bias", Shape: []int{D}, Data: vktest.RandN(91, D)},
		{Name: "state_encoder.weight", Shape: []int{D, 6}, Data: vktest.RandN(92, D*6)},
		{Name: "state_encoder.bias", Shape: []int{D}, Data: vktest.RandN(93, D)},
	}
	ac := model.NewAdapterConfig(r, cfg.LoRA.Alpha, false, cfg.LoRA.Targets, "")
	ac.ModulesToSave = []string{"action_encoder", "state_encoder"}
	dir := t.TempDir()
	if err := model.WritePEFTAdapter(dir, ac, mods, modules...); err != nil {
		t.Fatal(err)
	}
	score := func(cfg *train.Config, o train.WorldModelOptions) []float64 {
		w, closeW, err := train.OpenWorldModel(d, cfg, o)
		if err != nil {
			t.Fatal(err)
		}
		defer closeW()
		if w.ActionWidth() != 4 || w.StateWidth() != 6 || w.StateRule() != plan.StateHold {
			t.Fatalf("world model of %d-D actions, %d-D states, rule %s; want 4, 6, hold", w.ActionWidth(), w.StateWidth(), w.StateRule())
		}
		e, err := w.Score(vktest.RandN(1, w.RepSize()), []plan.Rep{vktest.RandN(2, w.RepSize())}, []float64{0.1, 0, 0.2, 0, 0.3, 0},
			[][][]float64{{{0.01, 0, 0.02, 0.5}}, {{-0.02, 0.01, 0, 0}}})
		if err != nil {
			t.Fatal(err)
		}
		return []float64{e[0][0], e[1][0]}
	}
	base := score(cfg, train.WorldModelOptions{NoEncoder: true})
	// Fresh encoders have zero weights: every action gives the same token, so both candidates score alike.
	if base[0] != base[1] {
		t.Errorf("fresh encoders: energies %v, want equal (zero action_encoder weights)", base)
	}
	fused := score(cfg, train.WorldModelOptions{Adapter: dir, NoEncoder: true})
	merged := score(cfg, train.WorldModelOptions{Adapter: dir, Merge: true, NoEncoder: true})
	demo, err := train.Load("../configs/demo.yaml", nil) // 7-D config: the adapter's widths win
	if err != nil {
		t.Fatal(err)
	}
	under7 := score(demo, train.WorldModelOptions{Adapter: dir, NoEncoder: true})
	for i := range fused {
		if fused[i] == fused[1-i] || math.Abs(fused[i]-merged[i]) > 1e-5*fused[i] || under7[i] != fused[i] {
			t.Errorf("candidate %d: fused %v, merged %v, under the 7-D config %v", i, fused, merged, under7)
		}
	}
	bad := *cfg
	bad.Model.ActionDim = 5
	if _, _, err := train.OpenWorldModel(d, &bad, train.WorldModelOptions{Adapter: dir, NoEncoder: true}); err == nil ||
		!strings.Contains(err.Error(), "takes 4-D actions, but config") {
		t.Errorf("OpenWorldModel with action_dim 5 and a 4-D adapter: %v", err)
	}
}
