package vk_test

import (
	"testing"

	"github.com/vjepa-vk/vjepa-vk/vk"
	"github.com/vjepa-vk/vjepa-vk/vk/ref"
	"github.com/vjepa-vk/vjepa-vk/vk/vktest"
)

// attnCase is a shape and the standard deviation of the q, k, v inputs: amp > 1 sharpens the softmax,
// which exercises the online max rescaling.
type attnCase struct {
	vk.AttnShape
	amp float32
}

func (c attnCase) name() string {
	return vktest.Name("B", c.B, "N", c.N, "heads", c.Heads, "dh", c.HeadDim, "frame", c.FrameTokens,
		"scale", c.Scale, "amp", c.amp)
}

func (c attnCase) ref() ref.AttnShape {
	return ref.AttnShape{B: c.B, N: c.N, Heads: c.Heads, HeadDim: c.HeadDim, FrameTokens: c.FrameTokens, Scale: float64(c.Scale)}
}

// attnCases has the workgroup's row count (64) −1, +0, +1, primes, frames that do not divide a block,
// every head dim class (odd, tiny, 40, 64, 96, 128 — the last with smaller key tiles on 32 KiB devices),
// several batch elements, and the real model shapes.
var attnCases = []attnCase{
	{vk.AttnShape{B: 1, N: 1, Heads: 1, HeadDim: 64}, 1},
	{vk.AttnShape{B: 1, N: 63, Heads: 2, HeadDim: 64}, 1},
	{vk.AttnShape{B: 1, N: 64, Heads: 1, HeadDim: 64}, 1},
	{vk.AttnShape{B: 1, N: 65, Heads: 1, HeadDim: 64}, 1},
	{vk.AttnShape{B: 2, N: 37, Heads: 3, HeadDim: 40}, 1},
	{vk.AttnShape{B: 1, N: 54, Heads: 2, HeadDim: 40, FrameTokens: 18}, 1}, // T=3 inside one query block
	{vk.AttnShape{B: 3, N: 66, Heads: 2, HeadDim: 64, FrameTokens: 22}, 1},
	{vk.AttnShape{B: 1, N: 100, Heads: 2, HeadDim: 8, FrameTokens: 10}, 1},
	{vk.AttnShape{B: 1, N: 13, Heads: 1, HeadDim: 1, FrameTokens: 5}, 1},
	{vk.AttnShape{B: 2, N: 29, Heads: 2, HeadDim: 3, FrameTokens: 7}, 1},
	{vk.AttnShape{B: 1, N: 70, Heads: 1, HeadDim: 96, FrameTokens: 35}, 1},
	{vk.AttnShape{B: 1, N: 131, Heads: 2, HeadDim: 128}, 1},
	{vk.AttnShape{B: 1, N: 130, Heads: 1, HeadDim: 64, Scale: 0.3}, 4},
	{vk.AttnShape{B: 1, N: 150, Heads: 1, HeadDim: 64, FrameTokens: 50}, 3},
	{vk.AttnShape{B: 2, N: 516, Heads: 1, HeadDim: 64, FrameTokens: 258}, 1},  // predictor, T=2
	{vk.AttnShape{B: 1, N: 256, Heads: 22, HeadDim: 64}, 1},                   // encoder (spec §8)
	{vk.AttnShape{B: 1, N: 2064, Heads: 2, HeadDim: 64, FrameTokens: 258}, 1}, // predictor, T=8 (large)
}

// Tolerances against the float64 reference, atol·amp² + rtol·|want|. Scores are f32 dot products of dh
// terms, so their absolute error is a few ulp of Σ|q·k|·scale (≲ 1e-6 at amp 1, growing with amp²);
// softmax turns a score error δ into a relative error δ of P, and o, a P-weighted mean of v, inherits it.
// Gradients sum up to N such terms and are a few times larger than o.
const (
	attnFwdATol, attnFwdRTol = 1e-5, 1e-5 // o and lse
	attnBwdATol, attnBwdRTol = 1e-4, 1e-4 // dq, dk, dv and delta
)

func attnLarge(c attnCase) bool { return c.B*c.N*c.N*c.Heads > 2_000_000 }

// attnImpl is one way of running the ops: whole, or split into one dispatch per batch element so that
// every binding is a window at an element offset.
type attnImpl struct {
	name string
	fwd  func(s *vk.Stream, o, lse, qkv vk.Tensor, sh vk.AttnShape)
	bwd  func(s *vk.Stream, dqkv, delta, do, qkv, o, lse vk.Tensor, sh vk.AttnShape)
}

