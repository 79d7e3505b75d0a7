package ref

import "fmt"

// CopyArgs mirrors vk.CopyArgs: Count blocks of Rows×Cols elements, offsets and strides in elements.
type CopyArgs struct {
	Count, Rows, Cols           int
	SrcOffset, SrcBlock, SrcRow int
	DstOffset, DstBlock, DstRow int
	Accumulate                  bool
}

// CopyBlocks is, for c < Count, r < Rows, j < Cols,
//
//	dst[DstOffset + c·DstBlock + r·DstRow + j] = src[SrcOffset + c·SrcBlock + r·SrcRow + j]
//
// or += with Accumulate.
func CopyBlocks(dst, src []float64, a CopyArgs) {
	for c := 0; c < a.Count; c++ {
		for r := 0; r < a.Rows; r++ {
			for j := 0; j < a.Cols; j++ {
				s := a.SrcOffset + c*a.SrcBlock + r*a.SrcRow + j
				d := a.DstOffset + c*a.DstBlock + r*a.DstRow + j
				if s >= len(src) || d >= len(dst) {
					panic(fmt.Sprintf("ref: CopyBlocks %+v: src[%d] of %d or dst[%d] of %d out of range", a, s, len(src), d, len(dst)))
				}
				if a.Accumulate {
					dst[d] += src[s]
				} else {
					dst[d] = src[s]
				}
			}
		}
	}
}
