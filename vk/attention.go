package vk

import (
	"fmt"
	"math"
)

// AttnShape: B batch, N tokens per batch element, Heads, HeadDim; FrameTokens > 0 enables the block-causal
// mask of spec §3 (query i may see key j iff j/FrameTokens <= i/FrameTokens), 0 = full attention. Scale 0
// means HeadDim^-0.5.
type AttnShape struct {
	B, N, Heads, HeadDim int
	FrameTokens          int
	Scale                float32
}

// attnMaxHeadDim bounds HeadDim: each invocation keeps up to four head vectors in registers.
const attnMaxHeadDim = 128

// attnPush mirrors the push block of shaders/attention.glsl, shared by the three attention kernels.
type attnPush struct {
	N        uint32
	Heads    uint32
	Frame    uint32
	Scale    float32
	QKVOff   uint32
	OOff     uint32
	LSEOff   uint32
	DOOff    uint32
	DQKVOff  uint32
	DeltaOff uint32
}

// AttentionForward: o[b·N+i, h·dh:(h+1)·dh] = softmax_j(q_i·k_j·scale + mask) v_j, reading q, k, v from
// qkv [B·N, 3·H·dh] (f32); o [B·N, H·dh] f32; lse [B, H, N] f32 saves the per-row log-sum-exp for backward.
// Flash-style: online softmax in f32, no N×N matrix in memory; key blocks wholly above the block-causal
// diagonal are skipped (not masked). Where the cooperative-matrix path is on (Device.CoopMat) and dh is a
// multiple of 16, q, k, v and P are rounded to f16 for the tensor cores (f32 accumulation and softmax
// statistics); otherwise everything is f32.
//
// On CPU drivers it runs the CPU variant (attention.cpu), which gives other roundings than the scalar
// kernel. train's TestDataParallelExact once drifted with it, from 1e-7 to 2e-4 on the gradient norms, at
// a step whose losses still agreed to 1e-8: a jump of the gradient, not of the values. The cause is the
// L1 loss's kink: its gradient is sign(pred − target), and an element within rounding of its target takes
// opposite signs in the job and the single process. With that sign replaced by clamp(100·(pred − target),
// ±1) in an experiment, the same run stayed at 9e-8; with clamp(1e5·…) it still jumped. Such flips can
// come with any change of rounding, in any kernel.
func AttentionForward(s *Stream, o, lse, qkv Tensor, sh AttnShape) {
	path := s.attnDefaultPath(sh, qkv, o)
	attentionForward(s, o, lse, qkv, sh, 0, path)
}

// attentionForward is AttentionForward with at most nb batch elements per dispatch (0: as many as the
// device's binding range allows) on the given path.
func attentionForward(s *Stream, o, lse, qkv Tensor, sh AttnShape, nb int, path attnPath) {
	d := sh.Heads * sh.HeadDim
	args := []attnArg{{"qkv", qkv, 3 * d}, {"o", o, d}, {"lse", lse, 0}}
	sh.check("AttentionForward", args)
	// Shared memory: the k and v rows of a key tile and the scores of every row of the block. row is the
	// bytes of one head row as vec4s.
	row := 16 * ((sh.HeadDim + 3) / 4)
	c := attnPick(s.d, sh.HeadDim, func(tile, blockRows int) int { return tile * (2*row + 4*blockRows) })
	switch {
	case path.coop:
		c = path.config(s.d, "attention", sh.HeadDim)
	case path.cpu:
		c = attnCPUPick(s.d, sh.HeadDim)
	}
	k := kernel{path.shader("attention"), c.spec(sh.HeadDim)}
	sh.chunks(s, args, nb, func(nb int, w []Tensor, off []int) {
		push := sh.push()
		push.QKVOff, push.OOff, push.LSEOff = uint32(off[0]), uint32(off[1]), uint32(off[2])
		qkv := in(w[0])
		if path.cpu {
			qkv = texels(w[0])
		}
		s.dispatch("attention", k, push, sh.grid(c, nb), qkv, out(w[1]), out(w[2]))
	})
}

