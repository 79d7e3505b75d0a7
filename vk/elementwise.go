package vk

import "fmt"

// Elementwise f32 ops: Add, Axpy, Scale. Like every op in this package they allocate nothing; a tensor over
// the device's maxStorageBufferRange is processed in several dispatches over aligned element ranges.

type addPush struct {
	N uint32
}

type axpyPush struct {
	N     uint32
	Alpha float32
}

type scalePush struct {
	N     uint32
	Alpha float32
}

// elementGranule keeps every chunk of a split elementwise dispatch aligned: a multiple of 65536 elements
// puts each chunk's view at a multiple of 128 KiB even for 2-byte elements, above any device's
// minStorageBufferOffsetAlignment, and is a multiple of reducePartial.
const elementGranule = 1 << 16

// elementChunk is the most elements of elemBytes bytes one dispatch binds so that each binding stays
// within the device's maxStorageBufferRange.
func (s *Stream) elementChunk(elemBytes int) int {
	return max(int(s.d.MaxBinding()/uint64(elemBytes))/elementGranule*elementGranule, elementGranule)
}

// forChunks calls fn(lo, n) for consecutive ranges [lo, lo+n) of at most chunk elements covering
// [0, total).
func forChunks(total, chunk int, fn func(lo, n int)) {
	for lo := 0; lo < total; lo += chunk {
		fn(lo, min(chunk, total-lo))
	}
}

// flatView returns t as a 1-D view of its elements.
func flatView(t Tensor) Tensor { return t.Reshape(t.Numel()) }

// checkF32 panics unless every tensor is f32.
func checkF32(op string, ts ...Tensor) {
	for _, t := range ts {
		if t.DType != F32 {
			panic(fmt.Sprintf("vk: %s: tensor %v, want dtype f32", op, t))
		}
	}
}

// Add computes y = a + b elementwise. y, a, b are f32 of one shape; any of them may be the same tensor.
func Add(s *Stream, y, a, b Tensor) { add(s, y, a, b, s.elementChunk(4)) }

func add(s *Stream, y, a, b Tensor, chunk int) {
	SameShape("add y vs a", y, a)
	SameShape("add y vs b", y, b)
	checkF32("add", y, a, b)
	y, a, b = flatView(y), flatView(a), flatView(b)
	forChunks(y.Numel(), chunk, func(lo, n int) {
		s.dispatch("add", kernel{"add", []uint32{local1D}}, addPush{uint32(n)}, s.grid1D(n, local1D),
			out(y.Slice(lo, n)), in(a.Slice(lo, n)), in(b.Slice(lo, n)))
	})
}

// Axpy computes y += alpha·x elementwise. y and x are f32 of one shape (the same tensor gives y·(1+alpha)).
func Axpy(s *Stream, y, x Tensor, alpha float32) { axpy(s, y, x, alpha, s.elementChunk(4)) }

func axpy(s *Stream, y, x Tensor, alpha float32, chunk int) {
	SameShape("axpy y vs x", y, x)
	checkF32("axpy", y, x)
	y, x = flatView(y), flatView(x)
	forChunks(y.Numel(), chunk, func(lo, n int) {
		s.dispatch("axpy", kernel{"axpy", []uint32{local1D}}, axpyPush{uint32(n), alpha}, s.grid1D(n, local1D),
			out(y.Slice(lo, n)), in(x.Slice(lo, n)))
	})
}

// Scale computes y = alpha·x elementwise (alpha = 1 copies). y and x are f32 of one shape and may be the
// same tensor.
func Scale(s *Stream, y, x Tensor, alpha float32) { scale(s, y, x, alpha, s.elementChunk(4)) }

func scale(s *Stream, y, x Tensor, alpha float32, chunk int) {
	SameShape("scale y vs x", y, x)
	checkF32("scale", y, x)
	y, x = flatView(y), flatView(x)
	forChunks(y.Numel(), chunk, func(lo, n int) {
		s.dispatch("scale", kernel{"scale", []uint32{local1D}}, scalePush{uint32(n), alpha}, s.grid1D(n, local1D),
			out(y.Slice(lo, n)), in(x.Slice(lo, n)))
	})
}
