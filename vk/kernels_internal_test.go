package vk

import (
	"strings"
	"testing"
)

// TestChooseKernels checks the kernel variant picked for each kind of device and request: the CPU kernels
// by default only on CPU devices with what they need, forced ones checked, anything else an error naming
// the choices.
func TestChooseKernels(t *testing.T) {
	lavapipe := DeviceInfo{Name: "llvmpipe", Type: "cpu", SubgroupSize: 8, SubgroupOps: 0xbf, TexelBuffers: true, TexelAlignment: 16}
	gpu := lavapipe
	gpu.Name, gpu.Type, gpu.SubgroupSize = "gpu", "discrete", 32
	noTexel := lavapipe
	noTexel.TexelBuffers = false
	noShuffle := lavapipe
	noShuffle.SubgroupOps = 0x1
	for _, c := range []struct {
		name string
		info DeviceInfo
		want string
		got  string // "" with an error containing err
		err  string
	}{
		{"lavapipe default", lavapipe, "", KernelsCPU, ""},
		{"lavapipe forced gpu", lavapipe, "GPU", KernelsGPU, ""},
		{"gpu default", gpu, "", KernelsGPU, ""},
		{"gpu forced cpu", gpu, "cpu", "", "subgroup size 32"},
		{"no texel buffers", noTexel, "", KernelsGPU, ""},
		{"no texel buffers forced", noTexel, "cpu", "", "no storage texel buffers"},
		{"no shuffles forced", noShuffle, "cpu", "", "no subgroup shuffles"},
		{"unknown", lavapipe, "fast", "", `want "gpu", "cpu"`},
	} {
		got, err := chooseKernels(c.info, c.want)
		switch {
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("%s: chooseKernels(%q) = %q, %v; want an error containing %q", c.name, c.want, got, err, c.err)
		case c.err == "" && (err != nil || got != c.got):
			t.Errorf("%s: chooseKernels(%q) = %q, %v; want %q", c.name, c.want, got, err, c.got)
		}
	}
}
