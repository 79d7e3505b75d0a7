package vk

// GemmWithLimits runs Gemm as if the device's binding range were maxBinding and, with coopmat false, on
// the scalar path only: tests reach the chunked path with small shapes and compare paths on one device.
func GemmWithLimits(s *Stream, c, a, b Tensor, o GemmOpts, maxBinding uint64, coopmat bool) {
	s.gemm(c, a, b, o, gemmEnv{maxBinding: maxBinding, coopmat: coopmat})
}

// GemmPushStructs returns the push-constant structs of gemm.go by shader module, for the layout check.
func GemmPushStructs() map[string]any {
	return map[string]any{"gemm": gemmPush{}, "gemm_reduce": gemmReducePush{}, "gemm.coopmat": gemmPush{}}
}
