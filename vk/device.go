package vk

/*
#cgo LDFLAGS: -ldl
#include "shim.h"
*/
import "C"

import (
	"fmt"
	"io"
	"os"
	"runtime/cgo"
	"sort"
	"strconv"
	"strings"
	"sync"
	"unsafe"

	vulkan "github.com/vulkan-go/vulkan"
)

// CoopMatShape is one VK_NV_cooperative_matrix configuration the device supports.
type CoopMatShape struct {
	M     int    `json:"m"`
	N     int    `json:"n"`
	K     int    `json:"k"`
	AType string `json:"a_type"` // "f16", "f32", ...
	BType string `json:"b_type"`
	CType string `json:"c_type"`
	DType string `json:"d_type"`
}

// DeviceInfo describes a physical device: its identity, its limits and the features vjepa-vk uses.
type DeviceInfo struct {
	Index                int            `json:"index"`
	Name                 string         `json:"name"`
	Type                 string         `json:"type"` // "discrete", "integrated", "virtual", "cpu", "other"
	VendorID             uint32         `json:"vendor_id"`
	DeviceID             uint32         `json:"device_id"`
	APIVersion           string         `json:"api_version"`
	ShaderFloat16        bool           `json:"shader_float16"`
	Storage16Bit         bool           `json:"storage_16bit"`
	Storage8Bit          bool           `json:"storage_8bit"`
	CoopMat              bool           `json:"coopmat"`
	CoopMatShapes        []CoopMatShape `json:"coopmat_shapes"`
	SubgroupSize         int            `json:"subgroup_size"`
	SubgroupOps          uint32         `json:"subgroup_ops"` // VkSubgroupFeatureFlags
	SubgroupSizeControl  bool           `json:"subgroup_size_control"`
	MinSubgroupSize      int            `json:"min_subgroup_size"`
	MaxSubgroupSize      int            `json:"max_subgroup_size"`
	SharedMemory         int            `json:"shared_memory_bytes"`
	MaxPushConstants     int            `json:"max_push_constants_bytes"`
	MaxWorkgroupInvoc    int            `json:"max_workgroup_invocations"`
	MaxWorkgroupCount    [3]int         `json:"max_workgroup_count"`
	MaxStorageRange      uint64         `json:"max_storage_range_bytes"`
	StorageAlignment     uint64         `json:"storage_alignment_bytes"`
	DeviceLocalBytes     uint64         `json:"device_local_bytes"`
	TimestampPeriodNanos float64        `json:"timestamp_period_ns"`
	Kernels              string         `json:"kernels"`                 // the GEMM and attention kernels Open picks by default (kernels.go)
	TexelBuffers         bool           `json:"texel_buffers"`           // storage texel buffers of R32G32B32A32_UINT (texel.go)
	TexelAlignment       uint64         `json:"texel_alignment_bytes"`   // minTexelBufferOffsetAlignment
	MaxTexels            int            `json:"max_texel_buffer_texels"` // maxTexelBufferElements
}

// Options select and configure the device. The zero value picks the best device without validation;
// Open also honours VJEPA_VK_DEVICE (index or name substring), VJEPA_VK_VALIDATE=1 and
// VJEPA_VK_COOPMAT=1 (tensor-core kernels, see CoopMat).
type Options struct {
	Device   string // index or case-insensitive name substring; "" = best
	Validate bool
	// OnMessage receives each validation message ("error" or "warning") as it arrives. When it is nil,
	// each message is written as a line "vk: validation <severity>: <msg>" to Messages as it arrives and
	// also kept for Device.TakeMessages (the first maxKeptMessages since the last call).
	OnMessage func(severity, msg string)
	// Messages is where validation messages are printed when OnMessage is nil: os.Stderr when nil, so
	// that VJEPA_VK_VALIDATE=1 shows them in any command; io.Discard to only keep them.
	Messages io.Writer
	// BlockBytes is the size of each device-local block tensors are carved from (default 256 MiB).
	BlockBytes uint64
	// CoopMat enables the cooperative-matrix (tensor-core) kernels where the device has them: GEMMs with
	// f16 weights, and flash attention with f16 operands (f32 statistics and accumulation). It is opt-in:
	// the GEMM made a training step 1.6× faster on an H100, but the current GEMM and attention kernels
	// have passed their tests only in emulation (tools/gpu/check.sh runs them on hardware); the scalar
	// paths are verified on every device.
	CoopMat bool
	// LocalRank is this process's rank among those of a data-parallel job on this node: without Device,
	// it takes the LocalRank-th device (modulo their number) of the best type, one GPU per process.
	LocalRank int
	// Kernels picks the GEMM and attention kernel variant: "gpu", "cpu" or "" for the device's default
	// (kernels.go); VJEPA_VK_KERNELS sets it when empty.
	Kernels string
}

