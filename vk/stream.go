package vk

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"time"

	vulkan "github.com/vulkan-go/vulkan"
)

// Stream records dispatches into one command buffer. Run submits it and waits; calling Run again
// replays the same recording (a training step is recorded once and replayed; per-step scalars such as
// the learning rate live in small device tensors). Reset starts a new recording.
//
// Barriers are inserted only where a dispatch reads or writes a byte range that an earlier dispatch
// since the last barrier wrote, or writes a range an earlier one read.
type Stream struct {
	d        *Device
	cb       vulkan.CommandBuffer
	pools    []vulkan.DescriptorPool
	poolLeft int
	begun    bool
	ended    bool
	err      error

	reads, writes []rng
	dispatches    int
	barriers      int

	timing  bool
	query   vulkan.QueryPool
	labels  []string
	timings []OpTime

	views map[texelView]vulkan.BufferView // texel views of this recording (texel.go)

	// Scratch of this recording (gemm_pad.go): the current tensor, every one allocated (freed on Reset
	// and Destroy), and how many GEMM operands were padded into it.
	scratchCur Tensor
	scratchAll []Tensor
	padded     int
	transfers  bool // the recording holds buffer copies: barriers must order them too
}

type rng struct {
	blk    *block
	lo, hi uint64
}

func (a rng) overlaps(b rng) bool { return a.blk == b.blk && a.lo < b.hi && b.lo < a.hi }

// binding is one storage-buffer argument of a dispatch, or with texel a read-only storage texel buffer
// (texels in texel.go).
type binding struct {
	t     Tensor
	write bool
	texel bool
}

func in(t Tensor) binding  { return binding{t: t} }
func out(t Tensor) binding { return binding{t: t, write: true} }

// OpTime is the GPU time of one recorded dispatch, from timestamps.
type OpTime struct {
	Op       string
	Duration time.Duration
}

const (
	setsPerPool = 512
	maxQueries  = 1 << 14
	maxBindings = 12
)

// NewStream creates an empty stream. With timing, every dispatch is bracketed by timestamps, read back
// by Timings after Run.
func (d *Device) NewStream(timing bool) (*Stream, error) {
	cb, r := d.calls.allocateCommandBuffer(d.cmdPool)
	if err := check(r, "vkAllocateCommandBuffers", "stream"); err != nil {
		return nil, err
	}
	s := &Stream{d: d, cb: cb, timing: timing && d.Info.TimestampPeriodNanos > 0}
	if s.timing {
		qp, r := d.calls.createTimestampPool(maxQueries)
		if err := check(r, "vkCreateQueryPool", "stream timing"); err != nil {
			s.Destroy()
			return nil, err
		}
		s.query = qp
	}
	return s, nil
}

// Device returns the stream's device.
func (s *Stream) Device() *Device { return s.d }

// Err returns the first recording error.
func (s *Stream) Err() error { return s.err }

func (s *Stream) fail(err error) {
	if s.err == nil {
		s.err = err
	}
}

func (s *Stream) begin() {
	if s.begun {
		return
	}
	if s.ended {
		s.fail(fmt.Errorf("vk: stream: dispatch after Run; call Reset to record a new sequence"))
		return
	}
	s.fail(check(s.d.calls.beginCommandBuffer(s.cb, 0), "vkBeginCommandBuffer", "stream"))
	if s.timing {
		vulkan.CmdResetQueryPool(s.cb, s.query, 0, maxQueries)
	}
	s.begun = true
}

func (s *Stream) descriptorSet(p *pipeline) (vulkan.DescriptorSet, error) {
	if s.poolLeft == 0 {
		pool, r := s.d.calls.createDescriptorPool(setsPerPool, setsPerPool*maxBindings, setsPerPool*maxBindings)
		if err := check(r, "vkCreateDescriptorPool", ""); err != nil {
			return nil, err
		}
		s.pools = append(s.pools, pool)
		s.poolLeft = setsPerPool
	}
	set, r := s.d.calls.allocateDescriptorSet(s.pools[len(s.pools)-1], p.dsl)
	if err := check(r, "vkAllocateDescriptorSets", ""); err != nil {
		return nil, err
	}
	s.poolLeft--
	return set, nil
}

// encodePush lays out a push-constant struct of 4-byte fields (uint32, int32, float32) as the shader's
// std430 push block sees it.
func encodePush(push any) ([]byte, error) {
	if push == nil {
		return nil, nil
	}
	var b bytes.Buffer
	if err := binary.Write(&b, binary.LittleEndian, push); err != nil {
		return nil, err
	}
	if b.Len() > pushBytes {
		return nil, fmt.Errorf("push constants of %d bytes exceed %d", b.Len(), pushBytes)
	}
	return b.Bytes(), nil
}

