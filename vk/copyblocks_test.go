package vk_test

import (
	"encoding/binary"
	"testing"

	"github.com/vjepa-vk/vjepa-vk/vk"
	"github.com/vjepa-vk/vjepa-vk/vk/ref"
	"github.com/vjepa-vk/vjepa-vk/vk/vktest"
)

type copyCase struct {
	name           string
	srcLen, dstLen int
	a              vk.CopyArgs
	maxElems       int // binding limit for the split; 0: the public op
}

// copyInterleave is spec §2.3 step 3 for B·T frames of K conditioning tokens and HW patches of width D:
// the conditioning tokens [B·T, K, D] and the patches [B·T, HW, D] into the sequence [B·T, K+HW, D]
// (and, with back, step 5's split of the patches out of the sequence).
func copyInterleave(frames, k, hw, dim int, patches, back bool) copyCase {
	per := (k + hw) * dim
	c := copyCase{name: vktest.Name("frames", frames, "K", k, "HW", hw, "D", dim, "patches", patches, "back", back)}
	if patches {
		c.a = vk.CopyArgs{Count: frames, Rows: hw, Cols: dim, SrcBlock: hw * dim, SrcRow: dim, DstOffset: k * dim, DstBlock: per, DstRow: dim}
		c.srcLen = frames * hw * dim
	} else {
		c.a = vk.CopyArgs{Count: frames, Rows: k, Cols: dim, SrcBlock: k * dim, SrcRow: dim, DstBlock: per, DstRow: dim}
		c.srcLen = frames * k * dim
	}
	c.dstLen = frames * per
	if back {
		a := c.a
		c.a.SrcOffset, c.a.SrcBlock, c.a.SrcRow = a.DstOffset, a.DstBlock, a.DstRow
		c.a.DstOffset, c.a.DstBlock, c.a.DstRow = a.SrcOffset, a.SrcBlock, a.SrcRow
		c.srcLen, c.dstLen = c.dstLen, c.srcLen
	}
	return c
}

func copyCases() []copyCase {
	cs := []copyCase{
		copyInterleave(6, 2, 16, 24, false, false),
		copyInterleave(6, 2, 16, 24, true, false),
		copyInterleave(6, 2, 16, 24, true, true),
		copyInterleave(16, 2, 256, 1024, true, false), // the model's predictor input for B=2, T=8
		copyInterleave(16, 3, 256, 64, false, true),
		{name: "single", srcLen: 1, dstLen: 1, a: vk.CopyArgs{Count: 1, Rows: 1, Cols: 1}},
		{name: "unaligned,cols=1", srcLen: 40, dstLen: 50, a: vk.CopyArgs{Count: 5, Rows: 3, Cols: 1, SrcOffset: 3, SrcBlock: 7, SrcRow: 2, DstOffset: 5, DstBlock: 9, DstRow: 3}},
		{name: "broadcast source", srcLen: 7, dstLen: 7 * 13, a: vk.CopyArgs{Count: 13, Rows: 1, Cols: 7, DstBlock: 7}},
		{name: "frames 1..7 of 8 (loss targets)", srcLen: 2 * 8 * 96, dstLen: 2 * 7 * 96, a: vk.CopyArgs{Count: 2, Rows: 1, Cols: 7 * 96, SrcOffset: 96, SrcBlock: 8 * 96, DstBlock: 7 * 96}},
		{name: "empty", srcLen: 4, dstLen: 4, a: vk.CopyArgs{Count: 0, Rows: 2, Cols: 2}},
	}
	// Splits: a binding limit of 100 elements forces halving over blocks, then rows, then columns.
	for _, c := range []copyCase{copyInterleave(6, 2, 16, 24, true, false), copyInterleave(5, 3, 7, 5, false, true),
		{name: "one wide row", srcLen: 1000, dstLen: 1200, a: vk.CopyArgs{Count: 1, Rows: 1, Cols: 999, SrcOffset: 1, DstOffset: 201}}} {
		c.name += ",split"
		c.maxElems = 100
		cs = append(cs, c)
	}
	return cs
}

