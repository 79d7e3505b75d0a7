package vk_test

import (
	"fmt"
	"math"
	"testing"

	"github.com/vjepa-vk/vjepa-vk/vk"
	"github.com/vjepa-vk/vjepa-vk/vk/vktest"
)

// stridedRows returns v, rows of cols elements, laid out at row length ld with NaN in the padding (a
// kernel that read it would poison C).
func stridedRows(v []float32, rows, cols, ld int) []float32 {
	out := vktest.NaNs(rows * ld)
	for r := range rows {
		copy(out[r*ld:r*ld+cols], v[r*cols:(r+1)*cols])
	}
	return out
}

// TestGemmLdB checks B read at a row length of its own (GemmOpts.LdB) against the same product of the
// packed B, on every kernel variant: each layout of A and B, f32 and bf16 B, an odd row length (word
// reads), GemmLd's padded one (texel reads), a batch, the model's fused LoRA forward and dx products, and
// a product cut into chunks. At GemmLd's row length the CPU kernels read exactly what their own padded
// copy would hold, so there the results must agree bit for bit.
func TestGemmLdB(t *testing.T) {
	d := vktest.Device(t)
	type ldCase struct {
		m, n, k        int
		transA, transB bool
		dtB            vk.DType
		ld             int // 0: GemmLd's
		batch          int
		lowRank        bool
		maxBinding     uint64
	}
	var cases []ldCase
	for _, l := range [][2]bool{{false, false}, {false, true}, {true, false}, {true, true}} {
		for _, dt := range []vk.DType{vk.F32, vk.BF16} {
			w := 2048 / dt.Size() // rows 2 KiB apart: the CPU kernels' padded row length differs
			cases = append(cases,
				ldCase{m: 70, n: w, k: w, transA: l[0], transB: l[1], dtB: dt},
				ldCase{m: 37, n: 45, k: 29, transA: l[0], transB: l[1], dtB: dt, ld: 53},
				ldCase{m: 1, n: 1, k: 1, transA: l[0], transB: l[1], dtB: dt, ld: 3},
			)
		}
		cases = append(cases,
			ldCase{m: 33, n: 20, k: 19, transA: l[0], transB: l[1], dtB: vk.F32, ld: 23, batch: 3},
			ldCase{m: 300, n: 200, k: 150, transA: l[0], transB: l[1], dtB: vk.F32, ld: 211, maxBinding: 64 << 10},
		)
	}
	// The model's linears (W [out, in]): forward y = x·Wᵀ + LoRA, dx = dy·W + LoRA.
	cases = append(cases,
		ldCase{m: 258, n: 1536, k: 512, transB: true, dtB: vk.F32, lowRank: true},
		ldCase{m: 258, n: 512, k: 2048, dtB: vk.F32, lowRank: true},
		ldCase{m: 100, n: 1024, k: 1024, transB: true, dtB: vk.BF16, lowRank: true},
	)
	forKernels(t, d, func(t *testing.T, kernels string) {
		for _, c := range cases {
			name := vktest.Name("m", c.m, "n", c.n, "k", c.k, "layout", layout(c.transA, c.transB), "dtB", c.dtB.String(),
				"ld", c.ld, "batch", c.batch, "lowrank", c.lowRank, "maxBinding", c.maxBinding)
			t.Run(name, func(t *testing.T) {
				batch := max(c.batch, 1)
				ar, ac, br, bc := storedShapes(c.m, c.n, c.k, c.transA, c.transB)
				ld := c.ld
				if ld == 0 {
					ld = vk.GemmLd(d, c.dtB, bc)
					if kernels == vk.KernelsCPU && ld == bc {
						t.Fatalf("GemmLd(%s, %d) = %d on the CPU kernels, want a padded row length", c.dtB, bc, ld)
					}
				}
				seed := uint64(c.m*131 + c.n*7 + c.k)
				av := vktest.Rand(seed, batch*ar*ac)
				bv := rounded(c.dtB, vktest.Rand(seed+1, batch*br*bc))
				var bs []float32
				for i := range batch {
					bs = append(bs, stridedRows(bv[i*br*bc:(i+1)*br*bc], br, bc, ld)...)
				}
				shape := func(rows, cols int) []int {
					if c.batch > 0 {
						return []int{batch, rows, cols}
					}
					return []int{rows, cols}
				}
				a := vktest.Tensor(t, d, vk.F32, av, shape(ar, ac)...)
				packed := vktest.Tensor(t, d, c.dtB, bv, shape(br, bc)...)
				strided := vktest.Tensor(t, d, c.dtB, bs, shape(br, ld)...)
				o := vk.GemmOpts{TransA: c.transA, TransB: c.transB, Bias: vktest.Tensor(t, d, vk.F32, vktest.Rand(seed+2, c.n), c.n)}
				if c.lowRank {
					const r = 16
					o.LowRank = vk.GemmLowRank{U: vktest.Tensor(t, d, vk.F32, vktest.Rand(seed+3, c.m*r), c.m, r),
						V: vktest.Tensor(t, d, vk.F32, vktest.Rand(seed+4, c.n*r), c.n, r), TransV: true, Alpha: 2}
				}
				want := vktest.Tensor(t, d, vk.F32, nil, shape(c.m, c.n)...)
				got := vktest.Poisoned(t, d, vk.F32, shape(c.m, c.n)...)
				s := vktest.Stream(t, d)
				vk.GemmKernels(s, want, a, packed, o, kernels, c.maxBinding, false)
				o.LdB = ld
				vk.GemmKernels(s, got, a, strided, o, kernels, c.maxBinding, false)
				vktest.Run(t, s)
				w, g := vktest.Download(t, d, want), vktest.Download(t, d, got)
				exact := c.ld == 0 && kernels == vk.KernelsCPU
				for i := range w {
					e := math.Abs(float64(g[i] - w[i]))
					if math.IsNaN(float64(g[i])) || (exact && g[i] != w[i]) || e > 1e-5*math.Max(1, math.Abs(float64(w[i])))*float64(c.k) {
						t.Fatalf("C[%d] = %g with LdB %d, %g with B packed (bit for bit: %v)", i, g[i], ld, w[i], exact)
					}
				}
			})
		}
	})
}

// TestGemmLdBRefuses checks that a B whose last dim is not LdB, or whose rows are shorter than op(B)'s,
// panics with the shapes in the message.
func TestGemmLdBRefuses(t *testing.T) {
	d := vktest.Device(t)
	s := vktest.Stream(t, d)
	a := vktest.Tensor(t, d, vk.F32, nil, 4, 8)
	c := vktest.Tensor(t, d, vk.F32, nil, 4, 6)
	for _, tc := range []struct {
		b    vk.Tensor
		ldB  int
		want string
	}{
		{vktest.Tensor(t, d, vk.F32, nil, 6, 10), 12, "want B [rows, LdB]"},
		{vktest.Tensor(t, d, vk.F32, nil, 6, 7), 7, "at most 7 of op(B)'s 8"},
	} {
		func() {
			defer func() {
				r := recover()
				if r == nil || !containsAll(fmt.Sprint(r), tc.want, fmt.Sprint(tc.b.Shape)) {
					t.Errorf("Gemm with B %v, LdB %d: recovered %v, want a panic with %q", tc.b.Shape, tc.ldB, r, tc.want)
				}
			}()
			vk.Gemm(s, c, a, tc.b, vk.GemmOpts{TransB: true, LdB: tc.ldB})
		}()
	}
}
