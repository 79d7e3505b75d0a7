package vk_test

import (
	"math"
	"testing"

	"github.com/vjepa-vk/vjepa-vk/vk"
	"github.com/vjepa-vk/vjepa-vk/vk/ref"
	"github.com/vjepa-vk/vjepa-vk/vk/vktest"
)

// elemCase is a Gemm with an elementwise epilogue op ("residual", "gelu", "gelu_grad"): the product's
// shape and options, an optional low-rank term (rank r > 0, masked with p > 0), a lowered binding limit
// that forces chunking (0: none), a split-K workspace the op must not use, and the scalar twin of the
// tensor-core epilogue (f16 B).
type elemCase struct {
	op             string
	m, n, k, r     int
	transA, transB bool
	dtB            vk.DType
	alpha, beta    float32
	bias           bool
	p              float32
	maxBinding     uint64
	workspace      bool
	epilogue       bool
	aligned        bool // A and B start on a 16-byte texel (else at odd element offsets)
}

func (c elemCase) String() string {
	return vktest.Name("op", c.op, "m", c.m, "n", c.n, "k", c.k, "r", c.r, "layout", layout(c.transA, c.transB),
		"dtypeB", c.dtB.String(), "alpha", c.alpha, "beta", c.beta, "bias", c.bias, "p", c.p,
		"maxbinding", c.maxBinding, "workspace", c.workspace, "epilogue", c.epilogue, "aligned", c.aligned)
}

// TestGemmElementwise checks each elementwise epilogue op (GemmOpts Residual, Gelu, GeluGrad) two ways:
// bit for bit against the unfused sequence on the device (the same Gemm without the op, then Add, Gelu
// or GeluBackward), which is what the model relies on; and against ref.Gemm plus the op in float64. Cases
// cover awkward shapes, K = 0, each B dtype, alpha, beta and bias, products with and without a (masked)
// low-rank term, the per-element low-rank twin of the tensor-core path, row, column and K chunks (the op
// runs with the last K chunk, after the earlier ones have accumulated into C) and a shape split-K would
// cut (the op turns it off).
func TestGemmElementwise(t *testing.T) {
	d := vktest.Device(t)
	var cases []elemCase
	for _, op := range []string{"residual", "gelu", "gelu_grad"} {
		for _, sh := range [][4]int{{1, 1, 1, 0}, {17, 33, 5, 0}, {130, 257, 64, 0}, {63, 65, 0, 3}, {129, 17, 31, 2}, {70, 40, 20, 16}} {
			cases = append(cases, elemCase{op: op, m: sh[0], n: sh[1], k: sh[2], r: sh[3], transB: true, bias: true})
		}
		for _, dt := range []vk.DType{vk.F16, vk.BF16} {
			cases = append(cases,
				elemCase{op: op, m: 97, n: 61, k: 131, dtB: dt, transB: true, bias: true},
				elemCase{op: op, m: 97, n: 61, k: 131, r: 16, dtB: dt, beta: 1, p: 0.1},
			)
		}
		cases = append(cases,
			elemCase{op: op, m: 37, n: 70, k: 45, r: 5, transA: true, alpha: -2, beta: 0.25, bias: true, p: 0.5},
			elemCase{op: op, m: 16, n: 16, k: 2048, transA: true, beta: 1, workspace: true},
			// Row and column chunks; K chunks (A stored [K, M], B stored [K, N]) with and without beta.
			elemCase{op: op, m: 300, n: 200, k: 150, r: 8, transB: true, bias: true, p: 0.1, maxBinding: 64 << 10},
			elemCase{op: op, m: 300, n: 200, k: 150, transA: true, beta: 1, maxBinding: 40 << 10},
			elemCase{op: op, m: 300, n: 200, k: 150, r: 8, transA: true, bias: true, maxBinding: 40 << 10},
			elemCase{op: op, m: 300, n: 200, k: 150, dtB: vk.F16, bias: true, maxBinding: 32 << 10},
		)
	}
	for _, c := range cases {
		if c.dtB == vk.F16 && c.maxBinding == 0 {
			c.epilogue = true
			cases = append(cases, c)
		}
	}
	forKernels(t, d, func(t *testing.T, kernels string) {
		worst := map[string]float64{}
		for _, c := range cases {
			if c.epilogue && kernels != vk.KernelsGPU {
				continue // the tensor-core path's twin: GPU kernels only
			}
			for _, aligned := range []bool{false, true} {
				if aligned && kernels != vk.KernelsCPU {
					continue // only the CPU kernels read aligned operands differently
				}
				c.aligned = aligned
				t.Run(c.String(), func(t *testing.T) { worst[c.op] = math.Max(worst[c.op], runElemCase(t, d, c, kernels)) })
			}
		}
		for _, op := range []string{"residual", "gelu", "gelu_grad"} {
			t.Logf("op=%s: bit-identical to the unfused sequence; max error relative to its tolerance scale: %.3g", op, worst[op])
		}
	})
}

