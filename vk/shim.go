package vk

// Every Vulkan call that takes a struct goes through the C shim (shim.c), never through vulkan-go, which
// stays in use for handles, types and the calls that take only handles and scalars.
//
// Why: vulkan-go's generated wrappers copy a struct argument into calloc'd C memory and tie its release
// to a finalizer, runtime.SetFinalizer(&unpacked, func { go allocs.Free() }), set on a local of the
// copying function. That local is unreachable as soon as the copy returns, before the C call is made, so a
// collection during the call frees the copy while the driver reads it: SIGSEGV or std::bad_alloc (a
// count read from freed memory) inside vkCreateComputePipelines, vkUpdateDescriptorSets, vkQueueSubmit
// (TestGCStress reproduces each). The single-struct copies (PassRef) are never freed at all, and they
// point C memory at Go slices (pCode, pSetLayouts, pCommandBuffers, pName) that nothing keeps reachable
// during the call.
//
// Why the shim is sound: each struct the driver reads is either a local of the shim function, alive until
// the driver call returns, or Go memory handed to the shim as a direct call argument (SPIR-V words,
// specialization values and map entries, set-layout bindings, descriptor buffer infos). cgo keeps call
// arguments reachable until the call returns, the collector does not move heap objects, and none of that
// memory holds a Go pointer (handles are driver addresses; cgocheck verifies it on every call); the
// driver keeps none of it after returning. No memory is owned by a finalizer.
//
// The vulkan-go calls that remain take handles and scalars, or pass a Go pointer straight through as a
// call argument (EnumeratePhysicalDevices, AllocateCommandBuffers' output, FreeCommandBuffers,
// WaitForFences, CmdBindDescriptorSets, CmdPushConstants, GetQueryPoolResults, MapMemory): the same
// second case, with no copy in between.

/*
#include "shim.h"
*/
import "C"

import (
	"fmt"
	"unsafe"

	vulkan "github.com/vulkan-go/vulkan"
)

// shimCreateInstance creates the instance, with the Khronos validation layer and debug utils when
// validate is set.
func shimCreateInstance(validate bool) (vulkan.Instance, vulkan.Result) {
	var inst vulkan.Instance
	r := C.vj_create_instance(b2i(validate), (*C.VkInstance)(unsafe.Pointer(&inst)))
	return inst, vulkan.Result(r)
}

// queueFamilyFlags returns the VkQueueFlags of each of pd's queue families.
func queueFamilyFlags(inst vulkan.Instance, pd vulkan.PhysicalDevice) []vulkan.QueueFlagBits {
	var flags [64]C.uint32_t
	n := C.vj_queue_families(C.VkInstance(unsafe.Pointer(inst)), C.VkPhysicalDevice(unsafe.Pointer(pd)), &flags[0], C.uint32_t(len(flags)))
	out := make([]vulkan.QueueFlagBits, n)
	for i := range out {
		out[i] = vulkan.QueueFlagBits(flags[i])
	}
	return out
}

// memoryTypeFlags returns the VkMemoryPropertyFlags of each of pd's memory types.
func memoryTypeFlags(inst vulkan.Instance, pd vulkan.PhysicalDevice) []vulkan.MemoryPropertyFlagBits {
	var flags [C.VK_MAX_MEMORY_TYPES]C.uint32_t
	n := C.vj_memory_types(C.VkInstance(unsafe.Pointer(inst)), C.VkPhysicalDevice(unsafe.Pointer(pd)), &flags[0], C.uint32_t(len(flags)))
	out := make([]vulkan.MemoryPropertyFlagBits, n)
	for i := range out {
		out[i] = vulkan.MemoryPropertyFlagBits(flags[i])
	}
	return out
}

// deviceCalls is the logical device's table of the entry points that take structs (C memory, freed by
// release).
type deviceCalls struct{ fns *C.vj_fns }

func loadDeviceCalls(inst vulkan.Instance, dev vulkan.Device) (deviceCalls, error) {
	f := C.vj_load_fns(C.VkInstance(unsafe.Pointer(inst)), C.VkDevice(unsafe.Pointer(dev)))
	if f == nil {
		return deviceCalls{}, fmt.Errorf("vk: vkGetDeviceProcAddr: a Vulkan 1.0 entry point is missing")
	}
	return deviceCalls{f}, nil
}

