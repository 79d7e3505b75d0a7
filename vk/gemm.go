package vk

import (
	"fmt"
	"math"
	"runtime"

	"github.com/vjepa-vk/vjepa-vk/vk/ref"
)

// GemmOpts: C = Alpha·op(A)·op(B) + Beta·C (+ Bias broadcast over rows). Alpha 0 means 1 (so the zero
// value is a plain product); use Beta 1 to accumulate (gradient accumulation), Beta 0 overwrites (C may
// hold NaN then). Batch > 1 runs Batch independent products with element strides StrideA/B/C
// (0 = tightly packed). SplitK: 0 = choose automatically (long K, small M·N: LoRA weight gradients
// reduce over all tokens with a tiny output), 1 = off, n = n slices (needs a workspace: see below).
type GemmOpts struct {
	TransA, TransB            bool
	Alpha, Beta               float32
	Bias                      Tensor // optional [N] f32
	Batch                     int
	StrideA, StrideB, StrideC int
	SplitK                    int
	Workspace                 Tensor // optional f32 scratch for split-K partials; if absent and split-K would help, no split
	// LdB, when not 0, is the row length of B's storage: B is a [rows, LdB] tensor of which each row's
	// first K (with TransB) or N elements are op(B)'s, the rest padding that is never read. A frozen
	// weight stored at GemmLd's row length is read where the kernels want it, instead of being copied
	// into padded rows at every product (gemm_pad.go).
	LdB     int
	LowRank GemmLowRank
	Mask    GemmMask

	// At most one elementwise op on the final value v = α·op(A)·op(B) + β·C + bias + low-rank term of
	// each element, fused into the epilogue instead of run as a kernel over C after the GEMM, with the
	// same result bit for bit. Each is an f32 tensor of C's shape [M, N]; the product must be unbatched
	// with an f32 A, and split-K is off for it (when the product is cut into K chunks, the op runs with
	// the last one).
	Residual Tensor // C = v + Residual: Add(C, Residual, C) after the GEMM (a residual connection)
	Gelu     Tensor // C = v, Gelu = gelu(v): Gelu(Gelu, C) after the GEMM (forward keeps both)
	GeluGrad Tensor // C = v·gelu'(GeluGrad): GeluBackward(C, C, GeluGrad) after the GEMM, GeluGrad gelu's input
}

// GemmMask is Dropout applied to A (or, with OnB, to B) as the GEMM loads it: the operand's element at
// offset o from its first element, in its stored layout, is kept where Dropout(seed, Salt, P) keeps
// element o of a tensor, and scaled by 1/(1−P) — for a contiguous operand, exactly the product with
// Dropout's output, without writing it (a LoRA adapter's dropped input, in forward and in dA). A and B
// must be f32; not with a LowRank term. The zero value (Seed invalid) is no mask.
type GemmMask struct {
	Seed Tensor // one-element 32-bit device tensor, as Dropout's
	P    float32
	Salt uint32
	OnB  bool
	// First is the hash index of the operand's first element, as DropoutAt's: an operand that is a
	// slice of a larger logical tensor (one data-parallel rank's rows of a global batch) gets that
	// tensor's mask. Default 0.
	First uint32
}

// GemmLowRank is a rank-r term summed into a GEMM's output by its epilogue: a LoRA path fused into the base
// product instead of run as a second GEMM over C. C += Alpha·keep⊙(U·op(V)), U [M, r] f32, op(V) [r, N] f32
// stored [r, N] or, with TransV, [N, r]. With a Seed, element (i, j) of the term is kept where
// Dropout(seed, Salt, P) keeps element i·N + j (the index of a contiguous [M, N] tensor) and scaled by
// 1/(1−P): the gradient of a dropped-out input, DropoutBackward, without writing it out. The zero value
// (U invalid) is no term. The product must not be batched; split-K is off for it.
type GemmLowRank struct {
	U, V   Tensor
	TransV bool
	Alpha  float32 // 0 means 1
	Seed   Tensor  // optional one-element 32-bit device tensor, as Dropout's
	First  uint32  // with a Seed: element (i, j) hashes as First + i·N + j (GemmMask.First)
	P      float32
	Salt   uint32
}

// Gemm computes C[M,N] (f32) = α·op(A)·op(B) + β·C + bias, op(A) [M,K] stored [M,K] or, with TransA,
// [K,M]; op(B) [K,N] stored [K,N] or, with TransB, [N,K]. A and B are f32, f16 or bf16 (converted on load,
// f32 accumulation). M, N, K are taken from the shapes (last two dims; a leading batch dim allowed).
//
// With Batch 0 the batch count is the product of C's leading dims (1 for a 2-D C). Split-K with n slices
// cuts K into at most n slices of whole 32-element blocks; the slices' partial products go to the
// workspace ([slices][Batch][M][N] f32, GemmWorkspaceSize elements) and a second kernel sums them in slice
// order, so results are deterministic. Operands larger than the device's binding range are cut into
// several dispatches: over batches, then rows of C (and of A stored [M,K]), columns of C (for B stored
// [N,K]) and K (for A stored [K,M] or B stored [K,N]; K chunks after the first accumulate with β 1, and
// an elementwise op of GemmOpts runs with the last).
// Views need no alignment: each binding is a window aligned down, with element offsets in push constants.
//
// Uses (model Linear, y = x·Wᵀ + b with W [out,in], spec §2):
//
//	forward  Gemm(s, y[rows,out], x[rows,in], W[out,in], GemmOpts{TransB: true, Bias: b})
//	dx       Gemm(s, dx[rows,in], dy[rows,out], W[out,in], GemmOpts{})
//	dW +=    Gemm(s, dW[out,in], dy[rows,out], x[rows,in], GemmOpts{TransA: true, Beta: 1})
func Gemm(s *Stream, c, a, b Tensor, o GemmOpts) {
	s.gemm(c, a, b, o, gemmEnv{maxBinding: s.d.MaxBinding(), coopmat: true, cpu: s.d.kernels == KernelsCPU})
}

