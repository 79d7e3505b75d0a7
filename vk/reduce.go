package vk

import "fmt"

// Deterministic reductions in two stages and no atomics: reduce.comp (or l1_loss.comp) sums each run of
// reducePartial consecutive elements into one partial in a workspace, in a fixed order; reduce_finish.comp
// combines the partials in one workgroup, again in a fixed order. The result depends on the input and the
// device's workgroup size only, so a recorded step replays bit for bit.

// reducePartial is the number of elements one workgroup of the first stage reduces to one partial
// (specialization constant 1). It is fixed so that workspace sizes depend on n alone, and a split dispatch
// (a multiple of elementGranule elements) keeps the partials of an unsplit one.
const reducePartial = 1 << 14

type reducePush struct {
	N        uint32 // elements in this dispatch
	First    uint32 // index of its first partial in the workspace
	Partials uint32 // partials of the whole reduction
}

type reduceFinishPush struct {
	Partials uint32
	Scale    float32
}

// reducePartials is the number of first-stage partials for n elements.
func reducePartials(n int) int { return (n + reducePartial - 1) / reducePartial }

// ReduceWorkspaceSize is the number of f32 elements of the workspace Sum, SumSquares and MaxAbs need for
// an input of n elements.
func ReduceWorkspaceSize(n int) int { return 2 * max(reducePartials(n), 1) }

// Sum computes out[0] = Σ x (overwritten); out is f32 [1], x f32 of any shape, workspace f32 with at least
// ReduceWorkspaceSize(x.Numel()) elements.
func Sum(s *Stream, out, x, workspace Tensor) {
	reduce(s, "sum", out, x, workspace, 1, s.elementChunk(4))
}

// SumSquares accumulates acc[0] += Σ x² and sets acc[1] = 1 when any element of x is inf or NaN (acc[1] is
// left alone otherwise). acc is f32 [2] and is never reset here: Fill it once and call SumSquares for each
// tensor of a global gradient norm. workspace is f32 with at least ReduceWorkspaceSize(x.Numel()) elements.
func SumSquares(s *Stream, acc, x, workspace Tensor) {
	reduce(s, "sum_squares", acc, x, workspace, 1, s.elementChunk(4))
}

// MaxAbs computes out[0] = max |x| (overwritten; 0 for an empty x, NaN when any element is NaN). out is f32
// [1], workspace f32 with at least ReduceWorkspaceSize(x.Numel()) elements.
func MaxAbs(s *Stream, out, x, workspace Tensor) {
	reduce(s, "max_abs", out, x, workspace, 1, s.elementChunk(4))
}

// reduce records both stages of reduction variant ("sum", "sum_squares", "max_abs") with first-stage
// dispatches of at most chunk elements (a multiple of reducePartial).
func reduce(s *Stream, variant string, result, x, workspace Tensor, scale float32, chunk int) {
	op := "reduce " + variant
	outLen := 1
	if variant == "sum_squares" {
		outLen = 2
	}
	checkNumel(op, "output", result, outLen)
	checkF32(op, result, x, workspace)
	n := x.Numel()
	if need := ReduceWorkspaceSize(n); workspace.Numel() < need {
		panic(fmt.Sprintf("vk: %s: workspace %v for %d elements, want at least %d", op, workspace, n, need))
	}
	if chunk%reducePartial != 0 {
		panic(fmt.Sprintf("vk: %s: chunk %d is not a multiple of %d", op, chunk, reducePartial))
	}
	partials := reducePartials(n)
	ws := flatView(workspace).Slice(0, ReduceWorkspaceSize(n))
	x = flatView(x)
	k := kernel{"reduce." + variant, []uint32{local1D, reducePartial}}
	forChunks(n, chunk, func(lo, m int) {
		s.dispatch(op, k, reducePush{uint32(m), uint32(lo / reducePartial), uint32(partials)},
			s.grid1D(reducePartials(m), 1), out(ws), in(x.Slice(lo, m)))
	})
	s.dispatch(op+" finish", kernel{"reduce_finish." + variant, []uint32{local1D}}, reduceFinishPush{uint32(partials), scale},
		[3]int{1, 1, 1}, out(result), in(ws))
}
