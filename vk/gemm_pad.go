package vk

import (
	"fmt"
	"math/bits"
)

// Padded B operands of the CPU GEMM variant. Its tile reads, at one k, the rows of up to 24 columns of
// a B stored [n, k] (L lanes · NB), or B's rows at KB = 8 values of k for a B stored [k, n]. When B's
// row stride is a multiple of 2 KiB (the model's widths 512 to 4096 f32, 1024 to 4096 f16/bf16) all of
// those rows fall into one or two sets of the L1 data cache (64 sets of 64-byte lines on the Zen 5 this
// was measured on: addresses 4 KiB apart share a set; 12 ways), so the lines a step loads are evicted
// before the next step reads the rest of them. gemmRun then copies B into a scratch tensor of the
// stream with rows padded by one texel (one vkCmdCopyBuffer of a region per row: a memcpy on lavapipe,
// about 5 GB/s) and runs the unchanged kernel on the copy.
//
// Measured (f32 unless said, GFLOP per CPU-second, copy included, interleaved on the shared 2-core
// machine): 1032×512×2048 NT 18.7 → 27.0, 2064×3072×1024 NT 18.0 → 26.4, 1032×1536×512 NT 22.8 → 25.1,
// 1032×512×2048 NN 17.7 → 20.4, 512×2048×1032 TN 15.4 → 17.0. Strides that are multiples of 1 KiB but
// not 2 KiB (k = 256, 768 f32; bf16 at k = 512) lose nothing to aliasing; padding A (8 rows per tile)
// gains nothing measurable; padding a B that few row tiles reuse (m = 16 or 32) loses more to the copy
// than it gains, hence gemmPadMinM. The GPU kernels never pad.

const (
	// gemmPadPeriod: B is padded when its row stride in bytes is a multiple of this.
	gemmPadPeriod = 2048
	// gemmPadMinM: fewer rows of C than this reuse the copy too little (m/MT row tiles read it).
	gemmPadMinM = 64
	// gemmPadMinFlop: below this 2·m·n·k·batch the copy's dispatch and barrier cost more than they save.
	gemmPadMinFlop = 1 << 24
)

// gemmPadded is one stored matrix operand: [rows, cols] matrices, batch of them, row stride ld and batch
// stride stride from element off of t.
type gemmPadded struct {
	t                 Tensor
	off, ld, stride   int
	rows, cols, batch int
}

// gemmPadLd is the row stride of a padded copy of cols-element rows of dtype dt: whole texels, one texel
// more where that is a multiple of the period.
func gemmPadLd(dt DType, cols int) int {
	fe := texelBytes / dt.Size()
	ld := (cols + fe - 1) / fe * fe
	if gemmAliases(dt, ld) {
		ld += fe
	}
	return ld
}

// gemmAliases reports whether rows of ld elements of dtype dt sit a multiple of gemmPadPeriod bytes apart.
func gemmAliases(dt DType, ld int) bool { return ld*dt.Size()%gemmPadPeriod == 0 }

// GemmLd returns the row length at which d's kernels read a stored B operand with rows of cols elements
// of dtype dt fastest: cols, or on the CPU kernels, where that row stride would alias, gemmPadLd's. A B
// that does not change (a frozen weight) stored at that row length and passed with GemmOpts.LdB is read
// in place: no padded copy per product.
func GemmLd(d *Device, dt DType, cols int) int {
	if d.kernels != KernelsCPU || !gemmAliases(dt, cols) {
		return cols
	}
	return gemmPadLd(dt, cols)
}

// gemmCPUPadB replaces p's B by a padded copy when its row stride aliases and (unless always) the
// product reuses it enough. Not a B that a mask drops out: the mask hashes its stored offsets.
func (s *Stream) gemmCPUPadB(p *gemmProblem, env gemmEnv) {
	b := gemmPadded{t: p.b, off: p.offB, ld: p.ldb, stride: p.sb, rows: p.k, cols: p.n, batch: p.batch}
	if p.transB {
		b.rows, b.cols = p.n, p.k
	}
	if b.rows < 2 || !gemmAliases(b.t.DType, b.ld) || (p.mask != nil && p.mask.onB) {
		return
	}
	if !env.padAlways && (p.m < gemmPadMinM || 2*float64(p.m)*float64(p.n)*float64(p.k)*float64(p.batch) < gemmPadMinFlop) {
		return
	}
	if q, ok := s.gemmPad(b, env.maxBinding); ok {
		p.b, p.offB, p.ldb, p.sb = q.t, 0, q.ld, q.stride
	}
}

// gemmPad records a copy of x into the stream's scratch tensor with padded rows and returns the copy, or
// x and false when the copy would not fit the binding range or memory.
func (s *Stream) gemmPad(x gemmPadded, maxBinding uint64) (gemmPadded, bool) {
	ld := gemmPadLd(x.t.DType, x.cols)
	block := x.rows * ld
	if extent(x.batch, block, x.rows, x.cols, ld) > s.gemmLimit(x.t.DType, maxBinding) {
		return x, false
	}
	dst := s.scratch(x.t.DType, x.batch*block)
	if !dst.Valid() {
		return x, false
	}
	es := uint64(x.t.DType.Size())
	regions := make([]copyRegion, 0, x.batch*x.rows)
	for b := range x.batch {
		for r := range x.rows {
			regions = append(regions, copyRegion{
				srcOff: x.t.off + uint64(x.off+b*x.stride+r*x.ld)*es,
				dstOff: dst.off + uint64(b*block+r*ld)*es,
				size:   uint64(x.cols) * es,
			})
		}
	}
	src := Tensor{blk: x.t.blk, off: x.t.off + uint64(x.off)*es, DType: U8,
		Shape: []int{int(uint64(extent(x.batch, x.stride, x.rows, x.cols, x.ld)) * es)}}
	s.copyRegions("gemm.pad", dst, src, regions)
	s.padded++
	return gemmPadded{t: dst, ld: ld, stride: block, rows: x.rows, cols: x.cols, batch: x.batch}, true
}

// scratch returns n elements of dtype dt at the start of the stream's scratch tensor, replacing it by
// a larger one (a power of two bytes) when it is too small. A replaced tensor stays allocated until
// Reset or Destroy: the recording reads it. Each use after the first waits for the last one's readers
// (the stream's hazard tracking puts a barrier before the copy). Returns the zero Tensor (and records
// the error) when the device is out of memory.
func (s *Stream) scratch(dt DType, n int) Tensor {
	bytes := uint64(n * dt.Size())
	if !s.scratchCur.Valid() || s.scratchCur.Bytes() < bytes {
		t, err := s.d.NewTensor(U8, 1<<bits.Len64(max(bytes, 1<<16)-1))
		if err != nil {
			s.fail(fmt.Errorf("vk: gemm: scratch for a padded operand: %w", err))
			return Tensor{}
		}
		s.scratchAll = append(s.scratchAll, t)
		s.scratchCur = t
	}
	return Tensor{blk: s.scratchCur.blk, off: s.scratchCur.off, DType: dt, Shape: []int{n}}
}

// freeScratch releases every scratch tensor of the recording.
func (s *Stream) freeScratch() {
	for _, t := range s.scratchAll {
		s.d.Free(t)
	}
	s.scratchAll, s.scratchCur = nil, Tensor{}
}
