package vk

// The attention and RoPE ops with their split size as a parameter, exported to the external tests so
// that the split paths (windows with element offsets) run on small tensors.
var (
	AttentionForwardChunked  = attentionForward
	AttentionBackwardChunked = attentionBackward
	RopeChunked              = func(s *Stream, qkv Tensor, sh RopeShape, rows int) { rope(s, "rope", qkv, sh, rows) }
	RopeBackwardChunked      = func(s *Stream, dqkv Tensor, sh RopeShape, rows int) { rope(s, "rope_backward", dqkv, sh, rows) }
)