func (c *deviceCalls) release() {
	if c.fns != nil {
		C.vj_free_fns(c.fns)
		c.fns = nil
	}
}

func (c deviceCalls) createCommandPool(family uint32) (vulkan.CommandPool, vulkan.Result) {
	var pool vulkan.CommandPool
	r := C.vj_create_command_pool(c.fns, C.uint32_t(family), (*C.VkCommandPool)(unsafe.Pointer(&pool)))
	return pool, vulkan.Result(r)
}

func (c deviceCalls) allocateCommandBuffer(pool vulkan.CommandPool) (vulkan.CommandBuffer, vulkan.Result) {
	var cb vulkan.CommandBuffer
	r := C.vj_allocate_command_buffer(c.fns, C.VkCommandPool(unsafe.Pointer(pool)), (*C.VkCommandBuffer)(unsafe.Pointer(&cb)))
	return cb, vulkan.Result(r)
}

func (c deviceCalls) beginCommandBuffer(cb vulkan.CommandBuffer, flags vulkan.CommandBufferUsageFlagBits) vulkan.Result {
	return vulkan.Result(C.vj_begin_command_buffer(c.fns, C.VkCommandBuffer(unsafe.Pointer(cb)), C.VkCommandBufferUsageFlags(flags)))
}

func (c deviceCalls) createFence() (vulkan.Fence, vulkan.Result) {
	var f vulkan.Fence
	r := C.vj_create_fence(c.fns, (*C.VkFence)(unsafe.Pointer(&f)))
	return f, vulkan.Result(r)
}

// queueSubmit submits one command buffer, to signal fence when done.
func (c deviceCalls) queueSubmit(q vulkan.Queue, cb vulkan.CommandBuffer, fence vulkan.Fence) vulkan.Result {
	return vulkan.Result(C.vj_queue_submit(c.fns, C.VkQueue(unsafe.Pointer(q)), C.VkCommandBuffer(unsafe.Pointer(cb)),
		C.VkFence(unsafe.Pointer(fence))))
}

// createBuffer creates an exclusive buffer of size bytes.
func (c deviceCalls) createBuffer(size uint64, usage vulkan.BufferUsageFlagBits) (vulkan.Buffer, vulkan.Result) {
	var buf vulkan.Buffer
	r := C.vj_create_buffer(c.fns, C.VkDeviceSize(size), C.VkBufferUsageFlags(usage), (*C.VkBuffer)(unsafe.Pointer(&buf)))
	return buf, vulkan.Result(r)
}

// bufferRequirements returns the memory size and the memory-type bits buf needs.
func (c deviceCalls) bufferRequirements(buf vulkan.Buffer) (size uint64, typeBits uint32) {
	var s C.VkDeviceSize
	var bits C.uint32_t
	C.vj_buffer_requirements(c.fns, C.VkBuffer(unsafe.Pointer(buf)), &s, &bits)
	return uint64(s), uint32(bits)
}

func (c deviceCalls) allocateMemory(size uint64, memoryType uint32) (vulkan.DeviceMemory, vulkan.Result) {
	var mem vulkan.DeviceMemory
	r := C.vj_allocate_memory(c.fns, C.VkDeviceSize(size), C.uint32_t(memoryType), (*C.VkDeviceMemory)(unsafe.Pointer(&mem)))
	return mem, vulkan.Result(r)
}

func (c deviceCalls) createTimestampPool(count uint32) (vulkan.QueryPool, vulkan.Result) {
	var qp vulkan.QueryPool
	r := C.vj_create_timestamp_pool(c.fns, C.uint32_t(count), (*C.VkQueryPool)(unsafe.Pointer(&qp)))
	return qp, vulkan.Result(r)
}

// createShaderModule takes the SPIR-V as words: the driver reads pCode as uint32_t, so it must be 4-byte
// aligned, which a []byte need not be.
func (c deviceCalls) createShaderModule(words []uint32) (vulkan.ShaderModule, vulkan.Result) {
	var mod vulkan.ShaderModule
	r := C.vj_create_shader_module(c.fns, (*C.uint32_t)(unsafe.Pointer(&words[0])), C.size_t(4*len(words)),
		(*C.VkShaderModule)(unsafe.Pointer(&mod)))
	return mod, vulkan.Result(r)
}

