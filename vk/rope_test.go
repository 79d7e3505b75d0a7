package vk_test

import (
	"fmt"
	"testing"

	"github.com/vjepa-vk/vjepa-vk/vk"
	"github.com/vjepa-vk/vjepa-vk/vk/ref"
	"github.com/vjepa-vk/vjepa-vk/vk/vktest"
)

func ropeName(sh vk.RopeShape) string {
	return vktest.Name("B", sh.B, "T", sh.T, "K", sh.K, "grid", fmt.Sprintf("%dx%d", sh.GridH, sh.GridW),
		"heads", sh.Heads, "dh", sh.HeadDim, "toff", sh.TimeOffset)
}

// TestRopeWorkedExample runs the worked example of spec §4.5 (patch and conditioning token) on the device.
func TestRopeWorkedExample(t *testing.T) {
	d := vktest.Device(t)
	for _, cond := range []bool{false, true} {
		t.Run(vktest.Name("cond", cond), func(t *testing.T) {
			rsh, row, in, wantQK := ref.RopeWorkedExample(cond)
			sh := vk.RopeShape(rsh)
			qkv := vktest.Tensor(t, d, vk.F32, vktest.F32(in), sh.B*sh.N(), 3*64)
			s := vktest.Stream(t, d)
			vk.Rope(s, qkv, sh)
			vktest.Run(t, s)
			got := vktest.Download(t, d, qkv)
			want := append([]float64(nil), in...)
			copy(want[row*3*64:], wantQK)
			copy(want[row*3*64+64:], wantQK)
			// Golden values are rounded to 6 decimals; fp32 angles and products add ~1 ulp of |x| ≤ 67.
			e := vktest.Close(t, "Rope(worked example "+ropeName(sh)+")", got, want, 2e-7, 1e-5)
			t.Logf("max abs err %.3g", e)
		})
	}
}

var ropeShapes = []vk.RopeShape{
	{B: 1, T: 1, K: 0, GridH: 1, GridW: 1, Heads: 1, HeadDim: 64},
	{B: 2, T: 3, K: 2, GridH: 4, GridW: 4, Heads: 2, HeadDim: 64},
	{B: 1, T: 2, K: 3, GridH: 3, GridW: 5, Heads: 3, HeadDim: 40, TimeOffset: 4},
	{B: 3, T: 2, K: 1, GridH: 2, GridW: 3, Heads: 2, HeadDim: 8},
	{B: 1, T: 2, K: 2, GridH: 2, GridW: 2, Heads: 2, HeadDim: 7},
	{B: 1, T: 2, K: 2, GridH: 2, GridW: 2, Heads: 1, HeadDim: 2},  // axis width 0: identity
	{B: 1, T: 2, K: 0, GridH: 2, GridW: 2, Heads: 2, HeadDim: 3},  // axis width 0: identity
	{B: 1, T: 3, K: 2, GridH: 3, GridW: 3, Heads: 2, HeadDim: 96}, // axis 32
	{B: 1, T: 3, K: 2, GridH: 5, GridW: 2, Heads: 1, HeadDim: 128},
	{B: 1, T: 1, K: 0, GridH: 16, GridW: 16, Heads: 22, HeadDim: 64},  // encoder, one 2-frame tubelet (spec §8.4)
	{B: 1, T: 8, K: 2, GridH: 16, GridW: 16, Heads: 16, HeadDim: 64},  // predictor
	{B: 2, T: 16, K: 3, GridH: 16, GridW: 16, Heads: 16, HeadDim: 64}, // predictor with extrinsics, large
}

// ropeTol is the tolerance of Rope against the float64 reference: the device uses fp32 ω and fp32 angles
// pos·ω, as the official code does, so angles carry a relative error of ~2 ulp (2.4e-7), i.e. an
// absolute error of ~2.4e-7·pos, times |x| ≲ 5 for normal inputs; plus ~1 ulp of each product.
func ropeTol(sh vk.RopeShape) float64 {
	maxPos := max(sh.T+sh.TimeOffset, sh.GridH, sh.GridW)
	return 5 * (2.4e-7*float64(maxPos) + 2e-7)
}