// GemmWorkspaceSize returns the f32 elements of workspace split-K wants for these shapes (0 if none).
// Pass the same GemmOpts as to Gemm (Batch and SplitK matter; a Batch of 0 counts as 1 here).
func GemmWorkspaceSize(d *Device, m, n, k int, o GemmOpts) int {
	batch := max(o.Batch, 1)
	splits, _ := gemmSplits(d, d.MaxBinding(), m, n, k, batch, o.SplitK)
	if splits < 2 {
		return 0
	}
	return splits * batch * m * n
}

// gemmPush mirrors the push block of shaders/gemm.glsl field for field.
type gemmPush struct {
	M, N, K                uint32
	LdA, LdB, LdC          uint32
	StrideA, StrideB, StrC uint32
	OffA, OffB, OffC       uint32
	OffBias                uint32
	KSplit                 uint32
	SplitStride            uint32
	Splits                 uint32
	Flags                  uint32
	Alpha, Beta            float32
	// LOWRANK variants only (see gemmLow).
	Rank, LdU, LdV, OffU, OffV              uint32
	MaskFirst, MaskLd, MaskSalt, MaskThresh uint32
	LowAlpha                                float32
	MaskScale                               float32 // MASKED variant
	OffE                                    uint32  // ELEMENTWISE variants (see gemmElem)
}

// gemmReducePush mirrors the push block of shaders/gemm_reduce.comp.
type gemmReducePush struct {
	M, N, Total         uint32
	Splits              uint32
	LdC, StrC           uint32
	OffW, OffC, OffBias uint32
	Flags               uint32
	Alpha, Beta         float32
}

// Flags of both push blocks (GEMM_* in gemm.glsl).
const (
	gemmTransA = 1 << iota
	gemmTransB
	gemmBias
	gemmBeta
	gemmLowRankTransV
	gemmLowRankMask
	gemmMaskA
	gemmMaskB
	gemmResidual
	gemmGelu
	gemmGeluGrad
)

// gemmCPUEpilogueFlags are the flags the CPU variant takes as its specialization constant EPI_FLAGS.
const gemmCPUEpilogueFlags = gemmBias | gemmBeta | gemmLowRankMask | gemmResidual | gemmGelu | gemmGeluGrad

// gemmCPUFlags returns k with, on the CPU kernels, its last specialization constant: the epilogue's flags
// of the dispatch (gemm.glsl's EPI_FLAGS), so that the JIT compiles only the epilogue that runs.
func gemmCPUFlags(k kernel, env gemmEnv, flags uint32) kernel {
	if env.cpu {
		k.spec = append(k.spec[:len(k.spec):len(k.spec)], flags&gemmCPUEpilogueFlags)
	}
	return k
}

// Split-K policy: split only when the output has fewer nominal 64×64 tiles than the device has
// workgroup slots, into slices of at least gemmMinSplitK (whole gemmSplitBlock blocks), at most
// gemmMaxSplits of them. The policy depends only on shapes and device, so GemmWorkspaceSize can repeat it.
const (
	gemmMinSplitK  = 256
	gemmMaxSplits  = 32
	gemmSplitBlock = 32
	gemmGPUSlots   = 256 // ~2 groups per SM on current GPUs (H100: 132 SMs)
)

// gemmEnv holds what the host-side plan may depend on beyond the device; tests lower maxBinding to
// exercise chunking on small shapes and turn coopmat off to compare paths.
type gemmEnv struct {
	maxBinding uint64
	coopmat    bool
	// lowRankEpilogue runs a scalar low-rank product with the term added per element by storeC, as the
	// COOPMAT variant adds it, so that tests check that code on devices without cooperative matrices.
	lowRankEpilogue bool
	// cpu runs the CPU variant (gemm_cpu.go) instead of the shared-memory kernels.
	cpu bool
	// padAlways pads every aliasing B of the CPU variant, however small the product (gemm_pad.go), so
	// that tests reach the padded path with small shapes.
	padAlways bool
}

// gemmTile is one shader configuration: workgroup size and the specialization constants 0..5.
// Scalar path: WG, BM, BN, BK, TM, TN with WG = (BM/TM)·(BN/TN). COOPMAT: WG, BM, BN, BK, WM, WN with
// WG = 32·(BM/WM)·(BN/WN), then TRANS_A and TRANS_B (appended per dispatch).
type gemmTile struct {
	wg, bm, bn, bk, t1, t2 int
	coop                   bool
}

func (t gemmTile) spec() []uint32 {
	return []uint32{uint32(t.wg), uint32(t.bm), uint32(t.bn), uint32(t.bk), uint32(t.t1), uint32(t.t2)}
}