// createSetLayout creates a set layout for compute of one binding per byte of kinds (bindingKinds: 'b' a
// storage buffer, 't' a storage texel buffer), bindings 0..len(kinds)-1.
func (c deviceCalls) createSetLayout(kinds string) (vulkan.DescriptorSetLayout, vulkan.Result) {
	bs := make([]C.VkDescriptorSetLayoutBinding, max(len(kinds), 1))
	for i := range bs {
		typ := C.VkDescriptorType(C.VK_DESCRIPTOR_TYPE_STORAGE_BUFFER)
		if i < len(kinds) && kinds[i] == 't' {
			typ = C.VK_DESCRIPTOR_TYPE_STORAGE_TEXEL_BUFFER
		}
		bs[i] = C.VkDescriptorSetLayoutBinding{
			binding:         C.uint32_t(i),
			descriptorType:  typ,
			descriptorCount: 1,
			stageFlags:      C.VK_SHADER_STAGE_COMPUTE_BIT,
		}
	}
	var l vulkan.DescriptorSetLayout
	r := C.vj_create_set_layout(c.fns, &bs[0], C.uint32_t(len(kinds)), (*C.VkDescriptorSetLayout)(unsafe.Pointer(&l)))
	return l, vulkan.Result(r)
}

// createPipelineLayout creates a layout of one descriptor set and pushBytes of compute push constants.
func (c deviceCalls) createPipelineLayout(set vulkan.DescriptorSetLayout, pushBytes uint32) (vulkan.PipelineLayout, vulkan.Result) {
	var l vulkan.PipelineLayout
	r := C.vj_create_pipeline_layout(c.fns, C.VkDescriptorSetLayout(unsafe.Pointer(set)), C.uint32_t(pushBytes),
		(*C.VkPipelineLayout)(unsafe.Pointer(&l)))
	return l, vulkan.Result(r)
}

// createComputePipeline creates the pipeline of mod's "main" with specialization constant i = spec[i].
func (c deviceCalls) createComputePipeline(mod vulkan.ShaderModule, layout vulkan.PipelineLayout, spec []uint32) (vulkan.Pipeline, vulkan.Result) {
	var (
		entries *C.VkSpecializationMapEntry
		values  *C.uint32_t
	)
	if len(spec) > 0 {
		es := make([]C.VkSpecializationMapEntry, len(spec))
		for i := range es {
			es[i] = C.VkSpecializationMapEntry{constantID: C.uint32_t(i), offset: C.uint32_t(4 * i), size: 4}
		}
		entries, values = &es[0], (*C.uint32_t)(unsafe.Pointer(&spec[0]))
	}
	var p vulkan.Pipeline
	r := C.vj_create_compute_pipeline(c.fns, C.VkShaderModule(unsafe.Pointer(mod)), C.VkPipelineLayout(unsafe.Pointer(layout)),
		entries, values, C.uint32_t(len(spec)), (*C.VkPipeline)(unsafe.Pointer(&p)))
	return p, vulkan.Result(r)
}

func (c deviceCalls) createDescriptorPool(maxSets, storageBuffers, texelBuffers uint32) (vulkan.DescriptorPool, vulkan.Result) {
	var pool vulkan.DescriptorPool
	r := C.vj_create_descriptor_pool(c.fns, C.uint32_t(maxSets), C.uint32_t(storageBuffers), C.uint32_t(texelBuffers),
		(*C.VkDescriptorPool)(unsafe.Pointer(&pool)))
	return pool, vulkan.Result(r)
}

func (c deviceCalls) allocateDescriptorSet(pool vulkan.DescriptorPool, layout vulkan.DescriptorSetLayout) (vulkan.DescriptorSet, vulkan.Result) {
	var set vulkan.DescriptorSet
	r := C.vj_allocate_descriptor_set(c.fns, C.VkDescriptorPool(unsafe.Pointer(pool)), C.VkDescriptorSetLayout(unsafe.Pointer(layout)),
		(*C.VkDescriptorSet)(unsafe.Pointer(&set)))
	return set, vulkan.Result(r)
}

// bufferRange is one storage-buffer binding: bytes [offset, offset+size) of buf.
type bufferRange struct {
	buf          vulkan.Buffer
	offset, size uint64
}

