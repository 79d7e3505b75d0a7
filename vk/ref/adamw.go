package ref

import (
	"fmt"
	"math"
)

// AdamHyper holds one step's optimizer scalars, field for field as vk.AdamHyper lays them out in its
// device buffer. BC1 = 1−β1^t and BC2 = 1−β2^t are the bias corrections of step t; GradScale multiplies
// the gradient before use (1/loss scale, 1/accumulation steps); Skip ≠ 0 skips the whole update.
type AdamHyper struct{ LR, Beta1, Beta2, Eps, WeightDecay, BC1, BC2, GradScale, Skip float64 }

// AdamW applies one step of PyTorch's AdamW (decoupled weight decay, spec §10) in place to p, m, v:
//
//	ĝ = GradScale·g
//	p = p − LR·WeightDecay·p                       (only when decay)
//	m = β1·m + (1−β1)·ĝ
//	v = β2·v + (1−β2)·ĝ²
//	p = p − LR·(m/BC1) / (sqrt(v/BC2) + Eps)
//
// All slices have the same length. With Skip ≠ 0 nothing changes.
func AdamW(p, m, v, g []float64, h AdamHyper, decay bool) {
	if len(m) != len(p) || len(v) != len(p) || len(g) != len(p) {
		panic(fmt.Sprintf("ref: adamw: len(p)=%d len(m)=%d len(v)=%d len(g)=%d", len(p), len(m), len(v), len(g)))
	}
	if h.Skip != 0 {
		return
	}
	for i := range p {
		p[i], m[i], v[i] = adamUpdate(p[i], m[i], v[i], h.GradScale*g[i], h, decay)
	}
}

// adamUpdate is the AdamW update of one element from the scaled gradient gs.
func adamUpdate(p, m, v, gs float64, h AdamHyper, decay bool) (float64, float64, float64) {
	if decay {
		p -= h.LR * h.WeightDecay * p
	}
	m = h.Beta1*m + (1-h.Beta1)*gs
	v = h.Beta2*v + (1-h.Beta2)*gs*gs
	p -= h.LR * (m / h.BC1) / (math.Sqrt(v/h.BC2) + h.Eps)
	return p, m, v
}
