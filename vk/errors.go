package vk

import (
	"errors"
	"fmt"

	vulkan "github.com/vulkan-go/vulkan"
)

// ErrDeviceLost and ErrOutOfMemory let callers branch on the two failures a long run can meet.
var (
	ErrDeviceLost  = errors.New("device lost")
	ErrOutOfMemory = errors.New("out of device memory")
)

// ResultError is a failed Vulkan call: which call, on behalf of what, and the VkResult.
type ResultError struct {
	Call   string // e.g. "vkQueueSubmit"
	Detail string // what was being done: the op, the allocation size
	Result vulkan.Result
}

func (e *ResultError) Error() string {
	s := "vk: " + e.Call
	if e.Detail != "" {
		s += " (" + e.Detail + ")"
	}
	return s + ": " + resultName(e.Result)
}

func (e *ResultError) Unwrap() error {
	switch e.Result {
	case vulkan.ErrorDeviceLost:
		return ErrDeviceLost
	case vulkan.ErrorOutOfDeviceMemory, vulkan.ErrorOutOfHostMemory:
		return ErrOutOfMemory
	}
	return nil
}

func check(r vulkan.Result, call, detail string, args ...any) error {
	if r == vulkan.Success {
		return nil
	}
	if len(args) > 0 {
		detail = fmt.Sprintf(detail, args...)
	}
	return &ResultError{Call: call, Detail: detail, Result: r}
}

func resultName(r vulkan.Result) string {
	names := map[vulkan.Result]string{
		vulkan.NotReady:                  "VK_NOT_READY",
		vulkan.Timeout:                   "VK_TIMEOUT",
		vulkan.Incomplete:                "VK_INCOMPLETE",
		vulkan.ErrorOutOfHostMemory:      "VK_ERROR_OUT_OF_HOST_MEMORY",
		vulkan.ErrorOutOfDeviceMemory:    "VK_ERROR_OUT_OF_DEVICE_MEMORY",
		vulkan.ErrorInitializationFailed: "VK_ERROR_INITIALIZATION_FAILED",
		vulkan.ErrorDeviceLost:           "VK_ERROR_DEVICE_LOST",
		vulkan.ErrorMemoryMapFailed:      "VK_ERROR_MEMORY_MAP_FAILED",
		vulkan.ErrorLayerNotPresent:      "VK_ERROR_LAYER_NOT_PRESENT",
		vulkan.ErrorExtensionNotPresent:  "VK_ERROR_EXTENSION_NOT_PRESENT",
		vulkan.ErrorFeatureNotPresent:    "VK_ERROR_FEATURE_NOT_PRESENT",
		vulkan.ErrorIncompatibleDriver:   "VK_ERROR_INCOMPATIBLE_DRIVER",
		vulkan.ErrorTooManyObjects:       "VK_ERROR_TOO_MANY_OBJECTS",
		vulkan.ErrorFormatNotSupported:   "VK_ERROR_FORMAT_NOT_SUPPORTED",
		vulkan.ErrorFragmentedPool:       "VK_ERROR_FRAGMENTED_POOL",
		vulkan.ErrorOutOfPoolMemory:      "VK_ERROR_OUT_OF_POOL_MEMORY",
		vulkan.ErrorInvalidShaderNv:      "VK_ERROR_INVALID_SHADER_NV",
		vulkan.ErrorValidationFailed:     "VK_ERROR_VALIDATION_FAILED_EXT",
	}
	if n, ok := names[r]; ok {
		return n
	}
	return fmt.Sprintf("VkResult(%d)", int32(r))
}