// Device is an open Vulkan compute device with one queue.
type Device struct {
	Info DeviceInfo

	instance  vulkan.Instance
	phys      vulkan.PhysicalDevice
	dev       vulkan.Device
	queue     vulkan.Queue
	family    uint32
	calls     deviceCalls // the calls that take structs (shim.go)
	messenger C.VkDebugUtilsMessengerEXT
	handle    cgo.Handle
	validate  bool

	mu       sync.Mutex
	messages []string // kept for TakeMessages, at most maxKeptMessages
	dropped  int      // messages not kept since the last TakeMessages
	onMsg    func(severity, msg string)
	msgLog   io.Writer
	creating string // pipeline being created: validation messages raised meanwhile are tagged with it

	mem     *allocator
	pipes   *pipelineCache
	cmdPool vulkan.CommandPool
	useCoop bool
	useF16  bool
	kernels string // KernelsGPU or KernelsCPU
}

var loadOnce struct {
	sync.Once
	err error
}

func loadVulkan() error {
	loadOnce.Do(func() {
		if C.vj_load() == 0 {
			loadOnce.err = fmt.Errorf("vk: cannot load libvulkan.so.1 (install libvulkan1 and a driver, e.g. mesa-vulkan-drivers)")
			return
		}
		// Hand vulkan-go the loader we opened: its own default looks for the unversioned libvulkan.so,
		// which only the -dev package installs.
		vulkan.SetGetInstanceProcAddr(C.vj_gipa())
		if err := vulkan.Init(); err != nil {
			loadOnce.err = fmt.Errorf("vk: init loader: %w", err)
		}
	})
	return loadOnce.err
}

func createInstance(validate bool) (vulkan.Instance, error) {
	requestWideLavapipe()
	if err := loadVulkan(); err != nil {
		return nil, err
	}
	inst, r := shimCreateInstance(validate)
	if err := check(r, "vkCreateInstance", ""); err != nil {
		if validate {
			return nil, fmt.Errorf("%w (validation requested: install vulkan-validationlayers)", err)
		}
		return nil, err
	}
	if err := vulkan.InitInstance(inst); err != nil {
		return nil, fmt.Errorf("vk: init instance: %w", err)
	}
	return inst, nil
}

func physicalDevices(inst vulkan.Instance) ([]vulkan.PhysicalDevice, error) {
	var n uint32
	if err := check(vulkan.EnumeratePhysicalDevices(inst, &n, nil), "vkEnumeratePhysicalDevices", ""); err != nil {
		return nil, err
	}
	pds := make([]vulkan.PhysicalDevice, n)
	if n > 0 {
		if err := check(vulkan.EnumeratePhysicalDevices(inst, &n, pds), "vkEnumeratePhysicalDevices", ""); err != nil {
			return nil, err
		}
	}
	return pds[:n], nil
}

func componentName(t uint32) string {
	switch t {
	case C.VK_COMPONENT_TYPE_FLOAT16_NV:
		return "f16"
	case C.VK_COMPONENT_TYPE_FLOAT32_NV:
		return "f32"
	case C.VK_COMPONENT_TYPE_FLOAT64_NV:
		return "f64"
	case C.VK_COMPONENT_TYPE_SINT8_NV:
		return "s8"
	case C.VK_COMPONENT_TYPE_SINT32_NV:
		return "s32"
	case C.VK_COMPONENT_TYPE_UINT8_NV:
		return "u8"
	case C.VK_COMPONENT_TYPE_UINT32_NV:
		return "u32"
	}
	return fmt.Sprintf("type%d", t)
}