var attnImpls = []attnImpl{
	{"whole", vk.AttentionForward, vk.AttentionBackward},
	{"split=1",
		func(s *vk.Stream, o, lse, qkv vk.Tensor, sh vk.AttnShape) {
			vk.AttentionForwardChunked(s, o, lse, qkv, sh, 1)
		},
		func(s *vk.Stream, dqkv, delta, do, qkv, o, lse vk.Tensor, sh vk.AttnShape) {
			vk.AttentionBackwardChunked(s, dqkv, delta, do, qkv, o, lse, sh, 1)
		}},
}

// forAttnCases runs test on every case and implementation: the split one only where B > 1 (elsewhere
// it is the whole one), the large cases only without -short.
func forAttnCases(t *testing.T, test func(t *testing.T, c attnCase, impl attnImpl)) {
	for _, c := range attnCases {
		for _, impl := range attnImpls {
			if (testing.Short() && attnLarge(c)) || (impl.name != "whole" && c.B == 1) {
				continue
			}
			t.Run(vktest.Name("impl", impl.name)+","+c.name(), func(t *testing.T) { test(t, c, impl) })
		}
	}
}

func TestAttentionForward(t *testing.T) {
	d := vktest.Device(t)
	forAttnCases(t, func(t *testing.T, c attnCase, impl attnImpl) {
		rows, dm := c.B*c.N, c.Heads*c.HeadDim
		in := scaled(vktest.RandN(uint64(rows*dm+1), rows*3*dm), c.amp)
		qkv := vktest.Tensor(t, d, vk.F32, in, rows, 3*dm)
		o := vktest.Poisoned(t, d, vk.F32, rows, dm)
		lse := vktest.Poisoned(t, d, vk.F32, c.B, c.Heads, c.N)
		s := vktest.Stream(t, d)
		impl.fwd(s, o, lse, qkv, c.AttnShape)
		vktest.Run(t, s)

		wantO, wantLSE := make([]float64, rows*dm), make([]float64, c.B*c.Heads*c.N)
		ref.Attention(wantO, wantLSE, vktest.F64(in), c.ref())
		atol := attnFwdATol * float64(c.amp*c.amp)
		op := "AttentionForward(" + c.name() + ")"
		eo := vktest.Close(t, op+" o", vktest.Download(t, d, o), wantO, attnFwdRTol, atol)
		el := vktest.Close(t, op+" lse", vktest.Download(t, d, lse), wantLSE, attnFwdRTol, atol)
		vktest.Close(t, op+" qkv unchanged", vktest.Download(t, d, qkv), vktest.F64(in), 0, 0)
		t.Logf("max abs err: o %.3g, lse %.3g", eo, el)
	})
}

func TestAttentionBackward(t *testing.T) {
	d := vktest.Device(t)
	forAttnCases(t, func(t *testing.T, c attnCase, impl attnImpl) {
		rows, dm := c.B*c.N, c.Heads*c.HeadDim
		in := scaled(vktest.RandN(uint64(rows*dm+2), rows*3*dm), c.amp)
		gin := vktest.RandN(uint64(rows*dm+3), rows*dm)
		qkv := vktest.Tensor(t, d, vk.F32, in, rows, 3*dm)
		do := vktest.Tensor(t, d, vk.F32, gin, rows, dm)
		o := vktest.Poisoned(t, d, vk.F32, rows, dm)
		lse := vktest.Poisoned(t, d, vk.F32, c.B, c.Heads, c.N)
		dqkv := vktest.Poisoned(t, d, vk.F32, rows, 3*dm)
		delta := vktest.Poisoned(t, d, vk.F32, c.B, c.Heads, c.N)
		s := vktest.Stream(t, d)
		impl.fwd(s, o, lse, qkv, c.AttnShape)
		impl.bwd(s, dqkv, delta, do, qkv, o, lse, c.AttnShape)
		vktest.Run(t, s)

		// The reference backward starts from the device's forward outputs, as the model does.
		gotO, gotLSE := vktest.Download(t, d, o), vktest.Download(t, d, lse)
		o64, lse64 := vktest.F64(gotO), vktest.F64(gotLSE)
		want := make([]float64, rows*3*dm)
		ref.AttentionBackward(want, vktest.F64(gin), vktest.F64(in), o64, lse64, c.ref())
		wantDelta := make([]float64, c.B*c.Heads*c.N) // rowsum(do∘o) per head
		for b := range c.B {
			for h := range c.Heads {
				for i := range c.N {
					for e := range c.HeadDim {
						k := (b*c.N+i)*dm + h*c.HeadDim + e
						wantDelta[(b*c.Heads+h)*c.N+i] += float64(gin[k]) * o64[k]
					}
				}
			}
		}
		atol := attnBwdATol * float64(c.amp*c.amp)
		op := "AttentionBackward(" + c.name() + ")"
		e := vktest.Close(t, op+" dqkv", vktest.Download(t, d, dqkv), want, attnBwdRTol, atol)
		ed := vktest.Close(t, op+" delta", vktest.Download(t, d, delta), wantDelta, attnBwdRTol, atol)
		for _, x := range []struct {
			name string
			t    vk.Tensor
			want []float32
		}{{"qkv", qkv, in}, {"do", do, gin}, {"o", o, gotO}, {"lse", lse, gotLSE}} {
			vktest.Close(t, op+" "+x.name+" unchanged", vktest.Download(t, d, x.t), vktest.F64(x.want), 0, 0)
		}
		t.Logf("max abs err: dqkv %.3g, delta %.3g", e, ed)
	})
}

