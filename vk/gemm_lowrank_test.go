package vk_test

import (
	"math"
	"testing"

	"github.com/vjepa-vk/vjepa-vk/vk"
	"github.com/vjepa-vk/vjepa-vk/vk/ref"
	"github.com/vjepa-vk/vjepa-vk/vk/vktest"
)

// lowRankCase is a Gemm with a GemmLowRank term: the base product's shape and options, the rank, V's
// layout, the dropout mask (p 0: none) and a lowered binding limit that forces chunking (0: none).
type lowRankCase struct {
	m, n, k, r     int
	transA, transB bool
	transV         bool
	dtB            vk.DType
	alpha, beta    float32
	lowAlpha       float32
	bias           bool
	p              float32
	first          uint32 // mask hash index of C's element 0 (a rank's rows of a global batch)
	maxBinding     uint64
	coopmat        bool // let Gemm pick the tensor-core path where the device has it
	epilogue       bool // the scalar twin of the tensor-core path's per-element term (f16 B)
	aligned        bool // A, B, U and V start on a 16-byte texel (else at odd element offsets)
}

func (c lowRankCase) String() string {
	return vktest.Name("m", c.m, "n", c.n, "k", c.k, "r", c.r, "layout", layout(c.transA, c.transB), "transV", c.transV,
		"dtypeB", c.dtB.String(), "alpha", c.alpha, "beta", c.beta, "lowalpha", c.lowAlpha, "bias", c.bias, "p", c.p,
		"first", c.first, "maxbinding", c.maxBinding, "epilogue", c.epilogue, "aligned", c.aligned)
}

// TestGemmLowRank checks the fused low-rank epilogue, C = α·op(A)·op(B) + β·C + bias + α₂·keep⊙(U·op(V)),
// against ref.Gemm plus the term in float64, on awkward shapes, both V layouts (LoRA's B [out, r] in
// forward, A [r, in] in the input gradient), each B dtype, with and without the dropout mask, and cut
// into row, column and K chunks (the term's offsets follow the chunk; only the first K chunk adds it).
// The tolerance is 1e-5 of Σ|α·a·b| + |β·c| + |bias| + |α₂|·Σ|u·v|, as TestGemm's.
func TestGemmLowRank(t *testing.T) {
	d := vktest.Device(t)
	var cases []lowRankCase
	// Ranks past the scalar tile's K step (16) take several staged steps.
	for _, sh := range [][4]int{{1, 1, 1, 1}, {17, 33, 5, 4}, {130, 257, 64, 16}, {63, 65, 0, 3}, {16, 128, 16, 16}, {129, 17, 31, 2}, {70, 40, 20, 33}} {
		for _, tv := range []bool{true, false} {
			for _, p := range []float32{0, 0.3} {
				cases = append(cases, lowRankCase{m: sh[0], n: sh[1], k: sh[2], r: sh[3], transB: tv, transV: tv, p: p, lowAlpha: 2})
			}
		}
	}
	for _, dt := range []vk.DType{vk.F16, vk.BF16} {
		cases = append(cases,
			lowRankCase{m: 97, n: 61, k: 131, r: 16, transB: true, transV: true, dtB: dt, bias: true, lowAlpha: 0.5},
			lowRankCase{m: 97, n: 61, k: 131, r: 16, dtB: dt, beta: 1, p: 0.05},
		)
	}
	cases = append(cases,
		lowRankCase{m: 37, n: 70, k: 45, r: 5, transA: true, transB: true, alpha: -2, beta: 0.25, bias: true, lowAlpha: 3, p: 0.5},
		lowRankCase{m: 300, n: 200, k: 150, r: 8, transB: true, transV: true, bias: true, p: 0.1, maxBinding: 64 << 10},
		lowRankCase{m: 300, n: 200, k: 150, r: 8, transA: true, beta: 1, p: 0.2, maxBinding: 40 << 10},
		lowRankCase{m: 300, n: 200, k: 150, r: 8, transB: true, transV: false, dtB: vk.F16, maxBinding: 32 << 10},
		// A data-parallel rank's rows: the mask continues the whole batch's, wrapping at 2^32.
		lowRankCase{m: 37, n: 70, k: 45, r: 5, transB: true, transV: true, p: 0.3, first: 3 * 37 * 70},
		lowRankCase{m: 300, n: 200, k: 150, r: 8, transA: true, p: 0.2, first: 1<<32 - 7001, maxBinding: 40 << 10},
		// The model's shapes, on the tensor-core path where the device has one.
		lowRankCase{m: 130, n: 96, k: 64, r: 16, transB: true, transV: true, dtB: vk.F16, bias: true, lowAlpha: 4, coopmat: true},
		lowRankCase{m: 130, n: 64, k: 96, r: 16, dtB: vk.F16, p: 0.05, coopmat: true},
	)
	if !testing.Short() { // fc1 over one frame's 258 tokens (spec §2: D=1024, MLP 4096), rank 16
		cases = append(cases, lowRankCase{m: 258, n: 4096, k: 1024, r: 16, transB: true, transV: true, dtB: vk.F16, bias: true, lowAlpha: 4, p: 0.05, coopmat: true})
	}
	for _, c := range cases {
		if c.dtB == vk.F16 && c.maxBinding == 0 {
			c.epilogue, c.coopmat = true, false
			cases = append(cases, c)
		}
	}
	forKernels(t, d, func(t *testing.T, kernels string) {
		worst, n := 0.0, 0
		for _, c := range cases {
			if c.epilogue && kernels != vk.KernelsGPU {
				continue // the tensor-core path's twin: GPU kernels only
			}
			for _, aligned := range []bool{false, true} {
				switch {
				case aligned && kernels != vk.KernelsCPU:
					continue // only the CPU kernels read aligned operands differently
				case !aligned && kernels == vk.KernelsCPU && c.m*c.n*c.k > 1<<24:
					continue // the model-sized case: aligned, as the model's tensors are
				}
				c.aligned = aligned
				n++
				t.Run(c.String(), func(t *testing.T) { worst = math.Max(worst, runLowRankCase(t, d, c, kernels)) })
			}
		}
		t.Logf("max error relative to Σ|α·a·b|+|β·c|+|bias|+|α₂|Σ|u·v| over %d cases: %.3g", n, worst)
	})
}

