package vk

import (
	"os"
	"runtime"

	"golang.org/x/sys/cpu"
)

// lavapipeWidthVar is Mesa's environment variable for llvmpipe's vector width in bits; lavapipe's
// subgroup size is that width over 32. Mesa reads it once per process, when the driver first starts.
const lavapipeWidthVar = "LP_NATIVE_VECTOR_WIDTH"

// requestWideLavapipe asks lavapipe for 512-bit vectors (subgroups of 16) on x86-64 CPUs with AVX-512
// (the x86-64-v4 set: F, VL, BW, DQ), unless the environment already sets the width. Mesa 22.3
// compiles for 256 bits even there, leaving half of each vector unit idle. With 512 the CPU GEMM
// kernel gains about half (2064×3072×1024 NT, f32: 65 → 100 GFLOP/s on a 2-core Zen 5, tile 16×3 against
// 8×3); the JIT takes longer to compile each pipeline (the demo's first run: 3.3 → 6.1 s of compiling,
// Mesa's shader cache keeps them after that). It must run before the Vulkan loader starts the driver:
// createInstance calls it first. LP_NATIVE_VECTOR_WIDTH=256 keeps Mesa's choice.
func requestWideLavapipe() {
	if runtime.GOARCH != "amd64" {
		return
	}
	if _, set := os.LookupEnv(lavapipeWidthVar); set {
		return
	}
	if !(cpu.X86.HasAVX512F && cpu.X86.HasAVX512VL && cpu.X86.HasAVX512BW && cpu.X86.HasAVX512DQ) {
		return
	}
	// os.Setenv also sets the C environment (cgo), which Mesa reads.
	_ = os.Setenv(lavapipeWidthVar, "512")
}
