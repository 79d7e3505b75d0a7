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
