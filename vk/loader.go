package vk

/*
#include "shim.h"

// vj_loader_version asks the loader for its instance version (vkEnumerateInstanceVersion, Vulkan 1.1);
// a 1.0 loader lacks the entry point and is 1.0 by definition. 0 means the call failed.
static uint32_t vj_loader_version(void) {
	PFN_vkGetInstanceProcAddr gipa = (PFN_vkGetInstanceProcAddr)vj_gipa();
	PFN_vkEnumerateInstanceVersion f = (PFN_vkEnumerateInstanceVersion)gipa(0, "vkEnumerateInstanceVersion");
	uint32_t v = VK_API_VERSION_1_0;
	if (f && f(&v) != VK_SUCCESS) return 0;
	return v;
}
*/
import "C"

import "fmt"

// LoaderVersion returns the version of the Vulkan loader (libvulkan.so.1) this process uses, e.g.
// "1.3.239", without creating an instance; the error says why there is none.
func LoaderVersion() (string, error) {
	if err := loadVulkan(); err != nil {
		return "", err
	}
	v := uint32(C.vj_loader_version())
	if v == 0 {
		return "", fmt.Errorf("vk: vkEnumerateInstanceVersion failed")
	}
	return apiVersionString(v), nil
}

// apiVersionString formats a packed Vulkan version (VK_MAKE_API_VERSION) as major.minor.patch.
func apiVersionString(v uint32) string {
	return fmt.Sprintf("%d.%d.%d", v>>22&0x7f, v>>12&0x3ff, v&0xfff)
}
