package vk_test

import (
	"fmt"
	"math"
	"slices"
	"testing"

	"github.com/vjepa-vk/vjepa-vk/vk"
	"github.com/vjepa-vk/vjepa-vk/vk/ref"
	"github.com/vjepa-vk/vjepa-vk/vk/vktest"
)

// adamSpecHyper is step t of spec §10's optimizer (betas 0.9/0.999, eps 1e-8, weight decay 0.04) with the
// given lr and gradient scale.
func adamSpecHyper(t int, lr, gradScale float32) vk.AdamHyper {
	return vk.AdamHyper{LR: lr, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.04,
		BC1: float32(1 - math.Pow(0.9, float64(t))), BC2: float32(1 - math.Pow(0.999, float64(t))), GradScale: gradScale}
}

// adamRefHyper widens the very float32 values the shader reads.
func adamRefHyper(h vk.AdamHyper) ref.AdamHyper {
	return ref.AdamHyper{LR: float64(h.LR), Beta1: float64(h.Beta1), Beta2: float64(h.Beta2), Eps: float64(h.Eps),
		WeightDecay: float64(h.WeightDecay), BC1: float64(h.BC1), BC2: float64(h.BC2),
		GradScale: float64(h.GradScale), Skip: float64(h.Skip)}
}

// adamSizes are the element counts both optimizers are tested on: around the 256-wide workgroup and
// 8-bit block, a prime, and 1e6 (not a multiple of 4, so the last code word is partial) unless -short.
func adamSizes() []int {
	ns := []int{1, 3, 255, 256, 257, 1009}
	if !testing.Short() {
		ns = append(ns, 1000003)
	}
	return ns
}

// adamGuarded allocates an f32 [n] view at the start of an [n+16] tensor whose 16 trailing elements hold
// NaN, so that a write past n shows up in adamGuardIntact.
func adamGuarded(t *testing.T, d *vk.Device, v []float32) (view, whole vk.Tensor) {
	n := len(v)
	whole = vktest.Tensor(t, d, vk.F32, append(slices.Clone(v), vktest.NaNs(16)...), n+16)
	return whole.Slice(0, n), whole
}

func adamGuardIntact(t *testing.T, d *vk.Device, name string, whole vk.Tensor, n int) {
	t.Helper()
	for i, x := range vktest.Download(t, d, whole)[n:] {
		if !math.IsNaN(float64(x)) {
			t.Fatalf("%s wrote past its %d elements: [%d] = %g", name, n, n+i, x)
		}
	}
}

func TestAdamWHyperFloats(t *testing.T) {
	h := vk.AdamHyper{LR: 1, Beta1: 2, Beta2: 3, Eps: 4, WeightDecay: 5, BC1: 6, BC2: 7, GradScale: 8, Skip: 9}
	got := h.Floats()
	if len(got) != vk.AdamHyperLen || !slices.Equal(got, []float32{1, 2, 3, 4, 5, 6, 7, 8, 9}) {
		t.Errorf("AdamHyper.Floats() = %v, want [1 … 9] in field order (%d values)", got, vk.AdamHyperLen)
	}
}