// AttentionBackward: dqkv [B·N, 3·H·dh] (overwritten: dq, dk, dv in the q|k|v layout) from do [B·N, H·dh],
// using the saved o and lse; delta [B, H, N] f32 is a workspace (rowsum(do∘o)).
//
// FlashAttention-2 without float atomics: a first kernel over query blocks computes delta and dq, a second
// over key blocks recomputes P from lse and computes dk and dv. Both skip the blocks the mask hides.
//
// On the cooperative-matrix path (as for AttentionForward) q, k, v, do, P and dS are rounded to f16 for the
// products; delta, P's statistics and every accumulation stay f32.
func AttentionBackward(s *Stream, dqkv, delta, do, qkv, o, lse Tensor, sh AttnShape) {
	attentionBackward(s, dqkv, delta, do, qkv, o, lse, sh, 0, s.attnDefaultPath(sh, dqkv, do, qkv, o))
}

// attentionBackward is AttentionBackward with at most nb batch elements per dispatch (0: as many as the
// device's binding range allows) on the given path.
func attentionBackward(s *Stream, dqkv, delta, do, qkv, o, lse Tensor, sh AttnShape, nb int, path attnPath) {
	d := sh.Heads * sh.HeadDim
	args := []attnArg{
		{"dqkv", dqkv, 3 * d}, {"delta", delta, 0}, {"do", do, d}, {"qkv", qkv, 3 * d}, {"o", o, d}, {"lse", lse, 0},
	}
	sh.check("AttentionBackward", args)
	// Shared memory: the k and v rows of a key tile (dq); the q and do rows, lse and delta of a query tile
	// (dk, dv). row is the bytes of one head row as vec4s.
	row := 16 * ((sh.HeadDim + 3) / 4)
	cdq := attnPick(s.d, sh.HeadDim, func(tile, _ int) int { return tile * 2 * row })
	cdkv := attnPick(s.d, sh.HeadDim, func(tile, _ int) int { return tile * (2*row + 8) })
	switch {
	case path.coop:
		cdq = path.config(s.d, "attention_backward_dq", sh.HeadDim)
		cdkv = path.config(s.d, "attention_backward_dkv", sh.HeadDim)
	case path.cpu:
		cdq, cdkv = attnCPUPick(s.d, sh.HeadDim), attnCPUPick(s.d, sh.HeadDim)
	}
	// The CPU kernels read qkv, o and do as texels.
	read := in
	if path.cpu {
		read = texels
	}
	kdq := kernel{path.shader("attention_backward_dq"), cdq.spec(sh.HeadDim)}
	kdkv := kernel{path.shader("attention_backward_dkv"), cdkv.spec(sh.HeadDim)}
	sh.chunks(s, args, nb, func(nb int, w []Tensor, off []int) {
		push := sh.push()
		push.DQKVOff, push.DeltaOff, push.DOOff = uint32(off[0]), uint32(off[1]), uint32(off[2])
		push.QKVOff, push.OOff, push.LSEOff = uint32(off[3]), uint32(off[4]), uint32(off[5])
		dqkv, delta, do, qkv, o, lse := w[0], w[1], w[2], w[3], w[4], w[5]
		s.dispatch("attention_backward_dq", kdq, push, sh.grid(cdq, nb), out(dqkv), out(delta), read(qkv), read(o), read(do), in(lse))
		s.dispatch("attention_backward_dkv", kdkv, push, sh.grid(cdkv, nb), out(dqkv), read(qkv), read(do), in(lse), in(delta))
	})
}

// attnConfig is the launch shape of the attention kernels: wg invocations per workgroup, each handling
// rows query (or key) rows, and tile rows of the other side staged in shared memory per step. The
// cooperative-matrix kernels (coop) give each warp of 32 invocations 16 rows instead, with rows = 1. The
// CPU kernels (cpu) are one subgroup of wg lanes handling rows rows together, tile vectors of wg rows of
// the other side per step.
type attnConfig struct {
	wg, rows, tile int
	coop, cpu      bool
}

