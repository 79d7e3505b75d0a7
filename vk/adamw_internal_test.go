package vk

// Tests of the optimizers' unexported layout and chunking. They live in package vk to reach adamwPush
// and the chunked dispatch, so they open their own validated device (vktest imports vk).

import (
	"encoding/binary"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/vjepa-vk/vjepa-vk/shaders"
)

// spirvBlockOffsets returns the member offsets of the block a shader module declares in storage class
// class (9 push constant, 12 storage buffer), at descriptor binding binding for storage buffers.
func spirvBlockOffsets(t *testing.T, module string, class uint32, binding int) []uint32 {
	t.Helper()
	code, err := shaders.SPIRV(module)
	if err != nil {
		t.Fatal(err)
	}
	words := make([]uint32, len(code)/4)
	for i := range words {
		words[i] = binary.LittleEndian.Uint32(code[4*i:])
	}
	const (
		opTypeStruct, opTypePointer, opVariable, opDecorate, opMemberDecorate = 30, 32, 59, 71, 72
		decBinding, decOffset                                                 = 33, 35
	)
	bindings := map[uint32]int{}
	offsets := map[uint32]map[uint32]uint32{}
	members := map[uint32]int{}
	pointee := map[uint32]uint32{}
	var vars [][2]uint32 // pointer type, variable id
	for i := 5; i < len(words); {
		op, n := words[i]&0xffff, int(words[i]>>16)
		w := words[i : i+n]
		switch op {
		case opDecorate:
			if w[2] == decBinding {
				bindings[w[1]] = int(w[3])
			}
		case opMemberDecorate:
			if w[3] == decOffset {
				if offsets[w[1]] == nil {
					offsets[w[1]] = map[uint32]uint32{}
				}
				offsets[w[1]][w[2]] = w[4]
			}
		case opTypeStruct:
			members[w[1]] = n - 2
		case opTypePointer:
			if w[2] == class {
				pointee[w[1]] = w[3]
			}
		case opVariable:
			if w[3] == class {
				vars = append(vars, [2]uint32{w[1], w[2]})
			}
		}
		i += n
	}
	for _, v := range vars {
		if b, ok := bindings[v[1]]; class == 12 && (!ok || b != binding) {
			continue
		}
		st := pointee[v[0]]
		out := make([]uint32, members[st])
		for m := range out {
			out[m] = offsets[st][uint32(m)]
		}
		return out
	}
	t.Fatalf("%s.spv: no block in storage class %d at binding %d", module, class, binding)
	return nil
}

// goOffsets lists the byte offsets of a struct's fields, the layout encodePush writes.
func goOffsets(v any) []uint32 {
	ty := reflect.TypeOf(v)
	out := make([]uint32, ty.NumField())
	for i := range out {
		out[i] = uint32(ty.Field(i).Offset)
	}
	return out
}

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
		if got, want := spirvBlockOffsets(t, c.module, 9, 0), goOffsets(adamwPush{}); !slices.Equal(got, want) {
			t.Errorf("%s.spv push block offsets %v, adamwPush offsets %v", c.module, got, want)
		}
		if got := spirvBlockOffsets(t, c.module, 12, c.hyperBinding); !slices.Equal(got, hyperWant) {
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
