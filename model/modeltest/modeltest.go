// Package modeltest runs predictor passes for tests: seeded inputs, one forward and backward, and every
// result downloaded, so that the tests comparing two ways of computing a pass (fused and unfused kernels,
// shared and lifetime-checked memory, LoRA paths) share one harness.
package modeltest

import (
	"encoding/binary"
	"fmt"
	"testing"

	"github.com/vjepa-vk/vjepa-vk/model"
	"github.com/vjepa-vk/vjepa-vk/vk"
	"github.com/vjepa-vk/vjepa-vk/vk/vktest"
)

// Predictor returns a predictor of cfg with seeded random weights in precision prec, freed when the test
// ends; with lora, adapters whose B is seeded random too (PEFT's zero B would hide the adapter path); with
// weightGrads, gradients of the frozen weights on.
func Predictor(t testing.TB, d *vk.Device, cfg model.PredictorConfig, prec model.Precision, lora *model.LoRAConfig, weightGrads bool) *model.Predictor {
	t.Helper()
	p, err := model.LoadPredictor(d, cfg, model.InitPredictor(cfg, 5), prec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Free)
	if lora != nil {
		if err := p.AddLoRA(*lora); err != nil {
			t.Fatal(err)
		}
		for i, a := range p.LoRAs {
			if err := d.Upload(a.B, vktest.Rand(uint64(30+i), a.B.Numel())); err != nil {
				t.Fatal(err)
			}
		}
	}
	if weightGrads {
		if err := p.EnableWeightGrads(); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

// Pass records one pass of p over B clips of T frames, as in a training step (adapter dropout on, with
// dropout seed seed), on seeded inputs: forward, then backward of Σ Out·G for a seeded G, DZ included.
// It returns Out, DZ, every adapter's GradA and GradB, and every weight gradient (after
// Predictor.EnableWeightGrads), in that order, and the number of dispatches the pass recorded.
func Pass(t testing.TB, p *model.Predictor, B, T int, checkpoint bool, seed uint32) (results [][]float32, dispatches int) {
	t.Helper()
	d := p.Device()
	p.SetTraining(true)
	if s := p.DropoutSeed(); s.Valid() {
		if err := d.WriteBytes(s, binary.LittleEndian.AppendUint32(nil, seed)); err != nil {
			t.Fatal(err)
		}
	}
	ps, err := p.NewPass(B, T, checkpoint)
	if err != nil {
		t.Fatal(err)
	}
	defer ps.Free()
	inputs := []struct {
		t vk.Tensor
		v []float32
	}{{ps.Z, vktest.RandN(1, ps.Z.Numel())}, {ps.Actions, vktest.Rand(2, ps.Actions.Numel())},
		{ps.States, vktest.Rand(3, ps.States.Numel())}, {ps.DOut, vktest.RandN(5, ps.DOut.Numel())}}
	if p.Cfg.Extrinsics {
		inputs = append(inputs, struct {
			t vk.Tensor
			v []float32
		}{ps.Extrinsics, vktest.Rand(4, ps.Extrinsics.Numel())})
	}
	for i, u := range inputs {
		if err := d.Upload(u.t, u.v); err != nil {
			t.Fatalf("upload input %d: %v", i, err)
		}
	}
	s := vktest.Stream(t, d)
	ps.Forward(s)
	ps.Backward(s, true)
	dispatches, _ = s.Stats()
	vktest.Run(t, s)
	results = [][]float32{vktest.Download(t, d, ps.Out), vktest.Download(t, d, ps.DZ)}
	for _, a := range p.LoRAs {
		results = append(results, vktest.Download(t, d, a.GradA), vktest.Download(t, d, a.GradB))
	}
	for _, g := range p.WeightGrads() {
		results = append(results, vktest.Download(t, d, g.Grad))
	}
	return results, dispatches
}

// LoRAWeights are seeded adapters of rank r on the four targets of every block of cfg (A normal, B
// uniform: PEFT's zero B would hide the adapters), as a PEFT folder or a checkpoint holds them.
func LoRAWeights(cfg model.PredictorConfig, r int, seed uint64) []model.LoRAWeights {
	D, Hd := cfg.Dim, cfg.MLPHidden()
	var mods []model.LoRAWeights
	for i := range cfg.Depth {
		for j, m := range []struct {
			name    string
			in, out int
		}{{"attn.qkv", D, 3 * D}, {"attn.proj", D, D}, {"mlp.fc1", D, Hd}, {"mlp.fc2", Hd, D}} {
			s := seed + uint64(10*i+j)
			mods = append(mods, model.LoRAWeights{Module: fmt.Sprintf("predictor_blocks.%d.%s", i, m.name), R: r,
				In: m.in, Out: m.out, A: vktest.RandN(s, r*m.in), B: vktest.Rand(s+5, m.out*r)})
		}
	}
	return mods
}
