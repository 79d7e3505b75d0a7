package vk_test

import (
	"testing"

	"github.com/vjepa-vk/vjepa-vk/vk"
	"github.com/vjepa-vk/vjepa-vk/vk/ref"
	"github.com/vjepa-vk/vjepa-vk/vk/vktest"
)

// attnCachedCases: no cache at all (one rollout step, or the uncached path with several new frames under
// the mask), one and two cached frames, a cache with spare rows (Cap > NC), query rows around the
// 64·4-row workgroup, head dims that take the scalar loads (3, 6), full attention, and the official
// predictor's cached step (258 tokens per frame, planning §3).
var attnCachedCases = []vk.AttnCachedShape{
	{B: 1, NQ: 1, NC: 0, Cap: 0, Heads: 1, HeadDim: 4},
	{B: 3, NQ: 36, NC: 0, Cap: 0, Heads: 2, HeadDim: 48, FrameTokens: 18},
	{B: 2, NQ: 18, NC: 18, Cap: 36, Heads: 2, HeadDim: 48, FrameTokens: 18},
	{B: 2, NQ: 18, NC: 36, Cap: 36, Heads: 2, HeadDim: 64, FrameTokens: 18},
	{B: 1, NQ: 257, NC: 257, Cap: 514, Heads: 1, HeadDim: 40, FrameTokens: 257},
	{B: 2, NQ: 7, NC: 5, Cap: 11, Heads: 2, HeadDim: 3},
	{B: 1, NQ: 13, NC: 26, Cap: 26, Heads: 3, HeadDim: 6, FrameTokens: 13},
	{B: 2, NQ: 30, NC: 20, Cap: 20, Heads: 1, HeadDim: 8, FrameTokens: 10}, // several new frames after a cache
	{B: 1, NQ: 258, NC: 258, Cap: 258, Heads: 16, HeadDim: 64, FrameTokens: 258},
}

func TestAttentionCached(t *testing.T) {
	d := vktest.Device(t)
	for _, sh := range attnCachedCases {
		for _, split := range []int{0, 1} {
			t.Run(vktest.Name("B", sh.B, "NQ", sh.NQ, "NC", sh.NC, "cap", sh.Cap, "heads", sh.Heads, "dh", sh.HeadDim,
				"frame", sh.FrameTokens, "split", split), func(t *testing.T) {
				dm := sh.Heads * sh.HeadDim
				qv := vktest.RandN(71, sh.B*sh.NQ*3*dm)
				kvv := vktest.RandN(72, sh.B*sh.Cap*2*dm)
				qkv := vktest.Tensor(t, d, vk.F32, qv, sh.B*sh.NQ, 3*dm)
				var kv vk.Tensor
				if sh.Cap > 0 {
					kv = vktest.Tensor(t, d, vk.F32, kvv, sh.B*sh.Cap, 2*dm)
				}
				o := vktest.Poisoned(t, d, vk.F32, sh.B*sh.NQ, dm)
				s := vktest.Stream(t, d)
				if split == 0 {
					vk.AttentionCached(s, o, qkv, kv, sh)
				} else {
					vk.AttentionCachedChunked(s, o, qkv, kv, sh, split)
				}
				vktest.Run(t, s)
				want := make([]float64, sh.B*sh.NQ*dm)
				ref.AttentionCached(want, vktest.F64(qv), vktest.F64(kvv), ref.AttnCachedShape{B: sh.B, NQ: sh.NQ,
					NC: sh.NC, Cap: sh.Cap, Heads: sh.Heads, HeadDim: sh.HeadDim, FrameTokens: sh.FrameTokens})
				vktest.Close(t, "AttentionCached", vktest.Download(t, d, o), want, attnFwdRTol, attnFwdATol)
				ewUnchanged(t, d, "qkv", qkv, qv)
			})
		}
	}
}