// shared is the tile's shared-memory footprint in bytes (see the shared declarations of gemm.comp and
// gemm_coopmat.glsl). COOPMAT: two staging buffers per operand, rows padded by 8 halves, in whichever
// layout needs more (it depends on the transposes), or the epilogue scratch reusing them if larger.
func (t gemmTile) shared() int {
	if t.coop {
		buf := func(mn int) int { return 16 * max(mn*(t.bk/8+1), t.bk*(mn/8+1)) }
		staging := 2 * (buf(t.bm) + buf(t.bn))
		scratch := (t.wg / 32) * 16 * (t.t2/4 + 1) * 16
		return max(staging, scratch)
	}
	return 16 * t.bk * (t.bm/4 + 1 + t.bn/4 + 1)
}

// gemmTileSet holds the scalar tiles of one kind of device: large and medium for general shapes, skinny
// ones for LoRA's rank-r side (4..16) so that it does not pad a 64- or 128-wide tile with zeros.
type gemmTileSet struct{ large, medium, skinnyM, skinnyN gemmTile }

// gemmScalarTiles returns the tiles for CPU drivers or GPUs. On lavapipe, where each shared-memory read
// is a per-lane loop, 16×16 blocks per invocation measured fastest (512³: 6.1 GFLOP per CPU-second against
// 4.0 for 8×8 blocks of a 128×128 tile; skinny M=16, K=8256: 6.3 against 3.1 for 8×16 blocks). On GPUs,
// 8×8 blocks of 256-invocation groups are the usual register and occupancy balance.
func gemmScalarTiles(cpu bool) gemmTileSet {
	if cpu {
		return gemmTileSet{
			large:   gemmTile{wg: 64, bm: 128, bn: 128, bk: 16, t1: 16, t2: 16},
			medium:  gemmTile{wg: 16, bm: 64, bn: 64, bk: 16, t1: 16, t2: 16},
			skinnyM: gemmTile{wg: 16, bm: 16, bn: 256, bk: 16, t1: 16, t2: 16},
			skinnyN: gemmTile{wg: 16, bm: 256, bn: 16, bk: 16, t1: 16, t2: 16},
		}
	}
	return gemmTileSet{
		large:   gemmTile{wg: 256, bm: 128, bn: 128, bk: 16, t1: 8, t2: 8},
		medium:  gemmTile{wg: 256, bm: 64, bn: 64, bk: 16, t1: 4, t2: 4},
		skinnyM: gemmTile{wg: 128, bm: 16, bn: 128, bk: 16, t1: 4, t2: 4},
		skinnyN: gemmTile{wg: 128, bm: 128, bn: 16, bk: 16, t1: 4, t2: 4},
	}
}

// gemmCoopTile is the cooperative-matrix tile: 8 subgroups of 32 in a 2×4 grid, each 64×32 of a 128×128
// tile (4×2 fragments of 16×16: 64 accumulator registers per invocation, leaving room for the prefetched
// chunks without spilling), K steps of 32 through two shared buffers: 40 KiB of the 48 KiB NVIDIA offers.
// The shader also takes the transposes as specialization constants 6 and 7 (gemmRun appends them), so
// that fragment loads get the constant layout SPIR-V requires and each layout compiles to its own code.
func gemmCoopTile() gemmTile {
	return gemmTile{wg: 256, bm: 128, bn: 128, bk: 32, t1: 64, t2: 32, coop: true}
}

// gemmProblem is one (sub-)product: the whole tensors, and element offsets of its first elements.
type gemmProblem struct {
	m, n, k, batch            int
	transA, transB            bool
	a, b, c, bias             Tensor // bias invalid: none
	lda, ldb, ldc             int
	sa, sb, sc                int
	offA, offB, offC, offBias int
	alpha, beta               float32
	low                       *gemmLow  // nil: no low-rank term (or a K chunk after the first)
	mask                      *gemmMask // nil: no operand dropped out on load
	elem                      *gemmElem // nil: no elementwise op (or a K chunk before the last)
}

// gemmElem is the elementwise op of one (sub-)product: its flag (gemmResidual, gemmGelu, gemmGeluGrad), its
// tensor E [M, N] (C's row length) and the element offset in E of the (sub-)product's first element.
type gemmElem struct {
	flag uint32
	e    Tensor
	offE int
}

// gemmMask is a GemmMask's dispatch parameters; the mask index of a chunk's first element is its
// problem-level offset (offA or offB), so chunks need no field of their own.
type gemmMask struct {
	seed            Tensor
	onB             bool
	salt, threshold uint32
	first           uint32 // hash index of the operand's element 0
	scale           float32
}

// gemmLow is the low-rank term of one (sub-)product: whole tensors and element offsets of its first
// elements, like gemmProblem's.
type gemmLow struct {
	u, v, seed        Tensor // seed invalid: no mask
	rank, ldu, ldv    int
	offU, offV        int
	transV            bool
	alpha             float32 // includes the dropout scale
	salt, threshold   uint32
	maskFirst, maskLd int
}

func (l *gemmLow) extentU(m int) int { return extent(1, 0, m, l.rank, l.ldu) }

func (l *gemmLow) extentV(n int) int {
	if l.transV {
		return extent(1, 0, n, l.rank, l.ldv)
	}
	return extent(1, 0, l.rank, n, l.ldv)
}

// extent is the number of elements from an operand's first element to one past its last, over all
// batches, for a stored [rows, cols] matrix with row length ld and batch stride stride.
func extent(batch, stride, rows, cols, ld int) int {
	if batch == 0 || rows == 0 || cols == 0 {
		return 0
	}
	return (batch-1)*stride + (rows-1)*ld + cols
}

func (p *gemmProblem) extentA() int {
	if p.transA {
		return extent(p.batch, p.sa, p.k, p.m, p.lda)
	}
	return extent(p.batch, p.sa, p.m, p.k, p.lda)
}

