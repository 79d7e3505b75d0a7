package vk

// Tests of the optimizers' unexported layout and chunking. They live in package vk to reach adamwPush
// and the chunked dispatch, so they open their own validated device (vktest imports vk).

import (
	"reflect"
	"slices"
	"strings"
	"testing"
)

// TestAdamWLayout checks the push struct and the hyper buffer against both shaders' SPIR-V.
func TestAdamWLayout(t *testing.T) {
	hyperWant := make([]uint32, AdamHyperLen)
	for i := range hyperWant {
		hyperWant[i] = uint32(4 * i)
	}
	if n := reflect.TypeOf(AdamHyper{}).NumField(); n != AdamHyperLen || len(AdamHyper{}.Floats()) != n {
		t.Errorf("AdamHyper has %d fields and %d floats, AdamHyperLen %d", n, len(AdamHyper{}.Floats()), AdamHyperLen)
	}
	for _, c := range []struct {
		module       string
		hyperBinding int
	}{{"adamw", 4}, {"adamw8bit", 6}} {
		checkPushLayout(t, c.module, adamwPush{})
		var got []uint32
		for _, m := range spirvBlock(t, c.module, spirvStorageBuffer, c.hyperBinding) {
			got = append(got, uint32(m.offset))
		}
		if !slices.Equal(got, hyperWant) {
			t.Errorf("%s.spv hyper block (binding %d) offsets %v, want %v", c.module, c.hyperBinding, got, hyperWant)
		}
	}
}

// TestAdamWChunked checks the split into several dispatches used for tensors over maxStorageBufferRange:
// with the smallest chunk, both optimizers must produce bit for bit what one dispatch produces.
func TestAdamWChunked(t *testing.T) {
	d, err := Open(Options{Validate: true})
	if err != nil {
		t.Fatalf("open Vulkan device with validation: %v", err)
	}
	defer d.Close()
	const n = 3*adamChunkGranule + 1001 // a partial last chunk, block and code word
	tensor := func(dt DType, v []float32) Tensor {
		x, err := d.NewTensor(dt, len(v))
		if err != nil {
			t.Fatal(err)
		}
		if err := d.Upload(x, v); err != nil {
			t.Fatal(err)
		}
		return x
	}
	vals := func(seed, scale float32, m int) []float32 {
		v := make([]float32, m)
		for i := range v {
			x := float32(i)*0.618034 + seed
			v[i] = scale * (x - float32(int(x)) - 0.5)
		}
		return v
	}
	square := func(v []float32) []float32 {
		for i := range v {
			v[i] *= v[i]
		}
		return v
	}
	h := AdamHyper{LR: 1e-2, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.04, BC1: 0.19, BC2: 0.002, GradScale: 0.5}
	hyper := tensor(F32, h.Floats())
	g := tensor(F32, vals(0.3, 2, n))
	qmap := tensor(F32, Adam8BitMaps())
	nb := Adam8BitBlocks(n)
	var results [2][][]float32
	for run, chunk := range []int{adamChunkGranule, 1 << 30} {
		p, m := tensor(F32, vals(0.1, 1, n)), tensor(F32, vals(0.2, 0.01, n))
		v := tensor(F32, square(vals(0.4, 1e-2, n))) // second moments are ≥ 0
		p8 := tensor(F32, vals(0.1, 1, n))
		codes := vals(0.5, 255, n)
		for i := range codes {
			codes[i] = float32(int(codes[i] + 127.5))
		}
		mq, vq := tensor(U8, codes), tensor(U8, codes)
		ms, vs := tensor(F32, square(vals(0.6, 0.2, nb))), tensor(F32, square(vals(0.7, 2e-2, nb)))
		s, err := d.NewStream(false)
		if err != nil {
			t.Fatal(err)
		}
		adamW(s, p, m, v, g, hyper, true, chunk)
		adamW8bit(s, p8, mq, vq, ms, vs, g, hyper, qmap, true, chunk)
		if got, want := s.dispatches, 2*((n+chunk-1)/chunk); got != want {
			t.Errorf("chunk=%d: %d dispatches, want %d", chunk, got, want)
		}
		if err := s.Run(); err != nil {
			t.Fatal(err)
		}
		s.Destroy()
		for _, x := range []Tensor{p, m, v, p8, mq, vq, ms, vs} {
			got, err := d.Download(x)
			if err != nil {
				t.Fatal(err)
			}
			results[run] = append(results[run], got)
		}
	}
	names := []string{"AdamW p", "AdamW m", "AdamW v", "AdamW8bit p", "AdamW8bit mq", "AdamW8bit vq", "AdamW8bit mScale", "AdamW8bit vScale"}
	for i, name := range names {
		a, b := results[0][i], results[1][i]
		for j := range a {
			if a[j] != b[j] {
				t.Errorf("%s(n=%d) with chunk=%d: [%d] = %g, one dispatch gives %g", name, n, adamChunkGranule, j, a[j], b[j])
				break
			}
		}
	}
	if msgs := d.TakeMessages(); len(msgs) > 0 {
		t.Errorf("%d validation messages:\n%s", len(msgs), strings.Join(msgs, "\n"))
	}
}
