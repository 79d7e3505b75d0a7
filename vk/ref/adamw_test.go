package ref

import (
	"math"
	"testing"
)

// specHyper is step t of spec §10's optimizer (betas 0.9/0.999, eps 1e-8, weight decay 0.04).
func specHyper(t int, lr, gradScale float64) AdamHyper {
	return AdamHyper{LR: lr, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.04,
		BC1: 1 - math.Pow(0.9, float64(t)), BC2: 1 - math.Pow(0.999, float64(t)), GradScale: gradScale}
}

// TestAdamWFirstStep checks the hand-derived first step from a zero state: m = (1−β1)ĝ and v = (1−β2)ĝ²
// make m/BC1 = ĝ and sqrt(v/BC2) = |ĝ|, so p moves by −lr·ĝ/(|ĝ|+eps) ≈ −lr·sign(g), after the decay.
func TestAdamWFirstStep(t *testing.T) {
	for _, decay := range []bool{false, true} {
		h := specHyper(1, 1e-3, 0.5)
		p := []float64{1, -2, 0.5, 3}
		g := []float64{4, -0.02, 0, 1e-12}
		m, v := make([]float64, 4), make([]float64, 4)
		want := make([]float64, 4)
		for i := range p {
			pd := p[i]
			if decay {
				pd *= 1 - 1e-3*0.04
			}
			gs := 0.5 * g[i]
			want[i] = pd - 1e-3*gs/(math.Abs(gs)+1e-8)
		}
		AdamW(p, m, v, g, h, decay)
		for i := range p {
			if math.Abs(p[i]-want[i]) > 1e-15 {
				t.Errorf("AdamW(decay=%v) step 1: p[%d] = %.17g, want %.17g", decay, i, p[i], want[i])
			}
			if wm := 0.1 * 0.5 * g[i]; math.Abs(m[i]-wm) > 1e-16 {
				t.Errorf("AdamW(decay=%v) step 1: m[%d] = %g, want %g", decay, i, m[i], wm)
			}
		}
	}
}

// TestAdamWTorchForm checks the formula against PyTorch's _single_tensor_adamw written out step by step
// (param.mul_(1−lr·wd); exp_avg.lerp_(g, 1−β1); exp_avg_sq.mul_(β2).addcmul_(g, g, 1−β2);
// denom = sqrt(exp_avg_sq)/sqrt(bc2) + eps; param.addcdiv_(exp_avg, denom, −lr/bc1)) over 20 steps.
func TestAdamWTorchForm(t *testing.T) {
	const n = 64
	p, m, v := make([]float64, n), make([]float64, n), make([]float64, n)
	tp, tm, tv := make([]float64, n), make([]float64, n), make([]float64, n)
	for i := range p {
		p[i] = math.Sin(float64(i))
		tp[i] = p[i]
	}
	for step := 1; step <= 20; step++ {
		h := specHyper(step, 4.25e-4, 1.0/3)
		g := make([]float64, n)
		for i := range g {
			g[i] = math.Cos(float64(i*step)) * math.Exp(float64(i%7-3))
		}
		decay := step%2 == 0
		AdamW(p, m, v, g, h, decay)
		for i := range tp {
			gi := g[i] / 3
			if decay {
				tp[i] *= 1 - h.LR*h.WeightDecay
			}
			tm[i] += (gi - tm[i]) * (1 - h.Beta1)
			tv[i] = tv[i]*h.Beta2 + (1-h.Beta2)*gi*gi
			denom := math.Sqrt(tv[i])/math.Sqrt(h.BC2) + h.Eps
			tp[i] += -h.LR / h.BC1 * tm[i] / denom
		}
	}
	for i := range p {
		if d := math.Abs(p[i] - tp[i]); d > 1e-13 {
			t.Errorf("AdamW vs torch form after 20 steps: p[%d] = %.17g, want %.17g (diff %.3g > 1e-13)", i, p[i], tp[i], d)
		}
		if d := math.Abs(m[i]-tm[i]) + math.Abs(v[i]-tv[i]); d > 1e-13 {
			t.Errorf("AdamW vs torch form: m[%d], v[%d] = %g, %g; want %g, %g", i, i, m[i], v[i], tm[i], tv[i])
		}
	}
}

// TestAdamWSkip checks that Skip = 1 leaves parameters and moments untouched.
func TestAdamWSkip(t *testing.T) {
	h := specHyper(3, 1e-2, 1)
	h.Skip = 1
	p, m, v := []float64{1, 2}, []float64{0.1, -0.2}, []float64{0.01, 0.04}
	AdamW(p, m, v, []float64{5, 6}, h, true)
	if p[0] != 1 || p[1] != 2 || m[0] != 0.1 || m[1] != -0.2 || v[0] != 0.01 || v[1] != 0.04 {
		t.Errorf("AdamW with skip changed state: p %v, m %v, v %v", p, m, v)
	}
}
