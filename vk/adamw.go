package vk

import "fmt"

// AdamHyper is the layout of the small f32 device buffer the optimizer reads each step, so that a recorded
// step replays unchanged while the host rewrites the buffer between runs (spec §10):
//
//	LR, Beta1, Beta2, Eps, WeightDecay   PyTorch AdamW's hyper-parameters (lr from the schedule)
//	BC1, BC2                             bias corrections 1−β1^t and 1−β2^t of step t = 1, 2, …
//	GradScale                            multiplies every gradient first: 1/loss_scale · 1/accumulation steps
//	Skip                                 1 skips the whole update (inf/nan found in the gradients)
//
// The field order is the order of the Hyper block in shaders/adamw.glsl.
type AdamHyper struct{ LR, Beta1, Beta2, Eps, WeightDecay, BC1, BC2, GradScale, Skip float32 }

// AdamHyperLen is the number of f32 elements of the hyper buffer.
const AdamHyperLen = 9

// Floats returns the buffer contents, ready for Device.Upload into an f32 [AdamHyperLen] tensor.
func (h AdamHyper) Floats() []float32 {
	return []float32{h.LR, h.Beta1, h.Beta2, h.Eps, h.WeightDecay, h.BC1, h.BC2, h.GradScale, h.Skip}
}

// adamwPush mirrors the push block of shaders/adamw.comp and shaders/adamw8bit.comp.
type adamwPush struct {
	N     uint32
	Decay uint32 // 1: apply decoupled weight decay
}

// adamChunkGranule keeps every chunk of a split optimizer dispatch aligned: a multiple of 16384 elements
// puts each chunk's f32 view at a multiple of 64 KiB, its code view at 16 KiB and its scale view (one f32
// per 256-value block) at 256 bytes, above any device's minStorageBufferOffsetAlignment.
const adamChunkGranule = 1 << 14

// adamChunk is the most elements one optimizer dispatch covers so that its largest binding, the f32
// [chunk] parameter, stays within the device's maxStorageBufferRange.
func (s *Stream) adamChunk() int {
	return max(int(s.d.MaxBinding()/4)/adamChunkGranule*adamChunkGranule, adamChunkGranule)
}

// AdamW records one AdamW step (PyTorch semantics, decoupled weight decay; spec §10), in place:
//
//	ĝ = GradScale·g
//	p = p − LR·WeightDecay·p            (only when decay)
//	m = β1·m + (1−β1)·ĝ
//	v = β2·v + (1−β2)·ĝ²
//	p = p − LR·(m/BC1) / (sqrt(v/BC2) + Eps)
//
// p, m, v, g are f32 of one shape; hyper is f32 [AdamHyperLen] holding AdamHyper.Floats(). decay is false
// for biases and 1-D tensors (spec §10's per-tensor decay mask). With Skip = 1 in hyper nothing is
// written. Tensors over the device's binding range are updated in several dispatches.
func AdamW(s *Stream, p, m, v, g, hyper Tensor, decay bool) {
	adamW(s, p, m, v, g, hyper, decay, s.adamChunk())
}

// adamW is AdamW with dispatches of at most chunk elements (a multiple of adamChunkGranule).
func adamW(s *Stream, p, m, v, g, hyper Tensor, decay bool, chunk int) {
	SameShape("adamw p vs m", p, m)
	SameShape("adamw p vs v", p, v)
	SameShape("adamw p vs g", p, g)
	checkAdamTypes("adamw", []Tensor{p, m, v, g}, F32, hyper)
	n := p.Numel()
	p, m, v, g = p.Reshape(n), m.Reshape(n), v.Reshape(n), g.Reshape(n)
	for lo := 0; lo < n; lo += chunk {
		c := min(chunk, n-lo)
		s.dispatch("adamw", kernel{"adamw", []uint32{local1D}}, adamwPush{uint32(c), adamFlag(decay)},
			s.grid1D(c, local1D), out(p.Slice(lo, c)), out(m.Slice(lo, c)), out(v.Slice(lo, c)),
			in(g.Slice(lo, c)), in(hyper))
	}
}

// checkAdamTypes panics unless every tensor of ts has dtype dt and hyper is f32 [AdamHyperLen].
func checkAdamTypes(op string, ts []Tensor, dt DType, hyper Tensor) {
	for _, t := range ts {
		if t.DType != dt {
			panic(fmt.Sprintf("vk: %s: tensor %v, want dtype %v", op, t, dt))
		}
	}
	if hyper.DType != F32 || hyper.Numel() != AdamHyperLen {
		panic(fmt.Sprintf("vk: %s: hyper %v, want f32[%d]", op, hyper, AdamHyperLen))
	}
}

func adamFlag(b bool) uint32 {
	if b {
		return 1
	}
	return 0
}
