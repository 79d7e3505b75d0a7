package vk

import "math"

type fillPush struct {
	N    uint32
	Bits uint32
}

// Fill sets every element of y (f32, u32 or i32) to value: y[i] = value. For f16/bf16 tensors value
// must be 0 (a zero fill of two halves per word).
func Fill(s *Stream, y Tensor, value float32) {
	words := int(y.Bytes() / 4)
	bits := math.Float32bits(value)
	switch y.DType {
	case U32:
		bits = uint32(value)
	case I32:
		bits = uint32(int32(value))
	case F16, BF16, U8:
		if value != 0 {
			panic("vk: Fill of " + y.String() + " supports only 0")
		}
		if y.Bytes()%4 != 0 {
			panic("vk: Fill of " + y.String() + ": byte size not a multiple of 4")
		}
	}
	s.dispatch("fill", kernel{"fill", []uint32{local1D}}, fillPush{uint32(words), bits}, s.grid1D(words, local1D), out(y))
}

// Zero sets every byte of y to zero.
func Zero(s *Stream, y Tensor) { Fill(s, y, 0) }
