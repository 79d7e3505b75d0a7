package vk

import "unsafe"

// pointerTo returns the address of a slice's first element for the Vulkan calls that take raw data.
func pointerTo[T any](s []T) unsafe.Pointer {
	if len(s) == 0 {
		return nil
	}
	return unsafe.Pointer(&s[0])
}