// TestAttentionCachedMatchesForward checks the op against AttentionForward on the whole sequence: the
// cache holds the k and v of the first NC tokens, the new tokens are the last NQ rows, and their outputs
// must be AttentionForward's last NQ rows (what makes the planner's K/V cache exact).
func TestAttentionCachedMatchesForward(t *testing.T) {
	d := vktest.Device(t)
	for _, c := range []struct{ B, frames, cached, F, heads, dh int }{
		{2, 2, 1, 18, 2, 48}, {2, 3, 2, 18, 2, 64}, {1, 3, 1, 66, 3, 32}, {3, 2, 1, 5, 1, 6},
	} {
		t.Run(vktest.Name("B", c.B, "frames", c.frames, "cached", c.cached, "F", c.F, "heads", c.heads, "dh", c.dh), func(t *testing.T) {
			N, NC := c.frames*c.F, c.cached*c.F
			NQ, dm := N-NC, c.heads*c.dh
			full := vktest.RandN(73, c.B*N*3*dm)
			qkvFull := vktest.Tensor(t, d, vk.F32, full, c.B*N, 3*dm)
			oFull := vktest.Poisoned(t, d, vk.F32, c.B*N, dm)
			lse := vktest.Poisoned(t, d, vk.F32, c.B, c.heads, N)
			var newRows, cache []float32
			for b := 0; b < c.B; b++ {
				for i := 0; i < N; i++ {
					row := full[(b*N+i)*3*dm : (b*N+i+1)*3*dm]
					if i < NC {
						cache = append(cache, row[dm:]...) // k | v
					} else {
						newRows = append(newRows, row...)
					}
				}
			}
			qkv := vktest.Tensor(t, d, vk.F32, newRows, c.B*NQ, 3*dm)
			kv := vktest.Tensor(t, d, vk.F32, cache, c.B*NC, 2*dm)
			o := vktest.Poisoned(t, d, vk.F32, c.B*NQ, dm)
			s := vktest.Stream(t, d)
			vk.AttentionForward(s, oFull, lse, qkvFull, vk.AttnShape{B: c.B, N: N, Heads: c.heads, HeadDim: c.dh, FrameTokens: c.F})
			vk.AttentionCached(s, o, qkv, kv, vk.AttnCachedShape{B: c.B, NQ: NQ, NC: NC, Cap: NC, Heads: c.heads,
				HeadDim: c.dh, FrameTokens: c.F})
			vktest.Run(t, s)
			of := vktest.Download(t, d, oFull)
			var want []float64
			for b := 0; b < c.B; b++ {
				want = append(want, vktest.F64(of[(b*N+NC)*dm:(b+1)*N*dm])...)
			}
			// Both are f32 online softmaxes over the same keys in the same tile order: rounding only.
			vktest.Close(t, "AttentionCached vs AttentionForward", vktest.Download(t, d, o), want, 1e-6, 1e-6)
		})
	}
}

func BenchmarkAttentionCached(b *testing.B) {
	d := vktest.Device(b)
	// One cached step of the official predictor for 8 candidates: 258 new tokens over 258 cached ones.
	sh := vk.AttnCachedShape{B: 8, NQ: 258, NC: 258, Cap: 258, Heads: 16, HeadDim: 64, FrameTokens: 258}
	if testing.Short() {
		sh.B = 1
	}
	dm := sh.Heads * sh.HeadDim
	qkv := vktest.Tensor(b, d, vk.F32, vktest.RandN(74, sh.B*sh.NQ*3*dm), sh.B*sh.NQ, 3*dm)
	kv := vktest.Tensor(b, d, vk.F32, vktest.RandN(75, sh.B*sh.Cap*2*dm), sh.B*sh.Cap, 2*dm)
	o := vktest.Poisoned(b, d, vk.F32, sh.B*sh.NQ, dm)
	s := vktest.Stream(b, d)
	vk.AttentionCached(s, o, qkv, kv, sh)
	flops := 4 * float64(sh.B*sh.Heads*sh.NQ*(sh.NC+sh.NQ)*sh.HeadDim)
	for b.Loop() {
		vktest.Run(b, s)
	}
	b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
}