func queryInfo(inst vulkan.Instance, pd vulkan.PhysicalDevice, index int) DeviceInfo {
	var c C.vj_caps
	C.vj_query_caps(C.VkInstance(unsafe.Pointer(inst)), C.VkPhysicalDevice(unsafe.Pointer(pd)), &c)
	types := map[uint32]string{0: "other", 1: "integrated", 2: "discrete", 3: "virtual", 4: "cpu"}
	av := uint32(c.api_version)
	info := DeviceInfo{
		Index:                index,
		Name:                 C.GoString(&c.name[0]),
		Type:                 types[uint32(c.device_type)],
		VendorID:             uint32(c.vendor_id),
		DeviceID:             uint32(c.device_id),
		APIVersion:           apiVersionString(av),
		ShaderFloat16:        c.shader_float16 != 0,
		Storage16Bit:         c.storage_16bit != 0,
		Storage8Bit:          c.storage_8bit != 0,
		CoopMat:              c.coopmat != 0,
		SubgroupSize:         int(c.subgroup_size),
		SubgroupOps:          uint32(c.subgroup_ops),
		SubgroupSizeControl:  c.subgroup_size_control != 0,
		MinSubgroupSize:      int(c.min_subgroup_size),
		MaxSubgroupSize:      int(c.max_subgroup_size),
		SharedMemory:         int(c.max_shared_memory),
		MaxPushConstants:     int(c.max_push_constants),
		MaxWorkgroupInvoc:    int(c.max_workgroup_invocations),
		MaxStorageRange:      uint64(c.max_storage_buffer_range),
		StorageAlignment:     uint64(c.min_storage_offset_alignment),
		DeviceLocalBytes:     uint64(c.device_local_bytes),
		TimestampPeriodNanos: float64(c.timestamp_period),
		TexelBuffers:         c.texel_buffers != 0,
		TexelAlignment:       uint64(c.min_texel_offset_alignment),
		MaxTexels:            int(c.max_texel_elements),
	}
	for i := 0; i < 3; i++ {
		info.MaxWorkgroupCount[i] = int(c.max_workgroup_count[i])
	}
	info.Kernels, _ = chooseKernels(info, "")
	for i := 0; i < int(c.n_coopmat); i++ {
		s := c.coopmat_shapes[i]
		info.CoopMatShapes = append(info.CoopMatShapes, CoopMatShape{
			M: int(s.m), N: int(s.n), K: int(s.k),
			AType: componentName(uint32(s.a_type)), BType: componentName(uint32(s.b_type)),
			CType: componentName(uint32(s.c_type)), DType: componentName(uint32(s.d_type)),
		})
	}
	return info
}

// ListDevices returns every Vulkan device visible through the loader, best first (discrete, integrated,
// virtual, CPU), with Index set to the position Open's selector uses.
func ListDevices() ([]DeviceInfo, error) {
	inst, err := createInstance(false)
	if err != nil {
		return nil, err
	}
	defer vulkan.DestroyInstance(inst, nil)
	pds, err := physicalDevices(inst)
	if err != nil {
		return nil, err
	}
	infos := make([]DeviceInfo, len(pds))
	for i, pd := range pds {
		infos[i] = queryInfo(inst, pd, i)
	}
	return infos, nil
}

func typeRank(t string) int {
	switch t {
	case "discrete":
		return 0
	case "integrated":
		return 1
	case "virtual":
		return 2
	case "cpu":
		return 3
	}
	return 4
}

