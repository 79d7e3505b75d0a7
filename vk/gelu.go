package vk

// geluPush is the push block of gelu.comp and gelu_backward.comp.
type geluPush struct {
	N uint32
}

// Gelu computes y = gelu(x) = 0.5·x·(1 + erf(x/√2)) elementwise, the exact (erf, not tanh) GELU of spec
// §2.1, to a few float32 ulp (erf is evaluated through erfc in the left tail, see shaders/gelu.glsl).
// y and x are f32 of one shape and may be the same tensor (GeluBackward then has no input left).
func Gelu(s *Stream, y, x Tensor) { gelu(s, y, x, s.elementChunk(4)) }

func gelu(s *Stream, y, x Tensor, chunk int) {
	SameShape("gelu y vs x", y, x)
	checkF32("gelu", y, x)
	y, x = flatView(y), flatView(x)
	forChunks(y.Numel(), chunk, func(lo, n int) {
		s.dispatch("gelu", kernel{"gelu", []uint32{local1D}}, geluPush{uint32(n)}, s.grid1D(n, local1D),
			out(y.Slice(lo, n)), in(x.Slice(lo, n)))
	})
}

// GeluBackward computes dx = dy·gelu'(x) (overwritten), gelu'(x) = Φ(x) + x·φ(x) with Φ the standard normal
// CDF and φ its density; x is the forward input. dx, dy, x are f32 of one shape; dx may be dy.
func GeluBackward(s *Stream, dx, dy, x Tensor) { geluBackward(s, dx, dy, x, s.elementChunk(4)) }

func geluBackward(s *Stream, dx, dy, x Tensor, chunk int) {
	SameShape("gelu backward dx vs dy", dx, dy)
	SameShape("gelu backward dx vs x", dx, x)
	checkF32("gelu backward", dx, dy, x)
	dx, dy, x = flatView(dx), flatView(dy), flatView(x)
	forChunks(dx.Numel(), chunk, func(lo, n int) {
		s.dispatch("gelu_backward", kernel{"gelu_backward", []uint32{local1D}}, geluPush{uint32(n)}, s.grid1D(n, local1D),
			out(dx.Slice(lo, n)), in(dy.Slice(lo, n)), in(x.Slice(lo, n)))
	})
}
