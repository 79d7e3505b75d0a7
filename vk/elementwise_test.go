package vk_test

import (
	"math"
	"testing"

	"github.com/vjepa-vk/vjepa-vk/vk"
	"github.com/vjepa-vk/vjepa-vk/vk/ref"
	"github.com/vjepa-vk/vjepa-vk/vk/vktest"
)

// Helpers shared by the tests of the elementwise, normalization, loss, reduction, conversion and copy ops.

// ewUnchanged fails unless tensor x still holds exactly the values it was given (inputs stay untouched).
func ewUnchanged(t *testing.T, d *vk.Device, name string, x vk.Tensor, want []float32) {
	t.Helper()
	got := vktest.Download(t, d, x)
	for i := range want {
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
			t.Fatalf("input %s changed: [%d] = %v, was %v", name, i, got[i], want[i])
		}
	}
}

// ewSizes are element counts around the 256-wide workgroup, a prime, and one that a forced chunk of
// vk.ElementGranule elements splits three ways with a ragged tail.
func ewSizes() []int {
	return []int{1, 255, 256, 257, 1009, 2*vk.ElementGranule + 1001}
}

// ewImpl is an elementwise op under test: the public op, or its chunked form with a small chunk.
type ewImpl struct {
	name  string
	chunk int // 0: the public op
}

func ewImpls() []ewImpl { return []ewImpl{{"public", 0}, {"chunked", vk.ElementGranule}} }

func TestAdd(t *testing.T) {
	d := vktest.Device(t)
	for _, n := range ewSizes() {
		for _, impl := range ewImpls() {
			for _, alias := range []string{"none", "y=a", "y=b", "y=a=b"} {
				t.Run(vktest.Name("n", n, "impl", impl.name, "alias", alias), func(t *testing.T) {
					s := vktest.Stream(t, d)
					av, bv := vktest.RandN(1, n), vktest.RandN(2, n)
					a := vktest.Tensor(t, d, vk.F32, av, n)
					b := vktest.Tensor(t, d, vk.F32, bv, n)
					y := vktest.Poisoned(t, d, vk.F32, n)
					switch alias {
					case "y=a":
						y = a
					case "y=b":
						y = b
					case "y=a=b":
						y, b, bv = a, a, av
					}
					if impl.chunk == 0 {
						vk.Add(s, y, a, b)
					} else {
						vk.AddChunked(s, y, a, b, impl.chunk)
					}
					vktest.Run(t, s)
					want := make([]float64, n)
					ref.Add(want, vktest.F64(av), vktest.F64(bv))
					// f32 addition of f32 inputs is correctly rounded: the result is the float64 sum rounded.
					vktest.Close(t, "Add", vktest.Download(t, d, y), vktest.F64(vktest.F32(want)), 0, 0)
					if alias == "none" {
						ewUnchanged(t, d, "a", a, av)
						ewUnchanged(t, d, "b", b, bv)
					}
				})
			}
		}
	}
}

func TestAxpy(t *testing.T) {
	d := vktest.Device(t)
	for _, n := range ewSizes() {
		for _, impl := range ewImpls() {
			for _, alias := range []bool{false, true} {
				t.Run(vktest.Name("n", n, "impl", impl.name, "alias", alias), func(t *testing.T) {
					s := vktest.Stream(t, d)
					yv, xv := vktest.RandN(3, n), vktest.RandN(4, n)
					y := vktest.Tensor(t, d, vk.F32, yv, n)
					x := vktest.Tensor(t, d, vk.F32, xv, n)
					if alias {
						x, xv = y, yv
					}
					const alpha = -0.37
					if impl.chunk == 0 {
						vk.Axpy(s, y, x, alpha)
					} else {
						vk.AxpyChunked(s, y, x, alpha, impl.chunk)
					}
					vktest.Run(t, s)
					want := vktest.F64(yv)
					ref.Axpy(want, vktest.F64(xv), alpha)
					// Two roundings (alpha·x, then the sum; one with a fused multiply-add): 2 ulp of the
					// larger term.
					vktest.Close(t, "Axpy", vktest.Download(t, d, y), want, 2.5e-7, 2.5e-7*4)
					if !alias {
						ewUnchanged(t, d, "x", x, xv)
					}
				})
			}
		}
	}
}

func TestScale(t *testing.T) {
	d := vktest.Device(t)
	for _, n := range ewSizes() {
		for _, impl := range ewImpls() {
			for _, alias := range []bool{false, true} {
				t.Run(vktest.Name("n", n, "impl", impl.name, "alias", alias), func(t *testing.T) {
					s := vktest.Stream(t, d)
					xv := vktest.RandN(5, n)
					x := vktest.Tensor(t, d, vk.F32, xv, n)
					y := vktest.Poisoned(t, d, vk.F32, n)
					if alias {
						y = x
					}
					const alpha = 1.7
					if impl.chunk == 0 {
						vk.Scale(s, y, x, alpha)
					} else {
						vk.ScaleChunked(s, y, x, alpha, impl.chunk)
					}
					vktest.Run(t, s)
					want := make([]float64, n)
					ref.Scale(want, vktest.F64(xv), float64(float32(alpha)))
					// One correctly rounded product.
					vktest.Close(t, "Scale", vktest.Download(t, d, y), vktest.F64(vktest.F32(want)), 0, 0)
					if !alias {
						ewUnchanged(t, d, "x", x, xv)
					}
				})
			}
		}
	}
}

func BenchmarkAdd(b *testing.B) {
	d := vktest.Device(b)
	for _, n := range []int{8256 * 1024} {
		b.Run(vktest.Name("n", n), func(b *testing.B) {
			x := vktest.Tensor(b, d, vk.F32, vktest.RandN(1, n), n)
			y := vktest.Tensor(b, d, vk.F32, nil, n)
			s := vktest.Stream(b, d)
			vk.Add(s, y, x, x)
			ewBench(b, s, 3*4*n)
		})
	}
}

// ewBench runs the recorded stream b.N times (after one warm-up run) and reports the bandwidth of moving
// bytes per run, the traffic the op cannot avoid.
func ewBench(b *testing.B, s *vk.Stream, bytes int) {
	b.Helper()
	vktest.Run(b, s)
	b.SetBytes(int64(bytes))
	b.ResetTimer()
	for range b.N {
		vktest.Run(b, s)
	}
	b.ReportMetric(float64(bytes)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
}
