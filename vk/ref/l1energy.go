package ref

import (
	"fmt"
	"math"
)

// L1Energy is the planning energy of spec planning §1 for B candidates, one per row of x [B, M]:
//
//	energy_b = Σ_e |x_{b,e} − goal_e| / M
//
// the mean absolute difference of a candidate's predicted frame (HW·D elements, flattened) from the goal's.
func L1Energy(energy, x, goal []float64) {
	m := len(goal)
	if m == 0 || len(x) != len(energy)*m {
		panic(fmt.Sprintf("ref: L1Energy: len(x) = %d, want len(energy)·len(goal) = %d·%d", len(x), len(energy), m))
	}
	for b := range energy {
		s := 0.0
		for e, g := range goal {
			s += math.Abs(x[b*m+e] - g)
		}
		energy[b] = s / float64(m)
	}
}
