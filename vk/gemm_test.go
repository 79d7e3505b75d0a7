package vk_test

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/vjepa-vk/vjepa-vk/vk"
	"github.com/vjepa-vk/vjepa-vk/vk/ref"
	"github.com/vjepa-vk/vjepa-vk/vk/vktest"
)

// gemmCase is one call of Gemm: shapes, storage layouts, dtypes, epilogue and the split/chunk knobs.
type gemmCase struct {
	m, n, k, batch int
	transA, transB bool
	dtA, dtB       vk.DType
	alpha, beta    float32
	bias           bool
	splitK         int    // GemmOpts.SplitK; > 1 or -1 (automatic with a workspace) provides a workspace
	maxBinding     uint64 // 0: the device's; otherwise a lowered limit that forces chunking
	padStride      bool   // batch strides with NaN gaps between matrices
	aligned        bool   // A and B start on a 16-byte texel (else at odd element offsets)
}

func (c gemmCase) String() string {
	s := vktest.Name("m", c.m, "n", c.n, "k", c.k, "layout", layout(c.transA, c.transB), "dtype", c.dtA.String()+"_"+c.dtB.String())
	if c.batch > 1 {
		s += vktest.Name(",batch", c.batch)
	}
	if c.alpha != 0 || c.beta != 0 || c.bias {
		s += vktest.Name(",alpha", c.alpha, "beta", c.beta, "bias", c.bias)
	}
	if c.splitK != 0 {
		s += vktest.Name(",splitk", c.splitK)
	}
	if c.maxBinding != 0 {
		s += vktest.Name(",maxbinding", c.maxBinding)
	}
	if c.aligned {
		s += ",aligned"
	}
	return s
}

func layout(transA, transB bool) string {
	l := [2]string{"N", "T"}
	return l[b2i(transA)] + l[b2i(transB)]
}

