package vk_test

import (
	"math"
	"testing"

	"github.com/vjepa-vk/vjepa-vk/vk"
	"github.com/vjepa-vk/vjepa-vk/vk/ref"
	"github.com/vjepa-vk/vjepa-vk/vk/vktest"
)

// l1Sizes are around the 16384-element partials of the first reduction stage, a prime, one split in
// three by a forced chunk, and the teacher-forcing loss of one clip (7 frames × 256 patches × 1408,
// spec §6.2).
func l1Sizes() []int {
	p := vk.ReducePartial
	return []int{1, 255, p - 1, p, p + 1, 100003, 2*vk.ElementGranule + 1001, 7 * 256 * 1408}
}

// l1Inputs returns pred and target with a share of exact ties (pred = target), where the gradient is 0.
func l1Inputs(n int) (pred, target []float32) {
	pred, target = vktest.RandN(51, n), vktest.RandN(52, n)
	for i := 0; i < n; i += 7 {
		target[i] = pred[i]
	}
	return pred, target
}

func TestL1Loss(t *testing.T) {
	d := vktest.Device(t)
	for _, n := range l1Sizes() {
		for _, impl := range ewImpls() {
			t.Run(vktest.Name("n", n, "impl", impl.name), func(t *testing.T) {
				pv, tv := l1Inputs(n)
				pred := vktest.Tensor(t, d, vk.F32, pv, n)
				target := vktest.Tensor(t, d, vk.F32, tv, n)
				ws := vktest.Poisoned(t, d, vk.F32, vk.L1WorkspaceSize(n))
				loss := vktest.Poisoned(t, d, vk.F32, 1)
				s := vktest.Stream(t, d)
				if impl.chunk == 0 {
					vk.L1Loss(s, loss, pred, target, ws)
				} else {
					vk.L1LossChunked(s, loss, pred, target, ws, impl.chunk)
				}
				vktest.Run(t, s)
				got := vktest.Download(t, d, loss)
				// Sums of non-negative terms in float32: relative error below ~ε·(log2 of the tree depth +
				// 64 sequential terms per invocation), far below 1e-5.
				vktest.Close(t, "L1Loss", got, []float64{ref.L1Loss(vktest.F64(pv), vktest.F64(tv))}, 1e-5, 0)
				ewUnchanged(t, d, "pred", pred, pv)
				ewUnchanged(t, d, "target", target, tv)

				// Deterministic: a replay and the other implementation (split or not) give the same bits.
				vktest.Run(t, s)
				again := vktest.Download(t, d, loss)
				s2 := vktest.Stream(t, d)
				if impl.chunk == 0 {
					vk.L1LossChunked(s2, loss, pred, target, ws, vk.ElementGranule)
				} else {
					vk.L1Loss(s2, loss, pred, target, ws)
				}
				vktest.Run(t, s2)
				other := vktest.Download(t, d, loss)
				if math.Float32bits(again[0]) != math.Float32bits(got[0]) || math.Float32bits(other[0]) != math.Float32bits(got[0]) {
					t.Errorf("L1Loss(n=%d) not deterministic: %v, replayed %v, other split %v", n, got[0], again[0], other[0])
				}
			})
		}
	}
}

func TestL1LossBackward(t *testing.T) {
	d := vktest.Device(t)
	for _, n := range l1Sizes() {
		for _, impl := range ewImpls() {
			for _, accumulate := range []bool{false, true} {
				t.Run(vktest.Name("n", n, "impl", impl.name, "accumulate", accumulate), func(t *testing.T) {
					pv, tv := l1Inputs(n)
					pred := vktest.Tensor(t, d, vk.F32, pv, n)
					target := vktest.Tensor(t, d, vk.F32, tv, n)
					const scale = 1024 // a loss scale in the device tensor dloss
					dloss := vktest.Tensor(t, d, vk.F32, []float32{scale}, 1)
					dpred := vktest.Poisoned(t, d, vk.F32, n)
					want := make([]float64, n)
					if accumulate {
						d0 := vktest.RandN(53, n)
						dpred = vktest.Tensor(t, d, vk.F32, d0, n)
						want = vktest.F64(d0)
					}
					s := vktest.Stream(t, d)
					if impl.chunk == 0 {
						vk.L1LossBackward(s, dpred, pred, target, dloss, accumulate)
					} else {
						vk.L1LossBackwardChunked(s, dpred, pred, target, dloss, accumulate, impl.chunk)
					}
					vktest.Run(t, s)
					ref.L1LossBackward(want, vktest.F64(pv), vktest.F64(tv), scale, accumulate)
					// ±dloss·(1/n) rounded twice (1/n to f32, then the product), plus the accumulation.
					vktest.Close(t, "L1LossBackward", vktest.Download(t, d, dpred), want, 3e-7, 3e-7*scale/float64(n))
					ewUnchanged(t, d, "pred", pred, pv)
				})
			}
		}
	}
}

// TestL1LossBackwardReplay checks that a recorded backward pass reads dloss at run time: a replay after
// changing dloss scales the gradient.
func TestL1LossBackwardReplay(t *testing.T) {
	d := vktest.Device(t)
	pred := vktest.Tensor(t, d, vk.F32, []float32{1, -2, 3, 4}, 4)
	target := vktest.Tensor(t, d, vk.F32, []float32{0, 0, 3, 5}, 4)
	dloss := vktest.Tensor(t, d, vk.F32, []float32{1}, 1)
	dpred := vktest.Poisoned(t, d, vk.F32, 4)
	s := vktest.Stream(t, d)
	vk.L1LossBackward(s, dpred, pred, target, dloss, false)
	vktest.Run(t, s)
	vktest.Close(t, "L1LossBackward(dloss=1)", vktest.Download(t, d, dpred), []float64{0.25, -0.25, 0, -0.25}, 0, 0)
	if err := d.Upload(dloss, []float32{8}); err != nil {
		t.Fatal(err)
	}
	vktest.Run(t, s)
	vktest.Close(t, "L1LossBackward(dloss=8), replayed", vktest.Download(t, d, dpred), []float64{2, -2, 0, -2}, 0, 0)
}