// TestAdamW runs 5 recorded-once, replayed AdamW steps from a random state, rewriting the gradient and the
// hyper buffer between runs, and compares p, m, v after every step with the float64 reference run on the
// same inputs. The gradient is stored 2048× too large and carries GradScale 1/(2048·3), a loss scale and 3
// accumulation steps.
func TestAdamW(t *testing.T) {
	d := vktest.Device(t)
	for _, n := range adamSizes() {
		for _, decay := range []bool{false, true} {
			t.Run(vktest.Name("n", n, "decay", decay), func(t *testing.T) {
				p0, m0 := vktest.Rand(1, n), vktest.RandN(2, n)
				v0 := vktest.RandN(3, n)
				for i := range m0 {
					m0[i] *= 0.01
					v0[i] = v0[i] * v0[i] * 1e-4
				}
				p, pWhole := adamGuarded(t, d, p0)
				m, mWhole := adamGuarded(t, d, m0)
				v, vWhole := adamGuarded(t, d, v0)
				g := vktest.Tensor(t, d, vk.F32, nil, n)
				hyper := vktest.Tensor(t, d, vk.F32, nil, vk.AdamHyperLen)
				rp, rm, rv := vktest.F64(p0), vktest.F64(m0), vktest.F64(v0)

				s := vktest.Stream(t, d)
				vk.AdamW(s, p, m, v, g, hyper, decay)
				const gradScale = float32(1.0 / (2048 * 3))
				for step := 1; step <= 5; step++ {
					gv := vktest.RandN(uint64(10+step), n)
					for i := range gv {
						gv[i] *= 2048 * 0.1
					}
					h := adamSpecHyper(10+step, 1e-2, gradScale)
					adamUpload(t, d, g, gv)
					adamUpload(t, d, hyper, h.Floats())
					vktest.Run(t, s)
					ref.AdamW(rp, rm, rv, vktest.F64(gv), adamRefHyper(h), decay)

					// p: each step rounds p to f32 (6e-8 near 1) and adds lr·m̂/(sqrt(v̂)+eps), up to 0.05
					// where v̂ is small; m's cancellation error over sqrt(v̂) and the device's division and
					// sqrt (Vulkan allows 2.5-3 ulp) put up to ~1e-6 into it. m: β1·m and (1−β1)·ĝ reach 0.05 and may cancel, leaving a few ulp of 0.05
					// (4e-9) absolute. v: a sum of two positive terms, a few ulp relative.
					name := fmt.Sprintf("AdamW(n=%d,decay=%v) step %d", n, decay, step)
					ep := vktest.Close(t, name+" p", vktest.Download(t, d, p), rp, 2e-6, 1e-6)
					em := vktest.Close(t, name+" m", vktest.Download(t, d, m), rm, 1e-6, 1e-8)
					ev := vktest.Close(t, name+" v", vktest.Download(t, d, v), rv, 1e-6, 1e-12)
					if t.Failed() {
						return
					}
					if step == 5 {
						t.Logf("after 5 steps: max abs err p %.2g, m %.2g, v %.2g", ep, em, ev)
						vktest.Close(t, name+" g unchanged", vktest.Download(t, d, g), vktest.F64(gv), 0, 0)
					}
				}
				adamGuardIntact(t, d, "AdamW p", pWhole, n)
				adamGuardIntact(t, d, "AdamW m", mWhole, n)
				adamGuardIntact(t, d, "AdamW v", vWhole, n)
			})
		}
	}
}

// TestAdamWDecayOnly isolates the decay mask: with zero moments and a zero gradient Adam's step is 0, so p
// becomes p·(1 − lr·wd) with decay and stays p without.
func TestAdamWDecayOnly(t *testing.T) {
	d := vktest.Device(t)
	const n = 100
	for _, decay := range []bool{false, true} {
		p0 := vktest.Rand(5, n)
		p := vktest.Tensor(t, d, vk.F32, p0, n)
		m := vktest.Tensor(t, d, vk.F32, make([]float32, n), n)
		v := vktest.Tensor(t, d, vk.F32, make([]float32, n), n)
		g := vktest.Tensor(t, d, vk.F32, make([]float32, n), n)
		h := adamSpecHyper(1, 0.5, 1)
		hyper := vktest.Tensor(t, d, vk.F32, h.Floats(), vk.AdamHyperLen)
		s := vktest.Stream(t, d)
		vk.AdamW(s, p, m, v, g, hyper, decay)
		vktest.Run(t, s)
		want := vktest.F64(p0)
		if decay {
			for i := range want {
				want[i] = float64(p0[i] * (1 - h.LR*h.WeightDecay))
			}
		}
		vktest.Close(t, fmt.Sprintf("AdamW(decay=%v, g=0) p", decay), vktest.Download(t, d, p), want, 0, 0)
	}
}

