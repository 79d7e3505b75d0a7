package ref

import (
	"math"
	"testing"
)

// TestL1LossBackwardFD checks L1LossBackward against central differences of L = dloss·L1Loss away from the
// kinks (every |pred − target| ≥ 0.01 ≫ the 1e-5 step), and sign(0) = 0 at a kink.
func TestL1LossBackwardFD(t *testing.T) {
	pred, target := randSlice(10, 50), randSlice(11, 50)
	for i := range pred {
		if d := pred[i] - target[i]; math.Abs(d) < 0.01 {
			pred[i] += math.Copysign(0.02, d)
		}
	}
	const dloss = 2.5
	dpred := randSlice(12, 50) // overwritten
	L1LossBackward(dpred, pred, target, dloss, false)
	checkFD(t, "L1LossBackward", func(p []float64) float64 { return dloss * L1Loss(p, target) }, pred, dpred, 1e-9)

	acc := []float64{1, 1}
	L1LossBackward(acc, []float64{3, 2}, []float64{3, 1}, 4, true)
	if acc[0] != 1 || acc[1] != 3 {
		t.Errorf("L1LossBackward(accumulate, pred (3, 2), target (3, 1), dloss 4) onto (1, 1) = %v, want [1 3]", acc)
	}
}
