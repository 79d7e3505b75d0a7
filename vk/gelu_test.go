package vk_test

import (
	"math"
	"testing"

	"github.com/vjepa-vk/vjepa-vk/vk"
	"github.com/vjepa-vk/vjepa-vk/vk/ref"
	"github.com/vjepa-vk/vjepa-vk/vk/vktest"
)

// geluTol is the relative tolerance of Gelu and GeluBackward: the shader's tail Q = 0.5·erfc(|x|/√2) is
// good to ~5 units of 2^-24 (gelu.glsl), and one more product rounds; 8e-7 ≈ 13 units leaves room for a
// GPU's 2.5-ulp division. Results below 1e-30 are compared absolutely: a GPU may flush denormal
// intermediates (the H100 returned 0 for GeluBackward(−13.3) ≈ −1.5e-37).
const (
	geluTol  = 8e-7
	geluTiny = 1e-30
)

// geluWithin fails unless |got − want| ≤ geluTol·scale + geluTiny everywhere and returns the largest
// error in units of 2^-24·scale.
func geluWithin(t *testing.T, name string, got []float32, want, scale []float64) float64 {
	t.Helper()
	worst, worstIdx := 0.0, -1
	for i := range got {
		e := math.Abs(float64(got[i]) - want[i])
		if math.IsNaN(e) {
			e = math.Inf(1)
		}
		if e > geluTol*scale[i]+geluTiny && (worstIdx < 0 || e/scale[i] > worst) {
			worstIdx = i
		}
		if scale[i] > geluTiny*1e3 {
			worst = math.Max(worst, e/scale[i])
		}
	}
	if worstIdx >= 0 {
		t.Errorf("%s: [%d] = %.9g, want %.9g (tol %.1g·%.3g + %.0e)", name, worstIdx, got[worstIdx], want[worstIdx],
			geluTol, scale[worstIdx], geluTiny)
	}
	return worst / 0x1p-24
}

func TestGelu(t *testing.T) {
	d := vktest.Device(t)
	sizes := ewSizes()
	if !testing.Short() {
		sizes = append(sizes, 8256*4096) // the model's fc1 output: over lavapipe's 128 MiB binding, so split
	}
	for _, n := range sizes {
		for _, impl := range ewImpls() {
			for _, alias := range []bool{false, true} {
				if n > 1<<20 && (impl.chunk != 0 || alias) {
					continue
				}
				t.Run(vktest.Name("n", n, "impl", impl.name, "alias", alias), func(t *testing.T) {
					xv := vktest.RandN(31, n)
					for i := range xv {
						xv[i] *= 3
					}
					x := vktest.Tensor(t, d, vk.F32, xv, n)
					y := vktest.Poisoned(t, d, vk.F32, n)
					if alias {
						y = x
					}
					s := vktest.Stream(t, d)
					if impl.chunk == 0 {
						vk.Gelu(s, y, x)
					} else {
						vk.GeluChunked(s, y, x, impl.chunk)
					}
					vktest.Run(t, s)
					want := make([]float64, n)
					ref.Gelu(want, vktest.F64(xv))
					scale := make([]float64, n)
					for i := range want {
						scale[i] = math.Abs(want[i])
					}
					geluWithin(t, "Gelu", vktest.Download(t, d, y), want, scale)
					if !alias {
						ewUnchanged(t, d, "x", x, xv)
					}
				})
			}
		}
	}
}

func TestGeluBackward(t *testing.T) {
	d := vktest.Device(t)
	for _, n := range ewSizes() {
		for _, impl := range ewImpls() {
			for _, alias := range []bool{false, true} {
				t.Run(vktest.Name("n", n, "impl", impl.name, "alias", alias), func(t *testing.T) {
					xv, dyv := vktest.RandN(32, n), vktest.RandN(33, n)
					for i := range xv {
						xv[i] *= 3
					}
					x := vktest.Tensor(t, d, vk.F32, xv, n)
					dy := vktest.Tensor(t, d, vk.F32, dyv, n)
					dx := vktest.Poisoned(t, d, vk.F32, n)
					if alias {
						dx = dy
					}
					s := vktest.Stream(t, d)
					if impl.chunk == 0 {
						vk.GeluBackward(s, dx, dy, x)
					} else {
						vk.GeluBackwardChunked(s, dx, dy, x, impl.chunk)
					}
					vktest.Run(t, s)
					want := make([]float64, n)
					ref.GeluBackward(want, vktest.F64(dyv), vktest.F64(xv))
					geluWithin(t, "GeluBackward", vktest.Download(t, d, dx), want, geluBackwardScale(xv, dyv))
					ewUnchanged(t, d, "x", x, xv)
					if !alias {
						ewUnchanged(t, d, "dy", dy, dyv)
					}
				})
			}
		}
	}
}

