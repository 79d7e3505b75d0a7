package vk_test

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/vjepa-vk/vjepa-vk/vk"
	"github.com/vjepa-vk/vjepa-vk/vk/ref"
	"github.com/vjepa-vk/vjepa-vk/vk/vktest"
)

type lnCase struct {
	rows, dim int
	affine    bool
	chunk     int     // rows per dispatch; 0: the public op
	scale     float32 // x = offset + scale·N(0, 1)
	offset    float32
	eps       float32
}

func (c lnCase) name() string {
	return vktest.Name("rows", c.rows, "dim", c.dim, "affine", c.affine, "chunk", c.chunk, "scale", c.scale, "eps", c.eps)
}

// lnCases crosses rows 1, 255, 257, 1009 (a prime) with the widths of the model (1024, 1408), odd ones
// (7, 96, 120, 558) and 1 (var = 0, so y = b and rstd = 1/sqrt(eps) exactly). Inputs have mean 3, so that
// E[x²] − E[x]² would lose digits. Extra cases: a forced row split, a tiny variance comparable to eps, and
// the model's 8256×1024 (not in -short).
func lnCases() []lnCase {
	var cs []lnCase
	for _, rows := range []int{1, 255, 257, 1009} {
		for _, dim := range []int{1, 7, 96, 120, 558, 1024, 1408} {
			cs = append(cs, lnCase{rows: rows, dim: dim, affine: true, scale: 2, offset: 3, eps: 1e-6})
			if rows == 1 || rows == 257 {
				cs = append(cs, lnCase{rows: rows, dim: dim, scale: 2, offset: 3, eps: 1e-5})
			}
		}
	}
	return append(cs,
		lnCase{rows: 257, dim: 96, affine: true, chunk: 64, scale: 2, offset: 3, eps: 1e-6},
		lnCase{rows: 257, dim: 120, chunk: 128, scale: 2, offset: 3, eps: 1e-5},
		lnCase{rows: 64, dim: 1024, affine: true, scale: 1e-3, eps: 1e-6},
		lnCase{rows: 8256, dim: 1024, affine: true, scale: 2, offset: 3, eps: 1e-6},
	)
}

func lnInputs(c lnCase) (x, w, b []float32) {
	x = vktest.RandN(uint64(c.rows*7+c.dim), c.rows*c.dim)
	for i := range x {
		x[i] = c.offset + c.scale*x[i]
	}
	if c.affine {
		w, b = vktest.RandN(11, c.dim), vktest.RandN(12, c.dim)
	}
	return x, w, b
}

// TestLayerNorm runs every case on each kernel variant (the CPU one takes the rows of a multiple of 4).
func TestLayerNorm(t *testing.T) {
	d := vktest.Device(t)
	forKernels(t, d, func(t *testing.T, kernels string) { testLayerNorm(t, d, kernels) })
}

