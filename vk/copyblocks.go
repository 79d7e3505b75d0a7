package vk

import "fmt"

// CopyArgs describes CopyBlocks: Count blocks of Rows×Cols elements, each row Cols contiguous elements.
// Offsets and strides are in elements and must be non-negative.
type CopyArgs struct {
	Count, Rows, Cols           int
	SrcOffset, SrcBlock, SrcRow int
	DstOffset, DstBlock, DstRow int
	Accumulate                  bool // add into dst (f32) instead of overwriting it
}

type copyBlocksPush struct {
	Count, Rows, Cols           uint32
	SrcOffset, SrcBlock, SrcRow uint32
	DstOffset, DstBlock, DstRow uint32
}

// CopyBlocks copies, for c < Count, r < Rows, j < Cols,
//
//	dst[DstOffset + c·DstBlock + r·DstRow + j] = src[SrcOffset + c·SrcBlock + r·SrcRow + j]
//
// or adds (+=) with Accumulate. It interleaves the conditioning and patch tokens of each frame and splits
// them back (spec §2.3 steps 3 and 5), and gathers, scatters and concatenates token ranges. src and dst are
// f32 (or, without Accumulate, any 32-bit dtype, copied as bits). The destination elements must be
// distinct and must not overlap the source elements; src and dst may be the same tensor otherwise.
func CopyBlocks(s *Stream, dst, src Tensor, a CopyArgs) {
	if !checkCopy(dst, src, a) || (s.d.Info.Type == "cpu" && copyBlocksAsRegions(s, dst, src, a)) {
		return
	}
	s.copyBlocksSplit(flatView(dst), flatView(src), a, int(s.d.MaxBinding()/4))
}

// copyBlocks is CopyBlocks by the copy_blocks kernel alone, with bindings of at most maxElems elements: a
// copy whose source or destination range is wider is split into several dispatches.
func copyBlocks(s *Stream, dst, src Tensor, a CopyArgs, maxElems int) {
	if checkCopy(dst, src, a) {
		s.copyBlocksSplit(flatView(dst), flatView(src), a, maxElems)
	}
}

// checkCopy panics on arguments CopyBlocks refuses and reports whether a copies anything.
func checkCopy(dst, src Tensor, a CopyArgs) bool {
	const op = "copy blocks"
	for _, v := range []int{a.Count, a.Rows, a.Cols, a.SrcOffset, a.SrcBlock, a.SrcRow, a.DstOffset, a.DstBlock, a.DstRow} {
		if v < 0 {
			panic(fmt.Sprintf("vk: %s: negative size, offset or stride in %+v", op, a))
		}
	}
	for _, t := range []Tensor{dst, src} {
		if t.DType.Size() != 4 || (a.Accumulate && t.DType != F32) {
			panic(fmt.Sprintf("vk: %s: %v to %v (accumulate %v): want 32-bit elements, f32 to accumulate", op, src, dst, a.Accumulate))
		}
	}
	if a.Count == 0 || a.Rows == 0 || a.Cols == 0 {
		return false
	}
	if end := copyEnd(a.SrcOffset, a.SrcBlock, a.SrcRow, a); end > src.Numel() {
		panic(fmt.Sprintf("vk: %s: %+v reads src element %d of %v", op, a, end-1, src))
	}
	if end := copyEnd(a.DstOffset, a.DstBlock, a.DstRow, a); end > dst.Numel() {
		panic(fmt.Sprintf("vk: %s: %+v writes dst element %d of %v", op, a, end-1, dst))
	}
	return true
}

// copyBlocksMaxRegions bounds the regions of one copyBlocksAsRegions.
const copyBlocksMaxRegions = 4096

