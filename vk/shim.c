#include <dlfcn.h>
#include <string.h>
#include "shim.h"
#include "_cgo_export.h"

static PFN_vkGetInstanceProcAddr gipa;

int vj_load(void) {
	if (gipa) return 1;
	void* lib = dlopen("libvulkan.so.1", RTLD_NOW | RTLD_LOCAL);
	if (!lib) lib = dlopen("libvulkan.so", RTLD_NOW | RTLD_LOCAL);
	if (!lib) return 0;
	gipa = (PFN_vkGetInstanceProcAddr)dlsym(lib, "vkGetInstanceProcAddr");
	return gipa != 0;
}

void* vj_gipa(void) { return (void*)gipa; }

#define LOAD(inst, name) PFN_##name name = (PFN_##name)gipa(inst, #name)

static int has_ext(VkInstance inst, VkPhysicalDevice pd, const char* want) {
	LOAD(inst, vkEnumerateDeviceExtensionProperties);
	uint32_t n = 0;
	vkEnumerateDeviceExtensionProperties(pd, 0, &n, 0);
	VkExtensionProperties props[512];
	if (n > 512) n = 512;
	vkEnumerateDeviceExtensionProperties(pd, 0, &n, props);
	for (uint32_t i = 0; i < n; i++)
		if (strcmp(props[i].extensionName, want) == 0) return 1;
	return 0;
}

