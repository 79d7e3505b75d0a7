package model_test

import (
	"math"
	"testing"

	"github.com/vjepa-vk/vjepa-vk/model"
	"github.com/vjepa-vk/vjepa-vk/model/modeltest"
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
				lora := model.LoRAConfig{R: 2, Alpha: 4, Seed: 1, Dropout: c.dropout}
				p := modeltest.Predictor(t, d, cfg, model.FP32, &lora, c.weightGrads)
				p.CheckLifetimes(check)
				out, _ := modeltest.Pass(t, p, 2, 3, c.checkpoint, 5)
				return out
			}
			shared, checked := run(false), run(true)
			sameBits(t, "pass with shared memory vs lifetime-checked", shared, checked)
		})
	}
}

// sameBits fails unless got and want (the run it must equal: lifetime-checked, unsplit, ...) are
// identical, reporting the first difference.
func sameBits(t *testing.T, what string, got, want [][]float32) {
	t.Helper()
	for i := range want {
		for j := range want[i] {
			if math.Float32bits(got[i][j]) != math.Float32bits(want[i][j]) {
				t.Fatalf("%s: result %d[%d] = %v, want %v bit for bit", what, i, j, got[i][j], want[i][j])
			}
		}
	}
}

// TestAdapterGradSplitK checks the split-K workspace of the adapters' weight-gradient GEMMs: on a pass
// long enough for the device's policy to split them (576 tokens), the recorded pass has the reduce
// dispatches of the split, and the adapter gradients agree with the unsplit GEMMs' to f32 summation order
// (1e-5 of each gradient's largest magnitude); Out and DZ do not depend on it and agree bit for bit.
func TestAdapterGradSplitK(t *testing.T) {
	d := vktest.Device(t)
	cfg := model.PredictorConfig{EmbedDim: 20, Dim: 24, Depth: 1, Heads: 2, Grid: 4, MLPRatio: 2}
	lora := model.LoRAConfig{R: 2, Alpha: 4, Seed: 1, Dropout: 0.2}
	run := func(split bool) ([][]float32, int) {
		p := modeltest.Predictor(t, d, cfg, model.FP32, &lora, false)
		if !split {
			model.DropGradSplitK(p)
		}
		return modeltest.Pass(t, p, 4, 8, true, 3)
	}
	got, nSplit := run(true)
	want, nPlain := run(false)
	if nSplit <= nPlain {
		t.Fatalf("the pass records %d dispatches with the split-K workspace, %d without: the weight-gradient GEMMs did not split", nSplit, nPlain)
	}
	sameBits(t, "Out and DZ", got[:2], want[:2])
	worst := 0.0
	for i := 2; i < len(want); i++ {
		var scale float64
		for _, v := range want[i] {
			scale = math.Max(scale, math.Abs(float64(v)))
		}
		for j := range want[i] {
			e := math.Abs(float64(got[i][j]-want[i][j])) / math.Max(scale, 1e-30)
			worst = math.Max(worst, e)
			if !(e <= 1e-5) {
				t.Fatalf("adapter gradient %d[%d] = %v split, %v unsplit (max |grad| %g)", i-2, j, got[i][j], want[i][j], scale)
			}
		}
	}
	t.Logf("%d dispatches split, %d unsplit; max |split - unsplit| / max |grad| = %.3g", nSplit, nPlain, worst)
}
