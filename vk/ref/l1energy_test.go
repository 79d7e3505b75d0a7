package ref

import (
	"math"
	"testing"
)

// TestL1EnergyBackwardFD checks L1EnergyBackward against central differences of Σ_b denergy_b·energy_b
// away from the kinks (every |x − goal| ≥ 0.01 ≫ the 1e-5 step), with a shared goal and a goal per row,
// and sign(0) = 0 at a kink.
func TestL1EnergyBackwardFD(t *testing.T) {
	const B, M = 3, 17
	for _, perRow := range []bool{false, true} {
		goal := randSlice(21, M)
		if perRow {
			goal = randSlice(21, B*M)
		}
		stride := 0
		if perRow {
			stride = M
		}
		x := randSlice(20, B*M)
		for b := range B {
			for e := range M {
				if d := x[b*M+e] - goal[b*stride+e]; math.Abs(d) < 0.01 {
					x[b*M+e] += math.Copysign(0.02, d)
				}
			}
		}
		denergy := []float64{1, -0.5, 2.5}
		dx := randSlice(22, B*M) // overwritten
		L1EnergyBackward(dx, x, goal, denergy)
		loss := func(x []float64) float64 {
			e := make([]float64, B)
			L1Energy(e, x, goal)
			s := 0.0
			for b := range e {
				s += denergy[b] * e[b]
			}
			return s
		}
		name := "L1EnergyBackward(shared goal)"
		if perRow {
			name = "L1EnergyBackward(goal per row)"
		}
		checkFD(t, name, loss, x, dx, 1e-9)
	}
	dx := []float64{7, 7}
	L1EnergyBackward(dx, []float64{3, 2}, []float64{3, 1}, []float64{4})
	if dx[0] != 0 || dx[1] != 2 {
		t.Errorf("L1EnergyBackward(x (3, 2), goal (3, 1), denergy 4) = %v, want [0 2] (sign(0) = 0, 4/M)", dx)
	}
}

// TestL1EnergyGoalPerRow: a goal per row equal to the shared goal repeated gives the same energies.
func TestL1EnergyGoalPerRow(t *testing.T) {
	const B, M = 4, 9
	x, g := randSlice(23, B*M), randSlice(24, M)
	var rows []float64
	for range B {
		rows = append(rows, g...)
	}
	a, b := make([]float64, B), make([]float64, B)
	L1Energy(a, x, g)
	L1Energy(b, x, rows)
	for i := range a {
		if a[i] != b[i] {
			t.Errorf("row %d: shared goal %v, per-row goal %v", i, a[i], b[i])
		}
	}
	rows[M+2] += 1 // row 1 only
	L1Energy(b, x, rows)
	if b[0] != a[0] || b[1] == a[1] || b[2] != a[2] {
		t.Errorf("changing row 1's goal changed energies %v → %v", a, b)
	}
}
