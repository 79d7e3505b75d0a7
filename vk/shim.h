// Thin C shim over the Vulkan features that vulkan-go's 1.1.88 headers lack (feature structs in pNext
// chains: fp16, 16-bit storage, cooperative matrix; property queries; the debug-utils messenger), and over
// every Vulkan call that takes a struct. vulkan-go copies such structs into C memory whose release hangs
// on a Go finalizer of a temporary, so a collection during the call frees them while the driver still
// reads them (vk/shim.go has the whole argument). Here each struct lives in the shim function's own stack
// frame for exactly the duration of the call; arrays come from the caller as plain pointer-free memory.
#ifndef VJEPA_SHIM_H
#define VJEPA_SHIM_H
#include <stdint.h>
#include <vulkan/vulkan.h>

#define VJ_MAX_COOPMAT 32

typedef struct {
	uint32_t m, n, k;
	uint32_t a_type, b_type, c_type, d_type; // VkComponentTypeNV
	uint32_t scope;
} vj_coopmat_shape;

typedef struct {
	char name[256];
	uint32_t vendor_id, device_id, device_type, api_version, driver_version;
	uint32_t shader_float16, storage_16bit, storage_8bit, shader_int8;
	uint32_t coopmat_ext, coopmat, n_coopmat;
	vj_coopmat_shape coopmat_shapes[VJ_MAX_COOPMAT];
	uint32_t subgroup_size, subgroup_size_control, min_subgroup_size, max_subgroup_size;
	uint32_t subgroup_ops;
	uint32_t max_shared_memory, max_push_constants, max_workgroup_invocations;
	uint32_t max_workgroup_count[3], max_workgroup_size[3];
	uint64_t max_storage_buffer_range, min_storage_offset_alignment, non_coherent_atom_size;
	float timestamp_period;
	uint32_t timestamp_valid_bits;
	uint64_t device_local_bytes;
	uint32_t texel_buffers; // R32G32B32A32_UINT storage texel buffers
	uint32_t max_texel_elements;
	uint64_t min_texel_offset_alignment;
} vj_caps;

int vj_load(void);
void* vj_gipa(void);
void vj_query_caps(VkInstance inst, VkPhysicalDevice pd, vj_caps* out);
VkResult vj_create_device(VkInstance inst, VkPhysicalDevice pd, uint32_t family, int f16, int storage16,
                          int coopmat, int subgroup_control, VkDevice* out);
VkResult vj_create_instance(int validate, VkInstance* out);
uint32_t vj_queue_families(VkInstance inst, VkPhysicalDevice pd, uint32_t* flags, uint32_t max);
uint32_t vj_memory_types(VkInstance inst, VkPhysicalDevice pd, uint32_t* flags, uint32_t max);
VkResult vj_create_messenger(VkInstance inst, uintptr_t handle, VkDebugUtilsMessengerEXT* out);
void vj_destroy_messenger(VkInstance inst, VkDebugUtilsMessengerEXT m);

// vj_fns holds the device-level entry points of the calls that take structs, resolved once with
// vkGetDeviceProcAddr (through the layers when validation is on).
typedef struct {
	VkDevice dev;
	PFN_vkCreateCommandPool CreateCommandPool;
	PFN_vkAllocateCommandBuffers AllocateCommandBuffers;
	PFN_vkBeginCommandBuffer BeginCommandBuffer;
	PFN_vkCreateFence CreateFence;
	PFN_vkQueueSubmit QueueSubmit;
	PFN_vkCreateBuffer CreateBuffer;
	PFN_vkGetBufferMemoryRequirements GetBufferMemoryRequirements;
	PFN_vkAllocateMemory AllocateMemory;
	PFN_vkCreateQueryPool CreateQueryPool;
	PFN_vkCreateShaderModule CreateShaderModule;
	PFN_vkCreateDescriptorSetLayout CreateDescriptorSetLayout;
	PFN_vkCreatePipelineLayout CreatePipelineLayout;
	PFN_vkCreateComputePipelines CreateComputePipelines;
	PFN_vkCreateDescriptorPool CreateDescriptorPool;
	PFN_vkAllocateDescriptorSets AllocateDescriptorSets;
	PFN_vkUpdateDescriptorSets UpdateDescriptorSets;
	PFN_vkCmdPipelineBarrier CmdPipelineBarrier;
	PFN_vkCmdCopyBuffer CmdCopyBuffer;
	PFN_vkCreateBufferView CreateBufferView;
} vj_fns;

