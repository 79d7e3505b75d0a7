package vk

// GemmWithLimits runs Gemm as if the device's binding range were maxBinding and, with coopmat false, on
// the scalar path only: tests reach the chunked path with small shapes and compare paths on one device.
func GemmWithLimits(s *Stream, c, a, b Tensor, o GemmOpts, maxBinding uint64, coopmat bool) {
	s.gemm(c, a, b, o, gemmEnv{maxBinding: maxBinding, coopmat: coopmat})
}
