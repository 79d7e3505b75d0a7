#include <dlfcn.h>
#include <stdlib.h>
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

VkResult vj_create_instance(int validate, VkInstance* out) {
	LOAD(0, vkCreateInstance);
	VkApplicationInfo app = {VK_STRUCTURE_TYPE_APPLICATION_INFO};
	app.pApplicationName = "vjepa-vk";
	app.applicationVersion = VK_MAKE_VERSION(0, 1, 0);
	app.pEngineName = "vjepa-vk";
	app.apiVersion = VK_API_VERSION_1_2;
	const char* layers[] = {"VK_LAYER_KHRONOS_validation"};
	const char* exts[] = {VK_EXT_DEBUG_UTILS_EXTENSION_NAME};
	VkInstanceCreateInfo ci = {VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO};
	ci.pApplicationInfo = &app;
	if (validate) {
		ci.enabledLayerCount = 1;
		ci.ppEnabledLayerNames = layers;
		ci.enabledExtensionCount = 1;
		ci.ppEnabledExtensionNames = exts;
	}
	return vkCreateInstance(&ci, 0, out);
}

uint32_t vj_queue_families(VkInstance inst, VkPhysicalDevice pd, uint32_t* flags, uint32_t max) {
	LOAD(inst, vkGetPhysicalDeviceQueueFamilyProperties);
	VkQueueFamilyProperties props[64];
	uint32_t n = 64;
	vkGetPhysicalDeviceQueueFamilyProperties(pd, &n, props);
	if (n > max) n = max;
	for (uint32_t i = 0; i < n; i++) flags[i] = props[i].queueFlags;
	return n;
}

uint32_t vj_memory_types(VkInstance inst, VkPhysicalDevice pd, uint32_t* flags, uint32_t max) {
	LOAD(inst, vkGetPhysicalDeviceMemoryProperties);
	VkPhysicalDeviceMemoryProperties mp;
	vkGetPhysicalDeviceMemoryProperties(pd, &mp);
	uint32_t n = mp.memoryTypeCount < max ? mp.memoryTypeCount : max;
	for (uint32_t i = 0; i < n; i++) flags[i] = mp.memoryTypes[i].propertyFlags;
	return n;
}

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
	c->max_texel_elements = p->limits.maxTexelBufferElements;
	c->min_texel_offset_alignment = p->limits.minTexelBufferOffsetAlignment;
	{
		LOAD(inst, vkGetPhysicalDeviceFormatProperties);
		VkFormatProperties fp = {0};
		vkGetPhysicalDeviceFormatProperties(pd, VK_FORMAT_R32G32B32A32_UINT, &fp);
		c->texel_buffers = (fp.bufferFeatures & VK_FORMAT_FEATURE_STORAGE_TEXEL_BUFFER_BIT) != 0;
	}

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

vj_fns* vj_load_fns(VkInstance inst, VkDevice dev) {
	LOAD(inst, vkGetDeviceProcAddr);
	if (!vkGetDeviceProcAddr) return 0;
	vj_fns* f = calloc(1, sizeof *f);
	if (!f) return 0;
	f->dev = dev;
	int ok = 1;
#define FN(name) ok &= (f->name = (PFN_vk##name)vkGetDeviceProcAddr(dev, "vk" #name)) != 0
	FN(CreateCommandPool);
	FN(AllocateCommandBuffers);
	FN(BeginCommandBuffer);
	FN(CreateFence);
	FN(QueueSubmit);
	FN(CreateBuffer);
	FN(GetBufferMemoryRequirements);
	FN(AllocateMemory);
	FN(CreateQueryPool);
	FN(CreateShaderModule);
	FN(CreateDescriptorSetLayout);
	FN(CreatePipelineLayout);
	FN(CreateComputePipelines);
	FN(CreateDescriptorPool);
	FN(AllocateDescriptorSets);
	FN(UpdateDescriptorSets);
	FN(CmdPipelineBarrier);
	FN(CmdCopyBuffer);
	FN(CreateBufferView);
#undef FN
	if (!ok) {
		free(f);
		return 0;
	}
	return f;
}

void vj_free_fns(vj_fns* f) { free(f); }

VkResult vj_create_command_pool(const vj_fns* f, uint32_t family, VkCommandPool* out) {
	VkCommandPoolCreateInfo ci = {VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO};
	ci.flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT;
	ci.queueFamilyIndex = family;
	return f->CreateCommandPool(f->dev, &ci, 0, out);
}

VkResult vj_allocate_command_buffer(const vj_fns* f, VkCommandPool pool, VkCommandBuffer* out) {
	VkCommandBufferAllocateInfo ai = {VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO};
	ai.commandPool = pool;
	ai.level = VK_COMMAND_BUFFER_LEVEL_PRIMARY;
	ai.commandBufferCount = 1;
	return f->AllocateCommandBuffers(f->dev, &ai, out);
}

