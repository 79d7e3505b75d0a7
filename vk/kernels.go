package vk

import (
	"fmt"
	"strings"
)

// Kernel variants. The GEMM and attention kernels come in two shapes, chosen once per device:
//
//   - "gpu": shared-memory tiles staged by workgroups of 64 to 256 invocations between barriers (and, where
//     enabled, tensor cores): what GPUs are built for; runs on every device.
//   - "cpu": for CPU drivers (lavapipe), which run a workgroup as one host-thread task with its
//     invocations as the lanes of one SIMD vector: one subgroup per workgroup, the tile in registers, no
//     shared memory and no barrier, operands read as 16-byte texels (texel.go) and broadcast across lanes
//     with subgroup shuffles. About 4× the GEMM throughput of the "gpu" kernels on lavapipe.
//
// Open picks "cpu" for devices of type CPU that have what it needs (storage texel buffers, subgroup
// shuffles, 4 to 16 lanes) and "gpu" otherwise; Options.Kernels or VJEPA_VK_KERNELS=gpu|cpu forces one.
const (
	KernelsGPU = "gpu"
	KernelsCPU = "cpu"
)

// subgroupShuffleBit is VK_SUBGROUP_FEATURE_SHUFFLE_BIT.
const subgroupShuffleBit = 0x10

// CPUKernelsMissing reports what a device lacks to run the "cpu" kernels, or "" when it can.
func CPUKernelsMissing(info DeviceInfo) string {
	sg := info.SubgroupSize
	switch {
	case !info.TexelBuffers:
		return "no storage texel buffers of R32G32B32A32_UINT"
	case info.SubgroupOps&subgroupShuffleBit == 0:
		return "no subgroup shuffles"
	case sg < 4 || sg > 16 || sg&(sg-1) != 0:
		return fmt.Sprintf("subgroup size %d, want 4, 8 or 16", sg)
	case info.TexelAlignment == 0 || 16%info.TexelAlignment != 0:
		return fmt.Sprintf("texel-view alignment %d, want a divisor of 16", info.TexelAlignment)
	}
	return ""
}

// chooseKernels returns the kernel variant for a device: want ("gpu", "cpu", or "" for the device's
// default), checked against what the device has.
func chooseKernels(info DeviceInfo, want string) (string, error) {
	switch strings.ToLower(want) {
	case "":
		if info.Type == "cpu" && CPUKernelsMissing(info) == "" {
			return KernelsCPU, nil
		}
		return KernelsGPU, nil
	case KernelsGPU:
		return KernelsGPU, nil
	case KernelsCPU:
		if why := CPUKernelsMissing(info); why != "" {
			return "", fmt.Errorf("vk: kernels %q on %s: %s", want, info.Name, why)
		}
		return KernelsCPU, nil
	}
	return "", fmt.Errorf("vk: kernels %q: want %q, %q or empty (the device's default)", want, KernelsGPU, KernelsCPU)
}

// Kernels returns the device's kernel variant, KernelsGPU or KernelsCPU.
func (d *Device) Kernels() string { return d.kernels }
