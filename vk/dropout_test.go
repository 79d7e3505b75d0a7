package vk_test

import (
	"encoding/binary"
	"math"
	"testing"

	"github.com/vjepa-vk/vjepa-vk/vk"
	"github.com/vjepa-vk/vjepa-vk/vk/ref"
	"github.com/vjepa-vk/vjepa-vk/vk/vktest"
)

// GPU dropout against ref.Dropout. The comparisons are exact (tolerance 0): the mask is an integer hash
// compare done identically on both sides, and a kept value is one f32 multiply by the same f32 scale, which
// is correctly rounded, so it equals the float64 product (exact for two f32 factors) rounded to f32.

// dropoutSeed returns a u32 [1] device tensor holding seed.
func dropoutSeed(t testing.TB, d *vk.Device, seed uint32) vk.Tensor {
	t.Helper()
	x := vktest.Tensor(t, d, vk.U32, nil, 1)
	writeSeed(t, d, x, seed)
	return x
}

func writeSeed(t testing.TB, d *vk.Device, x vk.Tensor, seed uint32) {
	t.Helper()
	if err := d.WriteBytes(x, binary.LittleEndian.AppendUint32(nil, seed)); err != nil {
		t.Fatal(err)
	}
}

// dropoutSizes are element counts around the 256-wide workgroup, a prime, and one that a forced chunk of
// vk.ElementGranule elements splits three ways with a ragged tail; under !Short, one past 65535 groups of
// 256, so the grid folds into y.
func dropoutSizes() []int {
	sizes := []int{1, 255, 256, 257, 1009, 2*vk.ElementGranule + 1001}
	if !testing.Short() {
		sizes = append(sizes, 70000*256)
	}
	return sizes
}

// dropoutP are the probabilities tested, as the f32 the op takes: 0 (a copy), LoRA's usual 0.05, and 0.5.
var dropoutP = []float32{0, 0.05, 0.5}

func TestDropout(t *testing.T) {
	d := vktest.Device(t)
	const seed, salt = 0x9e3779b9, 5
	seedT := dropoutSeed(t, d, seed)
	for _, n := range dropoutSizes() {
		for _, p := range dropoutP {
			for _, impl := range ewImpls() {
				for _, alias := range []string{"none", "y=x"} {
					if n > 1<<20 && (impl.chunk != 0 || alias != "none" || p != 0.5) {
						continue // the big case is for grid folding only
					}
					t.Run(vktest.Name("n", n, "p", p, "impl", impl.name, "alias", alias), func(t *testing.T) {
						s := vktest.Stream(t, d)
						xv := vktest.RandN(1, n)
						x := vktest.Tensor(t, d, vk.F32, xv, n)
						y := vktest.Poisoned(t, d, vk.F32, n)
						if alias == "y=x" {
							y = x
						}
						if impl.chunk == 0 {
							vk.Dropout(s, y, x, seedT, p, salt)
						} else {
							vk.DropoutChunked(s, y, x, seedT, p, salt, impl.chunk)
						}
						vktest.Run(t, s)
						want := make([]float64, n)
						ref.Dropout(want, vktest.F64(xv), seed, salt, float64(p))
						got := vktest.Download(t, d, y)
						vktest.Close(t, vktest.Name("Dropout(n", n, "p", p)+")", got, vktest.F64(vktest.F32(want)), 0, 0)
						if alias == "none" && n <= 1<<20 {
							ewUnchanged(t, d, "x", x, xv)
						}
					})
				}
			}
		}
	}
}

// TestDropoutAt: dropout of a slice of a tensor with first = the slice's offset (one data-parallel rank's
// rows of a global batch) gives exactly the whole tensor's mask on that slice, forward and backward,
// whole or in chunks; and the index wraps at 2^32 as ref.DropoutAt's does.
func TestDropoutAt(t *testing.T) {
	d := vktest.Device(t)
	const n, seed, salt, p = 1009, 0x51ed, 3, 0.3
	seedT := dropoutSeed(t, d, seed)
	xv := vktest.RandN(4, n)
	want := make([]float64, n)
	ref.Dropout(want, vktest.F64(xv), seed, salt, p)
	for _, lo := range []int{0, 1, 500, 1008} {
		for _, impl := range ewImpls() {
			for _, backward := range []bool{false, true} {
				t.Run(vktest.Name("first", lo, "impl", impl.name, "backward", backward), func(t *testing.T) {
					s := vktest.Stream(t, d)
					x := vktest.Tensor(t, d, vk.F32, xv[lo:], n-lo)
					y := vktest.Poisoned(t, d, vk.F32, n-lo)
					chunk := impl.chunk
					if chunk == 0 {
						chunk = 1 << 30
					}
					if backward {
						vk.DropoutBackwardAtChunked(s, y, x, seedT, p, salt, uint32(lo), false, chunk)
					} else {
						vk.DropoutAtChunked(s, y, x, seedT, p, salt, uint32(lo), chunk)
					}
					vktest.Run(t, s)
					vktest.Close(t, vktest.Name("DropoutAt(first", lo)+")", vktest.Download(t, d, y), vktest.F64(vktest.F32(want[lo:])), 0, 0)
				})
			}
		}
	}
	t.Run("wrap", func(t *testing.T) {
		const first = 1<<32 - 10
		s := vktest.Stream(t, d)
		x := vktest.Tensor(t, d, vk.F32, xv[:100], 100)
		y := vktest.Poisoned(t, d, vk.F32, 100)
		vk.DropoutAt(s, y, x, seedT, p, salt, first)
		vktest.Run(t, s)
		w := make([]float64, 100)
		ref.DropoutAt(w, vktest.F64(xv[:100]), seed, salt, first, p)
		vktest.Close(t, "DropoutAt(first=2^32-10)", vktest.Download(t, d, y), vktest.F64(vktest.F32(w)), 0, 0)
	})
}