func testLayerNorm(t *testing.T, d *vk.Device, kernels string) {
	var worstY, worstStat float64
	for _, c := range lnCases() {
		if testing.Short() && c.rows*c.dim > 1<<21 {
			continue
		}
		t.Run(c.name(), func(t *testing.T) {
			xv, wv, bv := lnInputs(c)
			x := vktest.Tensor(t, d, vk.F32, xv, c.rows, c.dim)
			var w, b vk.Tensor
			if c.affine {
				w = vktest.Tensor(t, d, vk.F32, wv, c.dim)
				b = vktest.Tensor(t, d, vk.F32, bv, c.dim)
			}
			y := vktest.Poisoned(t, d, vk.F32, c.rows, c.dim)
			mean := vktest.Poisoned(t, d, vk.F32, c.rows)
			rstd := vktest.Poisoned(t, d, vk.F32, c.rows)
			s := vktest.Stream(t, d)
			if c.chunk == 0 && kernels == d.Kernels() {
				vk.LayerNorm(s, y, mean, rstd, x, w, b, c.eps)
			} else {
				vk.LayerNormChunked(s, y, mean, rstd, x, w, b, c.eps, c.chunk, kernels)
			}
			vktest.Run(t, s)

			n := c.rows * c.dim
			wantY, wantMean, wantRstd := make([]float64, n), make([]float64, c.rows), make([]float64, c.rows)
			var w64, b64 []float64
			if c.affine {
				w64, b64 = vktest.F64(wv), vktest.F64(bv)
			}
			ref.LayerNorm(wantY, wantMean, wantRstd, vktest.F64(xv), w64, b64, c.rows, c.dim, float64(c.eps))
			// float32 sums of dim values of magnitude |x| ≤ offset + 5·scale, then x̂ = (x − mean)·rstd:
			// errors of a few ulp of |x|·rstd, times |w| ≤ 4 (a 1e-5 slack on values of order 1..10).
			// The statistics: mean to a few ulp of |x|, rstd to a few ulp.
			r := float64(c.scale)
			worstY = math.Max(worstY, vktest.Close(t, "LayerNorm("+c.name()+") y", vktest.Download(t, d, y), wantY, 1e-5, 1e-5))
			worstStat = math.Max(worstStat, vktest.Close(t, "LayerNorm("+c.name()+") mean", vktest.Download(t, d, mean), wantMean, 1e-6, 1e-6*r))
			vktest.Close(t, "LayerNorm("+c.name()+") rstd", vktest.Download(t, d, rstd), wantRstd, 2e-6, 0)
			ewUnchanged(t, d, "x", x, xv)
			if c.affine {
				ewUnchanged(t, d, "w", w, wv)
				ewUnchanged(t, d, "b", b, bv)
			}
		})
	}
	t.Logf("max abs error: y %.3g, mean %.3g", worstY, worstStat)
}

// TestLayerNormBackward runs every case on each kernel variant, as TestLayerNorm.
func TestLayerNormBackward(t *testing.T) {
	d := vktest.Device(t)
	forKernels(t, d, func(t *testing.T, kernels string) { testLayerNormBackward(t, d, kernels) })
}