// copyBlocksAsRegions records a copy without Accumulate as one vkCmdCopyBuffer of a region per run of
// contiguous elements (a block, or a row of one), and reports whether it did. A CPU driver (lavapipe)
// runs that as memcpys, where the copy_blocks kernel's lane-varying loads and stores are scalar loops
// over the lanes: T=2's 13 copies per step took 13.8 ms as kernels.
func copyBlocksAsRegions(s *Stream, dst, src Tensor, a CopyArgs) bool {
	if a.Accumulate {
		return false
	}
	count, rows, run := a.Count, a.Rows, a.Cols
	srcBlock, dstBlock := a.SrcBlock, a.DstBlock
	if rows == 1 || (a.SrcRow == a.Cols && a.DstRow == a.Cols) { // whole blocks are contiguous
		run, rows = a.Rows*a.Cols, 1
		if count == 1 || (srcBlock == run && dstBlock == run) { // and so is the whole copy
			run, count = a.Count*run, 1
		}
	}
	if count*rows > copyBlocksMaxRegions {
		return false
	}
	es := uint64(4)
	regions := make([]copyRegion, 0, count*rows)
	for c := range count {
		for r := range rows {
			regions = append(regions, copyRegion{
				srcOff: src.off + uint64(a.SrcOffset+c*srcBlock+r*a.SrcRow)*es,
				dstOff: dst.off + uint64(a.DstOffset+c*dstBlock+r*a.DstRow)*es,
				size:   uint64(run) * es,
			})
		}
	}
	s.copyRegions("copy_blocks", dst, src, regions)
	return true
}

// copyEnd is one past the last element a touches on the side with the given offset and strides.
func copyEnd(offset, block, row int, a CopyArgs) int {
	return offset + (a.Count-1)*block + (a.Rows-1)*row + a.Cols
}

// copyBlocksSplit binds only the element ranges a touches, widened at the front to the storage alignment,
// and halves a (over blocks, then rows, then columns) while a range or the element count exceeds maxElems,
// or its columns over the grid's x limit.
func (s *Stream) copyBlocksSplit(dst, src Tensor, a CopyArgs, maxElems int) {
	sv, sOff := s.copyWindow(src, a.SrcOffset, copyEnd(a.SrcOffset, a.SrcBlock, a.SrcRow, a))
	dv, dOff := s.copyWindow(dst, a.DstOffset, copyEnd(a.DstOffset, a.DstBlock, a.DstRow, a))
	total := a.Count * a.Rows * a.Cols
	gx := (a.Cols + local1D - 1) / local1D
	wide := gx > s.d.Info.MaxWorkgroupCount[0]
	if !wide && (total == 1 || sv.Numel() <= maxElems && dv.Numel() <= maxElems && total <= maxElems) {
		name := "copy_blocks"
		if a.Accumulate {
			name += ".accumulate"
		}
		p := copyBlocksPush{
			uint32(a.Count), uint32(a.Rows), uint32(a.Cols),
			uint32(sOff), uint32(a.SrcBlock), uint32(a.SrcRow),
			uint32(dOff), uint32(a.DstBlock), uint32(a.DstRow),
		}
		lines, maxY := a.Count*a.Rows, s.d.Info.MaxWorkgroupCount[1]
		grid := [3]int{gx, min(lines, maxY), (lines + maxY - 1) / maxY}
		s.dispatch("copy_blocks", kernel{name, []uint32{local1D}}, p, grid, out(dv), in(sv))
		return
	}
	first, rest := a, a
	switch {
	case a.Count > 1 && !wide:
		h := a.Count / 2
		first.Count, rest.Count = h, a.Count-h
		rest.SrcOffset += h * a.SrcBlock
		rest.DstOffset += h * a.DstBlock
	case a.Rows > 1 && !wide:
		h := a.Rows / 2
		first.Rows, rest.Rows = h, a.Rows-h
		rest.SrcOffset += h * a.SrcRow
		rest.DstOffset += h * a.DstRow
	default:
		h := a.Cols / 2
		first.Cols, rest.Cols = h, a.Cols-h
		rest.SrcOffset += h
		rest.DstOffset += h
	}
	s.copyBlocksSplit(dst, src, first, maxElems)
	s.copyBlocksSplit(dst, src, rest, maxElems)
}

// copyWindow returns the 1-D view of elements [lo, hi) of the 1-D tensor t, widened at the front so that
// it starts at the device's storage-buffer alignment, and the index of element lo inside it.
func (s *Stream) copyWindow(t Tensor, lo, hi int) (Tensor, int) {
	size := uint64(t.DType.Size())
	slack := min(lo, int((t.off+uint64(lo)*size)%s.d.mem.align/size))
	return t.Slice(lo-slack, hi-lo+slack), slack
}
