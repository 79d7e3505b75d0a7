package ref

import (
	"fmt"
	"math"
	"testing"
)

// TestAttentionMask checks the small example of spec §3: T=2, K=2, H=W=2, so 6 tokens per frame; rows 0–5
// see columns 0–5, rows 6–11 see columns 0–11.
func TestAttentionMask(t *testing.T) {
	m := AttentionMask(12, 6)
	for i := range 12 {
		for j := range 12 {
			want := j < 6 || i >= 6
			if m[i][j] != want {
				t.Errorf("AttentionMask(12, 6)[%d][%d] = %v, want %v", i, j, m[i][j], want)
			}
		}
	}
	for i, row := range AttentionMask(5, 0) {
		for j, ok := range row {
			if !ok {
				t.Errorf("AttentionMask(5, 0)[%d][%d] = false, want full attention", i, j)
			}
		}
	}
}

// TestAttentionSmall checks cases with a closed form: a token that sees only itself returns its own v
// with lse = scale·q·k, and equal scores average v uniformly.
func TestAttentionSmall(t *testing.T) {
	// Two frames of one token each: token 0 sees only itself; token 1 sees both with equal scores (q_1 = 0).
	sh := AttnShape{B: 1, N: 2, Heads: 1, HeadDim: 2, FrameTokens: 1, Scale: 0.5}
	qkv := []float64{
		1, 2, 3, 4, 5, 6, // token 0: q, k, v
		0, 0, 7, 8, 9, 10, // token 1
	}
	o, lse := make([]float64, 4), make([]float64, 2)
	Attention(o, lse, qkv, sh)
	want := []float64{5, 6, 7, 8}
	wantLSE := []float64{0.5 * (1*3 + 2*4), math.Log(2)}
	for i := range want {
		if math.Abs(o[i]-want[i]) > 1e-12 {
			t.Errorf("Attention(%+v): o[%d] = %g, want %g", sh, i, o[i], want[i])
		}
	}
	for i := range wantLSE {
		if math.Abs(lse[i]-wantLSE[i]) > 1e-12 {
			t.Errorf("Attention(%+v): lse[%d] = %g, want %g", sh, i, lse[i], wantLSE[i])
		}
	}
}

// TestAttentionBackwardFD checks AttentionBackward against central finite differences of
// L = Σ Attention(qkv)∘do, for full and block-causal masks.
func TestAttentionBackwardFD(t *testing.T) {
	for _, sh := range []AttnShape{
		{B: 1, N: 4, Heads: 1, HeadDim: 3},
		{B: 2, N: 5, Heads: 2, HeadDim: 3, FrameTokens: 2},
		{B: 1, N: 7, Heads: 1, HeadDim: 4, FrameTokens: 3, Scale: 0.9},
	} {
		t.Run(fmt.Sprintf("B=%d,N=%d,heads=%d,dh=%d,frame=%d", sh.B, sh.N, sh.Heads, sh.HeadDim, sh.FrameTokens), func(t *testing.T) {
			d := sh.Heads * sh.HeadDim
			qkv, do := randSlice(3, sh.B*sh.N*3*d), randSlice(4, sh.B*sh.N*d)
			o, lse := make([]float64, sh.B*sh.N*d), make([]float64, sh.B*sh.Heads*sh.N)
			loss := func(x []float64) float64 {
				Attention(o, lse, x, sh)
				return dot(o, do)
			}
			loss(qkv)
			dqkv := randSlice(5, len(qkv)) // overwritten
			AttentionBackward(dqkv, do, qkv, o, lse, sh)
			checkFD(t, "AttentionBackward", loss, qkv, dqkv, 1e-8)
		})
	}
}
