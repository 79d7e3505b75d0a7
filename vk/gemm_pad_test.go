package vk_test

import (
	"math"
	"testing"

	"github.com/vjepa-vk/vjepa-vk/vk"
	"github.com/vjepa-vk/vjepa-vk/vk/vktest"
)

// The CPU variant copies a B whose row stride is a multiple of 2 KiB into padded scratch before its
// kernel runs (gemm_pad.go). These tests give B such strides (512 f32 or 1024 f16/bf16 elements per row)
// on awkward shapes, check that the copy was made and that the results are exact.

// needCPUKernels skips t on a device without the CPU kernels.
func needCPUKernels(t *testing.T, d *vk.Device) {
	t.Helper()
	if why := vk.CPUKernelsMissing(d.Info); why != "" {
		t.Skip("no CPU kernels on this device: " + why)
	}
}

// paddedImpl is Gemm with B padded however small the product; *count receives the stream's padded
// operands after the call.
func paddedImpl(count *int) gemmImpl {
	return func(s *vk.Stream, c, a, b vk.Tensor, o vk.GemmOpts, maxBinding uint64) {
		vk.GemmPadded(s, c, a, b, o, maxBinding)
		*count = vk.PaddedOperands(s)
	}
}

// TestGemmPaddedB checks padded products against ref.Gemm (runGemmCase) over layouts, dtypes, m = 1, K
// not a multiple of the kernel's 8, batches (packed and gapped), split-K and chunks.
func TestGemmPaddedB(t *testing.T) {
	d := vktest.Device(t)
	needCPUKernels(t, d)
	cases := []gemmCase{
		{m: 1, n: 37, k: 512, transB: true},
		{m: 3, n: 512, k: 13},
		{m: 5, n: 512, k: 33, transA: true, alpha: 0.5, beta: 1, bias: true},
		{m: 6, n: 11, k: 512, transA: true, transB: true},
		{m: 20, n: 9, k: 1024, transB: true, dtA: vk.F32, dtB: vk.F16},
		{m: 20, n: 9, k: 1024, transB: true, dtA: vk.BF16, dtB: vk.BF16},
		{m: 17, n: 1024, k: 7, dtA: vk.F16, dtB: vk.BF16},
		{m: 9, n: 7, k: 512, batch: 3, transB: true},
		{m: 9, n: 7, k: 512, batch: 3, transB: true, padStride: true, beta: 0.25},
		{m: 4, n: 512, k: 10, batch: 2, padStride: true},
		{m: 8, n: 16, k: 2048, transB: true, splitK: 4, beta: 1},
		{m: 3, n: 128, k: 1024, transB: true, splitK: -1},
		{m: 40, n: 70, k: 512, transB: true, maxBinding: 64 << 10, bias: true},
		{m: 40, n: 512, k: 70, maxBinding: 64 << 10},
	}
	for _, c := range cases {
		if c.dtA == 0 && c.dtB == 0 {
			c.dtA, c.dtB = vk.F32, vk.F32
		}
		for _, aligned := range []bool{false, true} {
			if aligned && c.padStride {
				continue
			}
			c.aligned = aligned
			t.Run(c.String(), func(t *testing.T) {
				var padded int
				runGemmCase(t, d, c, paddedImpl(&padded))
				if padded == 0 {
					t.Fatalf("Gemm(%v): B was not padded", c)
				}
			})
		}
	}
}