func runLowRankCase(t *testing.T, d *vk.Device, c lowRankCase, kernels string) (maxErr float64) {
	t.Helper()
	ar, ac, br, bc := storedShapes(c.m, c.n, c.k, c.transA, c.transB)
	vr, vc := c.r, c.n
	if c.transV {
		vr, vc = c.n, c.r
	}
	seed := uint64(c.m*7919 + c.n*31 + c.k*3 + c.r)
	av := vktest.Rand(seed, ar*ac)
	bv := rounded(c.dtB, vktest.Rand(seed+1, br*bc))
	uv := vktest.Rand(seed+2, c.m*c.r)
	vv := vktest.Rand(seed+3, vr*vc)
	cv := vktest.NaNs(c.m * c.n)
	if c.beta != 0 {
		cv = vktest.Rand(seed+4, len(cv))
	}
	// Odd pads put every view off the storage alignment (and 16-bit B in a word's upper half); aligned
	// ones put A, B, U and V on a 16-byte texel.
	pads := [4]int{3, 5, 7, 2}
	if c.aligned {
		pads = [4]int{8, 16, 4, 12}
	}
	_, aT := embedded(t, d, vk.F32, av, pads[0], ar, ac)
	_, bT := embedded(t, d, c.dtB, bv, pads[1], br, bc)
	cWhole, cT := embedded(t, d, vk.F32, cv, 1, c.m, c.n)
	_, uT := embedded(t, d, vk.F32, uv, pads[2], c.m, c.r)
	_, vT := embedded(t, d, vk.F32, vv, pads[3], vr, vc)
	const maskSeed, salt = 0x5eed1234, 77
	o := vk.GemmOpts{TransA: c.transA, TransB: c.transB, Alpha: c.alpha, Beta: c.beta,
		LowRank: vk.GemmLowRank{U: uT, V: vT, TransV: c.transV, Alpha: c.lowAlpha}}
	var biasV []float32
	if c.bias {
		biasV = vktest.Rand(seed+5, c.n)
		o.Bias = vktest.Tensor(t, d, vk.F32, biasV, c.n)
	}
	if c.p > 0 {
		o.LowRank.Seed = dropoutSeed(t, d, maskSeed)
		o.LowRank.P, o.LowRank.Salt, o.LowRank.First = c.p, salt, c.first
	}
	s := vktest.Stream(t, d)
	if c.epilogue {
		vk.GemmLowRankEpilogue(s, cT, aT, bT, o)
	} else {
		vk.GemmKernels(s, cT, aT, bT, o, kernels, c.maxBinding, c.coopmat)
	}
	vktest.Run(t, s)
	got := vktest.Download(t, d, cWhole)
	checkGuard(t, "Gemm("+c.String()+")", got, 1, len(cv), func(int) bool { return true })
	got = got[1 : 1+len(cv)]

	alpha, lowAlpha := float64(c.alpha), float64(c.lowAlpha)
	if alpha == 0 {
		alpha = 1
	}
	if lowAlpha == 0 {
		lowAlpha = 1
	}
	var bias64 []float64
	if c.bias {
		bias64 = vktest.F64(biasV)
	}
	a64, b64, u64, v64 := vktest.F64(av), vktest.F64(bv), vktest.F64(uv), vktest.F64(vv)
	want := vktest.F64(cv)
	c0 := append([]float64(nil), want...)
	ref.Gemm(want, a64, b64, c.m, c.n, c.k, c.transA, c.transB, alpha, float64(c.beta), bias64)
	scale := make([]float64, c.m*c.n)
	ref.Gemm(scale, abs(a64), abs(b64), c.m, c.n, c.k, c.transA, c.transB, math.Abs(alpha), 0, nil)
	low := make([]float64, c.m*c.n)
	lowAbs := make([]float64, c.m*c.n)
	ref.Gemm(low, u64, v64, c.m, c.n, c.r, false, c.transV, lowAlpha, 0, nil)
	ref.Gemm(lowAbs, abs(u64), abs(v64), c.m, c.n, c.r, false, c.transV, math.Abs(lowAlpha), 0, nil)
	dropScale := ref.DropoutScale(float64(c.p))
	for i := range want {
		if c.p == 0 || ref.DropoutKeep(maskSeed, salt, int(c.first+uint32(i)), float64(c.p)) {
			want[i] += dropScale * low[i]
			scale[i] += dropScale * lowAbs[i]
		}
		if c.beta != 0 {
			scale[i] += math.Abs(float64(c.beta) * c0[i])
		}
		if c.bias {
			scale[i] += math.Abs(bias64[i%c.n])
		}
	}
	// Tensor cores round A and B to f16 (2⁻¹¹ relative); the scalar path is f32.
	rtol := 1e-5
	if c.coopmat && d.CoopMat() && kernels == vk.KernelsGPU {
		rtol = 2e-3
	}
	worst, worstErr, worstTol := -1, 0.0, 0.0
	for i := range got {
		e := math.Abs(float64(got[i]) - want[i])
		if math.IsNaN(e) {
			e = math.Inf(1)
		}
		maxErr = math.Max(maxErr, e/math.Max(scale[i], 1e-30))
		tol := rtol*scale[i] + 1e-30
		if e > tol && (worst < 0 || e/tol > worstErr/worstTol) {
			worst, worstErr, worstTol = i, e, tol
		}
	}
	if worst >= 0 {
		t.Fatalf("Gemm(%v): C[%d,%d] = %.8g, want %.8g (err %.3g > tol %.3g = %g·(Σ|α·a·b|+|β·c|+|bias|+|α₂|Σ|u·v|))",
			c, worst/c.n, worst%c.n, got[worst], want[worst], worstErr, worstTol, rtol)
	}
	return maxErr
}

