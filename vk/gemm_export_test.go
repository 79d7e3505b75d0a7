package vk

// GemmWithLimits runs Gemm as if the device's binding range were maxBinding and, with coopmat false, on
// the scalar path only: tests reach the chunked path with small shapes and compare paths on one device.
func GemmWithLimits(s *Stream, c, a, b Tensor, o GemmOpts, maxBinding uint64, coopmat bool) {
	s.gemm(c, a, b, o, gemmEnv{maxBinding: maxBinding, coopmat: coopmat})
}

// GemmLowRankEpilogue runs a Gemm with an f16 B and a low-rank term on the scalar variant that adds the
// term per element in storeC, the code the cooperative-matrix variant uses for it.
func GemmLowRankEpilogue(s *Stream, c, a, b Tensor, o GemmOpts) {
	s.gemm(c, a, b, o, gemmEnv{maxBinding: s.d.MaxBinding(), lowRankEpilogue: true})
}
