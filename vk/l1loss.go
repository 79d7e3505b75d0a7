package vk

import "fmt"

// The L1 prediction loss of spec §6.2–6.3 (loss_exp p = 1: a plain mean absolute error).

type l1LossPush struct {
	N     uint32 // elements in this dispatch
	First uint32 // index of its first partial in the workspace
}

type l1LossBackwardPush struct {
	N        uint32
	InvNumel float32
}

// L1WorkspaceSize is the number of f32 elements of the workspace L1Loss needs for n elements.
func L1WorkspaceSize(n int) int { return max(reducePartials(n), 1) }

// L1Loss computes loss[0] = Σ|pred − target| / numel (overwritten), the mean over all elements. pred and
// target are f32 of one non-empty shape, loss f32 [1], workspace f32 with at least
// L1WorkspaceSize(numel) elements. The sum is deterministic (two fixed-order stages, see reduce.go).
func L1Loss(s *Stream, loss, pred, target, workspace Tensor) {
	l1Loss(s, loss, pred, target, workspace, s.elementChunk(4))
}

// l1Loss is L1Loss with first-stage dispatches of at most chunk elements (a multiple of reducePartial).
func l1Loss(s *Stream, loss, pred, target, workspace Tensor, chunk int) {
	const op = "l1 loss"
	SameShape(op+" pred vs target", pred, target)
	checkNumel(op, "loss", loss, 1)
	checkF32(op, loss, pred, target, workspace)
	n := pred.Numel()
	if n == 0 {
		panic(fmt.Sprintf("vk: %s: empty prediction %v", op, pred))
	}
	if need := L1WorkspaceSize(n); workspace.Numel() < need {
		panic(fmt.Sprintf("vk: %s: workspace %v for %d elements, want at least %d", op, workspace, n, need))
	}
	if chunk%reducePartial != 0 {
		panic(fmt.Sprintf("vk: %s: chunk %d is not a multiple of %d", op, chunk, reducePartial))
	}
	partials := reducePartials(n)
	ws := flatView(workspace).Slice(0, partials)
	pred, target = flatView(pred), flatView(target)
	k := kernel{"l1_loss", []uint32{local1D, reducePartial}}
	forChunks(n, chunk, func(lo, m int) {
		s.dispatch(op, k, l1LossPush{uint32(m), uint32(lo / reducePartial)}, s.grid1D(reducePartials(m), 1),
			out(ws), in(pred.Slice(lo, m)), in(target.Slice(lo, m)))
	})
	s.dispatch(op+" finish", kernel{"reduce_finish.sum", []uint32{local1D}},
		reduceFinishPush{uint32(partials), float32(1 / float64(n))}, [3]int{1, 1, 1}, out(loss), in(ws))
}

// L1LossBackward computes dpred = dloss[0]·sign(pred − target)/numel, with sign(0) = 0 as in PyTorch:
// overwritten, or added to dpred when accumulate. dloss is an f32 [1] device tensor, so that a recorded
// step replays with a new loss scale. dpred, pred, target are f32 of one shape; dpred may be pred or target.
func L1LossBackward(s *Stream, dpred, pred, target, dloss Tensor, accumulate bool) {
	l1LossBackward(s, dpred, pred, target, dloss, accumulate, s.elementChunk(4))
}

func l1LossBackward(s *Stream, dpred, pred, target, dloss Tensor, accumulate bool, chunk int) {
	const op = "l1 loss backward"
	SameShape(op+" dpred vs pred", dpred, pred)
	SameShape(op+" dpred vs target", dpred, target)
	checkNumel(op, "dloss", dloss, 1)
	checkF32(op, dpred, pred, target, dloss)
	n := dpred.Numel()
	name := "l1_loss_backward"
	if accumulate {
		name += ".accumulate"
	}
	dpred, pred, target = flatView(dpred), flatView(pred), flatView(target)
	inv := float32(1 / float64(max(n, 1)))
	forChunks(n, chunk, func(lo, m int) {
		s.dispatch(op, kernel{name, []uint32{local1D}}, l1LossBackwardPush{uint32(m), inv}, s.grid1D(m, local1D),
			out(dpred.Slice(lo, m)), in(pred.Slice(lo, m)), in(target.Slice(lo, m)), in(dloss))
	})
}
