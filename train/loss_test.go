package train_test

import (
	"math"
	"testing"

	"github.com/vjepa-vk/vjepa-vk/model"
	"github.com/vjepa-vk/vjepa-vk/model/modeltest"
	"github.com/vjepa-vk/vjepa-vk/train"
	"github.com/vjepa-vk/vjepa-vk/vk"
	"github.com/vjepa-vk/vjepa-vk/vk/vktest"
)

// lossRun is the outputs of one recorded training objective.
type lossRun struct {
	ltf, lar float32
	grads    [][]float32 // GradA, GradB of every adapter
}

// runLoss builds a random predictor of cfg with non-zero adapters (seeded), runs LossGraph forward and
// backward once on seeded inputs, and returns losses and gradients.
func runLoss(t *testing.T, d *vk.Device, cfg model.PredictorConfig, prec model.Precision, B, T, k int, checkpoint bool) lossRun {
	return runLossDropout(t, d, cfg, prec, B, T, k, checkpoint, 0, false)
}

// runLossDropout is runLoss with adapter dropout p, recorded as a training step when training is set.
func runLossDropout(t *testing.T, d *vk.Device, cfg model.PredictorConfig, prec model.Precision, B, T, k int, checkpoint bool, dropout float64, training bool) lossRun {
	t.Helper()
	p, err := model.LoadPredictor(d, cfg, model.InitPredictor(cfg, 7), prec)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Free()
	if err := p.AddLoRA(model.LoRAConfig{R: 3, Alpha: 6, RSLoRA: true, Seed: 3, Dropout: dropout}); err != nil {
		t.Fatal(err)
	}
	p.SetTraining(training)
	if seed := p.DropoutSeed(); seed.Valid() {
		if err := d.WriteBytes(seed, []byte{7, 0, 0, 0}); err != nil {
			t.Fatal(err)
		}
	}
	for i, a := range p.LoRAs { // B = 0 after PEFT init would hide the adapter path: make it non-zero
		if err := d.Upload(a.B, vktest.Rand(uint64(100+i), a.B.Numel())); err != nil {
			t.Fatal(err)
		}
	}
	g, err := train.NewLossGraph(p, B, T, k, checkpoint)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Free()
	HW := cfg.Grid * cfg.Grid
	for i, u := range []struct {
		t vk.Tensor
		v []float32
	}{
		{g.Features, vktest.RandN(1, B*T*HW*cfg.EmbedDim)},
		{g.Actions, vktest.Rand(2, B*(T-1)*7)},
		{g.States, vktest.Rand(3, B*T*7)},
		{g.DLoss, []float32{1}},
	} {
		if err := d.Upload(u.t, u.v); err != nil {
			t.Fatalf("upload %d: %v", i, err)
		}
	}
	if cfg.Extrinsics {
		if err := d.Upload(g.Extrinsics, vktest.Rand(4, B*T*6)); err != nil {
			t.Fatal(err)
		}
	}
	s := vktest.Stream(t, d)
	train.ZeroGrads(s, p)
	g.Forward(s)
	g.Backward(s)
	vktest.Run(t, s)
	r := lossRun{ltf: vktest.Download(t, d, g.LossTF)[0], lar: vktest.Download(t, d, g.LossAR)[0]}
	for _, a := range p.LoRAs {
		r.grads = append(r.grads, vktest.Download(t, d, a.GradA), vktest.Download(t, d, a.GradB))
	}
	return r
}

func smallConfig() model.PredictorConfig {
	return model.PredictorConfig{EmbedDim: 40, Dim: 48, Depth: 3, Heads: 2, Grid: 2, MLPRatio: 4}
}

// TestGradCheckpointing checks that recomputing each block in backward gives the same gradients as
// keeping every activation: the recompute runs the very same dispatches, so they must match exactly.
func TestGradCheckpointing(t *testing.T) {
	d := vktest.Device(t)
	for _, ext := range []bool{false, true} {
		t.Run(vktest.Name("extrinsics", ext), func(t *testing.T) {
			cfg := smallConfig()
			cfg.Extrinsics = ext
			full := runLoss(t, d, cfg, model.FP32, 2, 4, 3, false)
			ckpt := runLoss(t, d, cfg, model.FP32, 2, 4, 3, true)
			if full.ltf != ckpt.ltf || full.lar != ckpt.lar {
				t.Errorf("losses (%v, %v) with checkpointing, (%v, %v) without", ckpt.ltf, ckpt.lar, full.ltf, full.lar)
			}
			for i := range full.grads {
				for j := range full.grads[i] {
					if full.grads[i][j] != ckpt.grads[i][j] {
						t.Fatalf("grad %d[%d] = %v with checkpointing, %v without", i, j, ckpt.grads[i][j], full.grads[i][j])
					}
				}
			}
		})
	}
}