void vj_query_caps(VkInstance inst, VkPhysicalDevice pd, vj_caps* c) {
	memset(c, 0, sizeof *c);
	LOAD(inst, vkGetPhysicalDeviceProperties2);
	LOAD(inst, vkGetPhysicalDeviceFeatures2);
	LOAD(inst, vkGetPhysicalDeviceMemoryProperties);

	VkPhysicalDeviceSubgroupSizeControlProperties sgc = {VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_SIZE_CONTROL_PROPERTIES};
	VkPhysicalDeviceSubgroupProperties sg = {VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_PROPERTIES, &sgc};
	VkPhysicalDeviceProperties2 p2 = {VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2, &sg};
	vkGetPhysicalDeviceProperties2(pd, &p2);
	VkPhysicalDeviceProperties* p = &p2.properties;
	strncpy(c->name, p->deviceName, sizeof c->name - 1);
	c->vendor_id = p->vendorID;
	c->device_id = p->deviceID;
	c->device_type = p->deviceType;
	c->api_version = p->apiVersion;
	c->driver_version = p->driverVersion;
	c->subgroup_size = sg.subgroupSize;
	c->subgroup_ops = sg.supportedOperations;
	c->min_subgroup_size = sgc.minSubgroupSize;
	c->max_subgroup_size = sgc.maxSubgroupSize;
	c->max_shared_memory = p->limits.maxComputeSharedMemorySize;
	c->max_push_constants = p->limits.maxPushConstantsSize;
	c->max_workgroup_invocations = p->limits.maxComputeWorkGroupInvocations;
	for (int i = 0; i < 3; i++) {
		c->max_workgroup_count[i] = p->limits.maxComputeWorkGroupCount[i];
		c->max_workgroup_size[i] = p->limits.maxComputeWorkGroupSize[i];
	}
	c->max_storage_buffer_range = p->limits.maxStorageBufferRange;
	c->min_storage_offset_alignment = p->limits.minStorageBufferOffsetAlignment;
	c->non_coherent_atom_size = p->limits.nonCoherentAtomSize;
	c->timestamp_period = p->limits.timestampPeriod;

	int coop = has_ext(inst, pd, VK_NV_COOPERATIVE_MATRIX_EXTENSION_NAME);
	int sizectl = has_ext(inst, pd, VK_EXT_SUBGROUP_SIZE_CONTROL_EXTENSION_NAME) || p->apiVersion >= VK_API_VERSION_1_3;
	c->coopmat_ext = coop;

	VkPhysicalDeviceCooperativeMatrixFeaturesNV cmf = {VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_FEATURES_NV};
	VkPhysicalDeviceSubgroupSizeControlFeatures sgf = {VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_SIZE_CONTROL_FEATURES};
	VkPhysicalDeviceShaderFloat16Int8Features f16 = {VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_FLOAT16_INT8_FEATURES};
	VkPhysicalDevice16BitStorageFeatures s16 = {VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_16BIT_STORAGE_FEATURES, &f16};
	VkPhysicalDevice8BitStorageFeatures s8 = {VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_8BIT_STORAGE_FEATURES, &s16};
	void* chain = &s8;
	if (sizectl) { sgf.pNext = chain; chain = &sgf; }
	if (coop) { cmf.pNext = chain; chain = &cmf; }
	VkPhysicalDeviceFeatures2 f2 = {VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2, chain};
	vkGetPhysicalDeviceFeatures2(pd, &f2);
	c->shader_float16 = f16.shaderFloat16;
	c->shader_int8 = f16.shaderInt8;
	c->storage_16bit = s16.storageBuffer16BitAccess;
	c->storage_8bit = s8.storageBuffer8BitAccess;
	c->subgroup_size_control = sizectl && sgf.subgroupSizeControl && sgf.computeFullSubgroups;
	c->coopmat = coop && cmf.cooperativeMatrix;

	if (c->coopmat) {
		LOAD(inst, vkGetPhysicalDeviceCooperativeMatrixPropertiesNV);
		if (vkGetPhysicalDeviceCooperativeMatrixPropertiesNV) {
			uint32_t n = 0;
			vkGetPhysicalDeviceCooperativeMatrixPropertiesNV(pd, &n, 0);
			VkCooperativeMatrixPropertiesNV props[VJ_MAX_COOPMAT];
			if (n > VJ_MAX_COOPMAT) n = VJ_MAX_COOPMAT;
			for (uint32_t i = 0; i < n; i++) {
				memset(&props[i], 0, sizeof props[i]);
				props[i].sType = VK_STRUCTURE_TYPE_COOPERATIVE_MATRIX_PROPERTIES_NV;
			}
			vkGetPhysicalDeviceCooperativeMatrixPropertiesNV(pd, &n, props);
			c->n_coopmat = n;
			for (uint32_t i = 0; i < n; i++) {
				vj_coopmat_shape* s = &c->coopmat_shapes[i];
				s->m = props[i].MSize; s->n = props[i].NSize; s->k = props[i].KSize;
				s->a_type = props[i].AType; s->b_type = props[i].BType;
				s->c_type = props[i].CType; s->d_type = props[i].DType; s->scope = props[i].scope;
			}
		}
	}

	VkPhysicalDeviceMemoryProperties mp;
	vkGetPhysicalDeviceMemoryProperties(pd, &mp);
	for (uint32_t i = 0; i < mp.memoryHeapCount; i++)
		if (mp.memoryHeaps[i].flags & VK_MEMORY_HEAP_DEVICE_LOCAL_BIT)
			c->device_local_bytes += mp.memoryHeaps[i].size;
}