// pick chooses the device by selector (index or name substring) or, without one, by type rank: the
// localRank-th (modulo their number) of the devices of the best type.
func pick(infos []DeviceInfo, selector string, localRank int) (int, error) {
	if len(infos) == 0 {
		return 0, fmt.Errorf("vk: no Vulkan device found (install a driver; for CPU: mesa-vulkan-drivers)")
	}
	if selector != "" {
		if i, err := strconv.Atoi(selector); err == nil {
			if i < 0 || i >= len(infos) {
				return 0, fmt.Errorf("vk: VJEPA_VK_DEVICE=%d: only %d devices (0..%d)", i, len(infos), len(infos)-1)
			}
			return i, nil
		}
		for i, in := range infos {
			if strings.Contains(strings.ToLower(in.Name), strings.ToLower(selector)) {
				return i, nil
			}
		}
		names := make([]string, len(infos))
		for i, in := range infos {
			names[i] = fmt.Sprintf("%d:%q", i, in.Name)
		}
		return 0, fmt.Errorf("vk: device %q not found among %s", selector, strings.Join(names, ", "))
	}
	order := make([]int, len(infos))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return typeRank(infos[order[a]].Type) < typeRank(infos[order[b]].Type) })
	best := 1
	for best < len(order) && typeRank(infos[order[best]].Type) == typeRank(infos[order[0]].Type) {
		best++
	}
	return order[max(localRank, 0)%best], nil
}

//export vjDebugMessage
func vjDebugMessage(handle C.uintptr_t, severity C.int, msg *C.char) {
	d, ok := cgo.Handle(handle).Value().(*Device)
	if !ok {
		return
	}
	sev := "warning"
	if severity >= C.VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT {
		sev = "error"
	}
	d.message(sev, C.GoString(msg))
}

// maxKeptMessages bounds the messages kept for TakeMessages, so that a long run with validation on does
// not keep every repeat of a message.
const maxKeptMessages = 1000

func (d *Device) message(sev, msg string) {
	d.mu.Lock()
	if d.creating != "" {
		msg = "creating pipeline " + d.creating + ": " + msg
	}
	cb := d.onMsg
	if cb == nil {
		fmt.Fprintf(d.msgLog, "vk: validation %s: %s\n", sev, msg)
		if len(d.messages) < maxKeptMessages {
			d.messages = append(d.messages, sev+": "+msg)
		} else {
			d.dropped++
		}
	}
	d.mu.Unlock()
	if cb != nil {
		cb(sev, msg)
	}
}

// TakeMessages returns and clears the validation messages kept since the last call (without
// Options.OnMessage); past maxKeptMessages, a last entry counts the others.
func (d *Device) TakeMessages() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	m := d.messages
	if d.dropped > 0 {
		m = append(m, fmt.Sprintf("(%d more messages)", d.dropped))
	}
	d.messages, d.dropped = nil, 0
	return m
}

