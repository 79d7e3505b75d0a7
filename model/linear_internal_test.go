package model

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/vjepa-vk/vjepa-vk/vk"
	"github.com/vjepa-vk/vjepa-vk/vk/vktest"
)

// BenchmarkLoRALinear times one adapted linear's forward and backward (what a training step records per
// adapter), fp16 base weights, rank 16, on the predictor's layer shapes over 1032 tokens (4 frames of
// 258): without an adapter (the baseline), and with one along each LoRA path. The three recorded streams
// are replayed in turn each iteration and each reports its fastest replay, so that load on a shared
// machine hits all three alike: none-ms, thin-ms, fused-ms, and the adapter's own cost on each path,
// thin-lora-ms and fused-lora-ms (less none-ms).
func BenchmarkLoRALinear(b *testing.B) {
	d := vktest.Device(b)
	const rows, r = 1032, 16
	for _, sh := range []struct {
		name    string
		in, out int
	}{{"proj", 1024, 1024}, {"fc1", 1024, 4096}, {"fc2", 4096, 1024}} {
		for _, p := range []float32{0, 0.05} {
			b.Run(vktest.Name("layer", sh.name, "dropout", p), func(b *testing.B) {
				paths := []LoRAPath{"none", LoRAThin, LoRAFused}
				streams := make([]*vk.Stream, len(paths))
				for i, path := range paths {
					streams[i] = recordLinear(b, d, rows, sh.in, sh.out, r, p, path)
					vktest.Run(b, streams[i]) // pipelines built outside the timing
				}
				best := make([]float64, len(paths))
				b.ResetTimer()
				for range b.N {
					for i, s := range streams {
						start := time.Now()
						vktest.Run(b, s)
						if sec := time.Since(start).Seconds(); best[i] == 0 || sec < best[i] {
							best[i] = sec
						}
					}
				}
				for i, path := range paths {
					b.ReportMetric(best[i]*1e3, string(path)+"-ms")
					if i > 0 {
						b.ReportMetric((best[i]-best[0])*1e3, string(path)+"-lora-ms")
					}
				}
			})
		}
	}
}

// recordLinear records forward + backward of one linear with random weights, with an adapter along
// path ("none": without).
func recordLinear(b *testing.B, d *vk.Device, rows, in, out, r int, p float32, path LoRAPath) *vk.Stream {
	rng := rand.New(rand.NewPCG(1, 2))
	randT := func(dt vk.DType, shape ...int) vk.Tensor {
		n := 1
		for _, s := range shape {
			n *= s
		}
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(rng.NormFloat64() * 0.02)
		}
		return vktest.Tensor(b, d, dt, v, shape...)
	}
	l := &linear{name: "bench", in: in, out: out, w: randT(vk.F16, out, in), b: randT(vk.F32, out)}
	var drop dropout
	var t, dt vk.Tensor
	if path != "none" {
		var err error
		cfg := LoRAConfig{R: r, Alpha: 32, RSLoRA: true, Path: path}
		if l.lora, err = newLoRA(d, "bench", in, out, cfg, rng, vk.Tensor{}, vk.Tensor{}, 0, 0); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { l.lora.free(d) })
		l.thin = path == LoRAThin
		if err := d.Upload(l.lora.B, vktest.Rand(3, out*r)); err != nil {
			b.Fatal(err)
		}
		t, dt = randT(vk.F32, rows, r), randT(vk.F32, rows, r)
		if p > 0 {
			drop = dropout{on: true, p: p, seed: vktest.Tensor(b, d, vk.U32, []float32{5}, 1),
				scratch: randT(vk.F32, rows, max(in, out))}
		}
	}
	x, y := randT(vk.F32, rows, in), randT(vk.F32, rows, out)
	dx, dy := randT(vk.F32, rows, in), randT(vk.F32, rows, out)
	s := vktest.Stream(b, d)
	l.forward(s, y, x, t, drop, post{})
	l.backward(s, dx, dy, x, t, dt, false, drop, post{})
	return s
}
