package ref

import (
	"fmt"
	"math"
	"runtime"
	"sync"
)

// AttnShape mirrors vk.AttnShape: B batch elements of N tokens, Heads heads of HeadDim. FrameTokens > 0
// enables the block-causal mask of spec §3; 0 means full attention. Scale 0 means HeadDim^−1/2.
type AttnShape struct {
	B, N, Heads, HeadDim int
	FrameTokens          int
	Scale                float64
}

func (s AttnShape) scale() float64 {
	if s.Scale != 0 {
		return s.Scale
	}
	return 1 / math.Sqrt(float64(s.HeadDim))
}

// AttentionMask is the explicit N×N boolean mask of spec §3 (true = may attend):
// allowed[i][j] ⇔ floor(j/F) ≤ floor(i/F) for F = frameTokens > 0, and everywhere for frameTokens = 0.
func AttentionMask(n, frameTokens int) [][]bool {
	m := make([][]bool, n)
	for i := range m {
		m[i] = make([]bool, n)
		for j := range m[i] {
			m[i][j] = frameTokens == 0 || j/frameTokens <= i/frameTokens
		}
	}
	return m
}

// qkvIndex is the offset of element d of head h of part (0 q, 1 k, 2 v) of token row in qkv
// [B·N, 3·Heads·HeadDim].
func (s AttnShape) qkvIndex(row, part, h, d int) int {
	return row*3*s.Heads*s.HeadDim + part*s.Heads*s.HeadDim + h*s.HeadDim + d
}

// checkLen panics unless a slice has the length the shape implies.
func (s AttnShape) checkLen(op, name string, got, want int) {
	if got != want {
		panic(fmt.Sprintf("ref: %s: len(%s) = %d, want %d for %+v", op, name, got, want, s))
	}
}

// Attention computes, per batch element b and head h (spec §2.5, §3), with M the mask of AttentionMask:
//
//	S_ij  = scale·q_i·k_j            for allowed (i, j), −∞ otherwise
//	lse_i = log Σ_j exp(S_ij)
//	o_i   = Σ_j exp(S_ij − lse_i)·v_j
//
// reading q, k, v from qkv [B·N, 3·Heads·HeadDim] (columns [q | k | v], head h at [h·HeadDim, (h+1)·HeadDim)
// of each part). o is [B·N, Heads·HeadDim]; lse is [B, Heads, N].
func Attention(o, lse, qkv []float64, s AttnShape) {
	n, dh, d := s.N, s.HeadDim, s.Heads*s.HeadDim
	s.checkLen("Attention", "o", len(o), s.B*n*d)
	s.checkLen("Attention", "lse", len(lse), s.B*s.Heads*n)
	s.checkLen("Attention", "qkv", len(qkv), s.B*n*3*d)
	mask := AttentionMask(n, s.FrameTokens)
	forEachHead(s.B, s.Heads, func(b, h int) {
		scores := make([]float64, n)
		for i := 0; i < n; i++ {
			mx := math.Inf(-1)
			for j := 0; j < n; j++ {
				scores[j] = math.Inf(-1)
				if !mask[i][j] {
					continue
				}
				dot := 0.0
				for e := 0; e < dh; e++ {
					dot += qkv[s.qkvIndex(b*n+i, 0, h, e)] * qkv[s.qkvIndex(b*n+j, 1, h, e)]
				}
				scores[j] = s.scale() * dot
				mx = math.Max(mx, scores[j])
			}
			sum := 0.0
			for j := 0; j < n; j++ {
				sum += math.Exp(scores[j] - mx) // exp(−∞) = 0 for masked keys
			}
			l := mx + math.Log(sum)
			lse[(b*s.Heads+h)*n+i] = l
			for j := 0; j < n; j++ {
				scores[j] = math.Exp(scores[j] - l) // now P_ij
			}
			for e := 0; e < dh; e++ {
				acc := 0.0
				for j := 0; j < n; j++ {
					acc += scores[j] * qkv[s.qkvIndex(b*n+j, 2, h, e)]
				}
				o[(b*n+i)*d+h*dh+e] = acc
			}
		}
	})
}

// AttentionBackward computes dqkv [B·N, 3·Heads·HeadDim] (overwritten; dq, dk, dv in the q|k|v layout)
// from do [B·N, Heads·HeadDim], using o and lse as saved by Attention. Per batch element and head, with
// P_ij = exp(S_ij − lse_i) (0 where masked):
//
//	dv_j  = Σ_i P_ij·do_i
//	dP_ij = do_i·v_j
//	Δ_i   = do_i·o_i   (= Σ_j P_ij·dP_ij)
//	dS_ij = P_ij·(dP_ij − Δ_i)
//	dq_i  = scale·Σ_j dS_ij·k_j
//	dk_j  = scale·Σ_i dS_ij·q_i
func AttentionBackward(dqkv, do, qkv, o, lse []float64, s AttnShape) {
	n, dh, d := s.N, s.HeadDim, s.Heads*s.HeadDim
	s.checkLen("AttentionBackward", "dqkv", len(dqkv), s.B*n*3*d)
	s.checkLen("AttentionBackward", "do", len(do), s.B*n*d)
	s.checkLen("AttentionBackward", "qkv", len(qkv), s.B*n*3*d)
	s.checkLen("AttentionBackward", "o", len(o), s.B*n*d)
	s.checkLen("AttentionBackward", "lse", len(lse), s.B*s.Heads*n)
	clear(dqkv)
	mask := AttentionMask(n, s.FrameTokens)
	scale := s.scale()
	forEachHead(s.B, s.Heads, func(b, h int) {
		for i := 0; i < n; i++ {
			delta := 0.0
			for e := 0; e < dh; e++ {
				delta += do[(b*n+i)*d+h*dh+e] * o[(b*n+i)*d+h*dh+e]
			}
			for j := 0; j < n; j++ {
				if !mask[i][j] {
					continue
				}
				dot, dp := 0.0, 0.0
				for e := 0; e < dh; e++ {
					dot += qkv[s.qkvIndex(b*n+i, 0, h, e)] * qkv[s.qkvIndex(b*n+j, 1, h, e)]
					dp += do[(b*n+i)*d+h*dh+e] * qkv[s.qkvIndex(b*n+j, 2, h, e)]
				}
				p := math.Exp(scale*dot - lse[(b*s.Heads+h)*n+i])
				ds := p * (dp - delta)
				for e := 0; e < dh; e++ {
					dqkv[s.qkvIndex(b*n+j, 2, h, e)] += p * do[(b*n+i)*d+h*dh+e]
					dqkv[s.qkvIndex(b*n+i, 0, h, e)] += scale * ds * qkv[s.qkvIndex(b*n+j, 1, h, e)]
					dqkv[s.qkvIndex(b*n+j, 1, h, e)] += scale * ds * qkv[s.qkvIndex(b*n+i, 0, h, e)]
				}
			}
		}
	})
}

// forEachHead runs fn for every (batch element, head) pair, spread over GOMAXPROCS goroutines: the pairs
// read and write disjoint elements, and each runs its loops in the same order as alone, so the results do
// not depend on the spread.
func forEachHead(batch, heads int, fn func(b, h int)) {
	pairs := batch * heads
	workers := min(runtime.GOMAXPROCS(0), pairs)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := w; p < pairs; p += workers {
				fn(p/heads, p%heads)
			}
		}()
	}
	wg.Wait()
}
