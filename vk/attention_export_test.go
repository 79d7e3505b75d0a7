package vk

// The attention and RoPE ops with their split size as a parameter, exported to the external tests so
// that the split paths (windows with element offsets) run on small tensors.
var (
	RopeChunked         = func(s *Stream, qkv Tensor, sh RopeShape, rows int) { rope(s, "rope", qkv, sh, rows) }
	RopeBackwardChunked = func(s *Stream, dqkv Tensor, sh RopeShape, rows int) { rope(s, "rope_backward", dqkv, sh, rows) }
)

// AttnPath picks the attention kernels for AttentionForwardPath and AttentionBackwardPath: the scalar ones,
// the CPU ones, or the cooperative-matrix ones (Emulated: their COOPMAT_EMULATE build, which lavapipe runs) with Warps
// and Tile forcing the launch shape (0: picked for the device). Split is the number of batch elements per
// dispatch (0: as many as the binding range allows).
type AttnPath struct {
	CoopMat, Emulated bool
	Warps, Tile       int
	Split             int
	CPU               bool // the CPU kernels (attention_cpu.glsl)
}

func (p AttnPath) path() attnPath {
	return attnPath{coop: p.CoopMat, emulated: p.Emulated, warps: p.Warps, tile: p.Tile, cpu: p.CPU}
}

func AttentionForwardPath(s *Stream, o, lse, qkv Tensor, sh AttnShape, p AttnPath) {
	attentionForward(s, o, lse, qkv, sh, p.Split, p.path())
}

func AttentionBackwardPath(s *Stream, dqkv, delta, do, qkv, o, lse Tensor, sh AttnShape, p AttnPath) {
	attentionBackward(s, dqkv, delta, do, qkv, o, lse, sh, p.Split, p.path())
}

// AttnCoopMatOK reports whether the public attention ops take the cooperative-matrix path on d for head
// dim dh.
func AttnCoopMatOK(d *Device, dh int) bool { return attnCoopUsable(d, dh) }

// AttnCoopMatFits reports whether the cooperative-matrix kernel ("attention", "attention_backward_dq",
// "attention_backward_dkv") fits d's shared memory at head dim dh with the given warps and tile.
func AttnCoopMatFits(d *Device, kernel string, dh, warps, tile int, emulated bool) bool {
	return attnCoopShared(kernel, dh, warps, tile, emulated) <= d.Info.SharedMemory && 32*warps <= d.Info.MaxWorkgroupInvoc
}