func (p *gemmProblem) extentB() int {
	if p.transB {
		return extent(p.batch, p.sb, p.n, p.k, p.ldb)
	}
	return extent(p.batch, p.sb, p.k, p.n, p.ldb)
}

func (p *gemmProblem) extentC() int { return extent(p.batch, p.sc, p.m, p.n, p.ldc) }

// matrixDims returns the last two dims of t and the product of the others.
func matrixDims(t Tensor) (lead, rows, cols int) {
	if len(t.Shape) < 2 {
		panic(fmt.Sprintf("vk: gemm: operand %v is not a matrix", t))
	}
	r := len(t.Shape)
	lead = 1
	for _, d := range t.Shape[:r-2] {
		lead *= d
	}
	return lead, t.Shape[r-2], t.Shape[r-1]
}

func (s *Stream) gemm(c, a, b Tensor, o GemmOpts, env gemmEnv) {
	p := gemmProblem{a: a, b: b, c: c, bias: o.Bias, transA: o.TransA, transB: o.TransB, alpha: o.Alpha, beta: o.Beta}
	if p.alpha == 0 {
		p.alpha = 1
	}
	_, ar, ac := matrixDims(a)
	_, br, bc := matrixDims(b)
	cLead, cr, cc := matrixDims(c)
	p.lda, p.ldb, p.ldc = ac, bc, cc
	p.m, p.k = ar, ac
	if o.TransA {
		p.m, p.k = ac, ar
	}
	kb, n := br, bc
	if o.TransB {
		kb, n = bc, br
	}
	if o.LdB != 0 {
		// B's last dim is its storage's row length; op(B)'s width comes from A (K) or C (N).
		if bc != o.LdB {
			panic(fmt.Sprintf("vk: gemm: LdB %d with B %v: want B [rows, LdB]", o.LdB, b.Shape))
		}
		p.ldb = o.LdB
		width := cc
		if o.TransB {
			kb, width = p.k, p.k
		} else {
			n = cc
		}
		if width > o.LdB {
			panic(fmt.Sprintf("vk: gemm: LdB %d with B %v holds rows of at most %d of op(B)'s %d", o.LdB, b.Shape, o.LdB, width))
		}
	}
	p.n = n
	if kb != p.k || cr != p.m || cc != p.n {
		panic(fmt.Sprintf("vk: gemm: C %v = op(A %v)·op(B %v) (transA=%v, transB=%v): want C [.., %d, %d] and K %d = %d",
			c.Shape, a.Shape, b.Shape, o.TransA, o.TransB, p.m, p.n, p.k, kb))
	}
	p.batch = o.Batch
	if p.batch == 0 {
		p.batch = cLead
	}
	p.sa, p.sb, p.sc = o.StrideA, o.StrideB, o.StrideC
	if p.sa == 0 {
		p.sa = p.m * p.k
	}
	if p.sb == 0 {
		p.sb = p.k * p.n
		if o.LdB != 0 {
			p.sb = br * o.LdB
		}
	}
	if p.sc == 0 {
		p.sc = p.m * p.n
	}
	for _, op := range []struct {
		name string
		t    Tensor
		need int
	}{{"A", a, p.extentA()}, {"B", b, p.extentB()}, {"C", c, p.extentC()}} {
		if op.t.Numel() < op.need {
			panic(fmt.Sprintf("vk: gemm: %s %v holds %d elements; batch=%d, m=%d, n=%d, k=%d and its stride need %d",
				op.name, op.t, op.t.Numel(), p.batch, p.m, p.n, p.k, op.need))
		}
	}
	if c.DType != F32 {
		panic("vk: gemm: C must be f32, got " + c.String())
	}
	for _, t := range []Tensor{a, b} {
		if t.DType != F32 && t.DType != F16 && t.DType != BF16 {
			panic("vk: gemm: A and B must be f32, f16 or bf16, got " + t.String())
		}
	}
	if o.Bias.Valid() && (o.Bias.DType != F32 || o.Bias.Numel() != p.n) {
		panic(fmt.Sprintf("vk: gemm: bias %v, want f32[%d]", o.Bias, p.n))
	}
	if o.Workspace.Valid() && o.Workspace.DType != F32 {
		panic("vk: gemm: workspace must be f32, got " + o.Workspace.String())
	}
	if o.LowRank.U.Valid() {
		p.low = newGemmLow(&p, o.LowRank, a)
	}
	if o.Mask.Seed.Valid() {
		p.mask = newGemmMask(&p, o.Mask)
	}
	p.elem = newGemmElem(&p, o)
	if p.m == 0 || p.n == 0 || p.batch == 0 {
		return
	}
	s.gemmChunked(p, o, env)
}