// TestAttentionCausalIsolation fills every input of frames ≥ 1 with 1e30. The outputs of frame 0 (o, lse
// and dq) must still equal those of a run on frame 0 alone: masked pairs, even inside a partly visible
// tile, contribute exactly zero (spec §3: the output of frame t depends only on frames ≤ t).
func TestAttentionCausalIsolation(t *testing.T) {
	d := vktest.Device(t)
	for _, c := range []attnCase{
		{vk.AttnShape{B: 2, N: 54, Heads: 2, HeadDim: 40, FrameTokens: 18}, 1},
		{vk.AttnShape{B: 1, N: 516, Heads: 1, HeadDim: 64, FrameTokens: 258}, 1},
	} {
		t.Run(c.name(), func(t *testing.T) {
			rows, dm, f := c.B*c.N, c.Heads*c.HeadDim, c.FrameTokens
			in := vktest.RandN(5, rows*3*dm)
			gin := vktest.RandN(6, rows*dm)
			for r := range rows {
				if r%c.N >= f {
					for k := range 3 * dm {
						in[r*3*dm+k] = 1e30
					}
					for k := range dm {
						gin[r*dm+k] = 1e30
					}
				}
			}
			qkv := vktest.Tensor(t, d, vk.F32, in, rows, 3*dm)
			do := vktest.Tensor(t, d, vk.F32, gin, rows, dm)
			o := vktest.Poisoned(t, d, vk.F32, rows, dm)
			lse := vktest.Poisoned(t, d, vk.F32, c.B, c.Heads, c.N)
			dqkv := vktest.Poisoned(t, d, vk.F32, rows, 3*dm)
			delta := vktest.Poisoned(t, d, vk.F32, c.B, c.Heads, c.N)
			s := vktest.Stream(t, d)
			vk.AttentionForward(s, o, lse, qkv, c.AttnShape)
			vk.AttentionBackward(s, dqkv, delta, do, qkv, o, lse, c.AttnShape)
			vktest.Run(t, s)

			// Reference on frame 0 alone.
			sh0 := c.ref()
			sh0.N = f
			in0, gin0 := make([]float64, 0, c.B*f*3*dm), make([]float64, 0, c.B*f*dm)
			for b := range c.B {
				in0 = append(in0, vktest.F64(in[b*c.N*3*dm:(b*c.N+f)*3*dm])...)
				gin0 = append(gin0, vktest.F64(gin[b*c.N*dm:(b*c.N+f)*dm])...)
			}
			o0, lse0, dqkv0 := make([]float64, c.B*f*dm), make([]float64, c.B*c.Heads*f), make([]float64, c.B*f*3*dm)
			ref.Attention(o0, lse0, in0, sh0)
			ref.AttentionBackward(dqkv0, gin0, in0, o0, lse0, sh0)

			gotO, gotLSE, gotD := vktest.Download(t, d, o), vktest.Download(t, d, lse), vktest.Download(t, d, dqkv)
			var o1, lse1, dq1 []float32
			var wantDQ64 []float64
			for b := range c.B {
				o1 = append(o1, gotO[b*c.N*dm:(b*c.N+f)*dm]...)
				for h := range c.Heads {
					lse1 = append(lse1, gotLSE[(b*c.Heads+h)*c.N:(b*c.Heads+h)*c.N+f]...)
				}
				for r := range f {
					dq1 = append(dq1, gotD[(b*c.N+r)*3*dm:(b*c.N+r)*3*dm+dm]...)
					wantDQ64 = append(wantDQ64, dqkv0[(b*f+r)*3*dm:(b*f+r)*3*dm+dm]...)
				}
			}
			vktest.Close(t, "AttentionForward("+c.name()+") frame 0 o", o1, o0, attnFwdRTol, attnFwdATol)
			vktest.Close(t, "AttentionForward("+c.name()+") frame 0 lse", lse1, lse0, attnFwdRTol, attnFwdATol)
			vktest.Close(t, "AttentionBackward("+c.name()+") frame 0 dq", dq1, wantDQ64, attnBwdRTol, attnBwdATol)
		})
	}
}