vj_fns* vj_load_fns(VkInstance inst, VkDevice dev);
void vj_free_fns(vj_fns* f);
VkResult vj_create_command_pool(const vj_fns* f, uint32_t family, VkCommandPool* out);
VkResult vj_allocate_command_buffer(const vj_fns* f, VkCommandPool pool, VkCommandBuffer* out);
VkResult vj_begin_command_buffer(const vj_fns* f, VkCommandBuffer cb, VkCommandBufferUsageFlags flags);
VkResult vj_create_fence(const vj_fns* f, VkFence* out);
VkResult vj_queue_submit(const vj_fns* f, VkQueue q, VkCommandBuffer cb, VkFence fence);
VkResult vj_create_buffer(const vj_fns* f, VkDeviceSize size, VkBufferUsageFlags usage, VkBuffer* out);
void vj_buffer_requirements(const vj_fns* f, VkBuffer buf, VkDeviceSize* size, uint32_t* type_bits);
VkResult vj_allocate_memory(const vj_fns* f, VkDeviceSize size, uint32_t type, VkDeviceMemory* out);
VkResult vj_create_timestamp_pool(const vj_fns* f, uint32_t count, VkQueryPool* out);
VkResult vj_create_shader_module(const vj_fns* f, const uint32_t* code, size_t bytes, VkShaderModule* out);
VkResult vj_create_set_layout(const vj_fns* f, const VkDescriptorSetLayoutBinding* bindings, uint32_t n,
                              VkDescriptorSetLayout* out);
VkResult vj_create_pipeline_layout(const vj_fns* f, VkDescriptorSetLayout set, uint32_t push_bytes,
                                   VkPipelineLayout* out);
VkResult vj_create_compute_pipeline(const vj_fns* f, VkShaderModule module, VkPipelineLayout layout,
                                    const VkSpecializationMapEntry* entries, const uint32_t* values, uint32_t n,
                                    VkPipeline* out);
VkResult vj_create_descriptor_pool(const vj_fns* f, uint32_t max_sets, uint32_t storage_buffers,
                                   uint32_t texel_buffers, VkDescriptorPool* out);
VkResult vj_allocate_descriptor_set(const vj_fns* f, VkDescriptorPool pool, VkDescriptorSetLayout layout,
                                    VkDescriptorSet* out);
void vj_write_storage_buffers(const vj_fns* f, VkDescriptorSet set, const VkDescriptorBufferInfo* infos, uint32_t n);
void vj_write_descriptors(const vj_fns* f, VkDescriptorSet set, const VkDescriptorBufferInfo* infos,
                          const VkBufferView* views, uint32_t n);
VkResult vj_create_buffer_view(const vj_fns* f, VkBuffer buf, VkFormat format, VkDeviceSize offset, VkDeviceSize range,
                               VkBufferView* out);
void vj_cmd_compute_barrier(const vj_fns* f, VkCommandBuffer cb);
void vj_cmd_copy_buffer(const vj_fns* f, VkCommandBuffer cb, VkBuffer src, VkDeviceSize src_off, VkBuffer dst,
                        VkDeviceSize dst_off, VkDeviceSize size);
void vj_cmd_copy_regions(const vj_fns* f, VkCommandBuffer cb, VkBuffer src, VkBuffer dst, const VkBufferCopy* regions,
                         uint32_t n);
void vj_cmd_transfer_barrier(const vj_fns* f, VkCommandBuffer cb);
#endif
