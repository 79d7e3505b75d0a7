// Package ref holds the float64 CPU references of the vjepa-vk ops: plain loops over []float64 with the
// formula in each doc comment. The Vulkan ops in package vk are tested against them, and their backward
// passes are tested against central finite differences.
package ref

import (
	"fmt"
	"math"
)

// RopeShape mirrors vk.RopeShape: per batch element, T frames of K conditioning tokens followed by
// GridH·GridW patch tokens (row-major), N = T·(K+GridH·GridW) tokens; Heads heads of HeadDim in each of
// the q, k and v parts of a qkv row.
type RopeShape struct {
	B, T, K, GridH, GridW int
	Heads, HeadDim        int
	TimeOffset            int
}

// N is the number of tokens per batch element.
func (s RopeShape) N() int { return s.T * (s.K + s.GridH*s.GridW) }

// RopeAxisDim is the number of head dims rotated by each of the three axes (spec §4.1):
// 2·floor(floor(headDim/3)/2). The last headDim − 3·RopeAxisDim dims are not rotated.
func RopeAxisDim(headDim int) int { return 2 * (headDim / 3 / 2) }

// RopePosition is the (time, row, col) position of token n (0 ≤ n < N) of a batch element (spec §4.4):
// patch p of frame t is (t+TimeOffset, p div GridW, p mod GridW); a conditioning token of frame t is
// (t+TimeOffset, 0, 0), so only its temporal dims rotate.
func RopePosition(s RopeShape, n int) [3]int {
	perFrame := s.K + s.GridH*s.GridW
	t, l := n/perFrame, n%perFrame
	if l < s.K {
		return [3]int{t + s.TimeOffset, 0, 0}
	}
	p := l - s.K
	return [3]int{t + s.TimeOffset, p / s.GridW, p % s.GridW}
}

// ropeAngle is θ for element j of an axis block of width axis at position pos (spec §4.2–4.3): the
// "tiled" table uses ω_{j mod half}, half = axis/2, ω_i = 10000^(−i/half).
func ropeAngle(pos, j, axis int) float64 {
	half := axis / 2
	return float64(pos) * math.Pow(10000, -float64(j%half)/float64(half))
}

// Rope rotates q and k in place inside qkv [B·N, 3·Heads·HeadDim] (columns [q | k | v]; v untouched) with
// the 3-D RoPE of spec §4, tiled frequency table included. Within each head, axis a ∈ {time, row, col}
// owns dims [a·A, (a+1)·A), A = RopeAxisDim(HeadDim); for each adjacent pair (x0, x1) = (x[2k], x[2k+1])
// of an axis block, with α = θ_{2k mod A/2}, β = θ_{(2k+1) mod A/2} at the token's position on that axis:
//
//	x0' = x0·cos α − x1·sin α
//	x1' = x1·cos β + x0·sin β
func Rope(qkv []float64, s RopeShape) {
	ropeApply(qkv, s, false)
}

// RopeBackward applies the transpose of Rope's linear map to dq and dk in place inside dqkv (same
// layout; dv untouched): per pair,
//
//	g0' = g0·cos α + g1·sin β
//	g1' = −g0·sin α + g1·cos β
func RopeBackward(dqkv []float64, s RopeShape) {
	ropeApply(dqkv, s, true)
}

func ropeApply(x []float64, s RopeShape, transpose bool) {
	n, d := s.N(), s.Heads*s.HeadDim
	if len(x) != s.B*n*3*d {
		panic(fmt.Sprintf("ref: Rope: len(qkv) = %d, want B·N·3·Heads·HeadDim = %d for %+v", len(x), s.B*n*3*d, s))
	}
	axis := RopeAxisDim(s.HeadDim)
	for row := 0; row < s.B*n; row++ {
		pos := RopePosition(s, row%n)
		for part := 0; part < 2; part++ { // q and k only
			for h := 0; h < s.Heads; h++ {
				head := x[row*3*d+part*d+h*s.HeadDim:]
				for a := 0; a < 3; a++ {
					for k := 0; k < axis/2; k++ {
						i0 := a*axis + 2*k
						alpha, beta := ropeAngle(pos[a], 2*k, axis), ropeAngle(pos[a], 2*k+1, axis)
						x0, x1 := head[i0], head[i0+1]
						if transpose {
							head[i0] = x0*math.Cos(alpha) + x1*math.Sin(beta)
							head[i0+1] = -x0*math.Sin(alpha) + x1*math.Cos(beta)
						} else {
							head[i0] = x0*math.Cos(alpha) - x1*math.Sin(alpha)
							head[i0+1] = x1*math.Cos(beta) + x0*math.Sin(beta)
						}
					}
				}
			}
		}
	}
}

// ropeWorkedExample is spec §4.5: x = (1, 2, …, 64) rotated at patch (t=1, row=2, col=3), head_dim 64, as the
// official code gives it (rounded to 6 decimals).
var ropeWorkedExample = []float64{
	-1.142640, 2.231267, 2.331094, 4.181202, 4.847725, 6.049699, 6.968096, 8.011084, 8.993689, 10.002260,
	-4.154326, 15.325974, 10.627496, 14.791842, 14.593409, 16.149198, 16.928206, 18.026921, 18.987377, 20.004772,
	-28.743627, 30.396165, 14.373443, 26.703869, 23.662827, 26.494767, 26.776207, 28.085443, 28.962119, 30.014565,
	-41.998070, 44.537473, 20.758287, 37.882921, 33.148045, 36.692754, 36.696269, 38.117091, 38.949492, 40.019588,
	-46.516733, 53.569691, 18.089180, 51.304930, 41.409168, 47.329099, 46.423387, 48.222927, 48.905269, 50.036911,
	-57.827858, 66.545799, 22.402421, 63.007905, 50.627936, 57.624554, 56.303245, 58.270360, 58.886322, 60.044443,
	61, 62, 63, 64,
}

// RopeWorkedExample is the worked example of spec §4.5 as a Rope test case, shared by this package's test
// and the GPU test: one head of 64 dims; q and k of token row are both (1, …, 64), v = −(1, …, 64), every
// other row is zero; wantQK is q (and k) after Rope. Without cond, the token is patch (t=1, row=2, col=3) of
// a 4×4 grid; with cond, it is the action token of frame 1 (K = 2), so only dims 0..19 change.
func RopeWorkedExample(cond bool) (sh RopeShape, row int, qkv, wantQK []float64) {
	sh = RopeShape{B: 1, T: 2, GridH: 4, GridW: 4, Heads: 1, HeadDim: 64}
	row = 1*16 + 2*4 + 3
	wantQK = append([]float64(nil), ropeWorkedExample...)
	if cond {
		sh.K = 2
		row = 1 * (2 + 16) // action token of frame 1
		for i := 20; i < 64; i++ {
			wantQK[i] = float64(i + 1)
		}
	}
	qkv = make([]float64, sh.B*sh.N()*3*64)
	for part := 0; part < 3; part++ {
		for i := 0; i < 64; i++ {
			v := float64(i + 1)
			if part == 2 {
				v = -v
			}
			qkv[row*3*64+part*64+i] = v
		}
	}
	return sh, row, qkv, wantQK
}