// newGemmLow checks a low-rank term against its product and returns its plan.
func newGemmLow(p *gemmProblem, lr GemmLowRank, a Tensor) *gemmLow {
	if p.batch > 1 {
		panic(fmt.Sprintf("vk: gemm: a low-rank term needs an unbatched product, got batch %d", p.batch))
	}
	if a.DType != F32 {
		panic("vk: gemm: a low-rank term needs an f32 A, got " + a.String())
	}
	u, v := lr.U, lr.V
	if u.DType != F32 || v.DType != F32 || len(u.Shape) != 2 || len(v.Shape) != 2 {
		panic(fmt.Sprintf("vk: gemm: low-rank U %v and V %v must be f32 matrices", u, v))
	}
	l := &gemmLow{u: u, v: v, rank: u.Shape[1], ldu: u.Shape[1], ldv: v.Shape[1], transV: lr.TransV, alpha: lr.Alpha}
	vr, vn := v.Shape[0], v.Shape[1]
	if lr.TransV {
		vr, vn = vn, vr
	}
	if u.Shape[0] != p.m || vr != l.rank || vn != p.n {
		panic(fmt.Sprintf("vk: gemm: low-rank U %v · op(V %v) (transV=%v) for C [%d, %d]: want U [%d, r] and op(V) [r, %d]",
			u.Shape, v.Shape, lr.TransV, p.m, p.n, p.m, p.n))
	}
	if l.alpha == 0 {
		l.alpha = 1
	}
	if lr.Seed.Valid() {
		checkNumel("gemm low-rank mask", "seed", lr.Seed, 1)
		if lr.Seed.DType.Size() != 4 {
			panic(fmt.Sprintf("vk: gemm: low-rank mask seed %v, want a 32-bit dtype", lr.Seed))
		}
		if !(lr.P >= 0 && lr.P < 1) {
			panic(fmt.Sprintf("vk: gemm: low-rank mask p = %v, want 0 <= p < 1", lr.P))
		}
		if uint64(p.m)*uint64(p.n) > 1<<32 {
			panic(fmt.Sprintf("vk: gemm: masked low-rank term of %d×%d elements exceeds the hash index range", p.m, p.n))
		}
		l.seed, l.salt, l.maskLd, l.maskFirst = lr.Seed, lr.Salt, p.n, int(lr.First)
		l.threshold = ref.DropoutThreshold(float64(lr.P))
		l.alpha *= float32(ref.DropoutScale(float64(lr.P)))
	}
	return l
}

// newGemmElem checks the elementwise op of o, if any, against its product and returns its plan.
func newGemmElem(p *gemmProblem, o GemmOpts) *gemmElem {
	var ops []*gemmElem
	for _, op := range []struct {
		t    Tensor
		flag uint32
	}{{o.Residual, gemmResidual}, {o.Gelu, gemmGelu}, {o.GeluGrad, gemmGeluGrad}} {
		if op.t.Valid() {
			ops = append(ops, &gemmElem{flag: op.flag, e: op.t})
		}
	}
	switch {
	case len(ops) == 0:
		return nil
	case len(ops) > 1:
		panic(fmt.Sprintf("vk: gemm: at most one of Residual %v, Gelu %v and GeluGrad %v", o.Residual, o.Gelu, o.GeluGrad))
	case p.batch > 1 || p.a.DType != F32 || p.mask != nil:
		panic(fmt.Sprintf("vk: gemm: an elementwise epilogue needs an unbatched product with an f32 A and no operand mask, got batch %d, A %v",
			p.batch, p.a))
	}
	e := ops[0]
	if e.e.DType != F32 || e.e.Numel() != p.m*p.n || e.e.Shape[len(e.e.Shape)-1] != p.n || p.ldc != p.n {
		panic(fmt.Sprintf("vk: gemm: elementwise operand %v for C %v, want f32 [%d, %d]", e.e, p.c, p.m, p.n))
	}
	return e
}

// newGemmMask checks an operand mask against its product and returns its plan.
func newGemmMask(p *gemmProblem, m GemmMask) *gemmMask {
	if p.a.DType != F32 || p.b.DType != F32 || p.low != nil {
		panic(fmt.Sprintf("vk: gemm: an operand mask needs f32 A %v and B %v and no low-rank term", p.a, p.b))
	}
	checkNumel("gemm operand mask", "seed", m.Seed, 1)
	if m.Seed.DType.Size() != 4 {
		panic(fmt.Sprintf("vk: gemm: operand mask seed %v, want a 32-bit dtype", m.Seed))
	}
	if !(m.P >= 0 && m.P < 1) {
		panic(fmt.Sprintf("vk: gemm: operand mask p = %v, want 0 <= p < 1", m.P))
	}
	masked := p.a
	if m.OnB {
		masked = p.b
	}
	if uint64(masked.Numel()) > 1<<32 {
		panic(fmt.Sprintf("vk: gemm: masked operand %v has more than 2^32 elements, the hash index range", masked))
	}
	return &gemmMask{seed: m.Seed, onB: m.OnB, salt: m.Salt, first: m.First, threshold: ref.DropoutThreshold(float64(m.P)),
		scale: float32(ref.DropoutScale(float64(m.P)))}
}

// gemmLimit is the most elements of dtype dt one window may span under maxBinding, leaving room for the
// window's start being aligned down and its end rounded up to a 32-bit word.
func (s *Stream) gemmLimit(dt DType, maxBinding uint64) int {
	slack := s.d.mem.align + 4
	if maxBinding <= slack {
		return 0
	}
	return int((maxBinding - slack) / uint64(dt.Size()))
}

func (s *Stream) gemmFits(p *gemmProblem, env gemmEnv) bool {
	return p.extentA() <= s.gemmLimit(p.a.DType, env.maxBinding) &&
		p.extentB() <= s.gemmLimit(p.b.DType, env.maxBinding) &&
		p.extentC() <= s.gemmLimit(F32, env.maxBinding) &&
		p.batch <= s.d.Info.MaxWorkgroupCount[2]
}

