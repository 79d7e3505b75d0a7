package vk

import "fmt"

type convertPush struct {
	N uint32
}

// Convert computes y = x converted to y's dtype, for x and y each f32, f16 or bf16 with the same element
// count: round to nearest even, f16 saturating at ±65504 (as F32ToF16), inf and NaN kept. Equal dtypes
// copy. Conversions from or to f16 and bf16 need 16-bit storage buffers (Device.Info.Storage16Bit); without
// them the stream fails with an error.
func Convert(s *Stream, y, x Tensor) { convert(s, y, x, s.elementChunk(4)) }

func convert(s *Stream, y, x Tensor, chunk int) {
	if y.Numel() != x.Numel() {
		panic(fmt.Sprintf("vk: convert: %v to %v: element counts differ", x, y))
	}
	for _, t := range []Tensor{y, x} {
		if t.DType != F32 && t.DType != F16 && t.DType != BF16 {
			panic(fmt.Sprintf("vk: convert: %v to %v: only f32, f16 and bf16 convert", x, y))
		}
	}
	name := "convert." + x.DType.String() + "_" + y.DType.String()
	if (x.DType != F32 || y.DType != F32) && !s.d.Info.Storage16Bit {
		s.fail(fmt.Errorf("vk: convert %v to %v: device %q has no 16-bit storage buffers", x, y, s.d.Info.Name))
		return
	}
	y, x = flatView(y), flatView(x)
	forChunks(y.Numel(), chunk, func(lo, n int) {
		s.dispatch(name, kernel{name, []uint32{local1D}}, convertPush{uint32(n)}, s.grid1D(n, local1D),
			out(y.Slice(lo, n)), in(x.Slice(lo, n)))
	})
}
