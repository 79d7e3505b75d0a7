package model_test

import (
	"encoding/binary"
	"fmt"
	"testing"

	"github.com/vjepa-vk/vjepa-vk/model"
	"github.com/vjepa-vk/vjepa-vk/model/modeltest"
	"github.com/vjepa-vk/vjepa-vk/vk"
	"github.com/vjepa-vk/vjepa-vk/vk/vktest"
)

// TestBatchPart: a batch of B = parts·b clips computed as `parts` passes of b clips (data-parallel ranks,
// Predictor.SetBatchPart) draws the whole batch's adapter-dropout masks: each part's Out and DZ are the
// whole pass's rows, and the parts' adapter gradients add up to the whole pass's; fused and thin
// adapters, with and without checkpointing.
func TestBatchPart(t *testing.T) {
	d := vktest.Device(t)
	cfg := model.PredictorConfig{EmbedDim: 20, Dim: 24, Depth: 2, Heads: 2, Grid: 2, MLPRatio: 2}
	const T, b, seed = 3, 1, 77
	for _, c := range []struct {
		parts      int
		path       model.LoRAPath
		checkpoint bool
	}{{2, model.LoRAFused, false}, {3, model.LoRAFused, true}, {2, model.LoRAThin, true}} {
		t.Run(vktest.Name("parts", c.parts, "lora", string(c.path), "checkpoint", c.checkpoint), func(t *testing.T) {
			lora := &model.LoRAConfig{R: 2, Alpha: 4, Seed: 1, Dropout: 0.3, Path: c.path}
			B := c.parts * b
			in := batchInputs(t, modeltest.Predictor(t, d, cfg, model.FP32, lora, false), B, T)
			want := runPart(t, modeltest.Predictor(t, d, cfg, model.FP32, lora, false), B, T, c.checkpoint, in, 0, 1, seed)
			var grads [][]float64
			for part := range c.parts {
				// One predictor per part, as each rank has its own: its passes get the same salts.
				p := modeltest.Predictor(t, d, cfg, model.FP32, lora, false)
				p.SetBatchPart(part)
				got := runPart(t, p, b, T, c.checkpoint, in, part, c.parts, seed)
				for i, name := range []string{"Out", "DZ"} {
					n := len(want[i]) / c.parts
					// The same rows through the same kernels: only GEMM tiling over rows may differ.
					vktest.Close(t, fmt.Sprintf("part %d %s", part, name), got[i], vktest.F64(want[i][part*n:(part+1)*n]), 1e-6, 1e-6)
				}
				for i, g := range got[2:] {
					if part == 0 {
						grads = append(grads, make([]float64, len(g)))
					}
					for j, v := range g {
						grads[i][j] += float64(v)
					}
				}
			}
			for i := range grads {
				vktest.Close(t, fmt.Sprintf("adapter gradient %d summed over parts", i), want[2+i], grads[i], 1e-5, 1e-6)
			}
		})
	}
}

// batchInputs draws seeded inputs of a pass over B clips: Z, actions, states, DOut (batch-major).
func batchInputs(t *testing.T, p *model.Predictor, B, T int) [][]float32 {
	ps, err := p.NewPass(B, T, false)
	if err != nil {
		t.Fatal(err)
	}
	defer ps.Free()
	return [][]float32{vktest.RandN(1, ps.Z.Numel()), vktest.Rand(2, ps.Actions.Numel()), vktest.Rand(3, ps.States.Numel()), vktest.RandN(5, ps.DOut.Numel())}
}

// runPart runs part `part` of `parts` of the batch in (forward, backward) as one pass of B clips and
// returns Out, DZ and every GradA, GradB.
func runPart(t *testing.T, p *model.Predictor, B, T int, checkpoint bool, in [][]float32, part, parts int, seed uint32) [][]float32 {
	t.Helper()
	d := p.Device()
	p.SetTraining(true)
	if err := d.WriteBytes(p.DropoutSeed(), binary.LittleEndian.AppendUint32(nil, seed)); err != nil {
		t.Fatal(err)
	}
	ps, err := p.NewPass(B, T, checkpoint)
	if err != nil {
		t.Fatal(err)
	}
	defer ps.Free()
	for i, x := range []vk.Tensor{ps.Z, ps.Actions, ps.States, ps.DOut} {
		n := len(in[i]) / parts
		if err := d.Upload(x, in[i][part*n:(part+1)*n]); err != nil {
			t.Fatal(err)
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
	return out
}