// TestCopyBlocks runs every case through the copy_blocks kernel and, without Accumulate, as buffer-copy
// regions (what CopyBlocks records on a CPU device).
func TestCopyBlocks(t *testing.T) {
	d := vktest.Device(t)
	for _, c := range copyCases() {
		for _, accumulate := range []bool{false, true} {
			for _, path := range []string{"regions", "kernel"} {
				if path == "regions" && (accumulate || c.maxElems != 0) {
					continue
				}
				t.Run(c.name+vktest.Name(",accumulate", accumulate, "path", path), func(t *testing.T) {
					a := c.a
					a.Accumulate = accumulate
					srcV := vktest.RandN(81, c.srcLen)
					src := vktest.Tensor(t, d, vk.F32, srcV, c.srcLen)
					// Without accumulate, the untouched elements of dst must stay NaN.
					dstV := vktest.NaNs(c.dstLen)
					if accumulate {
						dstV = vktest.RandN(82, c.dstLen)
					}
					dst := vktest.Tensor(t, d, vk.F32, dstV, c.dstLen)
					s := vktest.Stream(t, d)
					switch {
					case c.maxElems != 0:
						vk.CopyBlocksChunked(s, dst, src, a, c.maxElems)
					case path == "kernel":
						vk.CopyBlocksChunked(s, dst, src, a, 1<<30)
					case !vk.CopyBlocksAsRegions(s, dst, src, a):
						t.Fatalf("CopyBlocks(%s): not recorded as copy regions", c.name)
					}
					vktest.Run(t, s)
					if dispatches, _ := s.Stats(); c.maxElems != 0 && dispatches < 2 {
						t.Errorf("CopyBlocks(%s) with bindings of %d elements: %d dispatch, want a split", c.name, c.maxElems, dispatches)
					}
					want := vktest.F64(dstV)
					ra := ref.CopyArgs{Count: a.Count, Rows: a.Rows, Cols: a.Cols, SrcOffset: a.SrcOffset, SrcBlock: a.SrcBlock,
						SrcRow: a.SrcRow, DstOffset: a.DstOffset, DstBlock: a.DstBlock, DstRow: a.DstRow, Accumulate: accumulate}
					ref.CopyBlocks(want, vktest.F64(srcV), ra)
					// A copy is exact; an accumulation is one correctly rounded f32 addition.
					vktest.Close(t, "CopyBlocks("+c.name+")", vktest.Download(t, d, dst), vktest.F64(vktest.F32(want)), 0, 0)
					ewUnchanged(t, d, "src", src, srcV)
				})
			}
		}
	}
}

// TestCopyBlocksBits checks that a copy moves bits, NaN payloads included, also for i32 tensors.
func TestCopyBlocksBits(t *testing.T) {
	d := vktest.Device(t)
	for _, dt := range []vk.DType{vk.F32, vk.I32} {
		words := []uint32{0x7fc01234, 0xffffffff, 0x00000001, 0x80000000}
		p := make([]byte, 16)
		for i, w := range words {
			binary.LittleEndian.PutUint32(p[4*i:], w)
		}
		src := vktest.Tensor(t, d, dt, nil, 4)
		dst := vktest.Tensor(t, d, dt, nil, 4)
		if err := d.WriteBytes(src, p); err != nil {
			t.Fatal(err)
		}
		s := vktest.Stream(t, d)
		vk.CopyBlocks(s, dst, src, vk.CopyArgs{Count: 2, Rows: 1, Cols: 2, SrcBlock: 2, DstBlock: 2})
		vktest.Run(t, s)
		got, err := d.ReadBytes(dst)
		if err != nil {
			t.Fatal(err)
		}
		for i, w := range words {
			if g := binary.LittleEndian.Uint32(got[4*i:]); g != w {
				t.Errorf("CopyBlocks(%v): [%d] = %#x, want %#x", dt, i, g, w)
			}
		}
	}
}

// BenchmarkCopyBlocks interleaves the patches of B=8, T=8 frames into the predictor sequence: patches read
// and written once.
func BenchmarkCopyBlocks(b *testing.B) {
	d := vktest.Device(b)
	c := copyInterleave(64, 2, 256, 1024, true, false)
	src := vktest.Tensor(b, d, vk.F32, vktest.RandN(1, c.srcLen), c.srcLen)
	dst := vktest.Tensor(b, d, vk.F32, nil, c.dstLen)
	s := vktest.Stream(b, d)
	vk.CopyBlocks(s, dst, src, c.a)
	ewBench(b, s, 8*c.srcLen)
}
