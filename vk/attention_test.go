package vk_test

import (
	"math"
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

// Tolerances of the f32 path against the float64 reference, atol·amp² + rtol·|want|. Scores are f32 dot
// products of dh terms, so their absolute error is a few ulp of Σ|q·k|·scale (≲ 1e-6 at amp 1, growing with
// amp²); softmax turns a score error δ into a relative error δ of P, and o, a P-weighted mean of v,
// inherits it. Gradients sum up to N such terms and are a few times larger than o.
const (
	attnFwdATol, attnFwdRTol = 1e-5, 1e-5 // o and lse
	attnBwdATol, attnBwdRTol = 1e-4, 1e-4 // dq, dk, dv and delta
)

// attnF16ATol returns the absolute tolerances of the cooperative-matrix path, whose products take f16
// operands (q, k, v, P, do, dS rounded to 11 significant bits, u = 2^−11) and sum in f32. A score
// scale·q·k of dh terms is then off by up to δS = u·scale·dh·amp² (each term by u·|q_d k_d| ≤ u·amp²),
// and P relatively by as much. o = P·v and lse move by about δS·amp and δS: forward atol δS·amp. The
// gradients add dS = P(dP − Δ) errors, δS·|dP| with |dP| = |do·v| ≈ √dh·amp, weighted by scale·k:
// backward atol 2·δS·scale·√dh·amp². Measured errors are 4 to 13 times below these (amp 1 to 4), and the
// relative part, a few u, covers large values.
func attnF16ATol(c attnCase) (fwd, bwd float64) {
	scale := float64(c.Scale)
	if scale == 0 {
		scale = 1 / math.Sqrt(float64(c.HeadDim))
	}
	amp, dh := float64(c.amp), float64(c.HeadDim)
	dS := math.Exp2(-11) * scale * dh * amp * amp
	return dS * amp, 2 * dS * scale * math.Sqrt(dh) * amp * amp
}

const attnF16RTol = 8 * 0x1p-11

func attnLarge(c attnCase) bool { return c.B*c.N*c.N*c.Heads > 2_000_000 }

// attnImpl is one way of running the ops: the public functions (whichever path the device takes: on
// lavapipe the CPU kernels), or a forced path: the scalar kernels whole (where the public path is the CPU
// kernels) or split into one dispatch per batch element (every binding a window at an element offset),
// the CPU kernels split, or the cooperative-matrix kernels, real or emulated, whole or split.
type attnImpl struct {
	name   string
	public bool
	path   vk.AttnPath
}

var attnImpls = []attnImpl{
	{name: "public", public: true},
	{name: "scalar", path: vk.AttnPath{}},
	{name: "scalar,split=1", path: vk.AttnPath{Split: 1}},
	{name: "cpu,split=1", path: vk.AttnPath{CPU: true, Split: 1}},
	{name: "coopmat", path: vk.AttnPath{CoopMat: true}},
	{name: "coopmat,split=1", path: vk.AttnPath{CoopMat: true, Split: 1}},
	{name: "emulated", path: vk.AttnPath{CoopMat: true, Emulated: true}},
	{name: "emulated,split=1", path: vk.AttnPath{CoopMat: true, Emulated: true, Split: 1}},
}

func (impl attnImpl) fwd(s *vk.Stream, o, lse, qkv vk.Tensor, sh vk.AttnShape) {
	if impl.public {
		vk.AttentionForward(s, o, lse, qkv, sh)
		return
	}
	vk.AttentionForwardPath(s, o, lse, qkv, sh, impl.path)
}

func (impl attnImpl) bwd(s *vk.Stream, dqkv, delta, do, qkv, o, lse vk.Tensor, sh vk.AttnShape) {
	if impl.public {
		vk.AttentionBackward(s, dqkv, delta, do, qkv, o, lse, sh)
		return
	}
	vk.AttentionBackwardPath(s, dqkv, delta, do, qkv, o, lse, sh, impl.path)
}

// tol returns the forward and backward tolerances (atol, rtol) of the implementation for case c on d.
func (impl attnImpl) tol(d *vk.Device, c attnCase) (fa, fr, ba, br float64) {
	if impl.path.CoopMat || (impl.public && vk.AttnCoopMatOK(d, c.HeadDim)) {
		fa, ba = attnF16ATol(c)
		return fa, attnF16RTol, ba, attnF16RTol
	}
	a2 := float64(c.amp * c.amp)
	return attnFwdATol * a2, attnFwdRTol, attnBwdATol * a2, attnBwdRTol
}

// skip says why impl does not run case c on d, or "" when it does. The cooperative-matrix kernels need
// dh % 16 == 0 (other head dims take the scalar path) and the real ones a device with NV cooperative
// matrices enabled. The emulation is slow on a CPU, so in this table it keeps to dh = 64 (the model's;
// TestAttentionCoopMatShapes covers the others) and to cases up to two predictor frames (B=2, N=516).
// Splits run only where B > 1.
func (impl attnImpl) skip(d *vk.Device, c attnCase) string {
	switch {
	case testing.Short() && attnLarge(c):
		return "large case under -short"
	case impl.path.Split > 0 && c.B == 1:
		return "split of one batch element"
	case impl.path.CoopMat && c.HeadDim%16 != 0:
		return "head dim not a multiple of 16"
	case impl.name == "scalar" && d.Kernels() != vk.KernelsCPU:
		return "the public path (the scalar or cooperative-matrix kernels)"
	case impl.path.CPU && vk.CPUKernelsMissing(d.Info) != "":
		return "no CPU kernels on " + d.Info.Name + ": " + vk.CPUKernelsMissing(d.Info)
	case impl.path.CPU && c.HeadDim%4 != 0:
		return "head dim not a multiple of 4"
	case impl.path.CoopMat && !impl.path.Emulated && !vk.AttnCoopMatOK(d, c.HeadDim):
		return "no cooperative matrices on " + d.Info.Name + " (needs NV cooperative matrices and VJEPA_VK_COOPMAT=1)"
	case impl.path.Emulated && (c.HeadDim != 64 || c.B*c.N*c.N*c.Heads > 600_000):
		return "emulation at dh=64 and up to B=2, N=516 only"
	}
	return ""
}

// forAttnCases runs test on every case and implementation that applies.
func forAttnCases(t *testing.T, d *vk.Device, test func(t *testing.T, c attnCase, impl attnImpl)) {
	for _, c := range attnCases {
		for _, impl := range attnImpls {
			if impl.skip(d, c) != "" {
				continue
			}
			t.Run(vktest.Name("impl", impl.name)+","+c.name(), func(t *testing.T) { test(t, c, impl) })
		}
	}
}

func TestAttentionForward(t *testing.T) {
	d := vktest.Device(t)
	forAttnCases(t, d, func(t *testing.T, c attnCase, impl attnImpl) { testAttentionForward(t, d, c, impl) })
}

func TestAttentionBackward(t *testing.T) {
	d := vktest.Device(t)
	forAttnCases(t, d, func(t *testing.T, c attnCase, impl attnImpl) { testAttentionBackward(t, d, c, impl) })
}

// testAttentionForward runs the forward of case c through impl on poisoned outputs and compares o and lse
// with the reference.
func testAttentionForward(t *testing.T, d *vk.Device, c attnCase, impl attnImpl) {
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
	atol, rtol, _, _ := impl.tol(d, c)
	op := "AttentionForward(" + vktest.Name("impl", impl.name) + "," + c.name() + ")"
	eo := vktest.Close(t, op+" o", vktest.Download(t, d, o), wantO, rtol, atol)
	el := vktest.Close(t, op+" lse", vktest.Download(t, d, lse), wantLSE, rtol, atol)
	vktest.Close(t, op+" qkv unchanged", vktest.Download(t, d, qkv), vktest.F64(in), 0, 0)
	t.Logf("max abs err: o %.3g, lse %.3g (atol %.3g)", eo, el, atol)
}

// attnRun holds the tensors of one recorded forward and backward of an attention case.
type attnRun struct{ qkv, do, o, lse, dqkv, delta vk.Tensor }

// runAttention records impl's forward then backward of case c on qkv = in and do = gin, every output
// poisoned first, and runs them.
func runAttention(t *testing.T, d *vk.Device, c attnCase, impl attnImpl, in, gin []float32) attnRun {
	t.Helper()
	rows, dm := c.B*c.N, c.Heads*c.HeadDim
	r := attnRun{
		qkv:   vktest.Tensor(t, d, vk.F32, in, rows, 3*dm),
		do:    vktest.Tensor(t, d, vk.F32, gin, rows, dm),
		o:     vktest.Poisoned(t, d, vk.F32, rows, dm),
		lse:   vktest.Poisoned(t, d, vk.F32, c.B, c.Heads, c.N),
		dqkv:  vktest.Poisoned(t, d, vk.F32, rows, 3*dm),
		delta: vktest.Poisoned(t, d, vk.F32, c.B, c.Heads, c.N),
	}
	s := vktest.Stream(t, d)
	impl.fwd(s, r.o, r.lse, r.qkv, c.AttnShape)
	impl.bwd(s, r.dqkv, r.delta, r.do, r.qkv, r.o, r.lse, c.AttnShape)
	vktest.Run(t, s)
	return r
}

// testAttentionBackward runs the forward and backward of case c through impl on poisoned outputs and
// compares dqkv and delta with the reference backward started from the device's o and lse (as the model
// does), and checks that the inputs come back unchanged.
func testAttentionBackward(t *testing.T, d *vk.Device, c attnCase, impl attnImpl) {
	rows, dm := c.B*c.N, c.Heads*c.HeadDim
	in := scaled(vktest.RandN(uint64(rows*dm+2), rows*3*dm), c.amp)
	gin := vktest.RandN(uint64(rows*dm+3), rows*dm)
	r := runAttention(t, d, c, impl, in, gin)
	qkv, do, o, lse, dqkv, delta := r.qkv, r.do, r.o, r.lse, r.dqkv, r.delta

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
	_, _, atol, rtol := impl.tol(d, c)
	op := "AttentionBackward(" + vktest.Name("impl", impl.name) + "," + c.name() + ")"
	got := vktest.Download(t, d, dqkv)
	vktest.Close(t, op+" dqkv", got, want, rtol, atol)
	var e [3]float64 // max abs error of dq (the dq kernel), dk and dv (the dkv kernel)
	for i := range got {
		part := i % (3 * dm) / dm
		e[part] = math.Max(e[part], math.Abs(float64(got[i])-want[i]))
	}
	// delta = rowsum(do∘o) is summed in f32 from f32 rows on every path.
	ed := vktest.Close(t, op+" delta", vktest.Download(t, d, delta), wantDelta, attnBwdRTol, attnBwdATol)
	for _, x := range []struct {
		name string
		t    vk.Tensor
		want []float32
	}{{"qkv", qkv, in}, {"do", do, gin}, {"o", o, gotO}, {"lse", lse, gotLSE}} {
		vktest.Close(t, op+" "+x.name+" unchanged", vktest.Download(t, d, x.t), vktest.F64(x.want), 0, 0)
	}
	t.Logf("max abs err: dq %.3g, dk %.3g, dv %.3g, delta %.3g (atol %.3g)", e[0], e[1], e[2], ed, atol)
}

// TestAttentionCoopMatShapes runs the cooperative-matrix kernels (emulated everywhere, and the real ones
// where the device has them) with forced launch shapes, each on a case chosen for it: 4 warps with tiles
// shorter than the block and frames of one token (plain causal attention), one warp with 64-row tiles,
// a single fragment of head dim, three, and a head dim wider than the tile. Shapes that do not fit the
// device's shared memory are skipped (lavapipe has 32 KiB).
func TestAttentionCoopMatShapes(t *testing.T) {
	d := vktest.Device(t)
	for _, x := range []struct {
		warps, tile int
		c           attnCase
	}{
		{4, 16, attnCase{vk.AttnShape{B: 2, N: 47, Heads: 3, HeadDim: 32, FrameTokens: 1}, 1}},
		{1, 64, attnCase{vk.AttnShape{B: 1, N: 100, Heads: 1, HeadDim: 64, FrameTokens: 13}, 2}},
		{2, 16, attnCase{vk.AttnShape{B: 1, N: 33, Heads: 2, HeadDim: 16}, 1}},
		{1, 16, attnCase{vk.AttnShape{B: 2, N: 80, Heads: 1, HeadDim: 48, FrameTokens: 40}, 1}},
	} {
		for _, emulated := range []bool{true, false} {
			impl := attnImpl{
				name: vktest.Name("coopmat", map[bool]string{true: "emulated", false: "real"}[emulated], "warps", x.warps, "tile", x.tile),
				path: vk.AttnPath{CoopMat: true, Emulated: emulated, Warps: x.warps, Tile: x.tile},
			}
			t.Run(impl.name+","+x.c.name(), func(t *testing.T) {
				if !emulated && !vk.AttnCoopMatOK(d, x.c.HeadDim) {
					t.Skip("no cooperative matrices on " + d.Info.Name + " (needs NV cooperative matrices and VJEPA_VK_COOPMAT=1)")
				}
				for _, k := range []string{"attention", "attention_backward_dq", "attention_backward_dkv"} {
					if !vk.AttnCoopMatFits(d, k, x.c.HeadDim, x.warps, x.tile, emulated) {
						t.Skipf("%s does not fit %d bytes of shared memory", k, d.Info.SharedMemory)
					}
				}
				testAttentionForward(t, d, x.c, impl)
				testAttentionBackward(t, d, x.c, impl)
			})
		}
	}
}

// TestAttentionCausalIsolation fills every input of frames ≥ 1 with 1e30. The outputs of frame 0 (o, lse
// and dq) must still equal those of a run on frame 0 alone: masked pairs, even inside a partly visible
// tile, contribute exactly zero (spec §3: the output of frame t depends only on frames ≤ t). On the
// cooperative-matrix path 1e30 saturates to the largest half, so that 0·v stays 0.
func TestAttentionCausalIsolation(t *testing.T) {
	d := vktest.Device(t)
	for _, c := range []attnCase{
		{vk.AttnShape{B: 2, N: 54, Heads: 2, HeadDim: 40, FrameTokens: 18}, 1},
		{vk.AttnShape{B: 1, N: 516, Heads: 1, HeadDim: 64, FrameTokens: 258}, 1},
	} {
		for _, impl := range attnImpls {
			if impl.skip(d, c) != "" || impl.path.Split > 0 {
				continue
			}
			t.Run(vktest.Name("impl", impl.name)+","+c.name(), func(t *testing.T) { testAttentionCausalIsolation(t, d, c, impl) })
		}
	}
}

func testAttentionCausalIsolation(t *testing.T, d *vk.Device, c attnCase, impl attnImpl) {
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
	run := runAttention(t, d, c, impl, in, gin)
	o, lse, dqkv := run.o, run.lse, run.dqkv

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
	fa, fr, ba, br := impl.tol(d, c)
	name := vktest.Name("impl", impl.name) + "," + c.name()
	vktest.Close(t, "AttentionForward("+name+") frame 0 o", o1, o0, fr, fa)
	vktest.Close(t, "AttentionForward("+name+") frame 0 lse", lse1, lse0, fr, fa)
	vktest.Close(t, "AttentionBackward("+name+") frame 0 dq", dq1, wantDQ64, br, ba)
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
	{B: 4, N: 256, Heads: 22, HeadDim: 64},                  // encoder
	{B: 1, N: 516, Heads: 2, HeadDim: 64, FrameTokens: 258}, // small: every path on lavapipe
}

// attnBenchImpls are the paths the benchmarks compare on one device: the scalar kernels everywhere, the
// CPU ones where the device runs them, the cooperative-matrix ones where the device has them, and the emulation on CPU devices (where it is what
// the tests run; it is a correctness tool, not a fast path) for the small shape only.
func attnBenchImpls(d *vk.Device, sh vk.AttnShape) []attnImpl {
	impls := []attnImpl{{name: "scalar"}}
	if vk.CPUKernelsMissing(d.Info) == "" && sh.HeadDim%4 == 0 {
		impls = append(impls, attnImpl{name: "cpu", path: vk.AttnPath{CPU: true}})
	}
	if vk.AttnCoopMatOK(d, sh.HeadDim) {
		impls = append(impls, attnImpl{name: "coopmat", path: vk.AttnPath{CoopMat: true}})
	}
	if d.Info.Type == "cpu" && sh.B*sh.N*sh.N*sh.Heads < 1_000_000 {
		impls = append(impls, attnImpl{name: "emulated", path: vk.AttnPath{CoopMat: true, Emulated: true}})
	}
	return impls
}

func attnBenchName(impl attnImpl, sh vk.AttnShape) string {
	return vktest.Name("path", impl.name, "B", sh.B, "N", sh.N, "heads", sh.Heads, "dh", sh.HeadDim, "frame", sh.FrameTokens)
}

// BenchmarkAttentionForward reports GFLOP/s (and per CPU-second) counting 4·dh flops per unmasked (query, key) pair
// (q·k and p·v), so skipped blocks count as nothing.
func BenchmarkAttentionForward(b *testing.B) {
	d := vktest.Device(b)
	for _, sh := range attnBenchShapes {
		for _, impl := range attnBenchImpls(d, sh) {
			b.Run(attnBenchName(impl, sh), func(b *testing.B) {
				rows, dm := sh.B*sh.N, sh.Heads*sh.HeadDim
				qkv := vktest.Tensor(b, d, vk.F32, vktest.RandN(1, rows*3*dm), rows, 3*dm)
				o := vktest.Tensor(b, d, vk.F32, nil, rows, dm)
				lse := vktest.Tensor(b, d, vk.F32, nil, sh.B, sh.Heads, sh.N)
				s := vktest.Stream(b, d)
				impl.fwd(s, o, lse, qkv, sh)
				vktest.Run(b, s)
				b.ResetTimer()
				cpu := vktest.CPUSeconds()
				for range b.N {
					vktest.Run(b, s)
				}
				flops := 4 * float64(sh.HeadDim) * attnPairs(sh) * float64(sh.B*sh.Heads)
				b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
				b.ReportMetric(flops*float64(b.N)/(vktest.CPUSeconds()-cpu)/1e9, "GFLOP/cpu-s")
			})
		}
	}
}

// BenchmarkAttentionBackward reports GFLOP/s counting 10·dh flops per unmasked pair, the FlashAttention-2
// convention (recompute q·k, then do·v, p·do, ds·k, ds·q); the kernels here recompute q·k and do·v once
// more (14·dh) to avoid float atomics, which this figure does not credit.
func BenchmarkAttentionBackward(b *testing.B) {
	d := vktest.Device(b)
	for _, sh := range attnBenchShapes {
		for _, impl := range attnBenchImpls(d, sh) {
			b.Run(attnBenchName(impl, sh), func(b *testing.B) {
				rows, dm := sh.B*sh.N, sh.Heads*sh.HeadDim
				qkv := vktest.Tensor(b, d, vk.F32, vktest.RandN(1, rows*3*dm), rows, 3*dm)
				do := vktest.Tensor(b, d, vk.F32, vktest.RandN(2, rows*dm), rows, dm)
				o := vktest.Tensor(b, d, vk.F32, nil, rows, dm)
				lse := vktest.Tensor(b, d, vk.F32, nil, sh.B, sh.Heads, sh.N)
				dqkv := vktest.Tensor(b, d, vk.F32, nil, rows, 3*dm)
				delta := vktest.Tensor(b, d, vk.F32, nil, sh.B, sh.Heads, sh.N)
				fwd := vktest.Stream(b, d)
				impl.fwd(fwd, o, lse, qkv, sh)
				vktest.Run(b, fwd)
				s := vktest.Stream(b, d)
				impl.bwd(s, dqkv, delta, do, qkv, o, lse, sh)
				vktest.Run(b, s)
				b.ResetTimer()
				cpu := vktest.CPUSeconds()
				for range b.N {
					vktest.Run(b, s)
				}
				flops := 10 * float64(sh.HeadDim) * attnPairs(sh) * float64(sh.B*sh.Heads)
				b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
				b.ReportMetric(flops*float64(b.N)/(vktest.CPUSeconds()-cpu)/1e9, "GFLOP/cpu-s")
			})
		}
	}
}