VkResult vj_begin_command_buffer(const vj_fns* f, VkCommandBuffer cb, VkCommandBufferUsageFlags flags) {
	VkCommandBufferBeginInfo bi = {VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO};
	bi.flags = flags;
	return f->BeginCommandBuffer(cb, &bi);
}

VkResult vj_create_fence(const vj_fns* f, VkFence* out) {
	VkFenceCreateInfo ci = {VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
	return f->CreateFence(f->dev, &ci, 0, out);
}

VkResult vj_queue_submit(const vj_fns* f, VkQueue q, VkCommandBuffer cb, VkFence fence) {
	VkSubmitInfo si = {VK_STRUCTURE_TYPE_SUBMIT_INFO};
	si.commandBufferCount = 1;
	si.pCommandBuffers = &cb;
	return f->QueueSubmit(q, 1, &si, fence);
}

VkResult vj_create_buffer(const vj_fns* f, VkDeviceSize size, VkBufferUsageFlags usage, VkBuffer* out) {
	VkBufferCreateInfo ci = {VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO};
	ci.size = size;
	ci.usage = usage;
	ci.sharingMode = VK_SHARING_MODE_EXCLUSIVE;
	return f->CreateBuffer(f->dev, &ci, 0, out);
}

void vj_buffer_requirements(const vj_fns* f, VkBuffer buf, VkDeviceSize* size, uint32_t* type_bits) {
	VkMemoryRequirements req;
	f->GetBufferMemoryRequirements(f->dev, buf, &req);
	*size = req.size;
	*type_bits = req.memoryTypeBits;
}

VkResult vj_allocate_memory(const vj_fns* f, VkDeviceSize size, uint32_t type, VkDeviceMemory* out) {
	VkMemoryAllocateInfo ai = {VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO};
	ai.allocationSize = size;
	ai.memoryTypeIndex = type;
	return f->AllocateMemory(f->dev, &ai, 0, out);
}

VkResult vj_create_timestamp_pool(const vj_fns* f, uint32_t count, VkQueryPool* out) {
	VkQueryPoolCreateInfo ci = {VK_STRUCTURE_TYPE_QUERY_POOL_CREATE_INFO};
	ci.queryType = VK_QUERY_TYPE_TIMESTAMP;
	ci.queryCount = count;
	return f->CreateQueryPool(f->dev, &ci, 0, out);
}

VkResult vj_create_shader_module(const vj_fns* f, const uint32_t* code, size_t bytes, VkShaderModule* out) {
	VkShaderModuleCreateInfo ci = {VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO};
	ci.codeSize = bytes;
	ci.pCode = code;
	return f->CreateShaderModule(f->dev, &ci, 0, out);
}

VkResult vj_create_set_layout(const vj_fns* f, const VkDescriptorSetLayoutBinding* bindings, uint32_t n,
                              VkDescriptorSetLayout* out) {
	VkDescriptorSetLayoutCreateInfo ci = {VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO};
	ci.bindingCount = n;
	ci.pBindings = bindings;
	return f->CreateDescriptorSetLayout(f->dev, &ci, 0, out);
}

VkResult vj_create_pipeline_layout(const vj_fns* f, VkDescriptorSetLayout set, uint32_t push_bytes,
                                   VkPipelineLayout* out) {
	VkPushConstantRange push = {VK_SHADER_STAGE_COMPUTE_BIT, 0, push_bytes};
	VkPipelineLayoutCreateInfo ci = {VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO};
	ci.setLayoutCount = 1;
	ci.pSetLayouts = &set;
	ci.pushConstantRangeCount = 1;
	ci.pPushConstantRanges = &push;
	return f->CreatePipelineLayout(f->dev, &ci, 0, out);
}

VkResult vj_create_compute_pipeline(const vj_fns* f, VkShaderModule module, VkPipelineLayout layout,
                                    const VkSpecializationMapEntry* entries, const uint32_t* values, uint32_t n,
                                    VkPipeline* out) {
	VkSpecializationInfo spec = {n, entries, n * sizeof(uint32_t), values};
	VkComputePipelineCreateInfo ci = {VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO};
	ci.stage.sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO;
	ci.stage.stage = VK_SHADER_STAGE_COMPUTE_BIT;
	ci.stage.module = module;
	ci.stage.pName = "main";
	ci.stage.pSpecializationInfo = n ? &spec : 0;
	ci.layout = layout;
	return f->CreateComputePipelines(f->dev, VK_NULL_HANDLE, 1, &ci, 0, out);
}

VkResult vj_create_descriptor_pool(const vj_fns* f, uint32_t max_sets, uint32_t storage_buffers,
                                   uint32_t texel_buffers, VkDescriptorPool* out) {
	VkDescriptorPoolSize sizes[2] = {{VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, storage_buffers},
	                                 {VK_DESCRIPTOR_TYPE_STORAGE_TEXEL_BUFFER, texel_buffers}};
	VkDescriptorPoolCreateInfo ci = {VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO};
	ci.maxSets = max_sets;
	ci.poolSizeCount = texel_buffers ? 2 : 1;
	ci.pPoolSizes = sizes;
	return f->CreateDescriptorPool(f->dev, &ci, 0, out);
}

VkResult vj_allocate_descriptor_set(const vj_fns* f, VkDescriptorPool pool, VkDescriptorSetLayout layout,
                                    VkDescriptorSet* out) {
	VkDescriptorSetAllocateInfo ai = {VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO};
	ai.descriptorPool = pool;
	ai.descriptorSetCount = 1;
	ai.pSetLayouts = &layout;
	return f->AllocateDescriptorSets(f->dev, &ai, out);
}

// One write covers bindings 0..n-1: a descriptorCount past a binding's own count continues into the next
// binding (consecutive binding updates), and every binding of our set layouts is one storage buffer.
void vj_write_storage_buffers(const vj_fns* f, VkDescriptorSet set, const VkDescriptorBufferInfo* infos, uint32_t n) {
	VkWriteDescriptorSet w = {VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET};
	w.dstSet = set;
	w.dstBinding = 0;
	w.descriptorCount = n;
	w.descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER;
	w.pBufferInfo = infos;
	f->UpdateDescriptorSets(f->dev, 1, &w, 0, 0);
}

// One write per binding: bindings 0..n-1 are storage texel buffers where views[i] is a view, storage
// buffers (infos[i]) otherwise. n is at most 16.
void vj_write_descriptors(const vj_fns* f, VkDescriptorSet set, const VkDescriptorBufferInfo* infos,
                          const VkBufferView* views, uint32_t n) {
	VkWriteDescriptorSet w[16];
	if (n > 16) n = 16;
	for (uint32_t i = 0; i < n; i++) {
		VkWriteDescriptorSet x = {VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET};
		x.dstSet = set;
		x.dstBinding = i;
		x.descriptorCount = 1;
		if (views[i] != VK_NULL_HANDLE) {
			x.descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_TEXEL_BUFFER;
			x.pTexelBufferView = &views[i];
		} else {
			x.descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER;
			x.pBufferInfo = &infos[i];
		}
		w[i] = x;
	}
	f->UpdateDescriptorSets(f->dev, n, w, 0, 0);
}

VkResult vj_create_buffer_view(const vj_fns* f, VkBuffer buf, VkFormat format, VkDeviceSize offset, VkDeviceSize range,
                               VkBufferView* out) {
	VkBufferViewCreateInfo ci = {VK_STRUCTURE_TYPE_BUFFER_VIEW_CREATE_INFO};
	ci.buffer = buf;
	ci.format = format;
	ci.offset = offset;
	ci.range = range;
	return f->CreateBufferView(f->dev, &ci, 0, out);
}

void vj_cmd_compute_barrier(const vj_fns* f, VkCommandBuffer cb) {
	VkMemoryBarrier b = {VK_STRUCTURE_TYPE_MEMORY_BARRIER};
	b.srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT;
	b.dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT;
	f->CmdPipelineBarrier(cb, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, 0, 1, &b, 0,
	                      0, 0, 0);
}

// vj_cmd_transfer_barrier is vj_cmd_compute_barrier for streams that also record buffer copies: earlier
// compute and transfer writes visible to later compute and transfer reads and writes.
void vj_cmd_transfer_barrier(const vj_fns* f, VkCommandBuffer cb) {
	VkMemoryBarrier b = {VK_STRUCTURE_TYPE_MEMORY_BARRIER};
	b.srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT;
	b.dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_READ_BIT |
	                  VK_ACCESS_TRANSFER_WRITE_BIT;
	VkPipelineStageFlags stages = VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT;
	f->CmdPipelineBarrier(cb, stages, stages, 0, 1, &b, 0, 0, 0, 0);
}

void vj_cmd_copy_regions(const vj_fns* f, VkCommandBuffer cb, VkBuffer src, VkBuffer dst, const VkBufferCopy* regions,
                         uint32_t n) {
	f->CmdCopyBuffer(cb, src, dst, n, regions);
}

void vj_cmd_copy_buffer(const vj_fns* f, VkCommandBuffer cb, VkBuffer src, VkDeviceSize src_off, VkBuffer dst,
                        VkDeviceSize dst_off, VkDeviceSize size) {
	VkBufferCopy region = {src_off, dst_off, size};
	f->CmdCopyBuffer(cb, src, dst, 1, &region);
}
