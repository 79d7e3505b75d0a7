package model_test

import (
	"math"
	"testing"

	"github.com/vjepa-vk/vjepa-vk/model"
	"github.com/vjepa-vk/vjepa-vk/vk"
	"github.com/vjepa-vk/vjepa-vk/vk/vktest"
)

// TestWeightGrads checks the optional full weight gradients of a predictor pass against central finite
// differences of L = Σ Out·G, on entries of every kind of parameter (embeddings, conditioning encoders,
// attention, MLP, LayerNorms, output projection), with extrinsics so the third encoder is covered too.
func TestWeightGrads(t *testing.T) {
	d := vktest.Device(t)
	cfg := model.PredictorConfig{EmbedDim: 20, Dim: 24, Depth: 2, Heads: 2, Grid: 2, MLPRatio: 2, Extrinsics: true}
	base := model.InitPredictor(cfg, 5)
	for name, v := range base { // non-trivial norms and biases, so their gradients matter
		r := vktest.Rand(uint64(len(name)), len(v))
		for i := range v {
			v[i] += 0.1 * r[i]
		}
	}
	const B, T = 2, 2
	z, act := vktest.RandN(1, B*T*4*cfg.EmbedDim), vktest.Rand(2, B*T*7)
	st, ext := vktest.Rand(3, B*T*7), vktest.Rand(4, B*T*6)
	G := vktest.RandN(5, B*T*4*cfg.EmbedDim)
	run := func(w model.MapWeights, grads bool) (float64, []model.NamedGrad, *model.Predictor) {
		p, err := model.LoadPredictor(d, cfg, w, model.FP32)
		if err != nil {
			t.Fatal(err)
		}
		if grads {
			if err := p.EnableWeightGrads(); err != nil {
				t.Fatal(err)
			}
		}
		ps, err := p.NewPass(B, T, false)
		if err != nil {
			t.Fatal(err)
		}
		defer ps.Free()
		for i, u := range []struct {
			t vk.Tensor
			v []float32
		}{{ps.Z, z}, {ps.Actions, act}, {ps.States, st}, {ps.Extrinsics, ext}, {ps.DOut, G}} {
			if err := d.Upload(u.t, u.v); err != nil {
				t.Fatalf("upload %d: %v", i, err)
			}
		}
		s := vktest.Stream(t, d)
		ps.Forward(s)
		if grads {
			ps.Backward(s, false)
		}
		vktest.Run(t, s)
		out := vktest.Download(t, d, ps.Out)
		var l float64
		for i := range out {
			l += float64(out[i]) * float64(G[i])
		}
		return l, p.WeightGrads(), p
	}
	_, grads, p := run(base, true)
	defer p.Free()
	byName := map[string][]float32{}
	for _, g := range grads {
		byName[g.Name] = vktest.Download(t, d, g.Grad)
	}
	if len(grads) != len(model.PredictorTensors(cfg)) {
		t.Fatalf("%d weight gradients, want one per tensor (%d)", len(grads), len(model.PredictorTensors(cfg)))
	}
	const eps = 1e-2
	worst := 0.0
	for _, name := range []string{
		"predictor_embed.weight", "predictor_embed.bias", "action_encoder.weight", "state_encoder.bias",
		"extrinsics_encoder.weight", "predictor_blocks.0.norm1.weight", "predictor_blocks.0.attn.qkv.weight",
		"predictor_blocks.0.attn.qkv.bias", "predictor_blocks.1.attn.proj.weight", "predictor_blocks.1.norm2.bias",
		"predictor_blocks.0.mlp.fc1.weight", "predictor_blocks.1.mlp.fc2.weight", "predictor_norm.weight",
		"predictor_proj.weight", "predictor_proj.bias",
	} {
		g := byName[name]
		for _, i := range []int{0, len(g) / 3, len(g) - 1} {
			orig := base[name][i]
			base[name][i] = orig + eps
			lp, _, pp := run(base, false)
			pp.Free()
			base[name][i] = orig - eps
			lm, _, pm := run(base, false)
			pm.Free()
			base[name][i] = orig
			fd := (lp - lm) / (2 * eps)
			e := math.Abs(fd-float64(g[i])) / math.Max(math.Abs(fd), 1e-1)
			worst = math.Max(worst, e)
			if e > 2e-2 {
				t.Errorf("%s[%d]: gradient %.6g, finite difference %.6g", name, i, g[i], fd)
			}
		}
	}
	t.Logf("worst relative difference to finite differences: %.2e", worst)
}
