package vk

import (
	"fmt"

	"github.com/vjepa-vk/vjepa-vk/vk/ref"
)

// Adam8BitBlock is the number of consecutive values that share one absmax scale in the 8-bit optimizer
// state. 256 is the block of bitsandbytes' blockwise 8-bit optimizers: an outlier coarsens the codes of
// only its 255 neighbours, the two f32 scales cost 8/256 = 0.03 byte per parameter next to the 2 bytes of
// codes, and one workgroup of 64 invocations covers a block with one packed word of 4 codes each, so the
// absmax reduction stays in shared memory.
const Adam8BitBlock = 256

// Adam8BitBlocks is the length of each scale tensor for n parameters: ceil(n / Adam8BitBlock).
func Adam8BitBlocks(n int) int { return (n + Adam8BitBlock - 1) / Adam8BitBlock }

// Adam8BitStateBytes is the device memory of the 8-bit optimizer state of n parameters: one byte of m
// code and one of v code per parameter plus two f32 scales per block, 2·n + 8·ceil(n/256) bytes, against
// 8·n for f32 AdamW. (Each tensor's allocation is rounded up to the device's storage alignment.)
func Adam8BitStateBytes(n int) int { return 2*n + 8*Adam8BitBlocks(n) }

// Adam8BitMaps returns the code maps of the 8-bit state as the qmap [512] tensor AdamW8bit reads
// (upload once): [0, 256) bitsandbytes' signed dynamic map for m, [256, 512) the unsigned one for v,
// each sorted ascending (ref.DynamicMap documents the values).
func Adam8BitMaps() []float32 {
	out := make([]float32, 0, 512)
	for _, signed := range []bool{true, false} {
		for _, c := range ref.DynamicMap(signed) {
			out = append(out, float32(c))
		}
	}
	return out
}

// AdamW8bit records the AdamW step of AdamW with both moments stored as 8-bit codes (bitsandbytes'
// blockwise 8-bit Adam), in one shader: each workgroup takes one block of Adam8BitBlock values,
// dequantizes m = qmap[mq]·mScale and v = qmap[256+vq]·vScale, applies exactly AdamW's update (the
// parameter step uses the fresh, unquantized moments), reduces the block's new absmax of m and of v in
// shared memory, stores it as the new scale and requantizes each moment to the nearest code of its map
// (ref.QuantizeNearest, an 8-step binary search). ref.AdamW8bit is the reference.
//
// p, g are f32 [n] (any shape); mq, vq are U8 with n elements; mScale, vScale are f32
// [Adam8BitBlocks(n)]; hyper is f32 [AdamHyperLen]; qmap is f32 [512] from Adam8BitMaps. A fresh state is
// all-zero scales (every code then decodes to 0). Memory: Adam8BitStateBytes(n) = 2·n + 8·ceil(n/256).
// A non-finite gradient must be caught with Skip: it would poison the scale of its whole block.
//
// The codes are read and written as packed 32-bit words, which needs no 8-bit storage feature: the up to
// 3 bytes after the last code are rewritten with their own value. Those bytes are the padding of the
// tensor's allocation (rounded up to 16 bytes), or of a slice whose successor starts at an aligned
// offset, as every separately bound tensor must.
func AdamW8bit(s *Stream, p, mq, vq, mScale, vScale, g, hyper, qmap Tensor, decay bool) {
	adamW8bit(s, p, mq, vq, mScale, vScale, g, hyper, qmap, decay, s.adamChunk())
}

// adamW8bit is AdamW8bit with dispatches of at most chunk elements (a multiple of adamChunkGranule).
func adamW8bit(s *Stream, p, mq, vq, mScale, vScale, g, hyper, qmap Tensor, decay bool, chunk int) {
	n := p.Numel()
	nb := Adam8BitBlocks(n)
	SameShape("adamw8bit p vs g", p, g)
	checkAdamTypes("adamw8bit", []Tensor{p, g, mScale, vScale, qmap}, F32, hyper)
	checkAdamTypes("adamw8bit", []Tensor{mq, vq}, U8, hyper)
	if mq.Numel() != n || vq.Numel() != n || mScale.Numel() != nb || vScale.Numel() != nb || qmap.Numel() != 512 {
		panic(fmt.Sprintf("vk: adamw8bit: p %v, mq %v, vq %v, mScale %v, vScale %v, qmap %v; want %d codes, %d scales, 512 map entries",
			p, mq, vq, mScale, vScale, qmap, n, nb))
	}
	p, g, mq, vq = p.Reshape(n), g.Reshape(n), mq.Reshape(n), vq.Reshape(n)
	mScale, vScale = mScale.Reshape(nb), vScale.Reshape(nb)
	for lo := 0; lo < n; lo += chunk {
		c := min(chunk, n-lo)
		b0, bc := lo/Adam8BitBlock, Adam8BitBlocks(c)
		groups := s.grid1D(bc*Adam8BitBlock/4, Adam8BitBlock/4) // one group per block
		s.dispatch("adamw8bit", kernel{"adamw8bit", []uint32{Adam8BitBlock / 4}}, adamwPush{uint32(c), adamFlag(decay)}, groups,
			out(p.Slice(lo, c)), out(codeWords(mq.Slice(lo, c))), out(codeWords(vq.Slice(lo, c))),
			out(mScale.Slice(b0, bc)), out(vScale.Slice(b0, bc)), in(g.Slice(lo, c)), in(hyper), in(qmap))
	}
}

// codeWords views a U8 [n] tensor as the u32 [ceil(n/4)] words the shader reads, 4 codes a word.
func codeWords(t Tensor) Tensor {
	w := t
	w.DType = U32
	w.Shape = []int{(t.Numel() + 3) / 4}
	w.owner = false
	return w
}
