package vk

import "testing"

// TestAttentionPushLayout checks that attnPush matches the push block of the three attention shaders.
func TestAttentionPushLayout(t *testing.T) {
	for _, sh := range []string{"attention", "attention_backward_dq", "attention_backward_dkv"} {
		checkPushLayout(t, sh, attnPush{})
	}
}
