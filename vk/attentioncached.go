package vk

import (
	"fmt"
	"math"
)

// AttnCachedShape describes AttentionCached: B batch elements, each with NQ new tokens at global positions
// NC..NC+NQ−1 that follow NC cached tokens (rows 0..NC−1 of a K/V cache of Cap rows per element); Heads
// heads of HeadDim. FrameTokens > 0 enables the block-causal mask of spec §3 over global positions (token
// g may see key j iff j/FrameTokens ≤ g/FrameTokens), 0 = full attention. Scale 0 means HeadDim^-0.5.
type AttnCachedShape struct {
	B, NQ, NC, Cap, Heads, HeadDim int
	FrameTokens                    int
	Scale                          float32
}

// attnCachedPush mirrors the push block of shaders/attention_cached.comp.
type attnCachedPush struct {
	NQ, NC, Cap, Heads, Frame uint32
	Scale                     float32
	QKVOff, KVOff, OOff       uint32
}

// AttentionCached computes o [B·NQ, H·dh] (overwritten), the attention output of the NQ new tokens of each
// batch element over the keys and values of its NC cached tokens, kv [B·Cap, 2·H·dh] with columns [k | v],
// followed by those of the new tokens themselves, qkv [B·NQ, 3·H·dh] with columns [q | k | v] (after RoPE):
// exactly AttentionForward's o for the last NQ tokens of the whole sequence, without recomputing the first
// NC. A rollout step of the planner (planning §3) attends its new frame to the cached frames this way;
// block causality makes the cache exact. kv may be the zero Tensor when Cap = 0. f32 throughout, online
// softmax as AttentionForward; no log-sum-exp is kept (forward only).
func AttentionCached(s *Stream, o, qkv, kv Tensor, sh AttnCachedShape) {
	attentionCached(s, o, qkv, kv, sh, 0)
}

// attentionCached is AttentionCached with at most nb batch elements per dispatch (0: as many as the
// device's binding range allows).
func attentionCached(s *Stream, o, qkv, kv Tensor, sh AttnCachedShape, nb int) {
	const op = "attention cached"
	d := sh.Heads * sh.HeadDim
	if sh.B < 0 || sh.NQ < 0 || sh.NC < 0 || sh.NC > sh.Cap || sh.Heads < 0 || sh.HeadDim < 1 ||
		sh.HeadDim > attnMaxHeadDim || sh.FrameTokens < 0 {
		panic(fmt.Sprintf("vk: %s: bad shape %+v (NC ≤ Cap, HeadDim in 1..%d)", op, sh, attnMaxHeadDim))
	}
	type arg struct {
		name     string
		t        Tensor
		perBatch int
	}
	args := []arg{{"o", o, sh.NQ * d}, {"qkv", qkv, sh.NQ * 3 * d}, {"kv", kv, sh.Cap * 2 * d}}
	if sh.Cap == 0 && !kv.Valid() {
		args[2].t = qkv // bound but never read: no key comes from the cache
		args[2].perBatch = args[1].perBatch
	}
	for _, a := range args {
		if a.t.DType != F32 || a.t.Numel() != sh.B*a.perBatch {
			panic(fmt.Sprintf("vk: %s: %s is %v, want f32 with %d elements for %+v", op, a.name, a.t, sh.B*a.perBatch, sh))
		}
	}
	if sh.B == 0 || sh.NQ == 0 || sh.Heads == 0 {
		return
	}
	if nb <= 0 {
		nb = sh.B
		for _, a := range args {
			if bytes := uint64(a.perBatch) * 4; uint64(sh.B)*bytes > s.d.MaxBinding() {
				nb = min(nb, max(1, int((s.d.MaxBinding()-s.d.mem.align)/bytes)))
			}
		}
	}
	// The scalar forward kernel's launch shape: the same shared memory per tile (k and v rows, scores).
	row := 16 * ((sh.HeadDim + 3) / 4)
	c := attnPick(s.d, sh.HeadDim, func(tile, blockRows int) int { return tile * (2*row + 4*blockRows) })
	k := kernel{"attention_cached", c.spec(sh.HeadDim)}
	scale := sh.Scale
	if scale == 0 {
		scale = float32(1 / math.Sqrt(float64(sh.HeadDim)))
	}
	frame := sh.FrameTokens
	if frame == 0 {
		frame = sh.NC + sh.NQ
	}
	br := c.blockRows()
	for b0 := 0; b0 < sh.B; b0 += nb {
		n := min(nb, sh.B-b0)
		var win [3]Tensor
		var off [3]uint32
		for i, a := range args {
			win[i], off[i] = s.gemmWindow(flatView(a.t), b0*a.perBatch, (b0+n)*a.perBatch)
		}
		push := attnCachedPush{NQ: uint32(sh.NQ), NC: uint32(sh.NC), Cap: uint32(sh.Cap), Heads: uint32(sh.Heads),
			Frame: uint32(frame), Scale: scale, OOff: off[0], QKVOff: off[1], KVOff: off[2]}
		s.dispatch(op, k, push, [3]int{(sh.NQ + br - 1) / br, sh.Heads, n}, in(win[1]), in(win[2]), out(win[0]))
	}
}
