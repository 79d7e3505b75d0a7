package vk

import "testing"

// Dropout with the split size as a parameter, for the external tests of the split path on small tensors.
var (
	DropoutChunked         = dropout
	DropoutBackwardChunked = dropoutBackward
)

func TestDropoutPushLayout(t *testing.T) {
	checkPushLayout(t, "dropout", dropoutPush{})
	checkPushLayout(t, "dropout.accumulate", dropoutPush{})
}
