package ref

import (
	"fmt"
	"math"
)

// AttnCachedShape mirrors vk.AttnCachedShape: B batch elements, each with NQ new tokens at global
// positions NC..NC+NQ−1 after NC cached tokens (rows 0..NC−1 of a cache of Cap rows per element), Heads
// heads of HeadDim; FrameTokens > 0 the block-causal mask of spec §3 over global positions, 0 full
// attention; Scale 0 means HeadDim^−1/2.
type AttnCachedShape struct {
	B, NQ, NC, Cap, Heads, HeadDim int
	FrameTokens                    int
	Scale                          float64
}

// AttentionCached is Attention for the last NQ tokens of a sequence whose first NC tokens' keys and values
// come from a cache (planning §3, a K/V-cached rollout step): per batch element b, head h and new token i
// at global position g = NC + i,
//
//	S_ij = scale·q_i·k_j  for the keys j of the sequence with floor(j/F) ≤ floor(g/F) (F = FrameTokens),
//	o_i  = Σ_j softmax_j(S_ij)·v_j
//
// where k_j, v_j is row j of kv [B·Cap, 2·Heads·HeadDim] (columns [k | v]) for j < NC, and the k, v of new
// token j − NC in qkv [B·NQ, 3·Heads·HeadDim] (columns [q | k | v]) otherwise. o is [B·NQ, Heads·HeadDim].
func AttentionCached(o, qkv, kv []float64, s AttnCachedShape) {
	d, dh := s.Heads*s.HeadDim, s.HeadDim
	if len(o) != s.B*s.NQ*d || len(qkv) != s.B*s.NQ*3*d || len(kv) < s.B*s.Cap*2*d || s.NC > s.Cap {
		panic(fmt.Sprintf("ref: AttentionCached: len(o) %d, len(qkv) %d, len(kv) %d do not fit %+v", len(o), len(qkv), len(kv), s))
	}
	scale := s.Scale
	if scale == 0 {
		scale = 1 / math.Sqrt(float64(dh))
	}
	n := s.NC + s.NQ
	key := func(b, j, part, h int) []float64 { // part 0 k, 1 v
		if j < s.NC {
			at := (b*s.Cap+j)*2*d + part*d + h*dh
			return kv[at : at+dh]
		}
		at := (b*s.NQ+j-s.NC)*3*d + (part+1)*d + h*dh
		return qkv[at : at+dh]
	}
	scores := make([]float64, n)
	for b := 0; b < s.B; b++ {
		for h := 0; h < s.Heads; h++ {
			for i := 0; i < s.NQ; i++ {
				g := s.NC + i
				q := qkv[(b*s.NQ+i)*3*d+h*dh : (b*s.NQ+i)*3*d+h*dh+dh]
				mx := math.Inf(-1)
				for j := 0; j < n; j++ {
					scores[j] = math.Inf(-1)
					if s.FrameTokens > 0 && j/s.FrameTokens > g/s.FrameTokens {
						continue
					}
					dot := 0.0
					for e, k := range key(b, j, 0, h) {
						dot += q[e] * k
					}
					scores[j] = scale * dot
					mx = math.Max(mx, scores[j])
				}
				sum := 0.0
				for j := range scores {
					scores[j] = math.Exp(scores[j] - mx) // 0 for masked keys
					sum += scores[j]
				}
				out := o[(b*s.NQ+i)*d+h*dh : (b*s.NQ+i)*d+h*dh+dh]
				clear(out)
				for j := 0; j < n; j++ {
					if scores[j] == 0 {
						continue
					}
					for e, v := range key(b, j, 1, h) {
						out[e] += scores[j] / sum * v
					}
				}
			}
		}
	}
}
