package vk

import (
	"fmt"
	"math"
)

// RopeShape describes the token layout of a sequence for 3-D RoPE (spec §4): per batch element, T frames of
// K conditioning tokens followed by GridH·GridW patch tokens (row-major). K = 0 for the encoder, where a
// "frame" is a tubelet index. Positions: patch (t, row, col); conditioning tokens (t, 0, 0) i.e. only the
// temporal dims rotate. TimeOffset is added to t (0 in training; kept for KV-cached rollouts).
type RopeShape struct {
	B, T, K, GridH, GridW int
	Heads, HeadDim        int
	TimeOffset            int
}

// N is the number of tokens per batch element, T·(K+GridH·GridW).
func (s RopeShape) N() int { return s.T * (s.K + s.GridH*s.GridW) }

// ropeMaxHalf bounds the pairs per axis block by the push-constant frequency table: 21 for HeadDim ≤ 131.
const ropeMaxHalf = 21

// ropePush mirrors the push block of shaders/rope.glsl field for field.
type ropePush struct {
	Pairs      uint32
	RowStart   uint32
	Off        uint32
	N          uint32
	PerFrame   uint32
	K          uint32
	GridW      uint32
	Heads      uint32
	HeadDim    uint32
	Half       uint32
	TimeOffset uint32
	Omega      [ropeMaxHalf]float32
}

// ropeAxisDim is the width of each axis block (spec §4.1): 2·floor(floor(headDim/3)/2).
func ropeAxisDim(headDim int) int { return 2 * (headDim / 3 / 2) }

// Rope rotates q and k in place inside qkv [B·N, 3·Heads·HeadDim] (columns [q | k | v], head j at
// [j·HeadDim, (j+1)·HeadDim) of each part; v untouched), N = T·(K+GridH·GridW). Tiled frequency table quirk
// of spec §4.3; axis width 2·floor(floor(HeadDim/3)/2), tail dims unrotated; ω_i = 10000^(−i/(d/2)); fp32.
func Rope(s *Stream, qkv Tensor, sh RopeShape) {
	rope(s, "rope", qkv, sh, 0)
}

// RopeBackward applies the transpose of Rope's linear map to dq and dk in place inside dqkv (same layout).
// The tiled table makes the map non-orthogonal, so the transpose is not the inverse rotation.
func RopeBackward(s *Stream, dqkv Tensor, sh RopeShape) {
	rope(s, "rope_backward", dqkv, sh, 0)
}

// rope runs shader ("rope" or "rope_backward") over at most chunk token rows per dispatch (0: as many as
// the device's binding range allows).
func rope(s *Stream, shader string, qkv Tensor, sh RopeShape, chunk int) {
	n, width := sh.N(), 3*sh.Heads*sh.HeadDim
	if qkv.DType != F32 || qkv.Numel() != sh.B*n*width || sh.B < 0 || sh.T < 0 || sh.K < 0 || sh.GridH < 0 ||
		sh.GridW < 0 || sh.Heads < 0 || sh.HeadDim < 0 || sh.TimeOffset < 0 {
		panic(fmt.Sprintf("vk: %s: qkv %v, want f32 [B·N, 3·Heads·HeadDim] = [%d, %d] for %+v", shader, qkv, sh.B*n, width, sh))
	}
	half := ropeAxisDim(sh.HeadDim) / 2
	if half > ropeMaxHalf {
		panic(fmt.Sprintf("vk: %s: HeadDim %d above the supported maximum of 131", shader, sh.HeadDim))
	}
	if half == 0 || n == 0 || sh.B == 0 {
		return // nothing rotates: HeadDim < 6 leaves every dim in the unrotated tail
	}
	push := ropePush{
		N: uint32(n), PerFrame: uint32(sh.K + sh.GridH*sh.GridW), K: uint32(sh.K), GridW: uint32(sh.GridW),
		Heads: uint32(sh.Heads), HeadDim: uint32(sh.HeadDim), Half: uint32(half), TimeOffset: uint32(sh.TimeOffset),
	}
	// ω in fp32 as the official code computes it: (i / half) in fp32, then 1 / 10000^that (spec §4.2, §4.6).
	for i := range half {
		push.Omega[i] = float32(1 / math.Pow(10000, float64(float32(i)/float32(half))))
	}
	perRow := 3 * half
	rows := sh.B * n
	if chunk <= 0 {
		chunk = ropeChunk(s, rows, width, perRow)
	}
	for r0 := 0; r0 < rows; r0 += chunk {
		nr := min(chunk, rows-r0)
		win, off := s.window(qkv, r0*width, nr*width)
		push.Pairs, push.RowStart, push.Off = uint32(nr*perRow), uint32(r0), uint32(off)
		s.dispatch(shader, kernel{shader, []uint32{local1D}}, push, s.grid1D(nr*perRow, local1D), out(win))
	}
}

// ropeChunk is how many token rows of width f32 elements one dispatch may bind: all of them when the
// tensor fits the device's binding range, else as many as fit with room for the window's alignment, and
// few enough that the invocation count (perRow per row) stays below 2^32.
func ropeChunk(s *Stream, rows, width, perRow int) int {
	rowBytes := uint64(width) * 4
	chunk := rows
	if uint64(rows)*rowBytes > s.d.MaxBinding() {
		chunk = int((s.d.MaxBinding() - s.d.mem.align) / rowBytes)
	}
	return max(1, min(chunk, (math.MaxUint32-1)/perRow))
}

// window returns a view of count f32 elements of t starting at element start, widened at the front to the
// device's storage-buffer alignment, and the offset of element start inside the view. Ops that split a
// tensor into several dispatches bind such windows and index with the offset in their push constants.
func (s *Stream) window(t Tensor, start, count int) (Tensor, int) {
	if start == 0 && count == t.Numel() {
		return t, 0
	}
	flat := t.Reshape(t.Numel())
	// An unaligned t keeps an unaligned window, which dispatch then reports.
	slack := min(start, int(((t.off+uint64(start)*4)%s.d.mem.align)/4))
	return flat.Slice(start-slack, count+slack), slack
}
