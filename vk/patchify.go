package vk

import "fmt"

type patchifyPush struct {
	B, C, F, H, W, Tubelet, Patch, Total uint32
}

// Patchify lays out a video [B, C, F, H, W] as tubelet patches out [B·(F/tt)·(H/ps)·(W/ps), C·tt·ps·ps],
// each row flattened in (channel, dt, dy, dx) order, so that the Conv3d patch embedding is the GEMM
// out·Wᵀ with W [dim, C, tt, ps, ps] reshaped to [dim, C·tt·ps·ps] (spec §8.3).
func Patchify(s *Stream, dst, video Tensor, tubelet, patch int) {
	if len(video.Shape) != 5 {
		panic(fmt.Sprintf("vk: patchify: video shape %v, want [B, C, F, H, W]", video.Shape))
	}
	B, C, F, H, W := video.Shape[0], video.Shape[1], video.Shape[2], video.Shape[3], video.Shape[4]
	if F%tubelet != 0 || H%patch != 0 || W%patch != 0 {
		panic(fmt.Sprintf("vk: patchify: video %v not divisible by tubelet %d and patch %d", video.Shape, tubelet, patch))
	}
	rows, cols := B*(F/tubelet)*(H/patch)*(W/patch), C*tubelet*patch*patch
	if dst.Numel() != rows*cols {
		panic(fmt.Sprintf("vk: patchify: out %v, want [%d, %d]", dst.Shape, rows, cols))
	}
	pc := patchifyPush{uint32(B), uint32(C), uint32(F), uint32(H), uint32(W), uint32(tubelet), uint32(patch), uint32(rows * cols)}
	s.dispatch("patchify", kernel{"patchify", []uint32{local1D}}, pc, s.grid1D(rows*cols, local1D), out(dst), in(video))
}
