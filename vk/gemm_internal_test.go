package vk

import "testing"

// TestGemmPushLayout checks each push struct of gemm.go against the push-constant block of its SPIR-V
// modules: same member count, offsets and sizes in order, and uint/int/float kinds member for member.
func TestGemmPushLayout(t *testing.T) {
	for module, push := range map[string]any{
		"gemm": gemmPush{}, "gemm_reduce": gemmReducePush{}, "gemm.coopmat": gemmPush{}, "gemm.coopmat.f32_f16": gemmPush{},
		"gemm.lowrank.elementwise": gemmPush{}, "gemm.coopmat.lowrank.elementwise.f32_f16": gemmPush{},
		"gemm.cpu": gemmPush{}, "gemm.cpu.lowrank": gemmPush{}, "gemm.cpu.lowrank.elementwise": gemmPush{}, "gemm.cpu.masked": gemmPush{},
	} {
		checkPushLayout(t, module, push)
	}
}