func runElemCase(t *testing.T, d *vk.Device, c elemCase, kernels string) (maxErr float64) {
	t.Helper()
	ar, ac, br, bc := storedShapes(c.m, c.n, c.k, c.transA, c.transB)
	seed := uint64(c.m*7919+c.n*31+c.k*3+c.r) + uint64(len(c.op))
	av := vktest.Rand(seed, ar*ac)
	bv := rounded(c.dtB, vktest.Rand(seed+1, br*bc))
	cv := vktest.NaNs(c.m * c.n)
	if c.beta != 0 {
		cv = vktest.Rand(seed+2, len(cv))
	}
	// E: the residual, NaN for GELU's output, or GELU's input spread over its curved range.
	ev := vktest.RandN(seed+3, c.m*c.n)
	switch c.op {
	case "gelu":
		ev = vktest.NaNs(len(ev))
	case "gelu_grad":
		for i := range ev {
			ev[i] *= 3
		}
	}
	padA, padB := 3, 5
	if c.aligned {
		padA, padB = 8, 16
	}
	_, aT := embedded(t, d, vk.F32, av, padA, ar, ac)
	_, bT := embedded(t, d, c.dtB, bv, padB, br, bc)
	o := vk.GemmOpts{TransA: c.transA, TransB: c.transB, Alpha: c.alpha, Beta: c.beta}
	var biasV, uv, vv []float32
	if c.bias {
		biasV = vktest.Rand(seed+4, c.n)
		o.Bias = vktest.Tensor(t, d, vk.F32, biasV, c.n)
	}
	const maskSeed, salt = 0x5eed1234, 77
	if c.r > 0 {
		uv, vv = vktest.Rand(seed+5, c.m*c.r), vktest.Rand(seed+6, c.n*c.r)
		o.LowRank = vk.GemmLowRank{U: vktest.Tensor(t, d, vk.F32, uv, c.m, c.r), V: vktest.Tensor(t, d, vk.F32, vv, c.n, c.r),
			TransV: true, Alpha: 1.5}
		if c.p > 0 {
			o.LowRank.Seed = dropoutSeed(t, d, maskSeed)
			o.LowRank.P, o.LowRank.Salt = c.p, salt
		}
	}
	if c.workspace {
		n := vk.GemmWorkspaceSize(d, c.m, c.n, c.k, vk.GemmOpts{})
		if n == 0 {
			t.Fatalf("%v: GemmWorkspaceSize = 0, want a shape split-K would cut", c)
		}
		o.Workspace = vktest.Tensor(t, d, vk.F32, vktest.NaNs(n), n)
	}
	gemm := func(s *vk.Stream, cT vk.Tensor, o vk.GemmOpts) {
		if c.epilogue {
			vk.GemmLowRankEpilogue(s, cT, aT, bT, o)
		} else {
			vk.GemmKernels(s, cT, aT, bT, o, kernels, c.maxBinding, true)
		}
	}

	// Fused: C and E embedded in NaN guards.
	cWhole, cT := embedded(t, d, vk.F32, cv, 1, c.m, c.n)
	eWhole, eT := embedded(t, d, vk.F32, ev, 2, c.m, c.n)
	fused := o
	switch c.op {
	case "residual":
		fused.Residual = eT
	case "gelu":
		fused.Gelu = eT
	case "gelu_grad":
		fused.GeluGrad = eT
	}
	s := vktest.Stream(t, d)
	gemm(s, cT, fused)
	vktest.Run(t, s)
	got := vktest.Download(t, d, cWhole)
	gotE := vktest.Download(t, d, eWhole)
	name := "Gemm(" + c.String() + ")"
	checkGuard(t, name, got, 1, len(cv), func(int) bool { return true })
	checkGuard(t, name+" E", gotE, 2, len(ev), func(int) bool { return true })
	got, gotE = got[1:1+len(cv)], gotE[2:2+len(ev)]
	if c.workspace {
		checkGuard(t, name+" workspace", vktest.Download(t, d, o.Workspace), 0, 0, func(int) bool { return false })
	}
	if c.op != "gelu" {
		for i := range ev {
			if math.Float32bits(gotE[i]) != math.Float32bits(ev[i]) {
				t.Fatalf("%s: input E[%d] changed: %g, was %g", name, i, gotE[i], ev[i])
			}
		}
	}

	// Unfused: the same Gemm, then the op's own kernel over C.
	cT2 := vktest.Tensor(t, d, vk.F32, cv, c.m, c.n)
	eT2 := vktest.Tensor(t, d, vk.F32, ev, c.m, c.n)
	s2 := vktest.Stream(t, d)
	unsplit := o
	unsplit.Workspace = vk.Tensor{} // the op turns split-K off: the fused product is the unsplit one
	gemm(s2, cT2, unsplit)
	switch c.op {
	case "residual":
		vk.Add(s2, cT2, eT2, cT2)
	case "gelu":
		vk.Gelu(s2, eT2, cT2)
	case "gelu_grad":
		vk.GeluBackward(s2, cT2, cT2, eT2)
	}
	vktest.Run(t, s2)
	for _, r := range []struct {
		what      string
		got, want []float32
	}{{"C", got, vktest.Download(t, d, cT2)}, {"E", gotE, vktest.Download(t, d, eT2)}} {
		for i := range r.want {
			if math.Float32bits(r.got[i]) != math.Float32bits(r.want[i]) {
				t.Fatalf("%s: %s[%d,%d] = %v fused, %v unfused (Gemm then the op's kernel): want identical bits",
					name, r.what, i/c.n, i%c.n, r.got[i], r.want[i])
			}
		}
	}

	// Float64: v = α·op(A)·op(B) + β·C + bias + term, with its tolerance scale as TestGemmLowRank's, then
	// the op; a tolerance on v carries through the op scaled by |gelu'| ≤ 1.13 (and |gelu''| ≤ 0.8 does not
	// matter at these errors), plus the op's own few f32 ulp.
	alpha := float64(c.alpha)
	if alpha == 0 {
		alpha = 1
	}
	a64, b64 := vktest.F64(av), vktest.F64(bv)
	var bias64 []float64
	if c.bias {
		bias64 = vktest.F64(biasV)
	}
	v := vktest.F64(cv)
	c0 := append([]float64(nil), v...)
	ref.Gemm(v, a64, b64, c.m, c.n, c.k, c.transA, c.transB, alpha, float64(c.beta), bias64)
	scale := make([]float64, c.m*c.n)
	ref.Gemm(scale, abs(a64), abs(b64), c.m, c.n, c.k, c.transA, c.transB, math.Abs(alpha), 0, nil)
	if c.r > 0 {
		low, lowAbs := make([]float64, c.m*c.n), make([]float64, c.m*c.n)
		u64, v64 := vktest.F64(uv), vktest.F64(vv)
		ref.Gemm(low, u64, v64, c.m, c.n, c.r, false, true, 1.5, 0, nil)
		ref.Gemm(lowAbs, abs(u64), abs(v64), c.m, c.n, c.r, false, true, 1.5, 0, nil)
		for i := range v {
			if c.p == 0 || ref.DropoutKeep(maskSeed, salt, i, float64(c.p)) {
				ds := ref.DropoutScale(float64(c.p))
				v[i] += ds * low[i]
				scale[i] += ds * lowAbs[i]
			}
		}
	}
	for i := range v {
		if c.beta != 0 {
			scale[i] += math.Abs(float64(c.beta) * c0[i])
		}
		if c.bias {
			scale[i] += math.Abs(bias64[i%c.n])
		}
	}
	e64 := vktest.F64(ev)
	wantC, wantE := make([]float64, len(v)), make([]float64, len(v))
	tolC, tolE := make([]float64, len(v)), make([]float64, len(v))
	const ulps = 8 * 0x1p-24
	// Tensor cores (VJEPA_VK_COOPMAT=1 on a device with them) round A and B to f16, 2⁻¹¹ relative; the
	// scalar paths are f32.
	rtol := 1e-5
	if d.CoopMat() && c.dtB == vk.F16 && !c.epilogue {
		rtol = 2e-3
	}
	for i := range v {
		base := rtol*scale[i] + 1e-30
		switch c.op {
		case "residual":
			wantC[i], tolC[i] = v[i]+e64[i], base+ulps*math.Abs(e64[i])
		case "gelu":
			wantC[i], tolC[i] = v[i], base
			g := []float64{0}
			ref.Gelu(g, v[i:i+1])
			wantE[i], tolE[i] = g[0], 1.13*base+ulps*math.Abs(g[0])+1e-37
		case "gelu_grad":
			dx := []float64{0}
			ref.GeluBackward(dx, v[i:i+1], e64[i:i+1])
			wantC[i] = dx[0]
			tolC[i] = 1.13*base + ulps*math.Abs(dx[0]) + 1e-37
		}
	}
	check := func(what string, got []float32, want, tol []float64) {
		worst, worstRatio := -1, 1.0
		for i := range want {
			e := math.Abs(float64(got[i]) - want[i])
			if math.IsNaN(e) {
				e = math.Inf(1)
			}
			maxErr = math.Max(maxErr, e/tol[i])
			if e/tol[i] > worstRatio {
				worst, worstRatio = i, e/tol[i]
			}
		}
		if worst >= 0 {
			t.Fatalf("%s: %s[%d,%d] = %.8g, want %.8g (err %.3g > tol %.3g = %g·(Σ|α·a·b|+|β·c|+|bias|+|term|) through the op + 8 ulp)",
				name, what, worst/c.n, worst%c.n, got[worst], want[worst], math.Abs(float64(got[worst])-want[worst]), tol[worst], rtol)
		}
	}
	check("C", got, wantC, tolC)
	if c.op == "gelu" {
		check("E", gotE, wantE, tolE)
	}
	return maxErr
}
