package ref

import "math"

// L1Loss is the prediction loss of spec §6.2 with p = 1, a plain mean absolute error over all elements:
//
//	L = Σ_i |pred_i − target_i| / n
func L1Loss(pred, target []float64) float64 {
	wantLen("L1Loss", "target", len(target), len(pred))
	s := 0.0
	for i := range pred {
		s += math.Abs(pred[i] - target[i])
	}
	return s / float64(len(pred))
}

// L1LossBackward is dpred_i = dloss·sign(pred_i − target_i)/n with sign(0) = 0 (PyTorch's subgradient),
// overwritten, or added to dpred when accumulate.
func L1LossBackward(dpred, pred, target []float64, dloss float64, accumulate bool) {
	wantLen("L1LossBackward", "target", len(target), len(pred))
	wantLen("L1LossBackward", "dpred", len(dpred), len(pred))
	n := float64(len(pred))
	for i := range pred {
		d := pred[i] - target[i]
		g := 0.0
		switch {
		case d > 0:
			g = dloss / n
		case d < 0:
			g = -dloss / n
		}
		if accumulate {
			dpred[i] += g
		} else {
			dpred[i] = g
		}
	}
}
