package ref

import (
	"fmt"
	"math"
	"testing"
)

// TestLayerNormSmall checks LayerNorm on a row worked by hand: x = (1, 2, 3, 4) has mean 2.5 and biased
// variance 1.25.
func TestLayerNormSmall(t *testing.T) {
	x := []float64{1, 2, 3, 4}
	w := []float64{1, 2, 1, 1}
	b := []float64{0, 0, 0, 10}
	y, mean, rstd := make([]float64, 4), make([]float64, 1), make([]float64, 1)
	const eps = 1e-5
	LayerNorm(y, mean, rstd, x, w, b, 1, 4, eps)
	r := 1 / math.Sqrt(1.25+eps)
	want := []float64{-1.5 * r, -0.5 * r * 2, 0.5 * r, 1.5*r + 10}
	if mean[0] != 2.5 || math.Abs(rstd[0]-r) > 1e-15 {
		t.Errorf("LayerNorm: mean %v rstd %v, want 2.5 %v", mean[0], rstd[0], r)
	}
	for i := range want {
		if math.Abs(y[i]-want[i]) > 1e-14 {
			t.Errorf("LayerNorm: y[%d] = %v, want %v", i, y[i], want[i])
		}
	}
}

// TestLayerNormBackwardFD checks dx, dw and db against central differences of L = Σ y∘g, with and without
// parameters, and that accumulate adds to dx while dw and db always accumulate.
func TestLayerNormBackwardFD(t *testing.T) {
	for _, c := range []struct {
		rows, dim int
		affine    bool
	}{{3, 7, true}, {2, 1, true}, {4, 5, false}, {1, 16, true}} {
		t.Run(fmt.Sprintf("rows=%d,dim=%d,affine=%v", c.rows, c.dim, c.affine), func(t *testing.T) {
			n := c.rows * c.dim
			x, g := randSlice(3, n), randSlice(4, n)
			var w, b []float64
			if c.affine {
				w, b = randSlice(5, c.dim), randSlice(6, c.dim)
			}
			const eps = 1e-6
			forward := func(x, w, b []float64) float64 {
				y := make([]float64, n)
				LayerNorm(y, make([]float64, c.rows), make([]float64, c.rows), x, w, b, c.rows, c.dim, eps)
				return dot(y, g)
			}
			mean, rstd := make([]float64, c.rows), make([]float64, c.rows)
			LayerNorm(make([]float64, n), mean, rstd, x, w, b, c.rows, c.dim, eps)
			dx := randSlice(7, n) // overwritten
			var dw, db []float64
			if c.affine {
				dw, db = make([]float64, c.dim), make([]float64, c.dim)
			}
			LayerNormBackward(dx, dw, db, g, x, w, mean, rstd, c.rows, c.dim, false)
			checkFD(t, "LayerNormBackward dx", func(x []float64) float64 { return forward(x, w, b) }, x, dx, 1e-8)
			if !c.affine {
				return
			}
			checkFD(t, "LayerNormBackward dw", func(w []float64) float64 { return forward(x, w, b) }, w, dw, 1e-8)
			checkFD(t, "LayerNormBackward db", func(b []float64) float64 { return forward(x, w, b) }, b, db, 1e-8)

			// A second call with accumulate doubles all three.
			dx2 := append([]float64(nil), dx...)
			dw2, db2 := append([]float64(nil), dw...), append([]float64(nil), db...)
			LayerNormBackward(dx2, dw2, db2, g, x, w, mean, rstd, c.rows, c.dim, true)
			for i := range dx {
				if math.Abs(dx2[i]-2*dx[i]) > 1e-12 {
					t.Fatalf("accumulate: dx[%d] = %v, want %v", i, dx2[i], 2*dx[i])
				}
			}
			for j := range dw {
				if math.Abs(dw2[j]-2*dw[j]) > 1e-12 || math.Abs(db2[j]-2*db[j]) > 1e-12 {
					t.Fatalf("accumulate: dw[%d], db[%d] = %v, %v, want %v, %v", j, j, dw2[j], db2[j], 2*dw[j], 2*db[j])
				}
			}
		})
	}
}