// passRun is the outputs and gradients of one predictor pass with a fixed upstream gradient.
type passRun struct {
	out, dz []float32
	grads   [][]float32
}

// runPass runs one predictor forward and backward with a seeded upstream gradient DOut. Unlike the L1
// objective, whose gradient sign(z − h) flips where |z − h| is below the rounding of a precision mode,
// this is smooth in the weights, so it measures the precision modes' own error.
func runPass(t *testing.T, d *vk.Device, cfg model.PredictorConfig, w model.MapWeights, prec model.Precision, B, T int) passRun {
	t.Helper()
	p, err := model.LoadPredictor(d, cfg, w, prec)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Free()
	if err := p.AddLoRA(model.LoRAConfig{R: 3, Alpha: 6, RSLoRA: true, Seed: 3}); err != nil {
		t.Fatal(err)
	}
	for i, a := range p.LoRAs {
		// Small enough that attention logits stay O(1): a saturated softmax would amplify any rounding.
		b := vktest.Rand(uint64(100+i), a.B.Numel())
		for j := range b {
			b[j] *= 0.05
		}
		if err := d.Upload(a.B, b); err != nil {
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
	}{
		{ps.Z, vktest.RandN(1, ps.Z.Numel())}, {ps.Actions, vktest.Rand(2, ps.Actions.Numel())},
		{ps.States, vktest.Rand(3, ps.States.Numel())}, {ps.DOut, vktest.RandN(4, ps.DOut.Numel())},
	} {
		if err := d.Upload(u.t, u.v); err != nil {
			t.Fatalf("upload %d: %v", i, err)
		}
	}
	s := vktest.Stream(t, d)
	train.ZeroGrads(s, p)
	ps.Forward(s)
	ps.Backward(s, true)
	vktest.Run(t, s)
	r := passRun{out: vktest.Download(t, d, ps.Out), dz: vktest.Download(t, d, ps.DZ)}
	for _, a := range p.LoRAs {
		r.grads = append(r.grads, vktest.Download(t, d, a.GradA), vktest.Download(t, d, a.GradB))
	}
	return r
}

// TestPrecisionModes checks the fp16 and bf16 base-weight modes two ways. On weights already rounded to
// the mode's format, fp32 and the mode must agree exactly: the GEMMs convert on load and accumulate in
// f32, nothing else changes. On unrounded weights it measures the mode's error against fp32 (max|Δ| /
// max|fp32| of the output, the input gradient and the LoRA gradients): f16 keeps 11 mantissa bits
// (2^-11 ≈ 5e-4), bf16 8 (2^-8 ≈ 4e-3), and errors of that order are expected.
func TestPrecisionModes(t *testing.T) {
	d := vktest.Device(t)
	cfg := smallConfig()
	w := model.InitPredictor(cfg, 7)
	ref := runPass(t, d, cfg, w, model.FP32, 2, 3)
	for _, c := range []struct {
		prec  model.Precision
		round func(float32) float32
		tol   float64
	}{
		{model.FP16, func(x float32) float32 { return vk.F16ToF32(vk.F32ToF16(x)) }, 5e-3},
		{model.BF16, func(x float32) float32 { return vk.DecodeF32(vk.BF16, vk.EncodeF32(vk.BF16, []float32{x}))[0] }, 4e-2},
	} {
		t.Run(string(c.prec), func(t *testing.T) {
			got := runPass(t, d, cfg, w, c.prec, 2, 3)
			oerr, derr := normRelErr(got.out, ref.out), normRelErr(got.dz, ref.dz)
			gerr := 0.0
			for i := range ref.grads {
				gerr = math.Max(gerr, normRelErr(got.grads[i], ref.grads[i]))
			}
			t.Logf("%s vs fp32: output %.2e, input gradient %.2e, LoRA gradients %.2e", c.prec, oerr, derr, gerr)
			if oerr > c.tol || derr > c.tol || gerr > c.tol {
				t.Errorf("%s: errors %.2e, %.2e, %.2e exceed %.0e", c.prec, oerr, derr, gerr, c.tol)
			}
			rounded := model.MapWeights{}
			for k, v := range w {
				r := make([]float32, len(v))
				for i, x := range v {
					r[i] = c.round(x)
				}
				rounded[k] = r
			}
			exact := runPass(t, d, cfg, rounded, model.FP32, 2, 3)
			mode := runPass(t, d, cfg, rounded, c.prec, 2, 3)
			if e := normRelErr(mode.out, exact.out) + normRelErr(mode.dz, exact.dz); e > 1e-6 {
				t.Errorf("%s on %s-rounded weights differs from fp32 by %.2e: the mode changes more than weight storage", c.prec, c.prec, e)
			}
		})
	}
}

func normRelErr(got, want []float32) float64 {
	var d, m float64
	for i := range want {
		d = math.Max(d, math.Abs(float64(got[i]-want[i])))
		m = math.Max(m, math.Abs(float64(want[i])))
	}
	return d / m
}

// TestLoRADropout checks adapter dropout: the mask is regenerated, not stored, so checkpoint recompute
// must give the same gradients; it changes the step when training and is absent when not.
func TestLoRADropout(t *testing.T) {
	d := vktest.Device(t)
	cfg := smallConfig()
	plain := runLossDropout(t, d, cfg, model.FP32, 2, 4, 3, false, 0, true)
	drop := runLossDropout(t, d, cfg, model.FP32, 2, 4, 3, false, 0.3, true)
	dropCkpt := runLossDropout(t, d, cfg, model.FP32, 2, 4, 3, true, 0.3, true)
	eval := runLossDropout(t, d, cfg, model.FP32, 2, 4, 3, false, 0.3, false)
	if drop.ltf == plain.ltf {
		t.Errorf("dropout 0.3 left the teacher-forcing loss unchanged (%v)", drop.ltf)
	}
	if eval.ltf != plain.ltf || eval.lar != plain.lar {
		t.Errorf("outside training, dropout changed the losses: (%v, %v) vs (%v, %v)", eval.ltf, eval.lar, plain.ltf, plain.lar)
	}
	if drop.ltf != dropCkpt.ltf || drop.lar != dropCkpt.lar {
		t.Errorf("checkpointing changed the losses with dropout: (%v, %v) vs (%v, %v)", dropCkpt.ltf, dropCkpt.lar, drop.ltf, drop.lar)
	}
	for i := range drop.grads {
		for j := range drop.grads[i] {
			if drop.grads[i][j] != dropCkpt.grads[i][j] {
				t.Fatalf("grad %d[%d] = %v with checkpointing, %v without (dropout masks must be regenerated exactly)", i, j, dropCkpt.grads[i][j], drop.grads[i][j])
			}
		}
	}
}

// TestLoRAPaths checks that the fused adapters (the low-rank products inside the base GEMMs, the dropout
// mask hashed there) and the thin ones (GEMMs and a masking pass of their own) compute the same pass:
// output, input gradient and adapter gradients for L = Σ Out·G, with checkpointing. The fused GEMM adds
// the base product to the adapter's instead of the other way round, so they agree to rounding, not bit
// for bit: 1e-4 of each tensor's largest magnitude (measured: 2e-6 on Out, up to 4e-5 on gradients, the
// large random adapters cancelling against the base path); a wrong mask or operand differs by O(1).
// (A smooth L: the L1 losses' sign gradient would turn rounding differences into flipped signs.)
func TestLoRAPaths(t *testing.T) {
	d := vktest.Device(t)
	cfg := smallConfig()
	for _, prec := range []model.Precision{model.FP32, model.FP16} {
		for _, p := range []float64{0, 0.3} {
			t.Run(vktest.Name("precision", prec, "dropout", p), func(t *testing.T) {
				fused := runPassPath(t, d, cfg, prec, p, model.LoRAFused)
				thin := runPassPath(t, d, cfg, prec, p, model.LoRAThin)
				worst := 0.0
				for i := range thin {
					var scale float64
					for _, v := range thin[i] {
						scale = math.Max(scale, math.Abs(float64(v)))
					}
					for j := range thin[i] {
						e := math.Abs(float64(fused[i][j]-thin[i][j])) / math.Max(scale, 1e-30)
						worst = math.Max(worst, e)
						if !(e <= 1e-4) { // NaN fails too
							t.Fatalf("tensor %d (0 Out, 1 DZ, then dA, dB per adapter) [%d]: fused %v, thin %v (max |thin| %g)",
								i, j, fused[i][j], thin[i][j], scale)
						}
					}
				}
				t.Logf("max |fused - thin| / max |thin| = %.3g", worst)
			})
		}
	}
}

// runPassPath runs one predictor pass (modeltest.Pass), adapters along path with dropout p in a training
// step, and returns Out, DZ and every adapter's GradA and GradB.
func runPassPath(t *testing.T, d *vk.Device, cfg model.PredictorConfig, prec model.Precision, p float64, path model.LoRAPath) [][]float32 {
	t.Helper()
	pr, err := model.LoadPredictor(d, cfg, model.InitPredictor(cfg, 7), prec)
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Free()
	if err := pr.AddLoRA(model.LoRAConfig{R: 3, Alpha: 6, RSLoRA: true, Seed: 3, Dropout: p, Path: path}); err != nil {
		t.Fatal(err)
	}
	for i, a := range pr.LoRAs {
		if err := d.Upload(a.B, vktest.Rand(uint64(50+i), a.B.Numel())); err != nil {
			t.Fatal(err)
		}
	}
	out, _ := modeltest.Pass(t, pr, 2, 3, true, 9)
	return out
}

// TestLoRADropoutGradient checks the adapter gradients of a predictor pass with dropout on against
// central finite differences of L = Σ Out·G (G is the upstream gradient), for entries of A and B of
// several adapters: the dropout mask must reach dA (through the dropped input) and the input gradient.
func TestLoRADropoutGradient(t *testing.T) {
	d := vktest.Device(t)
	cfg := smallConfig()
	p, err := model.LoadPredictor(d, cfg, model.InitPredictor(cfg, 7), model.FP32)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Free()
	if err := p.AddLoRA(model.LoRAConfig{R: 3, Alpha: 6, RSLoRA: true, Seed: 3, Dropout: 0.4}); err != nil {
		t.Fatal(err)
	}
	p.SetTraining(true)
	if err := d.WriteBytes(p.DropoutSeed(), []byte{9, 0, 0, 0}); err != nil {
		t.Fatal(err)
	}
	for i, a := range p.LoRAs {
		b := vktest.Rand(uint64(50+i), a.B.Numel())
		for j := range b {
			b[j] *= 0.05
		}
		if err := d.Upload(a.B, b); err != nil {
			t.Fatal(err)
		}
	}
	ps, err := p.NewPass(2, 2, false)
	if err != nil {
		t.Fatal(err)
	}
	defer ps.Free()
	G := vktest.RandN(4, ps.DOut.Numel())
	for i, u := range []struct {
		t vk.Tensor
		v []float32
	}{{ps.Z, vktest.RandN(1, ps.Z.Numel())}, {ps.Actions, vktest.Rand(2, ps.Actions.Numel())},
		{ps.States, vktest.Rand(3, ps.States.Numel())}, {ps.DOut, G}} {
		if err := d.Upload(u.t, u.v); err != nil {
			t.Fatalf("upload %d: %v", i, err)
		}
	}
	full, fwd := vktest.Stream(t, d), vktest.Stream(t, d)
	train.ZeroGrads(full, p)
	ps.Forward(full)
	ps.Backward(full, false)
	ps.Forward(fwd)
	vktest.Run(t, full)
	loss := func() float64 {
		vktest.Run(t, fwd)
		out := vktest.Download(t, d, ps.Out)
		var l float64
		for i := range out {
			l += float64(out[i]) * float64(G[i])
		}
		return l
	}
	const eps = 1e-2
	worst := 0.0
	for _, idx := range []int{0, 5, len(p.LoRAs) - 1} {
		a := p.LoRAs[idx]
		for _, w := range []struct {
			name    string
			p, grad vk.Tensor
		}{{"A", a.A, a.GradA}, {"B", a.B, a.GradB}} {
			vals := vktest.Download(t, d, w.p)
			grad := vktest.Download(t, d, w.grad)
			for _, e := range []int{0, len(vals) / 2, len(vals) - 1} {
				orig := vals[e]
				vals[e] = orig + eps
				_ = d.Upload(w.p, vals)
				lp := loss()
				vals[e] = orig - eps
				_ = d.Upload(w.p, vals)
				lm := loss()
				vals[e] = orig
				_ = d.Upload(w.p, vals)
				fd := (lp - lm) / (2 * eps)
				err := math.Abs(fd-float64(grad[e])) / math.Max(math.Abs(fd), 1e-2)
				worst = math.Max(worst, err)
				if err > 2e-2 {
					t.Errorf("%s.%s[%d]: gradient %.6g, finite difference %.6g", a.Module, w.name, e, grad[e], fd)
				}
			}
		}
	}
	t.Logf("worst relative difference to finite differences: %.2e", worst)
}