func scaled(v []float32, a float32) []float32 {
	for i := range v {
		v[i] *= a
	}
	return v
}

// attnPairs counts the (query, key) pairs the mask allows per batch element and head.
func attnPairs(sh vk.AttnShape) float64 {
	f := sh.FrameTokens
	if f == 0 {
		f = sh.N
	}
	pairs := 0.0
	for i := range sh.N {
		pairs += float64(min(sh.N, (i/f+1)*f))
	}
	return pairs
}

var attnBenchShapes = []vk.AttnShape{
	{B: 1, N: 2064, Heads: 16, HeadDim: 64, FrameTokens: 258}, // predictor, T=8
	{B: 2, N: 2064, Heads: 16, HeadDim: 64, FrameTokens: 258},
	{B: 4, N: 256, Heads: 22, HeadDim: 64}, // encoder
}

func attnBenchName(sh vk.AttnShape) string {
	return vktest.Name("B", sh.B, "N", sh.N, "heads", sh.Heads, "dh", sh.HeadDim, "frame", sh.FrameTokens)
}

// BenchmarkAttentionForward reports GFLOP/s counting 4·dh flops per unmasked (query, key) pair
// (q·k and p·v), so skipped blocks count as nothing.
func BenchmarkAttentionForward(b *testing.B) {
	d := vktest.Device(b)
	for _, sh := range attnBenchShapes {
		b.Run(attnBenchName(sh), func(b *testing.B) {
			rows, dm := sh.B*sh.N, sh.Heads*sh.HeadDim
			qkv := vktest.Tensor(b, d, vk.F32, vktest.RandN(1, rows*3*dm), rows, 3*dm)
			o := vktest.Tensor(b, d, vk.F32, nil, rows, dm)
			lse := vktest.Tensor(b, d, vk.F32, nil, sh.B, sh.Heads, sh.N)
			s := vktest.Stream(b, d)
			vk.AttentionForward(s, o, lse, qkv, sh)
			vktest.Run(b, s)
			b.ResetTimer()
			for range b.N {
				vktest.Run(b, s)
			}
			flops := 4 * float64(sh.HeadDim) * attnPairs(sh) * float64(sh.B*sh.Heads)
			b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}

// BenchmarkAttentionBackward reports GFLOP/s counting 10·dh flops per unmasked pair, the FlashAttention-2
// convention (recompute q·k, then do·v, p·do, ds·k, ds·q); the kernels here recompute q·k and do·v once
// more (14·dh) to avoid float atomics, which this figure does not credit.
func BenchmarkAttentionBackward(b *testing.B) {
	d := vktest.Device(b)
	for _, sh := range attnBenchShapes {
		b.Run(attnBenchName(sh), func(b *testing.B) {
			rows, dm := sh.B*sh.N, sh.Heads*sh.HeadDim
			qkv := vktest.Tensor(b, d, vk.F32, vktest.RandN(1, rows*3*dm), rows, 3*dm)
			do := vktest.Tensor(b, d, vk.F32, vktest.RandN(2, rows*dm), rows, dm)
			o := vktest.Tensor(b, d, vk.F32, nil, rows, dm)
			lse := vktest.Tensor(b, d, vk.F32, nil, sh.B, sh.Heads, sh.N)
			dqkv := vktest.Tensor(b, d, vk.F32, nil, rows, 3*dm)
			delta := vktest.Tensor(b, d, vk.F32, nil, sh.B, sh.Heads, sh.N)
			fwd := vktest.Stream(b, d)
			vk.AttentionForward(fwd, o, lse, qkv, sh)
			vktest.Run(b, fwd)
			s := vktest.Stream(b, d)
			vk.AttentionBackward(s, dqkv, delta, do, qkv, o, lse, sh)
			vktest.Run(b, s)
			b.ResetTimer()
			for range b.N {
				vktest.Run(b, s)
			}
			flops := 10 * float64(sh.HeadDim) * attnPairs(sh) * float64(sh.B*sh.Heads)
			b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}