// dispatch records one compute dispatch of kernel k over groups workgroups. label names the op in errors
// and timings.
func (s *Stream) dispatch(label string, k kernel, push any, groups [3]int, bs ...binding) {
	if s.err != nil {
		return
	}
	s.begin()
	if s.err != nil {
		return
	}
	for i, g := range groups {
		if g < 1 || g > s.d.Info.MaxWorkgroupCount[i] {
			if g == 0 {
				return // nothing to do
			}
			s.fail(fmt.Errorf("vk: %s: workgroup count %v exceeds device limit %v", label, groups, s.d.Info.MaxWorkgroupCount))
			return
		}
	}
	pc, err := encodePush(push)
	if err != nil {
		s.fail(fmt.Errorf("vk: %s: %w", label, err))
		return
	}
	p, err := s.d.pipes.get(k, bindingKinds(bs))
	if err != nil {
		s.fail(fmt.Errorf("vk: %s: %w", label, err))
		return
	}
	set, err := s.descriptorSet(p)
	if err != nil {
		s.fail(fmt.Errorf("vk: %s: %w", label, err))
		return
	}
	ranges := make([]bufferRange, len(bs))
	var views []vulkan.BufferView // nil unless a binding is a texel buffer
	var rs, ws []rng
	for i, b := range bs {
		if !b.t.Valid() {
			panic(fmt.Sprintf("vk: %s: binding %d is an unallocated tensor", label, i))
		}
		size := b.t.Bytes()
		if size > s.d.MaxBinding() {
			s.fail(fmt.Errorf("vk: %s: binding %d (%v, %d MiB) exceeds maxStorageBufferRange %d MiB; split the op",
				label, i, b.t, size>>20, s.d.MaxBinding()>>20))
			return
		}
		if b.t.off%s.d.mem.align != 0 {
			s.fail(fmt.Errorf("vk: %s: binding %d (%v) at offset %d is not %d-byte aligned", label, i, b.t, b.t.off, s.d.mem.align))
			return
		}
		r := rng{b.t.blk, b.t.off, b.t.off + size}
		rs = append(rs, r)
		if b.write {
			ws = append(ws, r)
		}
		if b.texel {
			v, err := s.view(b)
			if err != nil {
				s.fail(fmt.Errorf("vk: %s: binding %d: %w", label, i, err))
				return
			}
			if views == nil {
				views = make([]vulkan.BufferView, len(bs))
			}
			views[i] = v
			continue
		}
		bound := max(size, 4)
		if b.t.off+bound > b.t.blk.size {
			bound = b.t.blk.size - b.t.off
		}
		ranges[i] = bufferRange{b.t.blk.buf, b.t.off, bound}
	}
	if views != nil {
		s.d.calls.writeDescriptors(set, ranges, views)
	} else {
		s.d.calls.writeStorageBuffers(set, ranges)
	}

	s.order(rs, ws)

	q := uint32(2 * len(s.labels))
	timed := s.timing && q+2 <= maxQueries
	if timed {
		vulkan.CmdWriteTimestamp(s.cb, vulkan.PipelineStageComputeShaderBit, s.query, q)
		s.labels = append(s.labels, label)
	}
	vulkan.CmdBindPipeline(s.cb, vulkan.PipelineBindPointCompute, p.pipe)
	vulkan.CmdBindDescriptorSets(s.cb, vulkan.PipelineBindPointCompute, p.layout, 0, 1, []vulkan.DescriptorSet{set}, 0, nil)
	if len(pc) > 0 {
		vulkan.CmdPushConstants(s.cb, p.layout, vulkan.ShaderStageFlags(vulkan.ShaderStageComputeBit), 0, uint32(len(pc)), pointerTo(pc))
	}
	vulkan.CmdDispatch(s.cb, uint32(groups[0]), uint32(groups[1]), uint32(groups[2]))
	if timed {
		vulkan.CmdWriteTimestamp(s.cb, vulkan.PipelineStageComputeShaderBit, s.query, q+1)
	}
	s.dispatches++
}

// order records a barrier before a command that reads rs and writes ws when it must wait for earlier
// ones, and notes its ranges.
func (s *Stream) order(rs, ws []rng) {
	if s.hazard(rs, ws) {
		if s.transfers {
			s.d.calls.cmdTransferBarrier(s.cb)
		} else {
			s.d.calls.cmdComputeBarrier(s.cb)
		}
		s.reads, s.writes = s.reads[:0], s.writes[:0]
		s.barriers++
	}
	s.reads = append(s.reads, rs...)
	s.writes = append(s.writes, ws...)
}

