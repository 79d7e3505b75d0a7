package ref

import (
	"slices"
	"testing"
)

// TestCopyBlocksInterleave interleaves 2 frames of 1 conditioning token and 2 patch tokens (width 2), as
// spec §2.3 step 3 does, and accumulates a strided gather.
func TestCopyBlocksInterleave(t *testing.T) {
	cond := []float64{1, 2, 3, 4}                 // [frames 2, 1 token, width 2]
	patch := []float64{5, 6, 7, 8, 9, 10, 11, 12} // [frames 2, 2 tokens, width 2]
	seq := make([]float64, 12)                    // [frames 2, 3 tokens, width 2]
	CopyBlocks(seq, cond, CopyArgs{Count: 2, Rows: 1, Cols: 2, SrcBlock: 2, DstBlock: 6})
	CopyBlocks(seq, patch, CopyArgs{Count: 2, Rows: 2, Cols: 2, SrcBlock: 4, SrcRow: 2, DstOffset: 2, DstBlock: 6, DstRow: 2})
	if want := []float64{1, 2, 5, 6, 7, 8, 3, 4, 9, 10, 11, 12}; !slices.Equal(seq, want) {
		t.Errorf("interleave: %v, want %v", seq, want)
	}
	acc := []float64{1, 1, 1} // += seq[1], seq[5], seq[9]
	CopyBlocks(acc, seq, CopyArgs{Count: 3, Rows: 1, Cols: 1, SrcOffset: 1, SrcBlock: 4, DstBlock: 1, Accumulate: true})
	if want := []float64{3, 9, 11}; !slices.Equal(acc, want) {
		t.Errorf("accumulated gather: %v, want %v", acc, want)
	}
}