// gemmChunked runs p as several dispatches when an operand exceeds the binding range or the batch
// exceeds the grid: first over batches, then, for one matrix, over rows of C (and A), columns of C (with
// Bᵀ) and K (with Aᵀ or B), the K chunks after the first accumulating with beta 1 and only the last
// applying the elementwise op (GELU must see the final C).
func (s *Stream) gemmChunked(p gemmProblem, o GemmOpts, env gemmEnv) {
	if s.gemmFits(&p, env) {
		s.gemmRun(p, o, env)
		return
	}
	if p.batch > 1 {
		nb := min(p.batch, s.d.Info.MaxWorkgroupCount[2])
		for nb > 1 {
			q := p
			q.batch = nb
			if s.gemmFits(&q, env) {
				break
			}
			nb = nb / 2
		}
		for b0 := 0; b0 < p.batch; b0 += nb {
			q := p
			q.batch = min(nb, p.batch-b0)
			q.offA += b0 * p.sa
			q.offB += b0 * p.sb
			q.offC += b0 * p.sc
			s.gemmChunked(q, o, env)
		}
		return
	}
	limA, limB, limC := s.gemmLimit(p.a.DType, env.maxBinding), s.gemmLimit(p.b.DType, env.maxBinding), s.gemmLimit(F32, env.maxBinding)
	rowsFit := func(lim, ld, width int) int { // rows of a stored matrix whose window fits
		switch {
		case lim < width:
			return 0
		case ld == 0: // an empty K: the operand has no elements
			return math.MaxInt
		}
		return (lim-width)/ld + 1
	}
	mc, nc, kc := p.m, p.n, p.k
	mc = min(mc, rowsFit(limC, p.ldc, p.n))
	if p.transA {
		kc = min(kc, rowsFit(limA, p.lda, p.m))
	} else {
		mc = min(mc, rowsFit(limA, p.lda, p.k))
	}
	if p.transB {
		nc = min(nc, rowsFit(limB, p.ldb, p.k))
	} else {
		kc = min(kc, rowsFit(limB, p.ldb, p.n))
	}
	// Keep the grid within limits for the narrowest tile (16; the CPU variant's: 1 row, L columns).
	if env.cpu {
		mc = min(mc, s.d.Info.MaxWorkgroupCount[0])
		nc = min(nc, s.d.Info.SubgroupSize*s.d.Info.MaxWorkgroupCount[1])
	} else {
		mc = min(mc, 16*s.d.Info.MaxWorkgroupCount[1])
		nc = min(nc, 16*s.d.Info.MaxWorkgroupCount[0])
	}
	if mc < 1 || nc < 1 || (kc < 1 && p.k > 0) {
		s.fail(fmt.Errorf("vk: gemm: one row of A %v, B %v or C %v exceeds the binding range of %d bytes",
			p.a, p.b, p.c, env.maxBinding))
		return
	}
	roundDown := func(x, q int) int {
		if x >= q {
			return x / q * q
		}
		return x
	}
	mc, nc, kc = roundDown(mc, 128), roundDown(nc, 128), roundDown(kc, gemmSplitBlock)
	for m0 := 0; m0 < p.m; m0 += mc {
		for n0 := 0; n0 < p.n; n0 += nc {
			for k0 := 0; k0 < max(p.k, 1); k0 += max(kc, 1) {
				q := p
				q.m, q.n, q.k = min(mc, p.m-m0), min(nc, p.n-n0), min(kc, p.k-k0)
				if p.transA {
					q.offA += k0*p.lda + m0
				} else {
					q.offA += m0*p.lda + k0
				}
				if p.transB {
					q.offB += n0*p.ldb + k0
				} else {
					q.offB += k0*p.ldb + n0
				}
				q.offC += m0*p.ldc + n0
				q.offBias += n0
				if p.elem != nil && k0+max(kc, 1) >= p.k { // the last K chunk: C is final
					e := *p.elem
					e.offE += m0*p.ldc + n0
					q.elem = &e
				} else {
					q.elem = nil
				}
				if p.low != nil {
					l := *p.low
					l.offU += m0 * l.ldu
					if l.transV {
						l.offV += n0 * l.ldv
					} else {
						l.offV += n0
					}
					l.maskFirst += m0*l.maskLd + n0
					q.low = &l
				}
				if k0 > 0 { // later K chunks add to the first one's result
					q.beta, q.bias, q.low = 1, Tensor{}, nil
				}
				s.gemmRun(q, o, env)
			}
		}
	}
}

// gemmSplits returns the split-K slice count and slice length for a product (1, k when not split).
func gemmSplits(d *Device, maxBinding uint64, m, n, k, batch, want int) (splits, kSplit int) {
	if want == 1 || k < 2*gemmSplitBlock {
		return 1, k
	}
	splits = want
	if want <= 0 {
		tiles := batch * ((m + 63) / 64) * ((n + 63) / 64)
		slots := gemmGPUSlots
		if d.Info.Type == "cpu" {
			slots = 2 * runtime.NumCPU() // lavapipe runs one workgroup per host thread
		}
		if tiles >= slots {
			return 1, k
		}
		splits = min((slots+tiles-1)/tiles, k/gemmMinSplitK, gemmMaxSplits)
	}
	// The workspace is one binding (less a window's alignment slack); batch·splits groups must fit the
	// grid's z.
	wsMax := 0
	if maxBinding > 256 {
		wsMax = int((maxBinding - 256) / 4)
	}
	splits = min(splits, wsMax/max(batch*m*n, 1), d.Info.MaxWorkgroupCount[2]/max(batch, 1))
	if splits < 2 {
		return 1, k
	}
	kSplit = ((k+splits-1)/splits + gemmSplitBlock - 1) / gemmSplitBlock * gemmSplitBlock
	splits = (k + kSplit - 1) / kSplit
	if splits < 2 {
		return 1, k
	}
	return splits, kSplit
}

