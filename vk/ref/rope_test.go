package ref

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

func TestRopeWorkedExample(t *testing.T) {
	for _, cond := range []bool{false, true} {
		t.Run(fmt.Sprintf("cond=%v", cond), func(t *testing.T) {
			sh, row, qkv, want := RopeWorkedExample(cond)
			Rope(qkv, sh)
			for part := 0; part < 3; part++ {
				for i := 0; i < 64; i++ {
					got := qkv[row*3*64+part*64+i]
					w := -float64(i + 1)
					if part < 2 {
						w = want[i]
					}
					// The golden values are rounded to 6 decimals.
					if math.Abs(got-w) > 5.1e-7 {
						t.Errorf("Rope(%+v): part %d dim %d = %.7f, want %.6f", sh, part, i, got, w)
					}
				}
			}
		})
	}
}

func TestRopeAxisDim(t *testing.T) {
	for _, c := range []struct{ headDim, axis int }{
		{64, 20}, {40, 12}, {8, 2}, {6, 2}, {5, 0}, {2, 0}, {1, 0}, {96, 32}, {128, 42}, {88, 28},
	} {
		if got := RopeAxisDim(c.headDim); got != c.axis {
			t.Errorf("RopeAxisDim(%d) = %d, want %d", c.headDim, got, c.axis)
		}
	}
}

// TestRopeBackwardFD checks RopeBackward against central finite differences of L = Σ Rope(x)∘g.
func TestRopeBackwardFD(t *testing.T) {
	for _, sh := range []RopeShape{
		{B: 2, T: 2, K: 2, GridH: 2, GridW: 3, Heads: 2, HeadDim: 8, TimeOffset: 1},
		{B: 1, T: 3, K: 0, GridH: 2, GridW: 2, Heads: 1, HeadDim: 40},
		{B: 1, T: 1, K: 1, GridH: 1, GridW: 2, Heads: 3, HeadDim: 7},
	} {
		t.Run(fmt.Sprintf("B=%d,T=%d,K=%d,grid=%dx%d,heads=%d,dh=%d", sh.B, sh.T, sh.K, sh.GridH, sh.GridW, sh.Heads, sh.HeadDim), func(t *testing.T) {
			n := sh.B * sh.N() * 3 * sh.Heads * sh.HeadDim
			x, g := randSlice(1, n), randSlice(2, n)
			loss := func(x []float64) float64 {
				y := append([]float64(nil), x...)
				Rope(y, sh)
				return dot(y, g)
			}
			grad := append([]float64(nil), g...)
			RopeBackward(grad, sh)
			checkFD(t, "RopeBackward", loss, x, grad, 1e-9)
		})
	}
}

func randSlice(seed uint64, n int) []float64 {
	r := rand.New(rand.NewPCG(seed, 17))
	v := make([]float64, n)
	for i := range v {
		v[i] = r.NormFloat64()
	}
	return v
}

func dot(a, b []float64) float64 {
	s := 0.0
	for i := range a {
		s += a[i] * b[i]
	}
	return s
}

// checkFD compares grad with central differences of loss at x (step 1e-5 in float64: truncation error
// O(h²·|L”'|) ≈ 1e-10, rounding O(ε·|L|/h) ≈ 1e-11 for |L| ~ 10), failing past atol + 1e-6·|fd|.
func checkFD(t *testing.T, op string, loss func([]float64) float64, x, grad []float64, atol float64) {
	t.Helper()
	const h = 1e-5
	worst, worstIdx, worstFD := 0.0, -1, 0.0
	for i := range x {
		xi := x[i]
		x[i] = xi + h
		lp := loss(x)
		x[i] = xi - h
		lm := loss(x)
		x[i] = xi
		fd := (lp - lm) / (2 * h)
		if e := math.Abs(fd-grad[i]) - 1e-6*math.Abs(fd); e > worst {
			worst, worstIdx, worstFD = e, i, fd
		}
	}
	if worst > atol {
		t.Errorf("%s: grad[%d] = %.10g, finite difference %.10g (excess error %.3g > atol %.1g)",
			op, worstIdx, grad[worstIdx], worstFD, worst, atol)
	}
}