// copyRegions records one buffer copy (vkCmdCopyBuffer) of regions (byte offsets in the buffers) from
// src's buffer to dst's, whose byte ranges src and dst cover; label names it in timings. From then on the
// recording's barriers also order transfers.
func (s *Stream) copyRegions(label string, dst, src Tensor, regions []copyRegion) {
	if s.err != nil || len(regions) == 0 {
		return
	}
	s.begin()
	if s.err != nil {
		return
	}
	s.transfers = true
	w := rng{dst.blk, dst.off, dst.off + dst.Bytes()}
	s.order([]rng{{src.blk, src.off, src.off + src.Bytes()}, w}, []rng{w})
	q := uint32(2 * len(s.labels))
	timed := s.timing && q+2 <= maxQueries
	if timed {
		vulkan.CmdWriteTimestamp(s.cb, vulkan.PipelineStageTransferBit, s.query, q)
		s.labels = append(s.labels, label)
	}
	s.d.calls.cmdCopyRegions(s.cb, src.blk.buf, dst.blk.buf, regions)
	if timed {
		vulkan.CmdWriteTimestamp(s.cb, vulkan.PipelineStageTransferBit, s.query, q+1)
	}
	s.dispatches++
}

// hazard reports whether a dispatch reading rs and writing ws must wait for earlier dispatches.
func (s *Stream) hazard(rs, ws []rng) bool {
	for _, r := range rs {
		for _, w := range s.writes {
			if r.overlaps(w) {
				return true
			}
		}
	}
	for _, w := range ws {
		for _, r := range s.reads {
			if w.overlaps(r) {
				return true
			}
		}
	}
	return false
}

// Run ends the recording (the first time), submits it and waits for completion.
func (s *Stream) Run() error {
	if s.err != nil {
		return s.err
	}
	if !s.begun {
		return nil
	}
	if !s.ended {
		if err := check(vulkan.EndCommandBuffer(s.cb), "vkEndCommandBuffer", "stream"); err != nil {
			s.fail(err)
			return err
		}
		s.ended = true
	}
	if err := s.d.submitWait(s.cb, fmt.Sprintf("stream of %d dispatches", s.dispatches)); err != nil {
		return err
	}
	if s.timing && len(s.labels) > 0 {
		return s.readTimings()
	}
	return nil
}

func (s *Stream) readTimings() error {
	n := 2 * len(s.labels)
	raw := make([]uint64, n)
	if err := check(vulkan.GetQueryPoolResults(s.d.dev, s.query, 0, uint32(n), uint(8*n), pointerTo(raw), 8,
		vulkan.QueryResultFlags(vulkan.QueryResult64Bit|vulkan.QueryResultWaitBit)), "vkGetQueryPoolResults", "timings"); err != nil {
		return err
	}
	s.timings = s.timings[:0]
	for i, l := range s.labels {
		ns := float64(raw[2*i+1]-raw[2*i]) * s.d.Info.TimestampPeriodNanos
		s.timings = append(s.timings, OpTime{Op: l, Duration: time.Duration(math.Round(ns))})
	}
	return nil
}

// Timings returns the per-dispatch GPU times of the last Run (timing streams only).
func (s *Stream) Timings() []OpTime { return s.timings }

// Stats reports how many dispatches and barriers the recording holds.
func (s *Stream) Stats() (dispatches, barriers int) { return s.dispatches, s.barriers }

// Reset discards the recording so that a new sequence can be recorded.
func (s *Stream) Reset() error {
	if s.begun {
		if err := check(vulkan.ResetCommandBuffer(s.cb, 0), "vkResetCommandBuffer", "stream"); err != nil {
			return err
		}
	}
	for _, p := range s.pools {
		vulkan.DestroyDescriptorPool(s.d.dev, p, nil)
	}
	s.destroyViews()
	s.freeScratch()
	s.pools, s.poolLeft = nil, 0
	s.begun, s.ended, s.err = false, false, nil
	s.reads, s.writes = s.reads[:0], s.writes[:0]
	s.dispatches, s.barriers, s.padded, s.transfers = 0, 0, 0, false
	s.labels, s.timings = s.labels[:0], s.timings[:0]
	return nil
}

// Destroy releases the stream's command buffer, descriptor pools and query pool.
func (s *Stream) Destroy() {
	for _, p := range s.pools {
		vulkan.DestroyDescriptorPool(s.d.dev, p, nil)
	}
	s.destroyViews()
	s.freeScratch()
	s.pools = nil
	if s.query != nil {
		vulkan.DestroyQueryPool(s.d.dev, s.query, nil)
		s.query = nil
	}
	if s.cb != nil {
		vulkan.FreeCommandBuffers(s.d.dev, s.d.cmdPool, 1, []vulkan.CommandBuffer{s.cb})
		s.cb = nil
	}
}