// gemmCoopOK reports whether the cooperative-matrix path can run on d: NV cooperative matrices with a
// 16×16×16 f16·f16+f32 shape, 32-wide subgroups (the shader's subgroup arithmetic), enough shared memory.
func gemmCoopOK(d *Device) bool {
	t := gemmCoopTile()
	if !d.CoopMat() || d.Info.SubgroupSize != 32 || d.Info.SharedMemory < t.shared() || d.Info.MaxWorkgroupInvoc < t.wg {
		return false
	}
	for _, sh := range d.Info.CoopMatShapes {
		if sh.M == 16 && sh.N == 16 && sh.K == 16 && sh.AType == "f16" && sh.BType == "f16" && sh.CType == "f32" && sh.DType == "f32" {
			return true
		}
	}
	return false
}

// gemmPick chooses the shader and tile for one dispatch. An elementwise op takes the LOWRANK variant's
// ELEMENTWISE twin, at rank 0 when the product has no low-rank term.
func (s *Stream) gemmPick(p *gemmProblem, env gemmEnv) (string, gemmTile) {
	elem := ""
	if p.elem != nil {
		elem = ".elementwise"
	}
	// Tensor cores take f16 operands: f16 weights (the fp16 precision mode) with f16 activations, or f32
	// activations rounded to f16 as they are staged (fp16 compute, f32 accumulation). f32·f32 and bf16
	// products stay on the exact scalar path.
	if env.coopmat && p.mask == nil && p.b.DType == F16 && (p.a.DType == F16 || p.a.DType == F32) && p.m >= 16 && p.n >= 16 && p.k >= 16 && gemmCoopOK(s.d) {
		switch {
		case p.low != nil || p.elem != nil:
			return "gemm.coopmat.lowrank" + elem + ".f32_f16", gemmCoopTile()
		case p.a.DType == F32:
			return "gemm.coopmat.f32_f16", gemmCoopTile()
		}
		return "gemm.coopmat", gemmCoopTile()
	}
	name := "gemm"
	if p.mask != nil {
		name = "gemm.masked" // A and B are f32
	} else if (p.low != nil || p.elem != nil) && env.lowRankEpilogue && p.b.DType == F16 {
		name = "gemm.lowrank_epilogue" + elem
	} else if p.low != nil || p.elem != nil {
		name += ".lowrank" + elem // A is f32
	}
	if p.a.DType != F32 || p.b.DType != F32 {
		name += "." + p.a.DType.String() + "_" + p.b.DType.String()
	}
	set := gemmScalarTiles(s.d.Info.Type == "cpu")
	t := set.medium
	switch {
	case p.m <= 16:
		t = set.skinnyM
	case p.n <= 16:
		t = set.skinnyN
	case p.m >= 128 && p.n >= 128:
		// On a GPU, large tiles only when they still give every SM work.
		if s.d.Info.Type == "cpu" || p.batch*((p.m+127)/128)*((p.n+127)/128) >= gemmGPUSlots/2 {
			t = set.large
		}
	}
	if t.shared() > s.d.Info.SharedMemory || t.wg > s.d.Info.MaxWorkgroupInvoc {
		t = set.medium
	}
	return name, t
}

// gemmWindow returns a view of t's elements [lo, hi) whose start is aligned down to the device's storage
// alignment and whose end is rounded up to a 32-bit word (16-bit operands are read as words), and lo's
// element offset inside the view.
func (s *Stream) gemmWindow(t Tensor, lo, hi int) (Tensor, uint32) {
	es := uint64(t.DType.Size())
	start := t.off + uint64(lo)*es
	base := start / s.d.mem.align * s.d.mem.align
	end := alignUp(t.off+uint64(max(hi, lo))*es, 4)
	v := Tensor{blk: t.blk, off: base, DType: t.DType, Shape: []int{int((end - base) / es)}}
	return v, uint32((start - base) / es)
}

// b32 is a boolean specialization constant's value (VkBool32).
func b32(v bool) uint32 {
	if v {
		return 1
	}
	return 0
}