// TestDropoutNonFinite checks that a dropped element is 0 even when its input is NaN, and a kept one NaN.
func TestDropoutNonFinite(t *testing.T) {
	d := vktest.Device(t)
	const n, seed, salt, p = 1009, 17, 2, 0.5
	s := vktest.Stream(t, d)
	x := vktest.Poisoned(t, d, vk.F32, n)
	y := vktest.Poisoned(t, d, vk.F32, n)
	vk.Dropout(s, y, x, dropoutSeed(t, d, seed), p, salt)
	vktest.Run(t, s)
	want := make([]float64, n)
	ref.Dropout(want, vktest.F64(vktest.NaNs(n)), seed, salt, p)
	vktest.Close(t, "Dropout(x=NaN)", vktest.Download(t, d, y), want, 0, 0)
}

func TestDropoutBackward(t *testing.T) {
	d := vktest.Device(t)
	const seed, salt = 0xdeadbeef, 11
	seedT := dropoutSeed(t, d, seed)
	for _, n := range dropoutSizes() {
		for _, p := range dropoutP {
			for _, impl := range ewImpls() {
				for _, mode := range []string{"overwrite", "accumulate", "dx=dy"} {
					if n > 1<<20 && (impl.chunk != 0 || mode != "accumulate" || p != 0.05) {
						continue
					}
					t.Run(vktest.Name("n", n, "p", p, "impl", impl.name, "mode", mode), func(t *testing.T) {
						s := vktest.Stream(t, d)
						dyv, dx0 := vktest.RandN(2, n), vktest.RandN(3, n)
						dy := vktest.Tensor(t, d, vk.F32, dyv, n)
						dx := vktest.Poisoned(t, d, vk.F32, n)
						accumulate := mode == "accumulate"
						want := make([]float64, n)
						switch mode {
						case "accumulate":
							dx = vktest.Tensor(t, d, vk.F32, dx0, n)
							want = vktest.F64(dx0)
						case "dx=dy":
							dx = dy
						}
						if impl.chunk == 0 {
							vk.DropoutBackward(s, dx, dy, seedT, p, salt, accumulate)
						} else {
							vk.DropoutBackwardChunked(s, dx, dy, seedT, p, salt, accumulate, impl.chunk)
						}
						vktest.Run(t, s)
						ref.DropoutBackward(want, vktest.F64(dyv), seed, salt, float64(p), accumulate)
						// Accumulating adds one f32 sum after the product: the GPU rounds the product to f32
						// first, so round the reference in the same two steps.
						if accumulate {
							prod := make([]float64, n)
							ref.DropoutBackward(prod, vktest.F64(dyv), seed, salt, float64(p), false)
							for i := range want {
								want[i] = float64(dx0[i] + float32(prod[i]))
							}
						}
						got := vktest.Download(t, d, dx)
						vktest.Close(t, vktest.Name("DropoutBackward(n", n, "p", p, "mode", mode)+")", got, vktest.F64(vktest.F32(want)), 0, 0)
						if mode != "dx=dy" && n <= 1<<20 {
							ewUnchanged(t, d, "dy", dy, dyv)
						}
					})
				}
			}
		}
	}
}

// TestDropoutReplayNewSeed records Dropout once and replays it after writing new seeds: each run's mask is
// the reference mask of its seed, and a new seed changes the mask. A second salt in the same recording
// gives yet another mask.
func TestDropoutReplayNewSeed(t *testing.T) {
	d := vktest.Device(t)
	const n, p = 4099, 0.5
	ones := make([]float32, n)
	for i := range ones {
		ones[i] = 1
	}
	x := vktest.Tensor(t, d, vk.F32, ones, n)
	y1 := vktest.Poisoned(t, d, vk.F32, n)
	y2 := vktest.Poisoned(t, d, vk.F32, n)
	seedT := dropoutSeed(t, d, 1)
	s := vktest.Stream(t, d)
	vk.Dropout(s, y1, x, seedT, p, 1)
	vk.Dropout(s, y2, x, seedT, p, 2)
	masks := map[string][]bool{}
	for _, seed := range []uint32{1, 2, 0xffffffff} {
		writeSeed(t, d, seedT, seed)
		vktest.Run(t, s)
		for salt, y := range []vk.Tensor{y1, y2} {
			got := vktest.Download(t, d, y)
			mask := make([]bool, n)
			for i, v := range got {
				mask[i] = v != 0
				if mask[i] != ref.DropoutKeep(seed, uint32(salt+1), i, p) {
					t.Fatalf("Dropout(seed=%d, salt=%d) replayed: y[%d] = %v, want kept = %v", seed, salt+1, i, v, !mask[i])
				}
			}
			masks[vktest.Name("seed", seed, "salt", salt+1)] = mask
		}
	}
	for a, ma := range masks {
		for b, mb := range masks {
			if a < b && equalMasks(ma, mb) {
				t.Errorf("Dropout masks of %s and %s are identical", a, b)
			}
		}
	}
}