// TestGemmPaddedEpilogues checks padded products with a low-rank term, an operand mask or an elementwise
// op against the same product unpadded, bit for bit: the copy changes where B's elements are, not the
// arithmetic. A B that the mask drops out is not padded (its mask hashes the stored offsets).
func TestGemmPaddedEpilogues(t *testing.T) {
	d := vktest.Device(t)
	needCPUKernels(t, d)
	seedT := dropoutSeed(t, d, 0x5eed)
	type epiCase struct {
		name              string
		m, n, k, r        int
		transA, transB    bool
		transV            bool
		maskA, maskB      bool
		lowMask           bool
		residual, gelu    bool
		wantPadded, chunk bool
	}
	var cases []epiCase
	for _, l := range [][2]bool{{false, true}, {false, false}, {true, false}} {
		m, n, k := 37, 21, 512 // B [21, 512]
		if !l[1] {
			m, n, k = 37, 512, 45 // B [45, 512]
		}
		cases = append(cases,
			epiCase{name: "lowrank", m: m, n: n, k: k, r: 3, transA: l[0], transB: l[1], wantPadded: true},
			epiCase{name: "lowrank_masked_transV", m: m, n: n, k: k, r: 16, transA: l[0], transB: l[1], transV: true, lowMask: true, wantPadded: true},
			epiCase{name: "maskA", m: m, n: n, k: k, transA: l[0], transB: l[1], maskA: true, wantPadded: true},
			epiCase{name: "maskB", m: m, n: n, k: k, transA: l[0], transB: l[1], maskB: true},
			epiCase{name: "residual", m: m, n: n, k: k, transA: l[0], transB: l[1], residual: true, wantPadded: true},
			epiCase{name: "gelu_lowrank", m: m, n: n, k: k, r: 4, transA: l[0], transB: l[1], gelu: true, wantPadded: true},
			epiCase{name: "gelu_chunked", m: m, n: n, k: k, transA: l[0], transB: l[1], gelu: true, chunk: true, wantPadded: true},
		)
	}
	for _, c := range cases {
		name := vktest.Name("op", c.name, "m", c.m, "n", c.n, "k", c.k, "layout", layout(c.transA, c.transB))
		t.Run(name, func(t *testing.T) {
			ar, ac, br, bc := storedShapes(c.m, c.n, c.k, c.transA, c.transB)
			seed := uint64(c.m*31 + c.n*7 + c.k + c.r)
			_, aT := embedded(t, d, vk.F32, vktest.RandN(seed, ar*ac), 3, ar, ac)
			_, bT := embedded(t, d, vk.F32, vktest.RandN(seed+1, br*bc), 5, br, bc)
			cv := vktest.Rand(seed+2, c.m*c.n)
			o := vk.GemmOpts{TransA: c.transA, TransB: c.transB, Beta: 0.5}
			if c.r > 0 {
				vr, vc := c.r, c.n
				if c.transV {
					vr, vc = c.n, c.r
				}
				o.LowRank = vk.GemmLowRank{U: vktest.Tensor(t, d, vk.F32, vktest.Rand(seed+3, c.m*c.r), c.m, c.r),
					V: vktest.Tensor(t, d, vk.F32, vktest.Rand(seed+4, vr*vc), vr, vc), TransV: c.transV, Alpha: 1.5}
				if c.lowMask {
					o.LowRank.Seed, o.LowRank.P, o.LowRank.Salt = seedT, 0.3, 5
				}
			}
			if c.maskA || c.maskB {
				o.Mask = vk.GemmMask{Seed: seedT, P: 0.25, Salt: 3, OnB: c.maskB}
			}
			ev := vktest.RandN(seed+5, c.m*c.n)
			var maxBinding uint64
			if c.chunk {
				maxBinding = 48 << 10
			}
			results := [2][]float32{}
			for i, pad := range []bool{false, true} {
				cT := vktest.Tensor(t, d, vk.F32, cv, c.m, c.n)
				eT := vktest.Tensor(t, d, vk.F32, ev, c.m, c.n)
				oi := o
				switch {
				case c.residual:
					oi.Residual = eT
				case c.gelu:
					oi.Gelu = eT
				}
				s := vktest.Stream(t, d)
				if pad {
					vk.GemmPadded(s, cT, aT, bT, oi, maxBinding)
				} else {
					vk.GemmKernels(s, cT, aT, bT, oi, vk.KernelsCPU, maxBinding, false)
				}
				vktest.Run(t, s)
				if got, want := vk.PaddedOperands(s) > 0, pad && c.wantPadded; got != want {
					t.Fatalf("padded %v (%d operands), want %v", got, vk.PaddedOperands(s), want)
				}
				results[i] = append(vktest.Download(t, d, cT), vktest.Download(t, d, eT)...)
			}
			for i, g := range results[1] {
				if math.Float32bits(g) != math.Float32bits(results[0][i]) {
					t.Fatalf("element %d (C then E) = %v padded, %v unpadded", i, g, results[0][i])
				}
			}
		})
	}
}

// TestGemmPadPolicy checks when Gemm pads on its own: on the CPU kernels for a product large enough
// (exact against ref.Gemm), not for one with few rows of C or an unaliased stride, never on the GPU
// kernels; and that Reset returns the scratch.
func TestGemmPadPolicy(t *testing.T) {
	d := vktest.Device(t)
	needCPUKernels(t, d)
	for _, c := range []struct {
		kernels string
		gemmCase
		want int
	}{
		{vk.KernelsCPU, gemmCase{m: 72, n: 64, k: 2048, transB: true}, 1},
		{vk.KernelsCPU, gemmCase{m: 72, n: 1024, k: 300, aligned: true}, 1},
		{vk.KernelsCPU, gemmCase{m: 16, n: 1024, k: 1200}, 0},             // few row tiles reuse B
		{vk.KernelsCPU, gemmCase{m: 72, n: 64, k: 2047, transB: true}, 0}, // stride not a multiple of 2 KiB
		{vk.KernelsCPU, gemmCase{m: 72, n: 96, k: 1536, transB: true}, 1}, // 6 KiB: a multiple of 2 KiB
		{vk.KernelsGPU, gemmCase{m: 72, n: 64, k: 2048, transB: true}, 0},
	} {
		c.dtA, c.dtB = vk.F32, vk.F32
		t.Run("kernels="+c.kernels+","+c.gemmCase.String(), func(t *testing.T) {
			var padded int
			runGemmCase(t, d, c.gemmCase, func(s *vk.Stream, cT, a, b vk.Tensor, o vk.GemmOpts, maxBinding uint64) {
				vk.GemmKernels(s, cT, a, b, o, c.kernels, maxBinding, false)
				padded = vk.PaddedOperands(s)
			})
			if padded != c.want {
				t.Fatalf("%d operands padded, want %d", padded, c.want)
			}
		})
	}

	t.Run("reset frees the scratch", func(t *testing.T) {
		a := vktest.Tensor(t, d, vk.F32, vktest.Rand(1, 72*2048), 72, 2048)
		b := vktest.Tensor(t, d, vk.F32, vktest.Rand(2, 64*2048), 64, 2048)
		c := vktest.Tensor(t, d, vk.F32, nil, 72, 64)
		s := vktest.Stream(t, d)
		before := d.Memory().Used
		vk.GemmKernels(s, c, a, b, vk.GemmOpts{TransB: true}, vk.KernelsCPU, 0, false)
		vktest.Run(t, s)
		if vk.PaddedOperands(s) != 1 || d.Memory().Used <= before {
			t.Fatalf("%d operands padded, memory %d → %d bytes: want B padded into new scratch", vk.PaddedOperands(s), before, d.Memory().Used)
		}
		if err := s.Reset(); err != nil {
			t.Fatal(err)
		}
		if d.Memory().Used != before {
			t.Fatalf("memory after Reset %d bytes, want %d", d.Memory().Used, before)
		}
	})
}
