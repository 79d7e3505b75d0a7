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

// adamCodeSentinel fills the bytes after a code view's n codes; the op must leave them alone.
const adamCodeSentinel = 0xa5

// adamGuardedCodes allocates a U8 [n] view at the start of a tensor with at least 16 more bytes, all
// following bytes set to adamCodeSentinel, and uploads codes into the view.
func adamGuardedCodes(t *testing.T, d *vk.Device, codes []uint8) (view, whole vk.Tensor) {
	n := len(codes)
	size := (n+3)/4*4 + 16
	v := make([]float32, size)
	for i := range v {
		v[i] = adamCodeSentinel
		if i < n {
			v[i] = float32(codes[i])
		}
	}
	whole = vktest.Tensor(t, d, vk.U8, v, size)
	return whole.Slice(0, n), whole
}

func adamDownloadCodes(t *testing.T, d *vk.Device, x vk.Tensor) []uint8 {
	t.Helper()
	b, err := d.ReadBytes(x)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// adam8bitTie reports whether codes got and want of value x (the reference's unquantized moment divided
// by its block absmax) may differ because x lies within float32 rounding of the midpoint between them.
// termsOverAbsmax is (|β·state| + |(1−β)·update term|)/absmax: the size of the terms whose f32 sum made
// x, which bounds its rounding error even when they cancel; the GPU's division and absmax add a few ulp.
func adam8bitTie(code []float64, got, want uint8, x, termsOverAbsmax float64) bool {
	if int(got)-int(want) != 1 && int(want)-int(got) != 1 {
		return false
	}
	mid := ref.QuantizeMidpoint(code, int(min(got, want)))
	return math.Abs(x-mid) <= 2e-6*(math.Abs(x)+termsOverAbsmax)
}

// TestAdamW8bit runs 5 replayed AdamW8bit steps and checks every step against the reference applied to
// the GPU's own state before that step, so that a code rounded the other way at a tie cannot snowball:
// p and the block scales must be close, and the codes equal, except at ties (adam8bitTie) where they
// may be one code apart; the number of ties is logged. Starting states are fresh (zero scales) and random
// codes under random scales. Bytes, scales and parameters past n must stay untouched.
func TestAdamW8bit(t *testing.T) {
	d := vktest.Device(t)
	qmapHost := vk.Adam8BitMaps()
	qmapRef := vktest.F64(qmapHost)
	qmap := vktest.Tensor(t, d, vk.F32, qmapHost, 512)
	for _, n := range adamSizes() {
		for _, init := range []string{"fresh", "random"} {
			for _, decay := range []bool{false, true} {
				if n > 1<<16 && (init == "fresh" || !decay) {
					continue // the large size is for scale; one configuration keeps it to seconds on lavapipe
				}
				t.Run(vktest.Name("n", n, "init", init, "decay", decay), func(t *testing.T) {
					nb := vk.Adam8BitBlocks(n)
					mq0, vq0 := make([]uint8, n), make([]uint8, n)
					ms0, vs0 := make([]float32, nb), make([]float32, nb)
					if init == "random" {
						rv := vktest.Rand(7, n)
						for i, r := range vktest.Rand(6, n) {
							mq0[i], vq0[i] = uint8(128+127*r), uint8(128+127*rv[i])
						}
						for b, r := range vktest.RandN(8, nb) {
							ms0[b], vs0[b] = 0.01*float32(math.Abs(float64(r))), 1e-4*r*r
						}
					}
					p0 := vktest.Rand(1, n)
					p, pWhole := adamGuarded(t, d, p0)
					mq, mqWhole := adamGuardedCodes(t, d, mq0)
					vq, vqWhole := adamGuardedCodes(t, d, vq0)
					ms, msWhole := adamGuarded(t, d, ms0)
					vs, vsWhole := adamGuarded(t, d, vs0)
					g := vktest.Tensor(t, d, vk.F32, nil, n)
					hyper := vktest.Tensor(t, d, vk.F32, nil, vk.AdamHyperLen)
					s := vktest.Stream(t, d)
					vk.AdamW8bit(s, p, mq, vq, ms, vs, g, hyper, qmap, decay)

					ties := 0
					var worst [3]float64
					for step := 1; step <= 5; step++ {
						// The GPU's state before this step is the reference's input.
						rp := vktest.F64(vktest.Download(t, d, p))
						rmq, rvq := adamDownloadCodes(t, d, mq), adamDownloadCodes(t, d, vq)
						rms, rvs := vktest.F64(vktest.Download(t, d, ms)), vktest.F64(vktest.Download(t, d, vs))
						gv := vktest.RandN(uint64(20+step), n)
						for i := range gv {
							gv[i] *= 2048 * 0.1 * float32(1+i%3) // a spread of magnitudes within each block
						}
						tStep := step
						if init == "random" {
							tStep += 10
						}
						h := adamSpecHyper(tStep, 1e-2, 1.0/2048)
						adamUpload(t, d, g, gv)
						adamUpload(t, d, hyper, h.Floats())
						vktest.Run(t, s)

						// The reference's unquantized new moments, for the tie analysis.
						mNew, vNew := make([]float64, n), make([]float64, n)
						ref.Dequantize8bit(mNew, rmq, rms, qmapRef[:256], vk.Adam8BitBlock)
						ref.Dequantize8bit(vNew, rvq, rvs, qmapRef[256:], vk.Adam8BitBlock)
						mOld, vOld := slices.Clone(mNew), slices.Clone(vNew)
						ref.AdamW(slices.Clone(rp), mNew, vNew, vktest.F64(gv), adamRefHyper(h), decay)
						ref.AdamW8bit(rp, rmq, rvq, rms, rvs, vktest.F64(gv), adamRefHyper(h), qmapRef, decay, vk.Adam8BitBlock)

						name := fmt.Sprintf("AdamW8bit(n=%d,init=%s,decay=%v) step %d", n, init, decay, step)
						// Same tolerances as TestAdamW: the update math is the same f32 code path.
						ep := vktest.Close(t, name+" p", vktest.Download(t, d, p), rp, 2e-6, 1e-6)
						// A scale is one f32 moment (a few roundings) of the block's largest element.
						ems := vktest.Close(t, name+" mScale", vktest.Download(t, d, ms), rms, 1e-6, 0)
						evs := vktest.Close(t, name+" vScale", vktest.Download(t, d, vs), rvs, 1e-6, 0)
						worst = [3]float64{max(worst[0], ep), max(worst[1], ems), max(worst[2], evs)}
						gmq, gvq := adamDownloadCodes(t, d, mq), adamDownloadCodes(t, d, vq)
						for i := range n {
							gs := float64(h.GradScale) * float64(gv[i])
							b := i / vk.Adam8BitBlock
							if gmq[i] != rmq[i] {
								x := mNew[i] / rms[b]
								terms := (0.9*math.Abs(mOld[i]) + 0.1*math.Abs(gs)) / rms[b]
								if !adam8bitTie(qmapRef[:256], gmq[i], rmq[i], x, terms) {
									t.Fatalf("%s: mq[%d] = %d, want %d (x = m/absmax = %.9g, codes %.9g, %.9g)",
										name, i, gmq[i], rmq[i], x, qmapRef[gmq[i]], qmapRef[rmq[i]])
								}
								ties++
							}
							if gvq[i] != rvq[i] {
								x := vNew[i] / rvs[b]
								terms := (0.999*vOld[i] + 0.001*gs*gs) / rvs[b]
								if !adam8bitTie(qmapRef[256:], gvq[i], rvq[i], x, terms) {
									t.Fatalf("%s: vq[%d] = %d, want %d (x = v/absmax = %.9g, codes %.9g, %.9g)",
										name, i, gvq[i], rvq[i], x, qmapRef[256+int(gvq[i])], qmapRef[256+int(rvq[i])])
								}
								ties++
							}
						}
						if t.Failed() {
							return
						}
					}
					t.Logf("5 steps: max abs err p %.2g, mScale %.2g, vScale %.2g; %d of %d codes one apart at a midpoint tie",
						worst[0], worst[1], worst[2], ties, 2*5*n)
					adamGuardIntact(t, d, "AdamW8bit p", pWhole, n)
					adamGuardIntact(t, d, "AdamW8bit mScale", msWhole, nb)
					adamGuardIntact(t, d, "AdamW8bit vScale", vsWhole, nb)
					for _, w := range []vk.Tensor{mqWhole, vqWhole} {
						for i, c := range adamDownloadCodes(t, d, w)[n:] {
							if c != adamCodeSentinel {
								t.Fatalf("AdamW8bit wrote code byte %d past its %d codes: %#x", n+i, n, c)
							}
						}
					}
				})
			}
		}
	}
}

// TestAdamW8bitTracksAdamW minimises the badly conditioned quadratic L(p) = ½·Σ a_i·(p_i − c_i)², with a
// spread over two decades, by 8-bit and by f32 AdamW from the same start, under a linearly decaying lr,
// and checks that both losses fall by orders of magnitude and stay close to each other all along.
func TestAdamW8bitTracksAdamW(t *testing.T) {
	d := vktest.Device(t)
	const n, steps = 4096, 200
	a, c := make([]float64, n), vktest.F64(vktest.RandN(1, n))
	for i, r := range vktest.Rand(2, n) {
		a[i] = math.Pow(10, float64(r)) // 0.1 … 10
	}
	loss := func(p []float32) float64 {
		l := 0.0
		for i := range p {
			l += 0.5 * a[i] * (float64(p[i]) - c[i]) * (float64(p[i]) - c[i])
		}
		return l
	}
	grad := func(p []float32) []float32 {
		g := make([]float32, n)
		for i := range g {
			g[i] = float32(a[i] * (float64(p[i]) - c[i]))
		}
		return g
	}
	zeros := make([]float32, n)
	p32 := vktest.Tensor(t, d, vk.F32, zeros, n)
	m32 := vktest.Tensor(t, d, vk.F32, zeros, n)
	v32 := vktest.Tensor(t, d, vk.F32, zeros, n)
	p8 := vktest.Tensor(t, d, vk.F32, zeros, n)
	mq := vktest.Tensor(t, d, vk.U8, zeros, n)
	vq := vktest.Tensor(t, d, vk.U8, zeros, n)
	nb := vk.Adam8BitBlocks(n)
	ms := vktest.Tensor(t, d, vk.F32, make([]float32, nb), nb)
	vs := vktest.Tensor(t, d, vk.F32, make([]float32, nb), nb)
	qmap := vktest.Tensor(t, d, vk.F32, vk.Adam8BitMaps(), 512)
	g32 := vktest.Tensor(t, d, vk.F32, nil, n)
	g8 := vktest.Tensor(t, d, vk.F32, nil, n)
	hyper := vktest.Tensor(t, d, vk.F32, nil, vk.AdamHyperLen)
	s := vktest.Stream(t, d)
	vk.AdamW(s, p32, m32, v32, g32, hyper, false)
	vk.AdamW8bit(s, p8, mq, vq, ms, vs, g8, hyper, qmap, false)

	l0 := loss(zeros)
	var l32, l8 float64
	for step := 1; step <= steps; step++ {
		h := adamSpecHyper(step, 0.1*(1-float32(step-1)/steps), 1)
		adamUpload(t, d, hyper, h.Floats())
		adamUpload(t, d, g32, grad(vktest.Download(t, d, p32)))
		adamUpload(t, d, g8, grad(vktest.Download(t, d, p8)))
		vktest.Run(t, s)
		l32, l8 = loss(vktest.Download(t, d, p32)), loss(vktest.Download(t, d, p8))
		if step%20 == 0 {
			t.Logf("step %3d: loss f32 %.4g, 8-bit %.4g (start %.4g)", step, l32, l8, l0)
		}
		// Early on both follow sign(g)·lr, so the gap is the quantization noise of the moments.
		if l8 > 1.25*l32+1e-3*l0 {
			t.Fatalf("step %d: 8-bit loss %.4g strays from f32 loss %.4g (start %.4g)", step, l8, l32, l0)
		}
	}
	if l32 > 1e-3*l0 || l8 > 1e-3*l0 {
		t.Errorf("after %d steps: loss f32 %.4g, 8-bit %.4g; want both below 1e-3 of the start %.4g", steps, l32, l8, l0)
	}
}

// TestAdam8BitStateBytes checks the documented memory of the 8-bit state, 2 bytes per parameter plus 8
// per block of 256, against the tensors it takes and against the 8 bytes per parameter of f32 AdamW.
func TestAdam8BitStateBytes(t *testing.T) {
	d := vktest.Device(t)
	for _, c := range []struct{ n, want int }{
		{1, 2 + 8}, {256, 512 + 8}, {257, 514 + 16}, {1000003, 2000006 + 8*3907},
	} {
		nb := vk.Adam8BitBlocks(c.n)
		var total uint64
		for _, x := range []vk.Tensor{
			vktest.Tensor(t, d, vk.U8, nil, c.n), vktest.Tensor(t, d, vk.U8, nil, c.n),
			vktest.Tensor(t, d, vk.F32, nil, nb), vktest.Tensor(t, d, vk.F32, nil, nb),
		} {
			total += x.Bytes()
		}
		if got := vk.Adam8BitStateBytes(c.n); got != c.want || uint64(got) != total {
			t.Errorf("Adam8BitStateBytes(%d) = %d, want %d (the four state tensors hold %d bytes)", c.n, got, c.want, total)
		}
	}
	if r := float64(vk.Adam8BitStateBytes(1<<20)) / (8 << 20); math.Abs(r-(2+8.0/256)/8) > 1e-12 {
		t.Errorf("8-bit / f32 state ratio = %g, want %g", r, (2+8.0/256)/8)
	}
}

func BenchmarkAdamW8bit(b *testing.B) {
	d := vktest.Device(b)
	qmap := vktest.Tensor(b, d, vk.F32, vk.Adam8BitMaps(), 512)
	for _, n := range []int{1 << 20, 1 << 24} {
		b.Run(vktest.Name("n", n), func(b *testing.B) {
			nb := vk.Adam8BitBlocks(n)
			p := vktest.Tensor(b, d, vk.F32, vktest.Rand(1, n), n)
			g := vktest.Tensor(b, d, vk.F32, vktest.RandN(2, n), n)
			mq := vktest.Tensor(b, d, vk.U8, make([]float32, n), n)
			vq := vktest.Tensor(b, d, vk.U8, make([]float32, n), n)
			ms := vktest.Tensor(b, d, vk.F32, make([]float32, nb), nb)
			vs := vktest.Tensor(b, d, vk.F32, make([]float32, nb), nb)
			hyper := vktest.Tensor(b, d, vk.F32, adamSpecHyper(1, 1e-4, 1).Floats(), vk.AdamHyperLen)
			s := vktest.Stream(b, d)
			vk.AdamW8bit(s, p, mq, vq, ms, vs, g, hyper, qmap, true)
			vktest.Run(b, s)
			b.ResetTimer()
			for range b.N {
				vktest.Run(b, s)
			}
			// Reads p, g, mq, vq (10 bytes per parameter) and writes p, mq, vq (6 bytes), plus two scales
			// read and written per block.
			bytes := float64(16*n + 16*nb)
			b.ReportMetric(bytes*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
		})
	}
}
