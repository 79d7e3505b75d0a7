package vk

import "testing"

// Dropout with the split size as a parameter, for the external tests of the split path on small tensors.
var (
	DropoutAtChunked         = dropout
	DropoutBackwardAtChunked = dropoutBackward
)

func DropoutChunked(s *Stream, y, x, seed Tensor, p float32, salt uint32, chunk int) {
	dropout(s, y, x, seed, p, salt, 0, chunk)
}

func DropoutBackwardChunked(s *Stream, dx, dy, seed Tensor, p float32, salt uint32, accumulate bool, chunk int) {
	dropoutBackward(s, dx, dy, seed, p, salt, 0, accumulate, chunk)
}

func TestDropoutPushLayout(t *testing.T) {
	checkPushLayout(t, "dropout", dropoutPush{})
	checkPushLayout(t, "dropout.accumulate", dropoutPush{})
}