// gemmRun records one product whose operands fit the binding range: the tiled kernel, directly into C
// or, with split-K, into the workspace followed by gemm_reduce.
func (s *Stream) gemmRun(p gemmProblem, o GemmOpts, env gemmEnv) {
	if env.cpu {
		s.gemmCPUPadB(&p, env)
	}
	shader, tile := s.gemmPick(&p, env)
	splits, kSplit := gemmSplits(s.d, env.maxBinding, p.m, p.n, p.k, p.batch, o.SplitK)
	if p.low != nil || p.elem != nil {
		splits, kSplit = 1, p.k
	}
	need := splits * p.batch * p.m * p.n
	if splits > 1 && (!o.Workspace.Valid() || o.Workspace.Numel() < need) {
		if o.SplitK > 1 {
			panic(fmt.Sprintf("vk: gemm: SplitK=%d needs a workspace of %d f32 (GemmWorkspaceSize), got %v",
				o.SplitK, need, o.Workspace))
		}
		// Automatic split: use what the workspace holds.
		fit := 0
		if o.Workspace.Valid() {
			fit = o.Workspace.Numel() / (p.batch * p.m * p.n)
		}
		splits, kSplit = gemmSplits(s.d, env.maxBinding, p.m, p.n, p.k, p.batch, max(fit, 1))
	}

	aw, offA := s.gemmWindow(p.a, p.offA, p.offA+p.extentA())
	bw, offB := s.gemmWindow(p.b, p.offB, p.offB+p.extentB())
	cw, offC := s.gemmWindow(p.c, p.offC, p.offC+p.extentC())
	biasW, offBias := cw, uint32(0) // bound but unread when there is no bias (every binding needs a buffer)
	flags := uint32(0)
	if p.transA {
		flags |= gemmTransA
	}
	if p.transB {
		flags |= gemmTransB
	}
	epilogue := uint32(0)
	if p.bias.Valid() {
		biasW, offBias = s.gemmWindow(p.bias, p.offBias, p.offBias+p.n)
		epilogue |= gemmBias
	}
	if p.beta != 0 {
		epilogue |= gemmBeta
	}
	push := gemmPush{
		M: uint32(p.m), N: uint32(p.n), K: uint32(p.k),
		LdA: uint32(p.lda), LdB: uint32(p.ldb), LdC: uint32(p.ldc),
		StrideA: uint32(p.sa), StrideB: uint32(p.sb), StrC: uint32(p.sc),
		OffA: offA, OffB: offB, OffC: offC, OffBias: offBias,
		KSplit: uint32(max(p.k, 1)), Splits: 1,
		Flags: flags | epilogue, Alpha: p.alpha, Beta: p.beta,
	}
	groups := [3]int{(p.n + tile.bn - 1) / tile.bn, (p.m + tile.bm - 1) / tile.bm, p.batch * splits}
	k := kernel{shader, tile.spec()}
	if tile.coop {
		k.spec = append(k.spec, b32(p.transA), b32(p.transB))
	}
	// Bindings 0-3 of every variant, then the variant's own: LOWRANK 4 U, 5 V, 6 seed (ELEMENTWISE 7 E),
	// MASKED 4 seed. The label names the variant in per-op timings.
	label, binds := "gemm", []binding{in(aw), in(bw), out(cw), in(biasW)}
	if p.low != nil || p.elem != nil {
		uw, vw, seedW := cw, cw, cw // bound but unread without a term (rank 0) or its mask
		if l := p.low; l != nil {
			var offU, offV uint32
			uw, offU = s.gemmWindow(l.u, l.offU, l.offU+l.extentU(p.m))
			vw, offV = s.gemmWindow(l.v, l.offV, l.offV+l.extentV(p.n))
			seedW = uw
			push.Rank, push.LdU, push.LdV, push.OffU, push.OffV = uint32(l.rank), uint32(l.ldu), uint32(l.ldv), offU, offV
			push.LowAlpha = l.alpha
			if l.transV {
				push.Flags |= gemmLowRankTransV
			}
			if l.seed.Valid() {
				seedW = l.seed
				push.Flags |= gemmLowRankMask
				push.MaskFirst, push.MaskLd, push.MaskSalt, push.MaskThresh = uint32(l.maskFirst), uint32(l.maskLd), l.salt, l.threshold
			}
		}
		label, binds = "gemm.lowrank", append(binds, in(uw), in(vw), in(seedW))
		if e := p.elem; e != nil {
			ew, offE := s.gemmWindow(e.e, e.offE, e.offE+p.extentC())
			push.OffE = offE
			push.Flags |= e.flag
			eb := in(ew)
			if e.flag == gemmGelu {
				eb = out(ew)
			}
			label, binds = "gemm.lowrank.elementwise", append(binds, eb)
		}
	}
	if m := p.mask; m != nil {
		push.MaskSalt, push.MaskThresh, push.MaskScale = m.salt, m.threshold, m.scale
		push.Flags |= gemmMaskA
		push.MaskFirst = m.first + uint32(p.offA)
		if m.onB {
			push.Flags ^= gemmMaskA | gemmMaskB
			push.MaskFirst = m.first + uint32(p.offB)
		}
		label, binds = "gemm.masked", append(binds, in(m.seed))
	}
	if env.cpu {
		k, groups, binds = s.gemmCPUKernel(&p, &push, binds, splits)
	}
	if splits == 1 { // low-rank and elementwise products never split
		s.dispatch(label, gemmCPUFlags(k, env, push.Flags), push, groups, binds...)
		return
	}
	total := p.batch * p.m * p.n
	ww, offW := s.gemmWindow(o.Workspace, 0, splits*total)
	push.LdC, push.StrC, push.OffC, push.OffBias = uint32(p.n), uint32(p.m*p.n), offW, 0
	push.KSplit, push.SplitStride, push.Splits = uint32(kSplit), uint32(total), uint32(splits)
	push.Flags, push.Alpha, push.Beta = flags|(push.Flags&(gemmMaskA|gemmMaskB)), 1, 0
	binds[2], binds[3] = out(ww), in(ww) // partials into the workspace; bias applied by the reduce
	s.dispatch(label+".splitk", gemmCPUFlags(k, env, push.Flags), push, groups, binds...)
	s.dispatch("gemm_reduce", kernel{"gemm_reduce", []uint32{local1D}}, gemmReducePush{
		M: uint32(p.m), N: uint32(p.n), Total: uint32(total), Splits: uint32(splits),
		LdC: uint32(p.ldc), StrC: uint32(p.sc), OffW: offW, OffC: offC, OffBias: offBias,
		Flags: epilogue, Alpha: p.alpha, Beta: p.beta,
	}, s.grid1D(total, local1D), in(ww), out(cw), in(biasW))
}
