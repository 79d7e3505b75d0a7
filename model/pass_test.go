package model_test

import (
	"math"
	"testing"

	"github.com/vjepa-vk/vjepa-vk/model"
	"github.com/vjepa-vk/vjepa-vk/vk"
	"github.com/vjepa-vk/vjepa-vk/vk/vktest"
)

// TestPassLifetimes runs a pass forward and backward twice: with its tensors sharing memory by lifetime
// (the arena's placement), and with lifetime checks (nothing shared, every tensor filled with NaN outside
// its declared lifetime). A lifetime declared too short reads NaN in the checked run, and a placement
// that lets two live tensors overlap corrupts the shared one; either way the runs differ. They must agree
// bit for bit: the output, the input gradient, the adapter and the frozen weights' gradients.
func TestPassLifetimes(t *testing.T) {
	d := vktest.Device(t)
	for _, c := range []struct {
		checkpoint, weightGrads bool
		dropout                 float64
	}{{false, false, 0}, {true, false, 0.3}, {false, true, 0.3}, {true, true, 0}} {
		t.Run(vktest.Name("checkpoint", c.checkpoint, "weight_grads", c.weightGrads, "dropout", c.dropout), func(t *testing.T) {
			cfg := model.PredictorConfig{EmbedDim: 20, Dim: 24, Depth: 2, Heads: 2, Grid: 2, MLPRatio: 2, Extrinsics: true}
			run := func(check bool) [][]float32 {
				p, err := model.LoadPredictor(d, cfg, model.InitPredictor(cfg, 5), model.FP32)
				if err != nil {
					t.Fatal(err)
				}
				defer p.Free()
				p.CheckLifetimes(check)
				if err := p.AddLoRA(model.LoRAConfig{R: 2, Alpha: 4, Seed: 1, Dropout: c.dropout}); err != nil {
					t.Fatal(err)
				}
				for i, a := range p.LoRAs {
					if err := d.Upload(a.B, vktest.Rand(uint64(30+i), a.B.Numel())); err != nil {
						t.Fatal(err)
					}
				}
				if c.weightGrads {
					if err := p.EnableWeightGrads(); err != nil {
						t.Fatal(err)
					}
				}
				p.SetTraining(true)
				if seed := p.DropoutSeed(); seed.Valid() {
					if err := d.WriteBytes(seed, []byte{5, 0, 0, 0}); err != nil {
						t.Fatal(err)
					}
				}
				ps, err := p.NewPass(2, 3, c.checkpoint)
				if err != nil {
					t.Fatal(err)
				}
				defer ps.Free()
				for i, u := range []struct {
					t vk.Tensor
					v []float32
				}{{ps.Z, vktest.RandN(1, ps.Z.Numel())}, {ps.Actions, vktest.Rand(2, ps.Actions.Numel())},
					{ps.States, vktest.Rand(3, ps.States.Numel())}, {ps.Extrinsics, vktest.Rand(4, ps.Extrinsics.Numel())},
					{ps.DOut, vktest.RandN(5, ps.DOut.Numel())}} {
					if err := d.Upload(u.t, u.v); err != nil {
						t.Fatalf("upload %d: %v", i, err)
					}
				}
				s := vktest.Stream(t, d)
				ps.Forward(s)
				ps.Backward(s, true)
				vktest.Run(t, s)
				out := [][]float32{vktest.Download(t, d, ps.Out), vktest.Download(t, d, ps.DZ)}
				for _, a := range p.LoRAs {
					out = append(out, vktest.Download(t, d, a.GradA), vktest.Download(t, d, a.GradB))
				}
				for _, g := range p.WeightGrads() {
					out = append(out, vktest.Download(t, d, g.Grad))
				}
				return out
			}
			shared, checked := run(false), run(true)
			sameBits(t, "pass", shared, checked)
		})
	}
}

// sameBits fails unless got (shared memory) and want (checked) are identical, reporting the first
// difference.
func sameBits(t *testing.T, what string, got, want [][]float32) {
	t.Helper()
	for i := range want {
		for j := range want[i] {
			if math.Float32bits(got[i][j]) != math.Float32bits(want[i][j]) {
				t.Fatalf("%s: result %d[%d] = %v with shared memory, %v with lifetime checks", what, i, j, got[i][j], want[i][j])
			}
		}
	}
}