// TestAdamWSkip checks that Skip = 1 leaves p, m, v bit for bit unchanged, in both optimizers.
func TestAdamWSkip(t *testing.T) {
	d := vktest.Device(t)
	const n = 1000
	p0, m0, g0 := vktest.Rand(1, n), vktest.Rand(2, n), vktest.Rand(3, n)
	p := vktest.Tensor(t, d, vk.F32, p0, n)
	m := vktest.Tensor(t, d, vk.F32, m0, n)
	v := vktest.Tensor(t, d, vk.F32, g0, n)
	g := vktest.Tensor(t, d, vk.F32, g0, n)
	p8 := vktest.Tensor(t, d, vk.F32, p0, n)
	codes := make([]float32, n)
	for i := range codes {
		codes[i] = float32(i % 256)
	}
	mq := vktest.Tensor(t, d, vk.U8, codes, n)
	vq := vktest.Tensor(t, d, vk.U8, codes, n)
	nb := vk.Adam8BitBlocks(n)
	ms := vktest.Tensor(t, d, vk.F32, vktest.Rand(4, nb), nb)
	vs := vktest.Tensor(t, d, vk.F32, vktest.Rand(5, nb), nb)
	qmap := vktest.Tensor(t, d, vk.F32, vk.Adam8BitMaps(), 512)
	h := adamSpecHyper(2, 1e-2, 1)
	h.Skip = 1
	hyper := vktest.Tensor(t, d, vk.F32, h.Floats(), vk.AdamHyperLen)
	s := vktest.Stream(t, d)
	vk.AdamW(s, p, m, v, g, hyper, true)
	vk.AdamW8bit(s, p8, mq, vq, ms, vs, g, hyper, qmap, true)
	vktest.Run(t, s)
	for _, c := range []struct {
		name string
		x    vk.Tensor
		want []float32
	}{
		{"AdamW p", p, p0}, {"AdamW m", m, m0}, {"AdamW v", v, g0}, {"AdamW8bit p", p8, p0},
		{"AdamW8bit mq", mq, codes}, {"AdamW8bit vq", vq, codes},
		{"AdamW8bit mScale", ms, vktest.Rand(4, nb)}, {"AdamW8bit vScale", vs, vktest.Rand(5, nb)},
	} {
		vktest.Close(t, c.name+" with skip=1", vktest.Download(t, d, c.x), vktest.F64(c.want), 0, 0)
	}
}

func adamUpload(t *testing.T, d *vk.Device, x vk.Tensor, v []float32) {
	t.Helper()
	if err := d.Upload(x, v); err != nil {
		t.Fatal(err)
	}
}

func BenchmarkAdamW(b *testing.B) {
	d := vktest.Device(b)
	for _, n := range []int{1 << 20, 1 << 24} {
		b.Run(vktest.Name("n", n), func(b *testing.B) {
			p := vktest.Tensor(b, d, vk.F32, vktest.Rand(1, n), n)
			m := vktest.Tensor(b, d, vk.F32, make([]float32, n), n)
			v := vktest.Tensor(b, d, vk.F32, make([]float32, n), n)
			g := vktest.Tensor(b, d, vk.F32, vktest.RandN(2, n), n)
			hyper := vktest.Tensor(b, d, vk.F32, adamSpecHyper(1, 1e-4, 1).Floats(), vk.AdamHyperLen)
			s := vktest.Stream(b, d)
			vk.AdamW(s, p, m, v, g, hyper, true)
			vktest.Run(b, s)
			b.ResetTimer()
			for range b.N {
				vktest.Run(b, s)
			}
			// Reads p, m, v, g and writes p, m, v: 28 bytes per parameter.
			b.ReportMetric(float64(28*n)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
		})
	}
}
