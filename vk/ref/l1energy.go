package ref

import (
	"fmt"
	"math"
)

// l1EnergyRows returns M and the goal's row stride (0: shared) of x [B, M] and goal [M] or [B, M].
func l1EnergyRows(op string, B int, x, goal []float64) (m, stride int) {
	if B == 0 || len(x)%B != 0 || len(x) == 0 {
		panic(fmt.Sprintf("ref: %s: len(x) = %d is not a positive multiple of B = %d", op, len(x), B))
	}
	m = len(x) / B
	switch len(goal) {
	case m:
		return m, 0
	case B * m:
		return m, m
	}
	panic(fmt.Sprintf("ref: %s: len(goal) = %d, want M = %d (shared) or B·M = %d", op, len(goal), m, B*m))
}

// L1Energy is the planning energy of spec planning §1 for B candidates, one per row of x [B, M]:
//
//	energy_b = Σ_e |x_{b,e} − goal_{b,e}| / M
//
// the mean absolute difference of a candidate's predicted frame (HW·D elements, flattened) from its goal:
// goal [M] is shared by every row, goal [B, M] gives each row its own.
func L1Energy(energy, x, goal []float64) {
	m, stride := l1EnergyRows("L1Energy", len(energy), x, goal)
	for b := range energy {
		s := 0.0
		for e := range m {
			s += math.Abs(x[b*m+e] - goal[b*stride+e])
		}
		energy[b] = s / float64(m)
	}
}

// L1EnergyBackward is the gradient of L1Energy seeded by denergy [B]:
//
//	dx_{b,e} = denergy_b · sign(x_{b,e} − goal_{b,e}) / M,   sign(0) = 0
//
// (|·| has no derivative at 0; PyTorch's subgradient 0 is used, as in L1LossBackward.)
func L1EnergyBackward(dx, x, goal, denergy []float64) {
	m, stride := l1EnergyRows("L1EnergyBackward", len(denergy), x, goal)
	if len(dx) != len(x) {
		panic(fmt.Sprintf("ref: L1EnergyBackward: len(dx) = %d, want len(x) = %d", len(dx), len(x)))
	}
	for b, g := range denergy {
		for e := range m {
			d := x[b*m+e] - goal[b*stride+e]
			s := 0.0
			if d > 0 {
				s = 1
			} else if d < 0 {
				s = -1
			}
			dx[b*m+e] = g * s / float64(m)
		}
	}
}