// geluBackwardScale is |dy|·(Φ(x) + |x·φ(x)|): gelu'(x) = Φ(x) + x·φ(x) cancels near its root x ≈ −0.75,
// so its error is relative to the size of the terms, not of the sum.
func geluBackwardScale(x, dy []float32) []float64 {
	s := make([]float64, len(x))
	for i, v := range x {
		xv := float64(v)
		s[i] = math.Abs(float64(dy[i])) * (ref.NormalCDF(xv) + math.Abs(xv*ref.NormalPDF(xv)))
	}
	return s
}

// TestGeluErfAccuracy runs Gelu and GeluBackward on 2^20 + 1 evenly spaced x with x/√2 over [−10, 10], the
// range over which gelu.glsl's erf must hold, against math.Erfc in float64, and reports the worst error in
// units of 2^-24 (about half an ulp).
func TestGeluErfAccuracy(t *testing.T) {
	d := vktest.Device(t)
	n := 1<<20 + 1
	xv := make([]float32, n)
	for i := range xv {
		xv[i] = float32(10 * math.Sqrt2 * (2*float64(i)/float64(n-1) - 1))
	}
	ones := make([]float32, n)
	for i := range ones {
		ones[i] = 1
	}
	x := vktest.Tensor(t, d, vk.F32, xv, n)
	dy := vktest.Tensor(t, d, vk.F32, ones, n)
	y := vktest.Poisoned(t, d, vk.F32, n)
	dx := vktest.Poisoned(t, d, vk.F32, n)
	s := vktest.Stream(t, d)
	vk.Gelu(s, y, x)
	vk.GeluBackward(s, dx, dy, x)
	vktest.Run(t, s)
	want, scale := make([]float64, n), make([]float64, n)
	ref.Gelu(want, vktest.F64(xv))
	for i := range want {
		scale[i] = math.Abs(want[i])
	}
	uy := geluWithin(t, "Gelu", vktest.Download(t, d, y), want, scale)
	ref.GeluBackward(want, vktest.F64(ones), vktest.F64(xv))
	udx := geluWithin(t, "GeluBackward", vktest.Download(t, d, dx), want, geluBackwardScale(xv, ones))
	t.Logf("worst error over x/√2 in [-10, 10]: Gelu %.2f, GeluBackward %.2f units of 2^-24 (relative)", uy, udx)
}

// BenchmarkGelu reports the bandwidth of x read and y written.
func BenchmarkGelu(b *testing.B) {
	d := vktest.Device(b)
	for _, c := range []struct{ rows, cols int }{{8256, 4096}} {
		b.Run(vktest.Name("rows", c.rows, "cols", c.cols), func(b *testing.B) {
			n := c.rows * c.cols
			x := vktest.Tensor(b, d, vk.F32, vktest.RandN(1, n), c.rows, c.cols)
			y := vktest.Tensor(b, d, vk.F32, nil, c.rows, c.cols)
			s := vktest.Stream(b, d)
			vk.Gelu(s, y, x)
			ewBench(b, s, 8*n)
		})
	}
}

// BenchmarkGeluBackward reports the bandwidth of dy and x read and dx written.
func BenchmarkGeluBackward(b *testing.B) {
	d := vktest.Device(b)
	for _, c := range []struct{ rows, cols int }{{8256, 4096}} {
		b.Run(vktest.Name("rows", c.rows, "cols", c.cols), func(b *testing.B) {
			n := c.rows * c.cols
			x := vktest.Tensor(b, d, vk.F32, vktest.RandN(1, n), c.rows, c.cols)
			dy := vktest.Tensor(b, d, vk.F32, vktest.RandN(2, n), c.rows, c.cols)
			dx := vktest.Tensor(b, d, vk.F32, nil, c.rows, c.cols)
			s := vktest.Stream(b, d)
			vk.GeluBackward(s, dx, dy, x)
			ewBench(b, s, 12*n)
		})
	}
}