// maskCase is a Gemm with one operand dropped out as it is loaded (TestGemmMask).
type maskCase struct {
	m, n, k, batch int
	transA, transB bool
	onB            bool
	splitK         int
	maxBinding     uint64
	beta           float32
	first          uint32
}

// TestGemmMask checks dropout applied to an operand as it is loaded: against Dropout then Gemm on the
// device, bit for bit (the same select and f32 product, the same tiles), over both operands and layouts,
// split-K (the LoRA dA shape), batches and chunks; and the unmasked operand and output guards as TestGemm.
func TestGemmMask(t *testing.T) {
	d := vktest.Device(t)
	var cases []maskCase
	for _, l := range [][2]bool{{false, false}, {false, true}, {true, false}, {true, true}} {
		for _, onB := range []bool{false, true} {
			cases = append(cases, maskCase{m: 37, n: 70, k: 45, transA: l[0], transB: l[1], onB: onB})
		}
	}
	cases = append(cases,
		maskCase{m: 1032, n: 16, k: 1024, transB: true},                                // t = drop(x)·Aᵀ
		maskCase{m: 16, n: 1024, k: 1032, transA: true, onB: true, splitK: 4, beta: 1}, // dA += dtᵀ·drop(x)
		maskCase{m: 33, n: 20, k: 19, batch: 3, onB: true},
		maskCase{m: 300, n: 200, k: 150, transA: true, maxBinding: 40 << 10},
		maskCase{m: 300, n: 200, k: 150, onB: true, maxBinding: 40 << 10, beta: 1},
		// A data-parallel rank's rows of x: the mask continues the whole batch's, wrapping at 2^32.
		maskCase{m: 1032, n: 16, k: 1024, transB: true, first: 3 * 1032 * 1024},
		maskCase{m: 16, n: 1024, k: 1032, transA: true, onB: true, splitK: 4, beta: 1, first: 1<<32 - 5000},
		maskCase{m: 300, n: 200, k: 150, transA: true, maxBinding: 40 << 10, first: 1<<32 - 3},
	)
	const seed, salt, p = 0x1234567, 9, 0.3
	seedT := dropoutSeed(t, d, seed)
	forKernels(t, d, func(t *testing.T, kernels string) { testGemmMask(t, d, kernels, cases, seedT) })
}