// spec lists the specialization constants of the attention kernels: WG, R, tile, DH.
func (c attnConfig) spec(dh int) []uint32 {
	return []uint32{uint32(c.wg), uint32(c.rows), uint32(c.tile), uint32(dh)}
}

// blockRows is the number of query (or key) rows a workgroup handles.
func (c attnConfig) blockRows() int {
	switch {
	case c.coop:
		return c.wg / 32 * 16
	case c.cpu:
		return c.rows
	}
	return c.wg * c.rows
}

// attnCPUPick is the CPU kernels' launch shape: a subgroup per workgroup with one block row per lane, two
// vectors of the other side's rows per step.
func attnCPUPick(d *Device, dh int) attnConfig {
	l := d.Info.SubgroupSize
	return attnConfig{wg: l, rows: l, tile: 2, cpu: true}
}

// attnCPUUsable reports whether the CPU kernels can run a call: the device runs them, and every head
// row of the tensors starts on a 16-byte texel (head dims a multiple of 4, tensors texel-aligned).
func attnCPUUsable(d *Device, dh int, ts ...Tensor) bool {
	if d.kernels != KernelsCPU || dh%4 != 0 {
		return false
	}
	for _, t := range ts {
		if t.off%texelBytes != 0 {
			return false
		}
	}
	return true
}

// attnPick chooses the launch shape for head dim dh. On a CPU device (lavapipe) every shared-memory or
// buffer load is issued lane by lane, so an invocation takes 4 rows and reuses each loaded vec4 for all of
// them (about 5 against 0.6 GFLOP/s per core at dh=64 with one scalar row). Above dh=64 it keeps one row:
// the JIT's compile time grows fast with the unrolled per-invocation state (about 10 s for the backward
// kernels at dh=64 with 4 rows). A GPU keeps one row per invocation, whose vectors live in registers. The
// tile is the largest power of two ≤ 64 whose shared memory, tileBytes(tile, wg·rows), fits the device.
func attnPick(d *Device, dh int, tileBytes func(tile, blockRows int) int) attnConfig {
	c := attnConfig{wg: 64, rows: 1, tile: 64}
	if d.Info.Type == "cpu" && dh <= 64 {
		c.rows = 4
	}
	for c.tile > 1 && tileBytes(c.tile, c.wg*c.rows) > d.Info.SharedMemory {
		c.tile /= 2
	}
	return c
}

func (sh AttnShape) push() attnPush {
	scale := sh.Scale
	if scale == 0 {
		scale = float32(1 / math.Sqrt(float64(sh.HeadDim)))
	}
	frame := sh.FrameTokens
	if frame == 0 {
		frame = sh.N // one frame: every key visible
	}
	return attnPush{N: uint32(sh.N), Heads: uint32(sh.Heads), Frame: uint32(frame), Scale: scale}
}

// grid covers nb batch elements: one workgroup per block of rows, head and batch element.
func (sh AttnShape) grid(c attnConfig, nb int) [3]int {
	br := c.blockRows()
	return [3]int{(sh.N + br - 1) / br, sh.Heads, nb}
}

// attnArg is a tensor argument and its row width: [B·N, width], or [B, H, N] when width is 0.
type attnArg struct {
	name  string
	t     Tensor
	width int
}

// perBatch is the number of elements of the argument per batch element.
func (a attnArg) perBatch(sh AttnShape) int {
	if a.width == 0 {
		return sh.Heads * sh.N
	}
	return sh.N * a.width
}

// check panics unless the shape is supported and every argument is f32 with the size the shape implies.
func (sh AttnShape) check(op string, args []attnArg) {
	if sh.B < 0 || sh.N < 0 || sh.Heads < 0 || sh.HeadDim < 1 || sh.HeadDim > attnMaxHeadDim || sh.FrameTokens < 0 {
		panic(fmt.Sprintf("vk: %s: bad shape %+v (HeadDim must be in 1..%d)", op, sh, attnMaxHeadDim))
	}
	for _, a := range args {
		if a.t.DType != F32 || a.t.Numel() != sh.B*a.perBatch(sh) {
			want := fmt.Sprintf("[%d, %d]", sh.B*sh.N, a.width)
			if a.width == 0 {
				want = fmt.Sprintf("[%d, %d, %d]", sh.B, sh.Heads, sh.N)
			}
			panic(fmt.Sprintf("vk: %s: %s is %v, want f32%s for %+v", op, a.name, a.t, want, sh))
		}
	}
}