// Open creates the instance and the logical device chosen by opts and the environment.
func Open(opts Options) (*Device, error) {
	if v := os.Getenv("VJEPA_VK_VALIDATE"); v == "1" || v == "true" {
		opts.Validate = true
	}
	if opts.Device == "" {
		opts.Device = os.Getenv("VJEPA_VK_DEVICE")
	}
	if v := os.Getenv("VJEPA_VK_COOPMAT"); v == "1" || v == "true" {
		opts.CoopMat = true
	}
	if opts.BlockBytes == 0 {
		opts.BlockBytes = 256 << 20
	}
	if opts.Kernels == "" {
		opts.Kernels = os.Getenv("VJEPA_VK_KERNELS")
	}
	inst, err := createInstance(opts.Validate)
	if err != nil {
		return nil, err
	}
	if opts.Messages == nil {
		opts.Messages = os.Stderr
	}
	d := &Device{instance: inst, validate: opts.Validate, onMsg: opts.OnMessage, msgLog: opts.Messages}
	if opts.Validate {
		d.handle = cgo.NewHandle(d)
		r := C.vj_create_messenger(C.VkInstance(unsafe.Pointer(inst)), C.uintptr_t(d.handle), &d.messenger)
		if r != C.VK_SUCCESS {
			d.Close()
			return nil, check(vulkan.Result(r), "vkCreateDebugUtilsMessengerEXT", "")
		}
	}
	pds, err := physicalDevices(inst)
	if err != nil {
		d.Close()
		return nil, err
	}
	infos := make([]DeviceInfo, len(pds))
	for i, pd := range pds {
		infos[i] = queryInfo(inst, pd, i)
	}
	idx, err := pick(infos, opts.Device, opts.LocalRank)
	if err != nil {
		d.Close()
		return nil, err
	}
	d.phys, d.Info = pds[idx], infos[idx]
	if d.kernels, err = chooseKernels(d.Info, opts.Kernels); err != nil {
		d.Close()
		return nil, err
	}
	d.family, err = computeFamily(queueFamilyFlags(inst, d.phys))
	if err != nil {
		d.Close()
		return nil, err
	}
	d.useF16 = d.Info.ShaderFloat16 && d.Info.Storage16Bit
	d.useCoop = d.Info.CoopMat && d.useF16 && opts.CoopMat
	var dev C.VkDevice
	r := C.vj_create_device(C.VkInstance(unsafe.Pointer(inst)), C.VkPhysicalDevice(unsafe.Pointer(d.phys)), C.uint32_t(d.family),
		b2i(d.Info.ShaderFloat16), b2i(d.Info.Storage16Bit), b2i(d.useCoop), b2i(d.Info.SubgroupSizeControl), &dev)
	if r != C.VK_SUCCESS {
		d.Close()
		return nil, check(vulkan.Result(r), "vkCreateDevice", d.Info.Name)
	}
	d.dev = vulkan.Device(unsafe.Pointer(dev))
	var q vulkan.Queue
	vulkan.GetDeviceQueue(d.dev, d.family, 0, &q)
	d.queue = q
	if d.calls, err = loadDeviceCalls(inst, d.dev); err != nil {
		d.Close()
		return nil, err
	}
	pool, r2 := d.calls.createCommandPool(d.family)
	if err := check(r2, "vkCreateCommandPool", ""); err != nil {
		d.Close()
		return nil, err
	}
	d.cmdPool = pool
	d.mem = newAllocator(d, memoryTypeFlags(inst, d.phys), opts.BlockBytes)
	d.pipes = newPipelineCache(d)
	return d, nil
}

func b2i(b bool) C.int {
	if b {
		return 1
	}
	return 0
}

// computeFamily picks the queue family for compute from each family's VkQueueFlags.
func computeFamily(families []vulkan.QueueFlagBits) (uint32, error) {
	best := -1
	for i, f := range families {
		if f&vulkan.QueueComputeBit == 0 {
			continue
		}
		// A compute family without graphics is the dedicated async-compute queue; prefer it.
		if best < 0 || f&vulkan.QueueGraphicsBit == 0 {
			best = i
		}
	}
	if best < 0 {
		return 0, fmt.Errorf("vk: device has no compute queue")
	}
	return uint32(best), nil
}

// F16 reports whether f16 arithmetic and 16-bit storage are available (and so used by the f16 paths).
func (d *Device) F16() bool { return d.useF16 }

// CoopMat reports whether the cooperative-matrix paths are enabled on this device.
func (d *Device) CoopMat() bool { return d.useCoop }

// MaxBinding is the largest byte range one tensor binding may cover (maxStorageBufferRange).
func (d *Device) MaxBinding() uint64 { return d.Info.MaxStorageRange }

// Close waits for the device to be idle and releases everything it owns.
func (d *Device) Close() {
	if d.dev != nil {
		vulkan.DeviceWaitIdle(d.dev)
		if d.pipes != nil {
			d.pipes.destroy()
		}
		if d.mem != nil {
			d.mem.destroy()
		}
		if d.cmdPool != nil {
			vulkan.DestroyCommandPool(d.dev, d.cmdPool, nil)
		}
		vulkan.DestroyDevice(d.dev, nil)
		d.dev = nil
		d.calls.release()
	}
	if d.messenger != nil {
		C.vj_destroy_messenger(C.VkInstance(unsafe.Pointer(d.instance)), d.messenger)
		d.messenger = nil
	}
	if d.instance != nil {
		vulkan.DestroyInstance(d.instance, nil)
		d.instance = nil
	}
	if d.handle != 0 {
		d.handle.Delete()
		d.handle = 0
	}
}
