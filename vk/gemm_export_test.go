package vk

// GemmKernels runs Gemm on the given kernel variant (KernelsGPU or KernelsCPU) as if the device's binding
// range were maxBinding (0: the device's), so that tests run every variant a device has and reach the
// chunked path with small shapes; coopmat allows the tensor-core path of the GPU kernels where the device
// has it.
func GemmKernels(s *Stream, c, a, b Tensor, o GemmOpts, kernels string, maxBinding uint64, coopmat bool) {
	if maxBinding == 0 {
		maxBinding = s.d.MaxBinding()
	}
	s.gemm(c, a, b, o, gemmEnv{maxBinding: maxBinding, coopmat: coopmat && kernels == KernelsGPU, cpu: kernels == KernelsCPU})
}

// GemmLowRankEpilogue runs a Gemm with an f16 B and a low-rank term on the scalar variant that adds the
// term per element in storeC, the code the cooperative-matrix variant uses for it.
func GemmLowRankEpilogue(s *Stream, c, a, b Tensor, o GemmOpts) {
	s.gemm(c, a, b, o, gemmEnv{maxBinding: s.d.MaxBinding(), lowRankEpilogue: true})
}

// GemmPadded runs Gemm on the CPU kernels with every B whose row stride aliases padded however small the
// product (gemm_pad.go), as if the binding range were maxBinding (0: the device's).
func GemmPadded(s *Stream, c, a, b Tensor, o GemmOpts, maxBinding uint64) {
	if maxBinding == 0 {
		maxBinding = s.d.MaxBinding()
	}
	s.gemm(c, a, b, o, gemmEnv{maxBinding: maxBinding, cpu: true, padAlways: true})
}

// PaddedOperands returns how many GEMM operands the stream's recording copied into padded scratch.
func PaddedOperands(s *Stream) int { return s.padded }
