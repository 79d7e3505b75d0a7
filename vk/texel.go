package vk

import (
	"fmt"

	vulkan "github.com/vulkan-go/vulkan"
)

// Texel-buffer bindings: a tensor window bound as a storage texel buffer of 16-byte R32G32B32A32_UINT
// texels (uimageBuffer in GLSL) instead of a storage buffer. The CPU variants of the GEMM and attention
// kernels read their operands this way: on llvmpipe an imageLoad of one texel is a vector load per lane,
// where a lane-varying storage-buffer load in a loop is a scalar loop over the lanes with a bounds check
// per word (about 3× the time per element, measured on lavapipe with Mesa 22.3).

// texelBytes is the size of one R32G32B32A32_UINT texel.
const texelBytes = 16

// texels binds t, read-only, as a storage texel buffer. Its byte offset must be a multiple of the
// device's texel-view alignment (Info.TexelAlignment); the view ends at t's end rounded up to a whole
// texel, or down where that would pass the end of t's memory block (the last partial texel then reads 0).
func texels(t Tensor) binding { return binding{t: t, texel: true} }

// texelView identifies one view; a stream keeps each view it creates until Reset or Destroy.
type texelView struct {
	buf           vulkan.Buffer
	offset, bytes uint64
}

// view returns the texel view of binding b's window, creating it on first use.
func (s *Stream) view(b binding) (vulkan.BufferView, error) {
	t := b.t
	if t.off%s.d.Info.TexelAlignment != 0 {
		return nil, fmt.Errorf("texel binding %v at offset %d is not %d-byte aligned", t, t.off, s.d.Info.TexelAlignment)
	}
	bytes := alignUp(max(t.Bytes(), texelBytes), texelBytes)
	if t.off+bytes > t.blk.size {
		bytes = (t.blk.size - t.off) / texelBytes * texelBytes
	}
	if bytes/texelBytes > uint64(s.d.Info.MaxTexels) {
		return nil, fmt.Errorf("texel binding %v: %d texels exceed maxTexelBufferElements %d", t, bytes/texelBytes, s.d.Info.MaxTexels)
	}
	key := texelView{t.blk.buf, t.off, bytes}
	if v, ok := s.views[key]; ok {
		return v, nil
	}
	v, r := s.d.calls.createBufferView(t.blk.buf, t.off, bytes)
	if err := check(r, "vkCreateBufferView", "%v", t); err != nil {
		return nil, err
	}
	if s.views == nil {
		s.views = map[texelView]vulkan.BufferView{}
	}
	s.views[key] = v
	return v, nil
}

// destroyViews releases every texel view the stream created.
func (s *Stream) destroyViews() {
	for _, v := range s.views {
		vulkan.DestroyBufferView(s.d.dev, v, nil)
	}
	s.views = nil
}

// bindingKinds is the descriptor type of each binding, one byte each ('b' storage buffer, 't' storage
// texel buffer): with the binding count, the key of a descriptor-set layout.
func bindingKinds(bs []binding) string {
	k := make([]byte, len(bs))
	for i, b := range bs {
		k[i] = 'b'
		if b.texel {
			k[i] = 't'
		}
	}
	return string(k)
}
