package ref

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// TestGemmGolden checks hand-computed products, one per layout, with alpha, beta and bias.
func TestGemmGolden(t *testing.T) {
	// op(A) = [[1 2 3] [4 5 6]] (2x3), op(B) = [[1 0] [0 1] [2 -1]] (3x2):
	// op(A)·op(B) = [[7 -1] [16 -1]].
	opA := []float64{1, 2, 3, 4, 5, 6}
	opB := []float64{1, 0, 0, 1, 2, -1}
	aT := []float64{1, 4, 2, 5, 3, 6}  // opA stored [k,m]
	bT := []float64{1, 0, 2, 0, 1, -1} // opB stored [n,k]
	for _, c := range []struct {
		transA, transB bool
		a, b           []float64
	}{
		{false, false, opA, opB}, {false, true, opA, bT}, {true, false, aT, opB}, {true, true, aT, bT},
	} {
		got := []float64{1, 2, 3, 4}
		Gemm(got, c.a, c.b, 2, 2, 3, c.transA, c.transB, 2, 0.5, []float64{10, 20})
		// 2·[[7 -1] [16 -1]] + 0.5·[[1 2] [3 4]] + [10 20]
		want := []float64{24.5, 19, 43.5, 20}
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("Gemm(transA=%v,transB=%v): c[%d] = %g, want %g", c.transA, c.transB, i, got[i], want[i])
			}
		}
	}
}

// TestGemmBetaZeroIgnoresNaN checks that beta 0 overwrites C without reading it.
func TestGemmBetaZeroIgnoresNaN(t *testing.T) {
	c := []float64{math.NaN()}
	Gemm(c, []float64{2}, []float64{3}, 1, 1, 1, false, false, 1, 0, nil)
	if c[0] != 6 {
		t.Fatalf("Gemm with beta 0 over NaN: c = %g, want 6", c[0])
	}
}

// TestGemmTripleLoop checks the contiguous, row-parallel evaluation against the plain triple loop, bit
// for bit, on a product large enough to split its rows, in every layout.
func TestGemmTripleLoop(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	m, n, k := 301, 203, 97
	for _, l := range [][2]bool{{false, false}, {false, true}, {true, false}, {true, true}} {
		a, b, c0, bias := randVec(r, m*k), randVec(r, k*n), randVec(r, m*n), randVec(r, n)
		got := append([]float64(nil), c0...)
		Gemm(got, a, b, m, n, k, l[0], l[1], 0.75, 0.5, bias)
		for i := range m {
			for j := range n {
				sum := 0.0
				for q := range k {
					av, bv := a[i*k+q], b[q*n+j]
					if l[0] {
						av = a[q*m+i]
					}
					if l[1] {
						bv = b[j*k+q]
					}
					sum += av * bv
				}
				if want := 0.75*sum + 0.5*c0[i*n+j] + bias[j]; got[i*n+j] != want {
					t.Fatalf("Gemm(transA=%v, transB=%v): c[%d,%d] = %v, the triple loop %v", l[0], l[1], i, j, got[i*n+j], want)
				}
			}
		}
	}
}

func randVec(r *rand.Rand, n int) []float64 {
	v := make([]float64, n)
	for i := range v {
		v[i] = 2*r.Float64() - 1
	}
	return v
}

// TestGemmLinearGradientsFD checks the three uses of Gemm in a Linear layer (spec §2: y = x·Wᵀ + b) against
// central finite differences of L = Σ g ⊙ y: dx = g·W, dW = gᵀ·x, db = Σ_rows g.
func TestGemmLinearGradientsFD(t *testing.T) {
	const rows, in, out = 3, 4, 5
	r := rand.New(rand.NewPCG(1, 2))
	x, w, bias, g := randVec(r, rows*in), randVec(r, out*in), randVec(r, out), randVec(r, rows*out)
	loss := func() float64 {
		y := make([]float64, rows*out)
		Gemm(y, x, w, rows, out, in, false, true, 1, 0, bias)
		s := 0.0
		for i := range y {
			s += g[i] * y[i]
		}
		return s
	}
	dx := make([]float64, rows*in)
	Gemm(dx, g, w, rows, in, out, false, false, 1, 0, nil)
	dw := make([]float64, out*in)
	for i := range dw {
		dw[i] = math.NaN() // beta 1 accumulates; start from 0 via a first overwrite
	}
	Gemm(dw, g, x, out, in, rows, true, false, 1, 0, nil)
	Gemm(dw, g, x, out, in, rows, true, false, 1, 1, nil) // accumulate a second identical step
	ones := make([]float64, rows)
	for i := range ones {
		ones[i] = 1
	}
	db := make([]float64, out)
	Gemm(db, ones, g, 1, out, rows, false, false, 1, 0, nil)

	const h = 1e-6
	fd := func(v []float64, i int) float64 {
		old := v[i]
		v[i] = old + h
		lp := loss()
		v[i] = old - h
		lm := loss()
		v[i] = old
		return (lp - lm) / (2 * h)
	}
	check := func(name string, got []float64, param []float64, scale float64) {
		for i := range param {
			want := scale * fd(param, i)
			if math.Abs(got[i]-want) > 1e-8 {
				t.Errorf("%s[%d] = %.12g, want %.12g (finite difference, tol 1e-8)", name, i, got[i], want)
			}
		}
	}
	check("dx", dx, x, 1)
	check("dW (two accumulated steps)", dw, w, 2)
	check("db", db, bias, 1)
}

// TestGemmLayoutsAgree checks that all four storage layouts of the same op(A), op(B) give the same C.
func TestGemmLayoutsAgree(t *testing.T) {
	const m, n, k = 5, 3, 7
	r := rand.New(rand.NewPCG(3, 4))
	a, b := randVec(r, m*k), randVec(r, k*n)
	want := make([]float64, m*n)
	Gemm(want, a, b, m, n, k, false, false, 1, 0, nil)
	for _, ta := range []bool{false, true} {
		for _, tb := range []bool{false, true} {
			sa, sb := a, b
			if ta {
				sa = transpose(a, m, k)
			}
			if tb {
				sb = transpose(b, k, n)
			}
			got := make([]float64, m*n)
			Gemm(got, sa, sb, m, n, k, ta, tb, 1, 0, nil)
			for i := range want {
				if math.Abs(got[i]-want[i]) > 1e-14 {
					t.Fatalf("%s: c[%d] = %g, want %g", fmt.Sprintf("transA=%v,transB=%v", ta, tb), i, got[i], want[i])
				}
			}
		}
	}
}
