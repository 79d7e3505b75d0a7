package vk

import (
	"fmt"
	"math"
)

// AttnShape: B batch, N tokens per batch element, Heads, HeadDim; FrameTokens > 0 enables the block-causal
// mask of spec §3 (query i may see key j iff j/FrameTokens <= i/FrameTokens), 0 = full attention. Scale 0
// means HeadDim^-0.5.
type AttnShape struct {
	B, N, Heads, HeadDim int
	FrameTokens          int
	Scale                float32
}

// attnMaxHeadDim bounds HeadDim: each invocation keeps up to four head vectors in registers.
const attnMaxHeadDim = 128

// attnPush mirrors the push block of shaders/attention.glsl, shared by the three attention kernels.
type attnPush struct {
	N        uint32
	Heads    uint32
	Frame    uint32
	Scale    float32
	QKVOff   uint32
	OOff     uint32
	LSEOff   uint32
	DOOff    uint32
	DQKVOff  uint32
	DeltaOff uint32
}

// AttentionForward: o[b·N+i, h·dh:(h+1)·dh] = softmax_j(q_i·k_j·scale + mask) v_j, reading q, k, v from
// qkv [B·N, 3·H·dh] (f32); o [B·N, H·dh] f32; lse [B, H, N] f32 saves the per-row log-sum-exp for backward.
// Flash-style: online softmax in f32, no N×N matrix in memory; key blocks wholly above the block-causal
// diagonal are skipped (not masked).
func AttentionForward(s *Stream, o, lse, qkv Tensor, sh AttnShape) {
	attentionForward(s, o, lse, qkv, sh, 0)
}

// attentionForward is AttentionForward with at most nb batch elements per dispatch (0: as many as the
// device's binding range allows).
func attentionForward(s *Stream, o, lse, qkv Tensor, sh AttnShape, nb int) {
	d := sh.Heads * sh.HeadDim
	args := []attnArg{{"qkv", qkv, 3 * d}, {"o", o, d}, {"lse", lse, 0}}
	sh.check("AttentionForward", args)
	// Shared memory: the k and v rows of a key tile and the scores of every row of the block. row is the
	// bytes of one head row as vec4s.
	row := 16 * ((sh.HeadDim + 3) / 4)
	c := attnPick(s.d, sh.HeadDim, func(tile, blockRows int) int { return tile * (2*row + 4*blockRows) })
	k := kernel{"attention", c.spec(sh.HeadDim)}
	sh.chunks(s, args, nb, func(nb int, w []Tensor, off []int) {
		push := sh.push()
		push.QKVOff, push.OOff, push.LSEOff = uint32(off[0]), uint32(off[1]), uint32(off[2])
		s.dispatch("attention", k, push, sh.grid(c, nb), in(w[0]), out(w[1]), out(w[2]))
	})
}

// AttentionBackward: dqkv [B·N, 3·H·dh] (overwritten: dq, dk, dv in the q|k|v layout) from do [B·N, H·dh],
// using the saved o and lse; delta [B, H, N] f32 is a workspace (rowsum(do∘o)).
//
// FlashAttention-2 without float atomics: a first kernel over query blocks computes delta and dq, a second
// over key blocks recomputes P from lse and computes dk and dv. Both skip the blocks the mask hides.
func AttentionBackward(s *Stream, dqkv, delta, do, qkv, o, lse Tensor, sh AttnShape) {
	attentionBackward(s, dqkv, delta, do, qkv, o, lse, sh, 0)
}

// attentionBackward is AttentionBackward with at most nb batch elements per dispatch (0: as many as the
// device's binding range allows).
func attentionBackward(s *Stream, dqkv, delta, do, qkv, o, lse Tensor, sh AttnShape, nb int) {
	d := sh.Heads * sh.HeadDim
	args := []attnArg{
		{"dqkv", dqkv, 3 * d}, {"delta", delta, 0}, {"do", do, d}, {"qkv", qkv, 3 * d}, {"o", o, d}, {"lse", lse, 0},
	}
	sh.check("AttentionBackward", args)
	// Shared memory: the k and v rows of a key tile (dq); the q and do rows, lse and delta of a query tile
	// (dk, dv). row is the bytes of one head row as vec4s.
	row := 16 * ((sh.HeadDim + 3) / 4)
	cdq := attnPick(s.d, sh.HeadDim, func(tile, _ int) int { return tile * 2 * row })
	cdkv := attnPick(s.d, sh.HeadDim, func(tile, _ int) int { return tile * (2*row + 8) })
	kdq := kernel{"attention_backward_dq", cdq.spec(sh.HeadDim)}
	kdkv := kernel{"attention_backward_dkv", cdkv.spec(sh.HeadDim)}
	sh.chunks(s, args, nb, func(nb int, w []Tensor, off []int) {
		push := sh.push()
		push.DQKVOff, push.DeltaOff, push.DOOff = uint32(off[0]), uint32(off[1]), uint32(off[2])
		push.QKVOff, push.OOff, push.LSEOff = uint32(off[3]), uint32(off[4]), uint32(off[5])
		dqkv, delta, do, qkv, o, lse := w[0], w[1], w[2], w[3], w[4], w[5]
		s.dispatch("attention_backward_dq", kdq, push, sh.grid(cdq, nb), out(dqkv), out(delta), in(qkv), in(o), in(do), in(lse))
		s.dispatch("attention_backward_dkv", kdkv, push, sh.grid(cdkv, nb), out(dqkv), in(qkv), in(do), in(lse), in(delta))
	})
}