func testLayerNormBackward(t *testing.T, d *vk.Device, kernels string) {
	var worstDx, worstDw float64
	for _, c := range lnCases() {
		if testing.Short() && c.rows*c.dim > 1<<21 {
			continue
		}
		for _, accumulate := range []bool{false, true} {
			if accumulate && c.rows != 257 && c.rows != 8256 {
				continue
			}
			t.Run(c.name()+vktest.Name(",accumulate", accumulate), func(t *testing.T) {
				n := c.rows * c.dim
				xv, wv, _ := lnInputs(c)
				// The saved statistics as LayerNorm would store them: float32. The reference uses the same.
				mean64, rstd64 := make([]float64, c.rows), make([]float64, c.rows)
				ref.LayerNorm(make([]float64, n), mean64, rstd64, vktest.F64(xv), nil, nil, c.rows, c.dim, float64(c.eps))
				meanv, rstdv := vktest.F32(mean64), vktest.F32(rstd64)
				dyv := vktest.RandN(21, n)
				x := vktest.Tensor(t, d, vk.F32, xv, c.rows, c.dim)
				dy := vktest.Tensor(t, d, vk.F32, dyv, c.rows, c.dim)
				mean := vktest.Tensor(t, d, vk.F32, meanv, c.rows)
				rstd := vktest.Tensor(t, d, vk.F32, rstdv, c.rows)
				wantDx := make([]float64, n)
				dx := vktest.Poisoned(t, d, vk.F32, c.rows, c.dim)
				if accumulate {
					dx0 := vktest.RandN(22, n)
					dx = vktest.Tensor(t, d, vk.F32, dx0, c.rows, c.dim)
					wantDx = vktest.F64(dx0)
				}
				var w, dw, db vk.Tensor
				var w64, wantDw, wantDb []float64
				if c.affine {
					dw0, db0 := vktest.RandN(23, c.dim), vktest.RandN(24, c.dim)
					w = vktest.Tensor(t, d, vk.F32, wv, c.dim)
					dw = vktest.Tensor(t, d, vk.F32, dw0, c.dim)
					db = vktest.Tensor(t, d, vk.F32, db0, c.dim)
					w64, wantDw, wantDb = vktest.F64(wv), vktest.F64(dw0), vktest.F64(db0)
				}
				s := vktest.Stream(t, d)
				if c.chunk == 0 && kernels == d.Kernels() {
					vk.LayerNormBackward(s, dx, dw, db, dy, x, w, mean, rstd, accumulate)
				} else {
					vk.LayerNormBackwardChunked(s, dx, dw, db, dy, x, w, mean, rstd, accumulate, c.chunk, kernels)
				}
				vktest.Run(t, s)
				ref.LayerNormBackward(wantDx, wantDw, wantDb, vktest.F64(dyv), vktest.F64(xv), w64,
					vktest.F64(meanv), vktest.F64(rstdv), c.rows, c.dim, accumulate)
				// dx = rstd·(g − mean(g) − x̂·mean(g·x̂)): a few ulp of rstd·(|g| + |x̂|·|mean(g·x̂)|), g = dy·w of
				// order 1..10 and rstd = 1/scale, so atol 2e-5/scale.
				name := "LayerNormBackward(" + c.name() + vktest.Name(",accumulate", accumulate) + ")"
				worstDx = math.Max(worstDx, vktest.Close(t, name+" dx", vktest.Download(t, d, dx), wantDx, 1e-5, 2e-5/float64(c.scale)))
				if c.affine {
					// dw, db: float32 sums over rows of terms dy·x̂ of order 1, each rounded three times (~2e-7
					// apiece, a random walk of ~2e-7·√rows), summed in sequence per lane (rounding partial sums
					// of size ~√k: as in TestBiasGradient, ~4e-8·rows at the worst of 1408 columns).
					tol := 2e-6*math.Sqrt(float64(c.rows)) + 4e-8*float64(c.rows)
					worstDw = math.Max(worstDw, vktest.Close(t, name+" dw", vktest.Download(t, d, dw), wantDw, 1e-6, tol))
					vktest.Close(t, name+" db", vktest.Download(t, d, db), wantDb, 1e-6, tol)
				}
				ewUnchanged(t, d, "dy", dy, dyv)
				ewUnchanged(t, d, "x", x, xv)
			})
		}
	}
	t.Logf("max abs error: dx %.3g, dw %.3g", worstDx, worstDw)
}

// TestLayerNormBackwardFrozen checks that with w but no dw and db (frozen parameters) LayerNormBackward
// gives the same dx bit for bit, with one dispatch less per chunk (no parameter-gradient kernel), and
// refuses dw without db, or dw and db without w.
func TestLayerNormBackwardFrozen(t *testing.T) {
	d := vktest.Device(t)
	c := lnCase{rows: 257, dim: 558, affine: true, scale: 2, offset: 3, eps: 1e-6}
	xv, wv, _ := lnInputs(c)
	n := c.rows * c.dim
	mean64, rstd64 := make([]float64, c.rows), make([]float64, c.rows)
	ref.LayerNorm(make([]float64, n), mean64, rstd64, vktest.F64(xv), nil, nil, c.rows, c.dim, float64(c.eps))
	x := vktest.Tensor(t, d, vk.F32, xv, c.rows, c.dim)
	dy := vktest.Tensor(t, d, vk.F32, vktest.RandN(21, n), c.rows, c.dim)
	mean := vktest.Tensor(t, d, vk.F32, vktest.F32(mean64), c.rows)
	rstd := vktest.Tensor(t, d, vk.F32, vktest.F32(rstd64), c.rows)
	w := vktest.Tensor(t, d, vk.F32, wv, c.dim)
	dw, db := vktest.Tensor(t, d, vk.F32, nil, c.dim), vktest.Tensor(t, d, vk.F32, nil, c.dim)
	dxAll, dxFrozen := vktest.Poisoned(t, d, vk.F32, c.rows, c.dim), vktest.Poisoned(t, d, vk.F32, c.rows, c.dim)
	s := vktest.Stream(t, d)
	vk.LayerNormBackward(s, dxAll, dw, db, dy, x, w, mean, rstd, false)
	all, _ := s.Stats()
	vk.LayerNormBackward(s, dxFrozen, vk.Tensor{}, vk.Tensor{}, dy, x, w, mean, rstd, false)
	frozen, _ := s.Stats()
	vktest.Run(t, s)
	if all != 2 || frozen-all != 1 {
		t.Errorf("dispatches: %d with parameter gradients, %d frozen; want 2 and 1", all, frozen-all)
	}
	a, f := vktest.Download(t, d, dxAll), vktest.Download(t, d, dxFrozen)
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(f[i]) {
			t.Fatalf("dx[%d] = %g frozen, %g with parameter gradients", i, f[i], a[i])
		}
	}
	for _, bad := range []struct{ w, dw, db vk.Tensor }{{w, dw, vk.Tensor{}}, {vk.Tensor{}, dw, db}} {
		func() {
			defer func() {
				if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), "give dw and db together") {
					t.Errorf("LayerNormBackward(w %v, dw %v, db %v): recovered %v, want a panic", bad.w, bad.dw, bad.db, r)
				}
			}()
			vk.LayerNormBackward(vktest.Stream(t, d), dxAll, bad.dw, bad.db, dy, x, bad.w, mean, rstd, false)
		}()
	}
}