// chunks calls fn for runs of at most nb batch elements (nb = 0: as many as keep every argument's window
// within the device's binding range, so one run unless a tensor is larger than the range), with each
// argument's window and the element offset of the run's first batch element inside it.
func (sh AttnShape) chunks(s *Stream, args []attnArg, nb int, fn func(nb int, win []Tensor, off []int)) {
	if sh.B == 0 || sh.N == 0 || sh.Heads == 0 {
		return
	}
	if nb <= 0 {
		nb = sh.B
		for _, a := range args {
			bytes := uint64(a.perBatch(sh)) * 4
			if uint64(sh.B)*bytes > s.d.MaxBinding() {
				nb = min(nb, max(1, int((s.d.MaxBinding()-s.d.mem.align)/bytes)))
			}
		}
	}
	win, off := make([]Tensor, len(args)), make([]int, len(args))
	for b0 := 0; b0 < sh.B; b0 += nb {
		n := min(nb, sh.B-b0)
		for i, a := range args {
			per := a.perBatch(sh)
			win[i], off[i] = s.window(a.t, b0*per, n*per)
		}
		fn(n, win, off)
	}
}

// attnPath is how one call runs: the scalar kernels, (coop) the cooperative-matrix ones of
// attention*_coopmat.glsl, emulated: their COOPMAT_EMULATE build, which any device runs and the tests use
// where there are no tensor cores, or (cpu) the CPU kernels of attention_cpu.glsl. warps and tile force
// the cooperative-matrix launch shape (0: attnCoopPick's).
type attnPath struct {
	coop, emulated bool
	warps, tile    int
	cpu            bool
}

// attnDefaultPath is the path of the public ops: cooperative matrices where the device has them enabled,
// the head dim is a multiple of the fragment size and every kernel has a launch shape that fits; the CPU
// kernels where the device runs them and the tensors ts are texel-aligned; else the scalar kernels.
func (s *Stream) attnDefaultPath(sh AttnShape, ts ...Tensor) attnPath {
	if attnCoopUsable(s.d, sh.HeadDim) {
		return attnPath{coop: true}
	}
	return attnPath{cpu: attnCPUUsable(s.d, sh.HeadDim, ts...)}
}

// attnCoopUsable reports whether the public ops take the cooperative-matrix path on d for head dim dh.
func attnCoopUsable(d *Device, dh int) bool {
	if dh%16 != 0 || !attnCoopOK(d) {
		return false
	}
	for _, k := range []string{"attention", "attention_backward_dq", "attention_backward_dkv"} {
		if _, ok := attnCoopPick(d, k, dh, false, attnCoopShapes); !ok {
			return false
		}
	}
	return true
}

// shader is the compiled module of kernel on this path: kernel, kernel.coopmat, kernel.coopmat.emulated
// or kernel.cpu.
func (p attnPath) shader(kernel string) string {
	switch {
	case p.coop && p.emulated:
		return kernel + ".coopmat.emulated"
	case p.coop:
		return kernel + ".coopmat"
	case p.cpu:
		return kernel + ".cpu"
	}
	return kernel
}

// config is the cooperative-matrix launch shape of kernel for head dim dh: the forced one, or the first
// of attnCoopShapes that fits the device.
func (p attnPath) config(d *Device, kernel string, dh int) attnConfig {
	if dh%16 != 0 {
		panic(fmt.Sprintf("vk: %s: cooperative-matrix path needs HeadDim a multiple of 16, got %d", kernel, dh))
	}
	shapes := attnCoopShapes
	if p.warps > 0 {
		shapes = [][2]int{{p.warps, p.tile}}
	}
	c, ok := attnCoopPick(d, kernel, dh, p.emulated, shapes)
	if !ok {
		panic(fmt.Sprintf("vk: %s: no cooperative-matrix launch shape among %v fits %d bytes of shared memory for HeadDim %d",
			kernel, shapes, d.Info.SharedMemory, dh))
	}
	return c
}