func equalMasks(a, b []bool) bool {
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestDropoutSeedDTypes checks that an i32 or f32 seed tensor is read as its 32-bit pattern.
func TestDropoutSeedDTypes(t *testing.T) {
	d := vktest.Device(t)
	const n, p, salt = 1009, 0.5, 3
	xv := vktest.RandN(4, n)
	x := vktest.Tensor(t, d, vk.F32, xv, n)
	for _, c := range []struct {
		dt    vk.DType
		value float32
		bits  uint32
	}{
		{vk.I32, -7, uint32(0xfffffff9)},
		{vk.F32, 3.5, math.Float32bits(3.5)},
	} {
		t.Run(vktest.Name("dtype", c.dt), func(t *testing.T) {
			s := vktest.Stream(t, d)
			y := vktest.Poisoned(t, d, vk.F32, n)
			vk.Dropout(s, y, x, vktest.Tensor(t, d, c.dt, []float32{c.value}, 1), p, salt)
			vktest.Run(t, s)
			want := make([]float64, n)
			ref.Dropout(want, vktest.F64(xv), c.bits, salt, p)
			vktest.Close(t, vktest.Name("Dropout(seed", c.dt)+")", vktest.Download(t, d, y), vktest.F64(vktest.F32(want)), 0, 0)
		})
	}
}

// TestDropoutKeepFraction checks on 10^6 elements that the GPU keeps 1−p of them, within 4σ of a binomial.
func TestDropoutKeepFraction(t *testing.T) {
	d := vktest.Device(t)
	const n = 1000000
	ones := make([]float32, n)
	for i := range ones {
		ones[i] = 1
	}
	x := vktest.Tensor(t, d, vk.F32, ones, n)
	y := vktest.Poisoned(t, d, vk.F32, n)
	seedT := dropoutSeed(t, d, 12345)
	for _, p := range []float32{0.05, 0.5} {
		t.Run(vktest.Name("p", p), func(t *testing.T) {
			s := vktest.Stream(t, d)
			vk.Dropout(s, y, x, seedT, p, 0)
			vktest.Run(t, s)
			kept := 0
			for _, v := range vktest.Download(t, d, y) {
				if v != 0 {
					kept++
				}
			}
			q := 1 - float64(p)
			sigma := math.Sqrt(n * float64(p) * q)
			if dev := math.Abs(float64(kept) - q*n); dev > 4*sigma {
				t.Errorf("Dropout(p=%v) kept %d of %d, want %.0f ± %.0f (4σ)", p, kept, n, q*n, 4*sigma)
			}
		})
	}
}

// BenchmarkDropout reports the bandwidth of x read and y written on a LoRA adapter input [B·N, D].
func BenchmarkDropout(b *testing.B) {
	d := vktest.Device(b)
	for _, c := range []struct{ rows, cols int }{{8256, 1024}} {
		b.Run(vktest.Name("rows", c.rows, "cols", c.cols), func(b *testing.B) {
			n := c.rows * c.cols
			x := vktest.Tensor(b, d, vk.F32, vktest.RandN(1, n), c.rows, c.cols)
			y := vktest.Tensor(b, d, vk.F32, nil, c.rows, c.cols)
			s := vktest.Stream(b, d)
			vk.Dropout(s, y, x, dropoutSeed(b, d, 1), 0.05, 0)
			ewBench(b, s, 8*n)
		})
	}
}

// BenchmarkDropoutBackward reports the bandwidth of dy read and dx read and written (accumulating).
func BenchmarkDropoutBackward(b *testing.B) {
	d := vktest.Device(b)
	for _, c := range []struct{ rows, cols int }{{8256, 1024}} {
		b.Run(vktest.Name("rows", c.rows, "cols", c.cols), func(b *testing.B) {
			n := c.rows * c.cols
			dy := vktest.Tensor(b, d, vk.F32, vktest.RandN(1, n), c.rows, c.cols)
			dx := vktest.Tensor(b, d, vk.F32, vktest.RandN(2, n), c.rows, c.cols)
			s := vktest.Stream(b, d)
			vk.DropoutBackward(s, dx, dy, dropoutSeed(b, d, 1), 0.05, 0, true)
			ewBench(b, s, 12*n)
		})
	}
}
