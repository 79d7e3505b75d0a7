package vk

import (
	"os"
	"runtime"

	"golang.org/x/sys/cpu"
)

// lavapipeWidthVar is Mesa's environment variable for llvmpipe's vector width in bits; lavapipe's
// subgroup size is that width over 32. Mesa reads it once per process, when the driver first starts.
const lavapipeWidthVar = "LP_NATIVE_VECTOR_WIDTH"

// requestWideLavapipe asks lavapipe for 512-bit vectors (subgroups of 16) where wideLavapipeCPU holds,
// unless the environment already sets the width. Mesa 22.3 compiles for 256 bits even there, leaving half
// of each vector unit idle. Measured on a 2-core Zen 5: the CPU GEMM at 2064×3072×1024 NT, f32, 61–62 →
// 99–102 GFLOP/s (16×3 tiles and the output reads of gemm_cpu.glsl included); the JIT takes longer per
// pipeline (the demo with Mesa's shader cache off: 10.5 → 13.5 s; with it warm: 7.2 and 7.4 s). It must
// run before the Vulkan loader starts the driver: createInstance calls it first.
// LP_NATIVE_VECTOR_WIDTH=256 keeps Mesa's choice.
func requestWideLavapipe() {
	if _, set := os.LookupEnv(lavapipeWidthVar); set || !wideLavapipeCPU() {
		return
	}
	// os.Setenv also sets the C environment (cgo), which Mesa reads.
	_ = os.Setenv(lavapipeWidthVar, "512")
}

// wideLavapipeCPU reports whether this is an x86-64 CPU with AVX-512 F, VL, BW and DQ (the x86-64-v4
// set), where requestWideLavapipe asks for 512-bit vectors.
func wideLavapipeCPU() bool {
	return runtime.GOARCH == "amd64" && cpu.X86.HasAVX512F && cpu.X86.HasAVX512VL && cpu.X86.HasAVX512BW && cpu.X86.HasAVX512DQ
}