// attnCoopPick returns the first of shapes (warps, tile) whose kernel fits d at head dim dh.
func attnCoopPick(d *Device, kernel string, dh int, lazy bool, shapes [][2]int) (attnConfig, bool) {
	for _, wt := range shapes {
		if attnCoopShared(kernel, dh, wt[0], wt[1], lazy) <= d.Info.SharedMemory && 32*wt[0] <= d.Info.MaxWorkgroupInvoc {
			return attnConfig{wg: 32 * wt[0], rows: 1, tile: wt[1], coop: true}, true
		}
	}
	return attnConfig{}, false
}

// attnCoopShapes are the cooperative-matrix launch shapes (warps of 32 invocations, tile rows) in order of
// preference: more warps share each staged tile, longer tiles take fewer barriers. On a 48 KiB device at
// dh = 64 the forward kernel gets 4×64, the backward ones 4×32.
var attnCoopShapes = [][2]int{{4, 64}, {4, 32}, {2, 64}, {2, 32}, {4, 16}, {2, 16}, {1, 16}}

// attnCoopOK reports whether the real cooperative-matrix kernels can run on d: NV cooperative matrices
// enabled with a 16×16×16 f16·f16+f32 shape, and 32-wide subgroups (a warp is a subgroup).
func attnCoopOK(d *Device) bool {
	if !d.CoopMat() || d.Info.SubgroupSize != 32 {
		return false
	}
	for _, sh := range d.Info.CoopMatShapes {
		if sh.M == 16 && sh.N == 16 && sh.K == 16 && sh.AType == "f16" && sh.BType == "f16" && sh.CType == "f32" && sh.DType == "f32" {
			return true
		}
	}
	return false
}

// attnCoopShared is the shared memory in bytes of cooperative-matrix kernel ("attention",
// "attention_backward_dq" or "attention_backward_dkv") at head dim dh, warps and tile, as its main in
// shaders/<kernel>_coopmat.glsl lays it out. Head rows are f16 padded by 8 halves; scratch rows f32 padded
// by 4 floats. The operands a warp keeps for the whole kernel (q for the forward, q and do for dq, k and v
// for dkv) have their own space when lazy (the emulation reads operands from shared memory); on NV they
// are loaded into registers and the tiles reuse their space.
func attnCoopShared(kernel string, dh, warps, tile int, lazy bool) int {
	const word = 16 // bytes of a uvec4
	block := 16 * warps
	hs := dh/8 + 1            // f16 head row, uvec4s
	ss := max(tile, dh)/4 + 1 // f32 scratch row wide enough for a tile or an output row
	sp := tile/4 + 1          // f32 scratch row of a tile
	var keep, rest, extra int // uvec4s, uvec4s, bytes
	switch kernel {
	case "attention": // q; k, v tiles; S/P/o scratch; lHalf, rescale
		keep, rest, extra = block*hs, 2*tile*hs+warps*16*ss, 4*2*block+4
	case "attention_backward_dq": // q, do; k, v tiles; S/dS/dq and dP scratch; dHalf
		keep, rest, extra = 2*block*hs, 2*tile*hs+warps*16*(ss+sp), 4*2*block
	case "attention_backward_dkv": // k, v; q, do tiles; Sᵀ/Pᵀ/dk/dv and dPᵀ/dSᵀ scratch; (lse, delta) per query
		keep, rest, extra = 2*block*hs, 2*tile*hs+warps*16*(ss+sp), 8*tile
	default:
		panic("vk: attnCoopShared: unknown kernel " + kernel)
	}
	if lazy {
		return word*(keep+rest) + extra
	}
	return word*max(keep, rest) + extra
}
