package vk

// The CPU variant of Gemm (Device.Kernels() == KernelsCPU): shaders/gemm_cpu.glsl, compiled into the
// gemm.cpu* modules. It takes the same push block and windows as the other variants; this file picks its
// launch shape and lays out its bindings (operands twice: as texels and as words).

// gemmCPUMaxAcc bounds the accumulators per lane (MT·NB) for subgroups of l lanes. lavapipe compiles
// for 256-bit vectors (8 lanes) or, on CPUs with AVX-512, 512-bit ones (16 lanes; see lavapipe.go), with
// 32 vector registers either way. At 8 lanes: 24, leaving room for a step's operands (512³, f32 NT:
// 8×3 and 8×2 tiles 19–22 GFLOP per CPU-second, 8×4 17). At 16 lanes the larger tiles win even though
// their accumulators spill to the stack, because each step's texel loads and broadcasts are spread over
// more multiply-adds (2064×3072×1024 NT: 16×3 92–102 GFLOP/s against 8×3 71–82; 512³ NN: 16×4 53–54
// against 12×4 43–53).
func gemmCPUMaxAcc(l int) int {
	if l >= 16 {
		return 64
	}
	return 24
}

// gemmCPUTile is the launch shape of the CPU kernel: workgroups of l lanes (the subgroup size), each an
// mt × l·nb tile of C; with cb > 1 each lane owns runs of cb adjacent columns (colOf in gemm_cpu.glsl).
type gemmCPUTile struct{ l, mt, nb, cb int }

// gemmCPUOperand is how the kernel reads one operand: its window, its element offset in it and whether
// its rows start on texels (vec; otherwise it is read word by word).
type gemmCPUOperand struct {
	w   Tensor
	off uint32
	vec bool
}

// texelRows reports whether an operand of window w, first element off, row length ld and batch stride
// stride (batch matrices) can be read as whole texels: every row starts on a texel and the window's texel
// view covers it.
func texelRows(w Tensor, off uint32, ld, stride, batch int) bool {
	fe := texelBytes / w.DType.Size()
	if int(off)%fe != 0 || ld%fe != 0 || (batch > 1 && stride%fe != 0) {
		return false
	}
	return w.off+alignUp(w.Bytes(), texelBytes) <= w.blk.size
}

// dtypeCode is the DT_* specialization constant of gemm_cpu.glsl.
func dtypeCode(dt DType) uint32 {
	switch dt {
	case F16:
		return 1
	case BF16:
		return 2
	}
	return 0
}

// gemmCPUPick chooses the tile for p. Columns: with B stored [k, n] each lane reads runs of one texel's
// worth of columns (cb = 4 f32 or 8 f16/bf16, nb = cb); with B stored [n, k] the lanes interleave and nb
// is up to 3, fewer for narrow products. Rows: as many as keep mt·nb <= gemmCPUMaxAcc(l), at most one per
// lane; with A stored [k, m] and read as texels, a multiple of the texel's elements (vecA is cleared
// where no such mt fits). Short products keep the tile (its rows past m are clamped and not stored):
// every tile shape is a pipeline the JIT compiles, in a fraction of a second each.
func gemmCPUPick(d *Device, p *gemmProblem, vecA *bool) gemmCPUTile {
	t := gemmCPUTile{l: d.Info.SubgroupSize, cb: 1}
	if p.transB {
		t.nb = min(3, (p.n+t.l-1)/t.l)
	} else {
		t.cb = texelBytes / p.b.DType.Size()
		t.nb = t.cb
	}
	t.mt = min(t.l, max(1, gemmCPUMaxAcc(t.l)/t.nb))
	if p.transA && *vecA {
		fe := texelBytes / p.a.DType.Size()
		if fe > t.l {
			*vecA = false
		} else {
			t.mt = max(fe, t.mt/fe*fe)
		}
	}
	return t
}

// gemmCPUKernel returns the module, specialization constants and grid (splits slices of K) of the CPU
// variant for p, and its
// bindings from the other variants' list binds (0 A, 1 B, 2 C, 3 bias; LOWRANK 4 U, 5 V, 6 seed, 7 E;
// MASKED 4 seed): A, B (and U, V) become texel bindings, unused slots up to 7 are filled, and the word
// twins follow at 8, 9 (10, 11).
func (s *Stream) gemmCPUKernel(p *gemmProblem, push *gemmPush, binds []binding, splits int) (kernel, [3]int, []binding) {
	a := gemmCPUOperand{binds[0].t, push.OffA, false}
	b := gemmCPUOperand{binds[1].t, push.OffB, false}
	a.vec = texelRows(a.w, a.off, p.lda, p.sa, p.batch)
	b.vec = texelRows(b.w, b.off, p.ldb, p.sb, p.batch)
	t := gemmCPUPick(s.d, p, &a.vec)
	name := "gemm.cpu"
	var u, v gemmCPUOperand
	transV := false
	switch {
	case p.mask != nil:
		name = "gemm.cpu.masked"
	case p.low != nil || p.elem != nil:
		name = "gemm.cpu.lowrank"
		if p.elem != nil {
			name += ".elementwise"
		}
		u = gemmCPUOperand{binds[4].t, push.OffU, false}
		v = gemmCPUOperand{binds[5].t, push.OffV, false}
		if l := p.low; l != nil {
			transV = l.transV
			u.vec = texelRows(u.w, u.off, l.ldu, 0, 1)
			// V stored [rank, n] is read in runs of the tile's column blocking.
			v.vec = texelRows(v.w, v.off, l.ldv, 0, 1) && (transV || t.cb%(texelBytes/4) == 0)
		}
	}
	maskA := p.mask != nil && !p.mask.onB
	maskB := p.mask != nil && p.mask.onB
	spec := []uint32{uint32(t.l), uint32(t.mt), uint32(t.nb), uint32(t.cb), b32(p.transA), b32(p.transB),
		dtypeCode(p.a.DType), dtypeCode(p.b.DType), b32(a.vec), b32(b.vec), b32(transV), b32(u.vec), b32(v.vec),
		b32(maskA), b32(maskB)}
	out := make([]binding, 0, 12)
	out = append(out, texels(a.w), texels(b.w), binds[2], binds[3])
	fill := binds[3] // bound but unread
	switch {
	case name == "gemm.cpu.masked":
		out = append(out, binds[4], fill, fill, fill)
	case u.w.Valid():
		e := fill
		if len(binds) > 7 {
			e = binds[7]
		}
		out = append(out, texels(u.w), texels(v.w), binds[6], e)
	default:
		out = append(out, fill, fill, fill, fill)
	}
	out = append(out, in(a.w), in(b.w))
	if u.w.Valid() {
		out = append(out, in(u.w), in(v.w))
	}
	nt := t.l * t.nb
	groups := [3]int{(p.m + t.mt - 1) / t.mt, (p.n + nt - 1) / nt, splits * p.batch}
	return kernel{name, spec}, groups, out
}
