package model_test

import (
	"math"
	"testing"

	"github.com/vjepa-vk/vjepa-vk/model"
	"github.com/vjepa-vk/vjepa-vk/model/modeltest"
	"github.com/vjepa-vk/vjepa-vk/vk/vktest"
)

// TestPassFusedEpilogues runs a pass forward and backward twice: with the blocks' residual adds, GELU and
// GELU's backward fused into the GEMM epilogues before them (as passes run), and with each as a kernel of
// its own after its GEMM (linear.unfused: the sequence before they were fused). Out, DZ and every
// adapter and weight gradient must agree bit for bit, with checkpointing on and off, adapter dropout on
// and off, fp32, fp16 and bf16 base weights, fused, thin and no adapters; and the fused stream must
// record exactly the dispatches it saves: per block the two residual adds and GELU in forward, GELU's
// backward, and with checkpointing the recompute's residual add and GELU (the recompute's fc2 computes
// only its adapter's hidden in both runs).
func TestPassFusedEpilogues(t *testing.T) {
	d := vktest.Device(t)
	type passCase struct {
		checkpoint  bool
		dropout     float64
		prec        model.Precision
		path        model.LoRAPath // "none": no adapters
		weightGrads bool
	}
	var cases []passCase
	for _, prec := range []model.Precision{model.FP32, model.FP16} {
		for _, ck := range []bool{false, true} {
			for _, p := range []float64{0, 0.3} {
				cases = append(cases, passCase{checkpoint: ck, dropout: p, prec: prec, path: model.LoRAFused})
			}
		}
	}
	cases = append(cases,
		passCase{checkpoint: true, dropout: 0.3, prec: model.BF16, path: model.LoRAFused, weightGrads: true},
		passCase{checkpoint: false, dropout: 0.3, prec: model.FP32, path: model.LoRAThin},
		passCase{checkpoint: true, dropout: 0.3, prec: model.FP16, path: model.LoRAThin},
		passCase{checkpoint: false, prec: model.FP16, path: "none", weightGrads: true},
		passCase{checkpoint: true, prec: model.FP32, path: "none", weightGrads: true},
	)
	cfg := model.PredictorConfig{EmbedDim: 20, Dim: 24, Depth: 2, Heads: 2, Grid: 2, MLPRatio: 2, Extrinsics: true}
	for _, c := range cases {
		name := vktest.Name("checkpoint", c.checkpoint, "dropout", c.dropout, "precision", string(c.prec), "lora", string(c.path),
			"weight_grads", c.weightGrads)
		t.Run(name, func(t *testing.T) {
			run := func(unfused bool) (out [][]float32, dispatches int) {
				var lora *model.LoRAConfig
				if c.path != "none" {
					lora = &model.LoRAConfig{R: 2, Alpha: 4, Seed: 1, Dropout: c.dropout, Path: c.path}
				}
				p := modeltest.Predictor(t, d, cfg, c.prec, lora, c.weightGrads)
				model.SetUnfusedEpilogues(p, unfused)
				return modeltest.Pass(t, p, 2, 3, c.checkpoint, 5)
			}
			fused, nFused := run(false)
			unfused, nUnfused := run(true)
			for i := range unfused {
				for j := range unfused[i] {
					if math.Float32bits(fused[i][j]) != math.Float32bits(unfused[i][j]) {
						t.Fatalf("result %d[%d] = %v fused, %v unfused (0 = Out, 1 = DZ, then GradA, GradB per adapter, then weight gradients)",
							i, j, fused[i][j], unfused[i][j])
					}
				}
			}
			saved := cfg.Depth * 4
			if c.checkpoint {
				saved += cfg.Depth * 2
			}
			if c.path == model.LoRAThin { // the thin path runs the ops as kernels of their own either way
				saved = 0
			}
			if nUnfused-nFused != saved {
				t.Errorf("dispatches: %d fused, %d unfused; want %d fewer fused", nFused, nUnfused, saved)
			}
		})
	}
}