VkResult vj_create_device(VkInstance inst, VkPhysicalDevice pd, uint32_t family, int f16, int storage16,
                          int coopmat, int subgroup_control, VkDevice* out) {
	LOAD(inst, vkCreateDevice);
	float prio = 1.0f;
	VkDeviceQueueCreateInfo q = {VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO};
	q.queueFamilyIndex = family;
	q.queueCount = 1;
	q.pQueuePriorities = &prio;

	VkPhysicalDeviceCooperativeMatrixFeaturesNV cmf = {VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_FEATURES_NV};
	VkPhysicalDeviceSubgroupSizeControlFeatures sgf = {VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_SIZE_CONTROL_FEATURES};
	VkPhysicalDeviceShaderFloat16Int8Features fi = {VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_FLOAT16_INT8_FEATURES};
	VkPhysicalDevice16BitStorageFeatures s16 = {VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_16BIT_STORAGE_FEATURES};
	const char* exts[4];
	uint32_t next = 0;
	void* chain = 0;
	if (f16) { fi.shaderFloat16 = 1; fi.pNext = chain; chain = &fi; }
	if (storage16) { s16.storageBuffer16BitAccess = 1; s16.pNext = chain; chain = &s16; }
	if (subgroup_control) {
		sgf.subgroupSizeControl = 1; sgf.computeFullSubgroups = 1; sgf.pNext = chain; chain = &sgf;
		exts[next++] = VK_EXT_SUBGROUP_SIZE_CONTROL_EXTENSION_NAME;
	}
	// glslang compiles GL_NV_cooperative_matrix shaders under the Vulkan memory model.
	VkPhysicalDeviceVulkanMemoryModelFeatures vmm = {VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_MEMORY_MODEL_FEATURES};
	if (coopmat) {
		cmf.cooperativeMatrix = 1; cmf.pNext = chain; chain = &cmf;
		LOAD(inst, vkGetPhysicalDeviceFeatures2);
		VkPhysicalDeviceVulkanMemoryModelFeatures have = {VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_MEMORY_MODEL_FEATURES};
		VkPhysicalDeviceFeatures2 f2 = {VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2, &have};
		vkGetPhysicalDeviceFeatures2(pd, &f2);
		vmm.vulkanMemoryModel = have.vulkanMemoryModel;
		vmm.vulkanMemoryModelDeviceScope = have.vulkanMemoryModelDeviceScope;
		vmm.pNext = chain; chain = &vmm;
		exts[next++] = VK_NV_COOPERATIVE_MATRIX_EXTENSION_NAME;
	}
	VkDeviceCreateInfo ci = {VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO, chain};
	ci.queueCreateInfoCount = 1;
	ci.pQueueCreateInfos = &q;
	ci.enabledExtensionCount = next;
	ci.ppEnabledExtensionNames = exts;
	return vkCreateDevice(pd, &ci, 0, out);
}

static VKAPI_ATTR VkBool32 VKAPI_CALL vj_debug_cb(VkDebugUtilsMessageSeverityFlagBitsEXT sev,
		VkDebugUtilsMessageTypeFlagsEXT type, const VkDebugUtilsMessengerCallbackDataEXT* data, void* user) {
	vjDebugMessage((uintptr_t)user, (int)sev, (char*)(data && data->pMessage ? data->pMessage : ""));
	return VK_FALSE;
}

VkResult vj_create_messenger(VkInstance inst, uintptr_t handle, VkDebugUtilsMessengerEXT* out) {
	LOAD(inst, vkCreateDebugUtilsMessengerEXT);
	if (!vkCreateDebugUtilsMessengerEXT) return VK_ERROR_EXTENSION_NOT_PRESENT;
	VkDebugUtilsMessengerCreateInfoEXT ci = {VK_STRUCTURE_TYPE_DEBUG_UTILS_MESSENGER_CREATE_INFO_EXT};
	ci.messageSeverity = VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT | VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT;
	ci.messageType = VK_DEBUG_UTILS_MESSAGE_TYPE_GENERAL_BIT_EXT | VK_DEBUG_UTILS_MESSAGE_TYPE_VALIDATION_BIT_EXT |
	                 VK_DEBUG_UTILS_MESSAGE_TYPE_PERFORMANCE_BIT_EXT;
	ci.pfnUserCallback = vj_debug_cb;
	ci.pUserData = (void*)handle;
	return vkCreateDebugUtilsMessengerEXT(inst, &ci, 0, out);
}

void vj_destroy_messenger(VkInstance inst, VkDebugUtilsMessengerEXT m) {
	LOAD(inst, vkDestroyDebugUtilsMessengerEXT);
	if (vkDestroyDebugUtilsMessengerEXT) vkDestroyDebugUtilsMessengerEXT(inst, m, 0);
}
