// Thin C shim over the Vulkan features that vulkan-go's 1.1.88 headers lack: feature structs in pNext
// chains (fp16, 16-bit storage, cooperative matrix), property queries and the debug-utils messenger.
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
} vj_caps;

int vj_load(void);
void* vj_gipa(void);
void vj_query_caps(VkInstance inst, VkPhysicalDevice pd, vj_caps* out);
VkResult vj_create_device(VkInstance inst, VkPhysicalDevice pd, uint32_t family, int f16, int storage16,
                          int coopmat, int subgroup_control, VkDevice* out);
VkResult vj_create_messenger(VkInstance inst, uintptr_t handle, VkDebugUtilsMessengerEXT* out);
void vj_destroy_messenger(VkInstance inst, VkDebugUtilsMessengerEXT m);
#endif
