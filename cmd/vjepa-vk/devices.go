package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/pflag"

	"github.com/vjepa-vk/vjepa-vk/dist"
	"github.com/vjepa-vk/vjepa-vk/vk"
)

// runDevices lists every Vulkan device with the limits and features vjepa-vk uses, marking the one Open
// would pick (VJEPA_VK_DEVICE overrides), and the MPI libraries multi-GPU training can load.
func runDevices(ctx context.Context, args []string) error {
	fs := pflag.NewFlagSet("devices", pflag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	infos, err := vk.ListDevices()
	if err != nil {
		return err
	}
	d, err := vk.Open(vk.Options{})
	if err != nil {
		return err
	}
	chosen, coop, kernels := d.Info.Index, d.CoopMat(), d.Kernels()
	d.Close()
	mpi := dist.Probe()
	if *asJSON {
		return writeDevicesJSON(os.Stdout, chosen, infos, mpi)
	}
	for _, in := range infos {
		mark := " "
		if in.Index == chosen {
			mark = "*"
		}
		fmt.Printf("%s %d: %s (%s, Vulkan %s, vendor %#04x device %#04x)\n", mark, in.Index, in.Name, in.Type, in.APIVersion, in.VendorID, in.DeviceID)
		fmt.Printf("    memory %.1f GiB device-local, max binding %d MiB, offset alignment %d B\n",
			float64(in.DeviceLocalBytes)/(1<<30), in.MaxStorageRange>>20, in.StorageAlignment)
		fmt.Printf("    shared memory %d KiB, push constants %d B, workgroup ≤ %d invocations, groups ≤ %v\n",
			in.SharedMemory>>10, in.MaxPushConstants, in.MaxWorkgroupInvoc, in.MaxWorkgroupCount)
		fmt.Printf("    subgroup %d (size control %v: %d..%d)\n", in.SubgroupSize, in.SubgroupSizeControl, in.MinSubgroupSize, in.MaxSubgroupSize)
		fmt.Printf("    fp16 arithmetic %v, 16-bit storage %v, 8-bit storage %v\n", in.ShaderFloat16, in.Storage16Bit, in.Storage8Bit)
		if in.CoopMat {
			var shapes []string
			for _, s := range in.CoopMatShapes {
				shapes = append(shapes, fmt.Sprintf("%dx%dx%d %s·%s+%s", s.M, s.N, s.K, s.AType, s.BType, s.CType))
			}
			fmt.Printf("    NV cooperative matrix: %s\n", strings.Join(shapes, ", "))
			if in.Index == chosen && !coop {
				fmt.Printf("    (tensor-core GEMM is opt-in: VJEPA_VK_COOPMAT=1)\n")
			}
		} else {
			fmt.Printf("    NV cooperative matrix: no (scalar GEMM path)\n")
		}
		fmt.Printf("    GEMM and attention kernels: %s\n", kernelsLine(in, chosen, kernels))
	}
	fmt.Println("(* = the device vjepa-vk uses; set VJEPA_VK_DEVICE=<index|name> to choose another)")
	if len(mpi) == 0 {
		fmt.Println("MPI: none found; multi-GPU training (mpirun -np N vjepa-vk train) needs Open MPI or MPICH (apt-get install openmpi-bin)")
		return nil
	}
	var libs []string
	for _, l := range mpi {
		libs = append(libs, fmt.Sprintf("%s (%s)", l.Version, l.Soname))
	}
	fmt.Printf("MPI: %s; multi-GPU training: mpirun -np N vjepa-vk train\n", strings.Join(libs, ", "))
	return nil
}

// writeDevicesJSON prints the device list as one JSON object, keys in snake_case like every other
// command's JSON.
func writeDevicesJSON(w io.Writer, chosen int, infos []vk.DeviceInfo, mpi []dist.Library) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(struct {
		Chosen  int             `json:"chosen"`
		Devices []vk.DeviceInfo `json:"devices"`
		MPI     []dist.Library  `json:"mpi"`
	}{chosen, infos, mpi})
}

// kernelsLine says which kernel variant a device runs (the chosen device: what Open picked, overrides
// included) and why the other does not apply.
func kernelsLine(in vk.DeviceInfo, chosen int, kernels string) string {
	k := in.Kernels
	if in.Index == chosen {
		k = kernels
	}
	if k == vk.KernelsCPU {
		return "cpu (register tiles per subgroup, texel-buffer operands, no shared memory; VJEPA_VK_KERNELS=gpu for the others)"
	}
	why := "not a CPU device"
	if in.Type == "cpu" {
		why = "VJEPA_VK_KERNELS=gpu"
		if m := vk.CPUKernelsMissing(in); m != "" {
			why = m
		}
	}
	return "gpu (shared-memory tiles; cpu kernels: " + why + ")"
}
