package vk

import "testing"

// TestRopePushLayout checks that ropePush matches the push block of both rope shaders.
func TestRopePushLayout(t *testing.T) {
	for _, sh := range []string{"rope", "rope_backward"} {
		checkPushLayout(t, sh, ropePush{})
	}
}
