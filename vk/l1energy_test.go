package vk_test

import (
	"math"
	"testing"

	"github.com/vjepa-vk/vjepa-vk/vk"
	"github.com/vjepa-vk/vjepa-vk/vk/ref"
	"github.com/vjepa-vk/vjepa-vk/vk/vktest"
)

// l1EnergyCases are (rows, elements per row): single elements, the 256-wide workgroup ±1, a prime, the
// plan fixture's frame (16 patches × 96), rows split by a forced chunk, and one candidate of the official
// model (256 patches × 1408, planning §1).
var l1EnergyCases = [][2]int{{1, 1}, {3, 255}, {2, 256}, {5, 257}, {7, 1009}, {32, 16 * 96}, {2, 256 * 1408}}

func TestL1Energy(t *testing.T) {
	d := vktest.Device(t)
	for _, c := range l1EnergyCases {
		for _, chunk := range []int{0, 2} {
			for _, perRow := range []bool{false, true} {
				B, M := c[0], c[1]
				if perRow && B*M > 1<<20 {
					continue // the official frame per row is covered shared; per row it would only repeat it
				}
				t.Run(vktest.Name("B", B, "M", M, "chunk", chunk, "goalPerRow", perRow), func(t *testing.T) {
					G := M
					if perRow {
						G = B * M
					}
					xv, gv := vktest.RandN(61, B*M), vktest.RandN(62, G)
					for i := 0; i < M; i += 5 {
						xv[i] = gv[i] // exact ties contribute 0
					}
					// Unaligned views: x and goal start 3 elements into their tensors, energy 1 element in,
					// and the elements around energy's view must stay poisoned.
					xt := vktest.Tensor(t, d, vk.F32, append(make([]float32, 3), xv...), 3+B*M)
					gt := vktest.Tensor(t, d, vk.F32, append(make([]float32, 3), gv...), 3+G)
					et := vktest.Poisoned(t, d, vk.F32, B+2)
					x, goal, energy := xt.Slice(3, B*M).Reshape(B, M), gt.Slice(3, G), et.Slice(1, B)
					s := vktest.Stream(t, d)
					if chunk == 0 {
						vk.L1Energy(s, energy, x, goal)
					} else {
						vk.L1EnergyChunked(s, energy, x, goal, chunk)
					}
					vktest.Run(t, s)
					got := vktest.Download(t, d, et)
					want := make([]float64, B)
					ref.L1Energy(want, vktest.F64(xv), vktest.F64(gv))
					// Sums of M non-negative f32 terms: relative error ≲ ε·(M/256 + log2 256), far below 1e-5.
					vktest.Close(t, "L1Energy", got[1:B+1], want, 1e-5, 0)
					if !math.IsNaN(float64(got[0])) || !math.IsNaN(float64(got[B+1])) {
						t.Errorf("L1Energy wrote outside energy: %v, %v", got[0], got[B+1])
					}
					ewUnchanged(t, d, "x", xt.Slice(3, B*M), xv)
				})
			}
		}
	}
}

// TestL1EnergyBackward checks the energy's gradient against ref.L1EnergyBackward (itself checked by finite
// differences in vk/ref) with a shared goal and a goal per row, unaligned views and a forced row split.
func TestL1EnergyBackward(t *testing.T) {
	d := vktest.Device(t)
	for _, c := range l1EnergyCases {
		for _, chunk := range []int{0, 2} {
			for _, perRow := range []bool{false, true} {
				B, M := c[0], c[1]
				if perRow && B*M > 1<<20 {
					continue
				}
				t.Run(vktest.Name("B", B, "M", M, "chunk", chunk, "goalPerRow", perRow), func(t *testing.T) {
					G := M
					if perRow {
						G = B * M
					}
					xv, gv, ev := vktest.RandN(71, B*M), vktest.RandN(72, G), vktest.RandN(73, B)
					for i := 0; i < M; i += 7 {
						xv[i] = gv[i] // sign(0) = 0
					}
					xt := vktest.Tensor(t, d, vk.F32, append(make([]float32, 3), xv...), 3+B*M)
					gt := vktest.Tensor(t, d, vk.F32, append(make([]float32, 1), gv...), 1+G)
					et := vktest.Tensor(t, d, vk.F32, append(make([]float32, 2), ev...), 2+B)
					dxt := vktest.Poisoned(t, d, vk.F32, B*M+2)
					x, goal, de, dx := xt.Slice(3, B*M), gt.Slice(1, G), et.Slice(2, B), dxt.Slice(1, B*M)
					s := vktest.Stream(t, d)
					if chunk == 0 {
						vk.L1EnergyBackward(s, dx, x, goal, de)
					} else {
						vk.L1EnergyBackwardChunked(s, dx, x, goal, de, chunk)
					}
					vktest.Run(t, s)
					got := vktest.Download(t, d, dxt)
					want := make([]float64, B*M)
					ref.L1EnergyBackward(want, vktest.F64(xv), vktest.F64(gv), vktest.F64(ev))
					// One product of f32 values (denergy·1/M, then ±): exact to a rounding or two.
					vktest.Close(t, "L1EnergyBackward", got[1:B*M+1], want, 1e-6, 0)
					if !math.IsNaN(float64(got[0])) || !math.IsNaN(float64(got[B*M+1])) {
						t.Errorf("L1EnergyBackward wrote outside dx: %v, %v", got[0], got[B*M+1])
					}
					ewUnchanged(t, d, "x", x, xv)
				})
			}
		}
	}
}

// TestL1EnergyRowIndependent checks that a row's energy has the same bits whatever the number of rows
// around it: the planner's energies must not depend on its chunk size.
func TestL1EnergyRowIndependent(t *testing.T) {
	d := vktest.Device(t)
	const B, M = 6, 2000
	xv, gv := vktest.RandN(63, B*M), vktest.RandN(64, M)
	x := vktest.Tensor(t, d, vk.F32, xv, B, M)
	goal := vktest.Tensor(t, d, vk.F32, gv, M)
	all := vktest.Poisoned(t, d, vk.F32, B)
	one := vktest.Poisoned(t, d, vk.F32, 1)
	s := vktest.Stream(t, d)
	vk.L1Energy(s, all, x, goal)
	vktest.Run(t, s)
	want := vktest.Download(t, d, all)
	for b := range B {
		s := vktest.Stream(t, d)
		vk.L1Energy(s, one, x.Slice(b, 1), goal)
		vktest.Run(t, s)
		if got := vktest.Download(t, d, one)[0]; math.Float32bits(got) != math.Float32bits(want[b]) {
			t.Errorf("L1Energy row %d alone = %v, with %d rows %v", b, got, B, want[b])
		}
	}
}

func BenchmarkL1Energy(b *testing.B) {
	d := vktest.Device(b)
	const B, M = 64, 256 * 1408 // 64 candidates of the official model
	x := vktest.Tensor(b, d, vk.F32, vktest.RandN(65, B*M), B, M)
	goal := vktest.Tensor(b, d, vk.F32, vktest.RandN(66, M), M)
	energy := vktest.Poisoned(b, d, vk.F32, B)
	s := vktest.Stream(b, d)
	vk.L1Energy(s, energy, x, goal)
	b.SetBytes(int64(B*M) * 4)
	for b.Loop() {
		vktest.Run(b, s)
	}
}