// ropeImpls run the ops whole, or split into dispatches of 7 token rows so that the qkv binding is a
// window at an element offset.
var ropeImpls = []struct {
	name string
	rows int // rows per dispatch, 0 = whole
}{{"whole", 0}, {"split=7", 7}}

func TestRope(t *testing.T) {
	d := vktest.Device(t)
	shapes := append(ropeShapes, vk.RopeShape{B: 1, T: 2, K: 2, GridH: 2, GridW: 2, Heads: 1, HeadDim: 64, TimeOffset: 3000})
	for _, sh := range shapes {
		for _, impl := range ropeImpls {
			for _, backward := range []bool{false, true} {
				if (testing.Short() && sh.B*sh.N() > 4096) || (impl.rows > 0 && sh.B*sh.N() > 1024) {
					continue
				}
				op := "Rope"
				if backward {
					op = "RopeBackward"
				}
				t.Run(vktest.Name("op", op, "impl", impl.name)+","+ropeName(sh), func(t *testing.T) {
					rows, width := sh.B*sh.N(), 3*sh.Heads*sh.HeadDim
					in := vktest.RandN(uint64(rows*width), rows*width)
					qkv := vktest.Tensor(t, d, vk.F32, in, rows, width)
					s := vktest.Stream(t, d)
					want := vktest.F64(in)
					if backward {
						vk.RopeBackwardChunked(s, qkv, sh, impl.rows)
						ref.RopeBackward(want, ref.RopeShape(sh))
					} else {
						vk.RopeChunked(s, qkv, sh, impl.rows)
						ref.Rope(want, ref.RopeShape(sh))
					}
					vktest.Run(t, s)
					tol := ropeTol(sh)
					if sh.TimeOffset > 100 {
						// Angles near 3000 rad: the fp32 angle itself (as in the official fp32 code) is off by
						// up to half an ulp of 3000, 1.2e-4 rad; this case checks the range reduction.
						tol = 5 * 2.5e-4
					}
					e := vktest.Close(t, op+"("+ropeName(sh)+")", vktest.Download(t, d, qkv), want, 0, tol)
					t.Logf("max abs err %.3g (tol %.2g)", e, tol)
				})
			}
		}
	}
}

// TestRopeIdentityAtOrigin checks that both maps are exactly the identity at position (0, 0, 0) (spec §4.3),
// which the encoder relies on for its depth dims (spec §8.4).
func TestRopeIdentityAtOrigin(t *testing.T) {
	d := vktest.Device(t)
	sh := vk.RopeShape{B: 2, T: 1, K: 1, GridH: 1, GridW: 1, Heads: 2, HeadDim: 64}
	n := sh.B * sh.N() * 3 * sh.Heads * sh.HeadDim
	in := vktest.RandN(7, n)
	x := vktest.Tensor(t, d, vk.F32, in, sh.B*sh.N(), 3*sh.Heads*sh.HeadDim)
	s := vktest.Stream(t, d)
	vk.Rope(s, x, sh)
	vk.RopeBackward(s, x, sh)
	vktest.Run(t, s)
	vktest.Close(t, "Rope at (0,0,0) "+ropeName(sh), vktest.Download(t, d, x), vktest.F64(in), 0, 0)
}

func BenchmarkRope(b *testing.B) {
	d := vktest.Device(b)
	for _, sh := range []vk.RopeShape{
		{B: 2, T: 8, K: 2, GridH: 16, GridW: 16, Heads: 16, HeadDim: 64},
		{B: 8, T: 1, K: 0, GridH: 16, GridW: 16, Heads: 22, HeadDim: 64},
	} {
		b.Run(ropeName(sh), func(b *testing.B) {
			rows, width := sh.B*sh.N(), 3*sh.Heads*sh.HeadDim
			qkv := vktest.Tensor(b, d, vk.F32, vktest.RandN(1, rows*width), rows, width)
			s := vktest.Stream(b, d)
			vk.Rope(s, qkv, sh)
			vktest.Run(b, s)
			b.ResetTimer()
			for range b.N {
				vktest.Run(b, s)
			}
			// q and k are read and written once.
			bytes := float64(rows) * float64(2*sh.Heads*sh.HeadDim) * 4 * 2
			b.ReportMetric(bytes*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
		})
	}
}