// testGemmMask runs TestGemmMask's cases on one kernel variant.
func testGemmMask(t *testing.T, d *vk.Device, kernels string, cases []maskCase, seedT vk.Tensor) {
	const seed, salt, p = 0x1234567, 9, 0.3
	for _, c := range cases {
		name := vktest.Name("m", c.m, "n", c.n, "k", c.k, "batch", c.batch, "layout", layout(c.transA, c.transB), "onB", c.onB,
			"splitk", c.splitK, "maxbinding", c.maxBinding, "first", c.first)
		t.Run(name, func(t *testing.T) {
			batch := max(c.batch, 1)
			ar, ac, br, bc := storedShapes(c.m, c.n, c.k, c.transA, c.transB)
			av, bv := vktest.RandN(1, batch*ar*ac), vktest.RandN(2, batch*br*bc)
			cv := vktest.Rand(3, batch*c.m*c.n)
			aT := vktest.Tensor(t, d, vk.F32, av, batch, ar, ac)
			bT := vktest.Tensor(t, d, vk.F32, bv, batch, br, bc)
			got := vktest.Tensor(t, d, vk.F32, cv, batch, c.m, c.n)
			want := vktest.Tensor(t, d, vk.F32, cv, batch, c.m, c.n)
			o := vk.GemmOpts{TransA: c.transA, TransB: c.transB, Beta: c.beta, SplitK: c.splitK}
			if c.splitK > 1 {
				o.Workspace = vktest.Poisoned(t, d, vk.F32, vk.GemmWorkspaceSize(d, c.m, c.n, c.k, o))
			}
			masked, plainA, plainB := o, aT, bT
			masked.Mask = vk.GemmMask{Seed: seedT, P: p, Salt: salt, OnB: c.onB, First: c.first}
			s := vktest.Stream(t, d)
			if c.onB {
				plainB = vktest.Poisoned(t, d, vk.F32, batch, br, bc)
				vk.DropoutAt(s, plainB, bT, seedT, p, salt, c.first)
			} else {
				plainA = vktest.Poisoned(t, d, vk.F32, batch, ar, ac)
				vk.DropoutAt(s, plainA, aT, seedT, p, salt, c.first)
			}
			vk.GemmKernels(s, want, plainA, plainB, o, kernels, c.maxBinding, false)
			vk.GemmKernels(s, got, aT, bT, masked, kernels, c.maxBinding, false)
			vktest.Run(t, s)
			g, w := vktest.Download(t, d, got), vktest.Download(t, d, want)
			for i := range g {
				if math.Float32bits(g[i]) != math.Float32bits(w[i]) {
					t.Fatalf("C[%d] = %v with the masked load, %v with Dropout then Gemm", i, g[i], w[i])
				}
			}
			// The reference: the same product in float64 of the dropped operand.
			dropped, other := av, bv
			if c.onB {
				dropped, other = bv, av
			}
			d64 := make([]float64, len(dropped))
			ref.DropoutAt(d64, vktest.F64(dropped), seed, salt, c.first, p)
			a64, b64 := d64, vktest.F64(other)
			if c.onB {
				a64, b64 = b64, a64
			}
			for bi := range batch {
				ref64 := vktest.F64(cv[bi*c.m*c.n : (bi+1)*c.m*c.n])
				ref.Gemm(ref64, a64[bi*ar*ac:(bi+1)*ar*ac], b64[bi*br*bc:(bi+1)*br*bc], c.m, c.n, c.k, c.transA, c.transB, 1, float64(c.beta), nil)
				vktest.Close(t, "masked gemm", g[bi*c.m*c.n:(bi+1)*c.m*c.n], ref64, 1e-4, 1e-4)
			}
			for name, chk := range map[string][]float32{"A": av, "B": bv} {
				tt := aT
				if name == "B" {
					tt = bT
				}
				now := vktest.Download(t, d, tt)
				for i := range now {
					if math.Float32bits(now[i]) != math.Float32bits(chk[i]) {
						t.Fatalf("input %s[%d] changed", name, i)
					}
				}
			}
		})
	}
}