// writeStorageBuffers points bindings 0..len(rs)-1 of set at rs.
func (c deviceCalls) writeStorageBuffers(set vulkan.DescriptorSet, rs []bufferRange) {
	if len(rs) == 0 {
		return
	}
	infos := make([]C.VkDescriptorBufferInfo, len(rs))
	for i, r := range rs {
		infos[i] = C.VkDescriptorBufferInfo{buffer: C.VkBuffer(unsafe.Pointer(r.buf)), offset: C.VkDeviceSize(r.offset), _range: C.VkDeviceSize(r.size)}
	}
	C.vj_write_storage_buffers(c.fns, C.VkDescriptorSet(unsafe.Pointer(set)), &infos[0], C.uint32_t(len(infos)))
}

// writeDescriptors points bindings 0..len(rs)-1 of set at rs, or at views[i] (a storage texel buffer) where
// that is not nil.
func (c deviceCalls) writeDescriptors(set vulkan.DescriptorSet, rs []bufferRange, views []vulkan.BufferView) {
	if len(rs) == 0 {
		return
	}
	infos := make([]C.VkDescriptorBufferInfo, len(rs))
	vs := make([]C.VkBufferView, len(rs))
	for i, r := range rs {
		infos[i] = C.VkDescriptorBufferInfo{buffer: C.VkBuffer(unsafe.Pointer(r.buf)), offset: C.VkDeviceSize(r.offset), _range: C.VkDeviceSize(r.size)}
		vs[i] = C.VkBufferView(unsafe.Pointer(views[i]))
	}
	C.vj_write_descriptors(c.fns, C.VkDescriptorSet(unsafe.Pointer(set)), &infos[0], &vs[0], C.uint32_t(len(infos)))
}

// createBufferView creates an R32G32B32A32_UINT view of bytes [offset, offset+size) of buf.
func (c deviceCalls) createBufferView(buf vulkan.Buffer, offset, size uint64) (vulkan.BufferView, vulkan.Result) {
	var v vulkan.BufferView
	r := C.vj_create_buffer_view(c.fns, C.VkBuffer(unsafe.Pointer(buf)), C.VK_FORMAT_R32G32B32A32_UINT, C.VkDeviceSize(offset),
		C.VkDeviceSize(size), (*C.VkBufferView)(unsafe.Pointer(&v)))
	return v, vulkan.Result(r)
}

// cmdComputeBarrier records a barrier making earlier compute shader writes visible to later compute
// shader reads and writes.
func (c deviceCalls) cmdComputeBarrier(cb vulkan.CommandBuffer) {
	C.vj_cmd_compute_barrier(c.fns, C.VkCommandBuffer(unsafe.Pointer(cb)))
}

// cmdTransferBarrier is cmdComputeBarrier that also orders buffer copies (transfers) both ways.
func (c deviceCalls) cmdTransferBarrier(cb vulkan.CommandBuffer) {
	C.vj_cmd_transfer_barrier(c.fns, C.VkCommandBuffer(unsafe.Pointer(cb)))
}

// copyRegion is one region of cmdCopyRegions: size bytes from srcOff in the source to dstOff.
type copyRegion struct{ srcOff, dstOff, size uint64 }

// cmdCopyRegions records one vkCmdCopyBuffer of several regions from src to dst.
func (c deviceCalls) cmdCopyRegions(cb vulkan.CommandBuffer, src, dst vulkan.Buffer, regions []copyRegion) {
	rs := make([]C.VkBufferCopy, len(regions))
	for i, r := range regions {
		rs[i] = C.VkBufferCopy{srcOffset: C.VkDeviceSize(r.srcOff), dstOffset: C.VkDeviceSize(r.dstOff), size: C.VkDeviceSize(r.size)}
	}
	C.vj_cmd_copy_regions(c.fns, C.VkCommandBuffer(unsafe.Pointer(cb)), C.VkBuffer(unsafe.Pointer(src)),
		C.VkBuffer(unsafe.Pointer(dst)), &rs[0], C.uint32_t(len(rs)))
}

func (c deviceCalls) cmdCopyBuffer(cb vulkan.CommandBuffer, src vulkan.Buffer, srcOff uint64, dst vulkan.Buffer, dstOff, size uint64) {
	C.vj_cmd_copy_buffer(c.fns, C.VkCommandBuffer(unsafe.Pointer(cb)), C.VkBuffer(unsafe.Pointer(src)), C.VkDeviceSize(srcOff),
		C.VkBuffer(unsafe.Pointer(dst)), C.VkDeviceSize(dstOff), C.VkDeviceSize(size))
}