// storedShapes returns the stored [rows, cols] of A and B for op(A) [m,k] and op(B) [k,n].
func storedShapes(m, n, k int, transA, transB bool) (ar, ac, br, bc int) {
	ar, ac, br, bc = m, k, k, n
	if transA {
		ar, ac = k, m
	}
	if transB {
		br, bc = n, k
	}
	return ar, ac, br, bc
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// gemmKernels lists the kernel variants the GEMM tests run on d: the "gpu" kernels every device runs and,
// where the device can run them (lavapipe), the "cpu" ones (vk/kernels.go).
func gemmKernels(d *vk.Device) []string {
	ks := []string{vk.KernelsGPU}
	if vk.CPUKernelsMissing(d.Info) == "" {
		ks = append(ks, vk.KernelsCPU)
	}
	return ks
}

// gemmImpl is the op under test: Gemm on one kernel variant, with a binding limit (0: the device's).
type gemmImpl func(s *vk.Stream, c, a, b vk.Tensor, o vk.GemmOpts, maxBinding uint64)

// gemmOn is Gemm on the given kernels; coopmat lets the GPU kernels take the tensor-core path where the
// device has it.
func gemmOn(kernels string, coopmat bool) gemmImpl {
	return func(s *vk.Stream, c, a, b vk.Tensor, o vk.GemmOpts, maxBinding uint64) {
		vk.GemmKernels(s, c, a, b, o, kernels, maxBinding, coopmat)
	}
}

// forKernels runs fn as one subtest per kernel variant of d, named kernels=<variant>.
func forKernels(t *testing.T, d *vk.Device, fn func(t *testing.T, kernels string)) {
	for _, k := range gemmKernels(d) {
		t.Run("kernels="+k, func(t *testing.T) { fn(t, k) })
	}
}

// withAligned returns cases followed, for the CPU kernels (which read texel-aligned operands as texels and
// the others word by word), by their copies with texel-aligned A and B.
func withAligned(kernels string, cases []gemmCase) []gemmCase {
	if kernels != vk.KernelsCPU {
		return cases
	}
	out := append([]gemmCase(nil), cases...)
	for _, c := range cases {
		if !c.padStride {
			c.aligned = true
			out = append(out, c)
		}
	}
	return out
}

// rounded returns v as the device stores it in dtype dt.
func rounded(dt vk.DType, v []float32) []float32 { return vk.DecodeF32(dt, vk.EncodeF32(dt, v)) }

// embedded uploads v (of shape dims) in the middle of a NaN-filled 1-D tensor, pad elements from its
// start, and returns the tensor and the view. Odd pads put the view off the storage alignment and, for
// 16-bit dtypes, in the upper half of a 32-bit word.
func embedded(t *testing.T, d *vk.Device, dt vk.DType, v []float32, pad int, dims ...int) (vk.Tensor, vk.Tensor) {
	t.Helper()
	all := vktest.NaNs(len(v) + 2*pad)
	copy(all[pad:], v)
	whole := vktest.Tensor(t, d, dt, all, len(all))
	return whole, whole.Slice(pad, len(v)).Reshape(dims...)
}

// checkGuard fails unless the elements of whole outside [pad, pad+n) and in the stride gaps are still NaN.
func checkGuard(t *testing.T, name string, whole []float32, pad, n int, inside func(i int) bool) {
	t.Helper()
	for i, v := range whole {
		if (i < pad || i >= pad+n || !inside(i-pad)) && !math.IsNaN(float64(v)) {
			t.Fatalf("%s: element %d outside the result was written: %g", name, i-pad, v)
		}
	}
}

// runGemmCase runs one case on the device and checks it against ref.Gemm computed from the inputs as
// the device holds them (rounded to f16/bf16). The tolerance of each element is 1e-5·(|α|·Σ_l|a||b| +
// |β·c| + |bias|): f32 accumulation of K products in any order errs by about √K·2⁻²⁴ of Σ|a||b| (K=8256:
// 5e-6), far below what a wrong index, a missed tile or a dropped slice produces.
func runGemmCase(t *testing.T, d *vk.Device, c gemmCase, impl gemmImpl) (maxErr float64) {
	t.Helper()
	batch := max(c.batch, 1)
	ar, ac, br, bc := storedShapes(c.m, c.n, c.k, c.transA, c.transB)
	sa, sb, sc := ar*ac, br*bc, c.m*c.n
	if c.padStride {
		sa, sb, sc = sa+3, sb+5, sc+7
	}
	// Operand buffers hold whole [rows, cols] matrices: batch of them when packed, or as many as cover the
	// strided range when the batch strides leave gaps (Gemm takes the matrix shape from the last two dims).
	count := func(stride, rows, cols int) int {
		if !c.padStride {
			return batch
		}
		return ((batch-1)*stride + rows*cols + rows*cols - 1) / (rows * cols)
	}
	na, nb, nc := count(sa, ar, ac), count(sb, br, bc), count(sc, c.m, c.n)
	seed := uint64(c.m*1000003 + c.n*1009 + c.k)
	av := rounded(c.dtA, vktest.Rand(seed, na*ar*ac))
	bv := rounded(c.dtB, vktest.Rand(seed+1, nb*br*bc))
	cv := vktest.NaNs(nc * c.m * c.n)
	if c.beta != 0 {
		cv = vktest.Rand(seed+2, len(cv))
	}
	var biasV []float32
	if c.bias {
		biasV = vktest.Rand(seed+3, c.n)
	}
	// Poison the stride gaps so that a write into them shows.
	inC := func(i int) bool { return i/sc < batch && i%sc < c.m*c.n }
	for i := range cv {
		if !inC(i) {
			cv[i] = float32(math.NaN())
		}
	}
	dims := func(n, rows, cols int) []int {
		if c.batch > 1 || n > 1 {
			return []int{n, rows, cols}
		}
		return []int{rows, cols}
	}
	// Odd pads put A and B off the storage alignment (and 16-bit ones in a word's upper half); aligned ones
	// start on a 16-byte texel.
	pad, padB := 3, 5
	if c.aligned {
		pad, padB = 8, 16
	}
	aWhole, aT := embedded(t, d, c.dtA, av, pad, dims(na, ar, ac)...)
	bWhole, bT := embedded(t, d, c.dtB, bv, padB, dims(nb, br, bc)...)
	cWhole, cT := embedded(t, d, vk.F32, cv, pad, dims(nc, c.m, c.n)...)
	// Packed batches leave Batch 0, so that Gemm takes the count from C's leading dim; strided ones say it.
	o := vk.GemmOpts{TransA: c.transA, TransB: c.transB, Alpha: c.alpha, Beta: c.beta}
	if c.padStride {
		o.Batch, o.StrideA, o.StrideB, o.StrideC = c.batch, sa, sb, sc
	}
	if c.bias {
		o.Bias = vktest.Tensor(t, d, vk.F32, biasV, c.n)
	}
	if c.splitK != 0 {
		if c.splitK > 0 {
			o.SplitK = c.splitK
		}
		ws := vk.GemmWorkspaceSize(d, c.m, c.n, c.k, vk.GemmOpts{Batch: c.batch, SplitK: o.SplitK})
		if ws == 0 {
			t.Fatalf("GemmWorkspaceSize(%v) = 0, want a split-K workspace", c)
		}
		o.Workspace = vktest.Poisoned(t, d, vk.F32, ws)
	}
	s := vktest.Stream(t, d)
	impl(s, cT, aT, bT, o, c.maxBinding)
	vktest.Run(t, s)

	got := vktest.Download(t, d, cWhole)
	checkGuard(t, "Gemm("+c.String()+")", got, pad, len(cv), inC)
	got = got[pad : pad+len(cv)]
	for name, chk := range map[string]struct {
		whole vk.Tensor
		want  []float32
		pad   int
	}{"A": {aWhole, av, pad}, "B": {bWhole, bv, padB}} {
		now := vktest.Download(t, d, chk.whole)[chk.pad : chk.pad+len(chk.want)]
		for i := range now {
			if math.Float32bits(now[i]) != math.Float32bits(chk.want[i]) {
				t.Fatalf("Gemm(%v): input %s[%d] changed: %g, was %g", c, name, i, now[i], chk.want[i])
			}
		}
	}

	alpha := float64(c.alpha)
	if alpha == 0 {
		alpha = 1
	}
	var bias64 []float64
	if c.bias {
		bias64 = vktest.F64(biasV)
	}
	for bi := range batch {
		a64 := vktest.F64(av[bi*sa : bi*sa+ar*ac])
		b64 := vktest.F64(bv[bi*sb : bi*sb+br*bc])
		want := vktest.F64(cv[bi*sc : bi*sc+c.m*c.n])
		c0 := append([]float64(nil), want...)
		ref.Gemm(want, a64, b64, c.m, c.n, c.k, c.transA, c.transB, alpha, float64(c.beta), bias64)
		scale := make([]float64, c.m*c.n)
		ref.Gemm(scale, abs(a64), abs(b64), c.m, c.n, c.k, c.transA, c.transB, math.Abs(alpha), 0, nil)
		for i := range scale {
			if c.beta != 0 {
				scale[i] += math.Abs(float64(c.beta) * c0[i])
			}
			if c.bias {
				scale[i] += math.Abs(bias64[i%c.n])
			}
		}
		g := got[bi*sc : bi*sc+c.m*c.n]
		worst, worstErr, worstTol := -1, 0.0, 0.0
		for i := range g {
			e := math.Abs(float64(g[i]) - want[i])
			if math.IsNaN(e) {
				e = math.Inf(1)
			}
			maxErr = math.Max(maxErr, e/math.Max(scale[i], 1e-30))
			tol := 1e-5*scale[i] + 1e-30
			if e > tol && (worst < 0 || e/tol > worstErr/worstTol) {
				worst, worstErr, worstTol = i, e, tol
			}
		}
		if worst >= 0 {
			t.Fatalf("Gemm(%v): C[%d][%d,%d] = %.8g, want %.8g (err %.3g > tol %.3g = 1e-5·Σ|α·a·b|+|β·c|+|bias|)",
				c, bi, worst/c.n, worst%c.n, g[worst], want[worst], worstErr, worstTol)
		}
	}
	return maxErr
}

func abs(v []float64) []float64 {
	o := make([]float64, len(v))
	for i, x := range v {
		o[i] = math.Abs(x)
	}
	return o
}

// TestGemm runs every layout on the awkward shapes (f32), every dtype pair on a prime shape, and the
// epilogue options (alpha, beta accumulation, bias), batched products with packed and gapped strides.
func TestGemm(t *testing.T) {
	d := vktest.Device(t)
	// Awkward shapes: 1, the scalar tiles (16, 64, 128) ± 1, primes, the action encoder's K=7, LoRA's
	// rank-r sides, and an empty K (C = β·C + bias, here just 0).
	shapes := [][3]int{
		{1, 1, 1}, {1, 7, 3}, {5, 1, 9}, {15, 17, 16}, {16, 16, 17}, {17, 15, 33},
		{63, 65, 64}, {64, 64, 64}, {65, 63, 15}, {127, 129, 31}, {128, 128, 16}, {129, 127, 129},
		{97, 61, 131}, {16, 1024, 7}, {257, 16, 192}, {300, 96, 16}, {4, 333, 520}, {5, 7, 0},
	}
	var cases []gemmCase
	layouts := [][2]bool{{false, false}, {false, true}, {true, false}, {true, true}}
	for _, sh := range shapes {
		for _, l := range layouts {
			cases = append(cases, gemmCase{m: sh[0], n: sh[1], k: sh[2], transA: l[0], transB: l[1]})
		}
	}
	cases = append(cases, gemmCase{m: 5, n: 7, k: 0, beta: 0.5, bias: true})
	if !testing.Short() { // a model-sized Linear over one frame's 258 tokens (spec §2: D=1024)
		cases = append(cases, gemmCase{m: 258, n: 1024, k: 1024, transB: true, bias: true})
	}
	dtypes := []vk.DType{vk.F32, vk.F16, vk.BF16}
	for _, da := range dtypes {
		for _, db := range dtypes {
			for _, l := range layouts {
				cases = append(cases, gemmCase{m: 97, n: 61, k: 131, transA: l[0], transB: l[1], dtA: da, dtB: db})
			}
		}
	}
	for _, l := range layouts {
		cases = append(cases,
			gemmCase{m: 37, n: 70, k: 45, transA: l[0], transB: l[1], alpha: 0.5, beta: 1, bias: true},
			gemmCase{m: 37, n: 70, k: 45, transA: l[0], transB: l[1], alpha: -2, beta: 0.25},
			gemmCase{m: 37, n: 70, k: 45, transA: l[0], transB: l[1], bias: true, dtB: vk.BF16},
			gemmCase{m: 33, n: 20, k: 19, batch: 3, transA: l[0], transB: l[1], beta: 1, bias: true},
			gemmCase{m: 33, n: 20, k: 19, batch: 3, transA: l[0], transB: l[1], padStride: true, dtA: vk.F16},
		)
	}
	forKernels(t, d, func(t *testing.T, kernels string) {
		worst := 0.0
		cases := withAligned(kernels, cases)
		for _, c := range cases {
			t.Run(c.String(), func(t *testing.T) { worst = math.Max(worst, runGemmCase(t, d, c, gemmExact(d, kernels, c))) })
		}
		t.Logf("max error relative to Σ|α·a·b|+|β·c|+|bias| over %d cases: %.3g", len(cases), worst)
	})
}

// TestGemmSplitK checks split-K against the same reference: explicit slice counts on LoRA's weight
// gradient shapes (dA [r,in] = dtᵀ·x over all tokens), batched, with beta and bias applied by the reduce
// kernel; and the automatic choice on a tiny output with a long K.
func TestGemmSplitK(t *testing.T) {
	d := vktest.Device(t)
	cases := []gemmCase{
		{m: 4, n: 1024, k: 8256, transA: true, splitK: 8, beta: 1},
		{m: 16, n: 96, k: 2064, transA: true, splitK: 5, bias: true, alpha: 0.5},
		{m: 13, n: 17, k: 1000, transB: true, splitK: 3, batch: 2, beta: 1, dtA: vk.BF16},
		{m: 30, n: 2, k: 777, splitK: 32, dtB: vk.F16}, // more slices than whole 32-blocks allow... still whole blocks
		{m: 16, n: 16, k: 4096, transA: true, splitK: -1},
	}
	forKernels(t, d, func(t *testing.T, kernels string) {
		worst := 0.0
		for _, c := range withAligned(kernels, cases) {
			t.Run(c.String(), func(t *testing.T) { worst = math.Max(worst, runGemmCase(t, d, c, gemmExact(d, kernels, c))) })
		}
		t.Logf("split-K max error relative to Σ|α·a·b|+|β·c|+|bias|: %.3g", worst)
	})

	// Without a workspace an automatic split is skipped, with the same result up to rounding.
	o := vk.GemmOpts{TransA: true}
	if got := vk.GemmWorkspaceSize(d, 16, 16, 4096, o); got == 0 {
		t.Errorf("GemmWorkspaceSize(m=16,n=16,k=4096) = 0, want > 0: a 16×16 output over K=4096 should split")
	}
	if got := vk.GemmWorkspaceSize(d, 1024, 1024, 64, o); got != 0 {
		t.Errorf("GemmWorkspaceSize(m=1024,n=1024,k=64) = %d, want 0", got)
	}
	if got := vk.GemmWorkspaceSize(d, 4, 1024, 8256, vk.GemmOpts{SplitK: 1}); got != 0 {
		t.Errorf("GemmWorkspaceSize(SplitK=1) = %d, want 0", got)
	}
}

// TestGemmChunked lowers the binding limit so that operands are cut into several dispatches: over
// batches, rows of C and A, columns of C (Bᵀ), and K (Aᵀ or B, accumulating with beta 1 after the first).
func TestGemmChunked(t *testing.T) {
	d := vktest.Device(t)
	var cases []gemmCase
	for _, l := range [][2]bool{{false, false}, {false, true}, {true, false}, {true, true}} {
		cases = append(cases,
			gemmCase{m: 300, n: 200, k: 150, transA: l[0], transB: l[1], maxBinding: 64 << 10, bias: true},
			gemmCase{m: 300, n: 200, k: 150, transA: l[0], transB: l[1], maxBinding: 40 << 10, beta: 0.5, dtA: vk.BF16, dtB: vk.F16},
			gemmCase{m: 40, n: 50, k: 60, batch: 5, transA: l[0], transB: l[1], maxBinding: 20 << 10, beta: 1},
			gemmCase{m: 40, n: 50, k: 60, batch: 5, transA: l[0], transB: l[1], maxBinding: 8 << 10, padStride: true},
			gemmCase{m: 16, n: 16, k: 4096, transA: l[0], transB: l[1], maxBinding: 32 << 10, splitK: 4, beta: 1},
		)
	}
	forKernels(t, d, func(t *testing.T, kernels string) {
		worst := 0.0
		for _, c := range withAligned(kernels, cases) {
			t.Run(c.String(), func(t *testing.T) { worst = math.Max(worst, runGemmCase(t, d, c, gemmExact(d, kernels, c))) })
		}
		t.Logf("chunked max error relative to Σ|α·a·b|+|β·c|+|bias|: %.3g", worst)
	})
}

// TestGemmLarge runs a square product large enough for many full tiles of every path.
func TestGemmLarge(t *testing.T) {
	if testing.Short() {
		t.Skip("large product")
	}
	d := vktest.Device(t)
	forKernels(t, d, func(t *testing.T, kernels string) {
		for _, c := range []gemmCase{
			{m: 1024, n: 1024, k: 1024, aligned: true},
			{m: 1024, n: 1024, k: 1024, transB: true, dtB: vk.F16, aligned: true},
		} {
			t.Run(c.String(), func(t *testing.T) {
				t.Logf("max error relative to Σ|a·b|: %.3g", runGemmCase(t, d, c, gemmExact(d, kernels, c)))
			})
		}
	})
}

// TestGemmCoopMat compares the cooperative-matrix path with the reference on devices that have it
// (Gemm picks it for f16·f16); lavapipe has no cooperative matrices, so there the test is skipped.
func TestGemmCoopMat(t *testing.T) {
	d := vktest.Device(t)
	if !d.CoopMat() {
		t.Skip("cooperative-matrix GEMM off on " + d.Info.Name + " (needs NV cooperative matrices and VJEPA_VK_COOPMAT=1)")
	}
	var cases []gemmCase
	for _, sh := range [][3]int{{16, 16, 16}, {17, 31, 33}, {128, 128, 32}, {129, 255, 100}, {97, 61, 131}, {2064, 1024, 1024}} {
		for _, l := range [][2]bool{{false, false}, {false, true}, {true, false}, {true, true}} {
			cases = append(cases, gemmCase{m: sh[0], n: sh[1], k: sh[2], transA: l[0], transB: l[1], dtA: vk.F16, dtB: vk.F16})
		}
	}
	cases = append(cases,
		gemmCase{m: 70, n: 90, k: 300, batch: 3, transB: true, dtA: vk.F16, dtB: vk.F16, alpha: 0.5, beta: 1, bias: true},
		gemmCase{m: 64, n: 64, k: 8256, transA: true, dtA: vk.F16, dtB: vk.F16, splitK: 8, beta: 1},
	)
	for _, c := range cases {
		t.Run(c.String(), func(t *testing.T) {
			t.Logf("coopmat max error %.3g", runGemmCase(t, d, c, gemmOn(vk.KernelsGPU, true)))
			t.Logf("scalar max error %.3g", runGemmCase(t, d, c, gemmOn(vk.KernelsGPU, false)))
		})
	}
}

// TestGemmShapeMismatch checks that inconsistent shapes panic with the shapes in the message.
func TestGemmShapeMismatch(t *testing.T) {
	d := vktest.Device(t)
	s := vktest.Stream(t, d)
	a := vktest.Tensor(t, d, vk.F32, nil, 4, 5)
	b := vktest.Tensor(t, d, vk.F32, nil, 6, 7)
	c := vktest.Tensor(t, d, vk.F32, nil, 4, 7)
	defer func() {
		r := recover()
		if r == nil || !containsAll(fmt.Sprint(r), "[4 5]", "[6 7]", "[4 7]") {
			t.Fatalf("Gemm with K 5 vs 6: recovered %v, want a panic naming all three shapes", r)
		}
	}()
	vk.Gemm(s, c, a, b, vk.GemmOpts{})
}

func containsAll(s string, subs ...string) bool {
	for _, x := range subs {
		if !strings.Contains(s, x) {
			return false
		}
	}
	return true
}

// BenchmarkGemm reports GFLOP/s (2·m·n·k per product) and GFLOP per CPU-second at the model's shapes, on
// every kernel variant of the device in turn (kernels=gpu, kernels=cpu): the qkv and fc1 Linear forwards
// over one clip's 2064 tokens (spec §2: D=1024, 3·D, 4·D), 512³, LoRA's weight gradient dA [r=16, in] =
// dtᵀ·x over 8256 tokens with and without split-K, and the Linears of the CPU benchmark config (width 512,
// MLP 2048, 1032 tokens: T=4 frames of 258; tools/bench) forward (NT), input gradient (NN) and the
// adapter's weight gradient (TN).
func BenchmarkGemm(b *testing.B) {
	d := vktest.Device(b)
	type bench struct {
		m, n, k        int
		transA, transB bool
		dtA, dtB       vk.DType
		splitK         int
	}
	var benches []bench
	for _, dt := range []vk.DType{vk.F32, vk.BF16, vk.F16} {
		benches = append(benches,
			bench{m: 2064, n: 3072, k: 1024, transB: true, dtA: vk.F32, dtB: dt},
			bench{m: 2064, n: 4096, k: 1024, transB: true, dtA: vk.F32, dtB: dt},
		)
	}
	benches = append(benches,
		bench{m: 512, n: 512, k: 512, dtA: vk.F32, dtB: vk.F32},
		bench{m: 512, n: 512, k: 512, dtA: vk.F16, dtB: vk.F16},
		bench{m: 16, n: 1024, k: 8256, transA: true, dtA: vk.F32, dtB: vk.F32, splitK: 1},
		bench{m: 16, n: 1024, k: 8256, transA: true, dtA: vk.F32, dtB: vk.F32, splitK: 8},
		bench{m: 16, n: 1024, k: 8256, transA: true, dtA: vk.F32, dtB: vk.F32},
		bench{m: 1032, n: 1536, k: 512, transB: true, dtA: vk.F32, dtB: vk.F32},
		bench{m: 1032, n: 2048, k: 512, transB: true, dtA: vk.F32, dtB: vk.F32},
		bench{m: 1032, n: 512, k: 2048, transB: true, dtA: vk.F32, dtB: vk.F32},
		bench{m: 1032, n: 512, k: 2048, dtA: vk.F32, dtB: vk.F32},
		bench{m: 16, n: 512, k: 1032, transA: true, dtA: vk.F32, dtB: vk.F32},
	)
	for _, c := range benches {
		name := vktest.Name("m", c.m, "n", c.n, "k", c.k, "layout", layout(c.transA, c.transB), "dtype", c.dtA.String()+"_"+c.dtB.String())
		if c.splitK != 0 {
			name += vktest.Name(",splitk", c.splitK)
		}
		b.Run(name, func(b *testing.B) {
			ar, ac, br, bc := storedShapes(c.m, c.n, c.k, c.transA, c.transB)
			a := vktest.Tensor(b, d, c.dtA, vktest.Rand(1, ar*ac), ar, ac)
			bt := vktest.Tensor(b, d, c.dtB, vktest.Rand(2, br*bc), br, bc)
			ct := vktest.Tensor(b, d, vk.F32, nil, c.m, c.n)
			o := vk.GemmOpts{TransA: c.transA, TransB: c.transB, SplitK: c.splitK}
			if ws := vk.GemmWorkspaceSize(d, c.m, c.n, c.k, o); ws > 0 {
				o.Workspace = vktest.Tensor(b, d, vk.F32, nil, ws)
			}
			flop := 2 * float64(c.m) * float64(c.n) * float64(c.k)
			for _, kernels := range gemmKernels(d) {
				b.Run("kernels="+kernels, func(b *testing.B) {
					s := vktest.Stream(b, d)
					vk.GemmKernels(s, ct, a, bt, o, kernels, 0, true)
					vktest.Run(b, s) // build pipelines outside the timing
					b.ResetTimer()
					start, cpu := time.Now(), vktest.CPUSeconds()
					for range b.N {
						vktest.Run(b, s)
					}
					sec, cpuSec := time.Since(start).Seconds(), vktest.CPUSeconds()-cpu
					b.ReportMetric(flop*float64(b.N)/sec/1e9, "GFLOP/s")
					b.ReportMetric(flop*float64(b.N)/cpuSec/1e9, "GFLOP/cpu-s")
				})
			}
		})
	}
}

// TestGemmCoopMatF32A checks the fp16-compute path: f32 activations rounded to f16 while staged for the
// tensor cores, times f16 weights, f32 accumulation. The reference multiplies the f16-rounded operands in
// float64; the tolerance allows f16 rounding of A by either rounding mode GLSL permits (2^-10 relative per
// element) on top of f32 accumulation.
func TestGemmCoopMatF32A(t *testing.T) {
	d := vktest.Device(t)
	if !d.CoopMat() {
		t.Skip("cooperative-matrix GEMM off on " + d.Info.Name + " (needs NV cooperative matrices and VJEPA_VK_COOPMAT=1)")
	}
	for _, sh := range [][3]int{{16, 16, 16}, {37, 70, 129}, {2064, 1024, 1024}} {
		for _, l := range [][2]bool{{false, true}, {false, false}} {
			m, n, k := sh[0], sh[1], sh[2]
			t.Run(vktest.Name("m", m, "n", n, "k", k, "transB", l[1]), func(t *testing.T) {
				s := vktest.Stream(t, d)
				av, bv := vktest.Rand(1, m*k), vktest.Rand(2, k*n)
				bshape := []int{k, n}
				if l[1] {
					bshape = []int{n, k}
				}
				a := vktest.Tensor(t, d, vk.F32, av, m, k)
				b := vktest.Tensor(t, d, vk.F16, bv, bshape...)
				c := vktest.Poisoned(t, d, vk.F32, m, n)
				vk.Gemm(s, c, a, b, vk.GemmOpts{TransB: l[1]})
				vktest.Run(t, s)
				ar := make([]float64, len(av))
				for i, x := range av {
					ar[i] = float64(vk.F16ToF32(vk.F32ToF16(x)))
				}
				want := make([]float64, m*n)
				ref.Gemm(want, ar, vktest.F64(vktest.Download(t, d, b)), m, n, k, false, l[1], 1, 0, nil)
				// |a|,|b| <= 1: the sum of |a·b| over K is at most k.
				vktest.Close(t, "GemmCoopMatF32A", vktest.Download(t, d, c), want, 0, 1e-3*float64(k)/1024+1e-4)
			})
		}
	}
}

// gemmExact is Gemm on the given kernels, without the tensor-core path for f32·f16 products on devices with
// cooperative matrices: there it rounds the f32 operand to f16 (TestGemmCoopMatF32A checks it), so the
// exact-tolerance tests use the scalar path that every device runs.
func gemmExact(d *vk.Device, kernels string, c gemmCase) gemmImpl {
	return gemmOn(kernels, !(d.CoopMat() && c.dtA == vk.F32 && c.dtB == vk.F16))
}