// BenchmarkLayerNorm reports the bandwidth of the traffic LayerNorm cannot avoid: x read once, y written
// once (w, b, mean, rstd are negligible).
func BenchmarkLayerNorm(b *testing.B) {
	d := vktest.Device(b)
	for _, c := range []struct{ rows, dim int }{{8256, 1024}} {
		b.Run(vktest.Name("rows", c.rows, "dim", c.dim), func(b *testing.B) {
			n := c.rows * c.dim
			x := vktest.Tensor(b, d, vk.F32, vktest.RandN(1, n), c.rows, c.dim)
			w := vktest.Tensor(b, d, vk.F32, vktest.RandN(2, c.dim), c.dim)
			bias := vktest.Tensor(b, d, vk.F32, vktest.RandN(3, c.dim), c.dim)
			y := vktest.Tensor(b, d, vk.F32, nil, c.rows, c.dim)
			mean := vktest.Tensor(b, d, vk.F32, nil, c.rows)
			rstd := vktest.Tensor(b, d, vk.F32, nil, c.rows)
			s := vktest.Stream(b, d)
			vk.LayerNorm(s, y, mean, rstd, x, w, bias, 1e-6)
			ewBench(b, s, 8*n)
		})
	}
}

// BenchmarkLayerNormBackward counts dy and x read and dx written.
func BenchmarkLayerNormBackward(b *testing.B) {
	d := vktest.Device(b)
	for _, c := range []struct{ rows, dim int }{{8256, 1024}} {
		b.Run(vktest.Name("rows", c.rows, "dim", c.dim), func(b *testing.B) {
			n := c.rows * c.dim
			x := vktest.Tensor(b, d, vk.F32, vktest.RandN(1, n), c.rows, c.dim)
			dy := vktest.Tensor(b, d, vk.F32, vktest.RandN(2, n), c.rows, c.dim)
			w := vktest.Tensor(b, d, vk.F32, vktest.RandN(3, c.dim), c.dim)
			dw := vktest.Tensor(b, d, vk.F32, make([]float32, c.dim), c.dim)
			db := vktest.Tensor(b, d, vk.F32, make([]float32, c.dim), c.dim)
			dx := vktest.Tensor(b, d, vk.F32, nil, c.rows, c.dim)
			mean := vktest.Tensor(b, d, vk.F32, make([]float32, c.rows), c.rows)
			rstd := vktest.Tensor(b, d, vk.F32, make([]float32, c.rows), c.rows)
			s := vktest.Stream(b, d)
			vk.LayerNormBackward(s, dx, dw, db, dy, x, w, mean, rstd, false)
			ewBench(b, s, 12*n)
		})
	}
}