// attnConfig is the launch shape of the attention kernels: wg invocations per workgroup, each handling
// rows query (or key) rows, and tile rows of the other side staged in shared memory per step.
type attnConfig struct {
	wg, rows, tile int
}

// spec lists the specialization constants of the attention kernels: WG, R, tile, DH.
func (c attnConfig) spec(dh int) []uint32 {
	return []uint32{uint32(c.wg), uint32(c.rows), uint32(c.tile), uint32(dh)}
}

// attnPick chooses the launch shape for head dim dh. On a CPU device (lavapipe) every shared-memory or
// buffer load is issued lane by lane, so an invocation takes 4 rows and reuses each loaded vec4 for all of
// them (about 5 against 0.6 GFLOP/s per core at dh=64 with one scalar row). Above dh=64 it keeps one row:
// the JIT's compile time grows fast with the unrolled per-invocation state (about 10 s for the backward
// kernels at dh=64 with 4 rows). A GPU keeps one row per invocation, whose vectors live in registers. The
// tile is the largest power of two ≤ 64 whose shared memory, tileBytes(tile, wg·rows), fits the device.
func attnPick(d *Device, dh int, tileBytes func(tile, blockRows int) int) attnConfig {
	c := attnConfig{wg: 64, rows: 1, tile: 64}
	if d.Info.Type == "cpu" && dh <= 64 {
		c.rows = 4
	}
	for c.tile > 1 && tileBytes(c.tile, c.wg*c.rows) > d.Info.SharedMemory {
		c.tile /= 2
	}
	return c
}

func (sh AttnShape) push() attnPush {
	scale := sh.Scale
	if scale == 0 {
		scale = float32(1 / math.Sqrt(float64(sh.HeadDim)))
	}
	frame := sh.FrameTokens
	if frame == 0 {
		frame = sh.N // one frame: every key visible
	}
	return attnPush{N: uint32(sh.N), Heads: uint32(sh.Heads), Frame: uint32(frame), Scale: scale}
}

// grid covers nb batch elements: one workgroup per block of wg·rows rows, head and batch element.
func (sh AttnShape) grid(c attnConfig, nb int) [3]int {
	br := c.wg * c.rows
	return [3]int{(sh.N + br - 1) / br, sh.Heads, nb}
}

// attnArg is a tensor argument and its row width: [B·N, width], or [B, H, N] when width is 0.
type attnArg struct {
	name  string
	t     Tensor
	width int
}

// perBatch is the number of elements of the argument per batch element.
func (a attnArg) perBatch(sh AttnShape) int {
	if a.width == 0 {
		return sh.Heads * sh.N
	}
	return sh.N * a.width
}

// check panics unless the shape is supported and every argument is f32 with the size the shape implies.
func (sh AttnShape) check(op string, args []attnArg) {
	if sh.B < 0 || sh.N < 0 || sh.Heads < 0 || sh.HeadDim < 1 || sh.HeadDim > attnMaxHeadDim || sh.FrameTokens < 0 {
		panic(fmt.Sprintf("vk: %s: bad shape %+v (HeadDim must be in 1..%d)", op, sh, attnMaxHeadDim))
	}
	for _, a := range args {
		if a.t.DType != F32 || a.t.Numel() != sh.B*a.perBatch(sh) {
			want := fmt.Sprintf("[%d, %d]", sh.B*sh.N, a.width)
			if a.width == 0 {
				want = fmt.Sprintf("[%d, %d, %d]", sh.B, sh.Heads, sh.N)
			}
			panic(fmt.Sprintf("vk: %s: %s is %v, want f32%s for %+v", op, a.name, a.t, want, sh))
		}
	}
}

// chunks calls fn for runs of at most nb batch elements (nb = 0: as many as keep every argument's window
// within the device's binding range, so one run unless a tensor is larger than the range), with each
// argument's window and the element offset of the run's first batch element inside it.
func (sh AttnShape) chunks(s *Stream, args []attnArg, nb int, fn func(nb int, win []Tensor, off []int)) {
	if sh.B == 0 || sh.N == 0 || sh.Heads == 0 {
		return
	}
	if nb <= 0 {
		nb = sh.B
		for _, a := range args {
			bytes := uint64(a.perBatch(sh)) * 4
			if uint64(sh.B)*bytes > s.d.MaxBinding() {
				nb = min(nb, max(1, int((s.d.MaxBinding()-s.d.mem.align)/bytes)))
			}
		}
	}
	win, off := make([]Tensor, len(args)), make([]int, len(args))
	for b0 := 0; b0 < sh.B; b0 += nb {
		n := min(nb, sh.B-b0)
		for i, a := range args {
			per := a.perBatch(sh)
			win[i], off[i] = s.window(a.t, b0*per, n*per)
		}
		fn(n, win, off)
	}
}
