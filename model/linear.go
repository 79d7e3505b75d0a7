package model

import (
	"fmt"

	"github.com/vjepa-vk/vjepa-vk/vk"
)

// WeightSource yields a tensor's values by state_dict name (cleaned, spec §9.3). *StateDict implements it.
type WeightSource interface {
	ReadFloat32(name string) ([]float32, error)
}

// Precision of the frozen base weights. Activations, LoRA weights, gradients and optimizer states are f32
// in every mode; GEMMs read f16/bf16 weights and accumulate in f32.
type Precision string

const (
	FP32 Precision = "fp32"
	FP16 Precision = "fp16"
	BF16 Precision = "bf16"
)

func (p Precision) dtype() (vk.DType, error) {
	switch p {
	case FP32, "":
		return vk.F32, nil
	case FP16:
		return vk.F16, nil
	case BF16:
		return vk.BF16, nil
	}
	return 0, fmt.Errorf("model: precision %q: want fp32, fp16 or bf16", p)
}

// linear is a frozen nn.Linear (y = x·Wᵀ + b, W stored [out, in]) with an optional LoRA adapter.
type linear struct {
	name    string // state_dict prefix, e.g. "predictor_blocks.3.attn.qkv"
	in, out int
	w, b    vk.Tensor // w [out, ldw] in the base precision (first in of each row); b [out] f32
	ldw     int       // w's row length: in, or vk.GemmLd's
	wT      vk.Tensor // weightsTransposed on the CPU kernels: Wᵀ [in, ldwT], for dx = dy·W as an NT product
	ldwT    int
	lora    *LoRA
	thin    bool      // run the adapter as separate GEMMs over the output (LoRAThin) instead of fused
	unfused bool      // tests: run a post op as a kernel of its own, not as a GEMM epilogue
	gw, gb  vk.Tensor // f32 gradients of w and b, accumulated; only after Predictor.EnableWeightGrads
}

// weightLayout is how a linear's weight is stored on the device.
type weightLayout int

const (
	// weightsPacked: [out, in] as in the state_dict. For the modules an optimizer updates in place, and
	// the small input encoders.
	weightsPacked weightLayout = iota
	// weightsForGemm: rows at vk.GemmLd's length, which the CPU kernels read in place instead of copying
	// the weight into padded rows at every product. Frozen weights only (forward only: patch_embed).
	weightsForGemm
	// weightsTransposed: weightsForGemm, and on the CPU kernels a copy of Wᵀ too, so that backward's
	// dx = dy·W is an NT product, which they run about 1.4× faster than the NN one (BenchmarkGemm
	// 1032×512×2048), for one more copy of the weight in memory (a CPU device's memory is the host's).
	weightsTransposed
)

// loadLinear uploads name.weight, stored in the given layout, and name.bias.
func loadLinear(d *vk.Device, src WeightSource, name string, in, out int, wdt vk.DType, layout weightLayout) (*linear, error) {
	l := &linear{name: name, in: in, out: out, ldw: in}
	v, err := readWeight(src, name+".weight", out, in)
	if err != nil {
		return nil, err
	}
	if layout != weightsPacked {
		l.ldw = vk.GemmLd(d, wdt, in)
	}
	if l.w, err = uploadRows(d, name+".weight", v, out, in, l.ldw, wdt); err != nil {
		return nil, err
	}
	if layout == weightsTransposed && d.Kernels() == vk.KernelsCPU {
		vt := make([]float32, len(v))
		for o := range out {
			for i := range in {
				vt[i*out+o] = v[o*in+i]
			}
		}
		l.ldwT = vk.GemmLd(d, wdt, out)
		if l.wT, err = uploadRows(d, name+".weight (transposed)", vt, in, out, l.ldwT, wdt); err != nil {
			d.Free(l.w)
			return nil, err
		}
	}
	if l.b, err = loadTensor(d, src, name+".bias", vk.F32, out); err != nil {
		d.Free(l.w)
		d.Free(l.wT)
		return nil, err
	}
	return l, nil
}

// uploadRows uploads v, rows of cols values, as a [rows, ld] tensor of dtype dt (zeros after each row).
func uploadRows(d *vk.Device, name string, v []float32, rows, cols, ld int, dt vk.DType) (vk.Tensor, error) {
	if ld != cols {
		padded := make([]float32, rows*ld)
		for r := range rows {
			copy(padded[r*ld:r*ld+cols], v[r*cols:(r+1)*cols])
		}
		v = padded
	}
	return upload(d, name, v, dt, rows, ld)
}

// readWeight reads the values of name and checks their count against shape.
func readWeight(src WeightSource, name string, shape ...int) ([]float32, error) {
	v, err := src.ReadFloat32(name)
	if err != nil {
		return nil, err
	}
	n := 1
	for _, x := range shape {
		n *= x
	}
	if len(v) != n {
		return nil, fmt.Errorf("model: %s: %d values, want shape %v", name, len(v), shape)
	}
	return v, nil
}

// upload puts v into a new device tensor of dtype dt and shape.
func upload(d *vk.Device, name string, v []float32, dt vk.DType, shape ...int) (vk.Tensor, error) {
	t, err := d.NewTensor(dt, shape...)
	if err != nil {
		return vk.Tensor{}, fmt.Errorf("model: %s: %w", name, err)
	}
	if err := d.Upload(t, v); err != nil {
		d.Free(t)
		return vk.Tensor{}, fmt.Errorf("model: upload %s: %w", name, err)
	}
	return t, nil
}

func loadTensor(d *vk.Device, src WeightSource, name string, dt vk.DType, shape ...int) (vk.Tensor, error) {
	v, err := readWeight(src, name, shape...)
	if err != nil {
		return vk.Tensor{}, err
	}
	return upload(d, name, v, dt, shape...)
}

func (l *linear) free(d *vk.Device) {
	d.Free(l.w)
	d.Free(l.wT)
	d.Free(l.b)
	if l.lora != nil {
		l.lora.free(d)
	}
	d.Free(l.gw)
	d.Free(l.gb)
}

// dropout is PEFT's lora_dropout for the adapters of one pass: on only while training steps are
// recorded; the mask is a stateless hash of (seed, salt, element), so backward and checkpoint recompute
// regenerate it instead of storing it, and a replayed step gets a new mask when the host writes Seed.
type dropout struct {
	on      bool
	p       float32
	seed    vk.Tensor // U32 [1]
	salt    uint32    // per pass; each adapter adds its index
	part    uint32    // Predictor.SetBatchPart: this pass's share of a global batch
	scratch vk.Tensor // thin adapters: [rows ≥ R, max in] f32, the dropped input, then its gradient
}

func (d dropout) saltFor(a *LoRA) uint32 { return d.salt*4096 + uint32(a.Index) }

// first is the mask index of element 0 of x, a batch-major [rows, in] input (or its gradient): the
// offset of this part's rows in the whole batch's tensor (mod 2^32, as the hash index wraps).
func (d dropout) first(x vk.Tensor) uint32 { return d.part * uint32(x.Numel()) }

// dropped returns the adapter's input: x itself, or dropout(x) written into scratch.
func (d dropout) dropped(s *vk.Stream, a *LoRA, x vk.Tensor) vk.Tensor {
	if !d.on {
		return x
	}
	xd := d.view(x.Shape[0], x.Shape[1])
	vk.DropoutAt(s, xd, x, d.seed, d.p, d.saltFor(a), d.first(x))
	return xd
}

func (d dropout) view(rows, cols int) vk.Tensor {
	return d.scratch.Reshape(d.scratch.Numel()).Slice(0, rows*cols).Reshape(rows, cols)
}

// mask is the adapter's dropout of input x as a GEMM operand mask (fused path): the input dropped as it
// is loaded, as A of t = drop(x)·Aᵀ or as B of dA += dtᵀ·drop(x).
func (d dropout) mask(a *LoRA, x vk.Tensor, onB bool) vk.GemmMask {
	if !d.on {
		return vk.GemmMask{}
	}
	return vk.GemmMask{Seed: d.seed, P: d.p, Salt: d.saltFor(a), OnB: onB, First: d.first(x)}
}

// post is the elementwise op that follows a linear in a block (spec §2.4), at most one field set. It is
// the epilogue of the GEMM that finishes the linear's output (vk.GemmOpts Residual, Gelu, GeluGrad), or,
// unfused, a kernel of its own run in place over that output afterwards: on the thin adapter path (whose
// last kernel need not be a GEMM) and in tests (linear.unfused), which check that the two agree bit for
// bit.
type post struct {
	residual vk.Tensor // forward: y = residual + linear(x)
	gelu     vk.Tensor // forward: y = linear(x), and gelu(y) written here
	geluOf   vk.Tensor // backward: dx = (linear's dx)·gelu'(geluOf), geluOf being GELU's forward input
}

// fused returns the GEMM options o with the op as their epilogue.
func (q post) fused(o vk.GemmOpts) vk.GemmOpts {
	o.Residual, o.Gelu, o.GeluGrad = q.residual, q.gelu, q.geluOf
	return o
}

// after records the op over y as a kernel of its own, in place.
func (q post) after(s *vk.Stream, y vk.Tensor) {
	switch {
	case q.residual.Valid():
		vk.Add(s, y, q.residual, y)
	case q.gelu.Valid():
		vk.Gelu(s, q.gelu, y)
	case q.geluOf.Valid():
		vk.GeluBackward(s, y, y, q.geluOf)
	}
}

// split returns the op to fuse into the linear's last GEMM and the op to run after it (one of them empty).
func (q post) split(l *linear) (fuse, after post) {
	if l.unfused || (l.lora != nil && l.thin) {
		return post{}, q
	}
	return q, post{}
}

// forward records y [rows, out] = x·Wᵀ + b (+ LoRA: scale·(drop(x)·Aᵀ)·Bᵀ, keeping t = drop(x)·Aᵀ
// [rows, r] for backward), then q's op. t is ignored without an adapter. Fused, x is dropped out as the t
// GEMM loads it and the adapter's second product is the base GEMM's low-rank epilogue; thin, the dropped
// input is written to scratch and the second product is a GEMM of its own that reads and writes y again.
func (l *linear) forward(s *vk.Stream, y, x, t vk.Tensor, drop dropout, q post) {
	fuse, after := q.split(l)
	a := l.lora
	switch {
	case a == nil:
		vk.Gemm(s, y, x, l.w, fuse.fused(vk.GemmOpts{TransB: true, LdB: l.ldw, Bias: l.b}))
	case l.thin:
		l.hidden(s, t, x, drop)
		vk.Gemm(s, y, x, l.w, vk.GemmOpts{TransB: true, LdB: l.ldw, Bias: l.b})
		vk.Gemm(s, y, t, a.B, vk.GemmOpts{TransB: true, Alpha: a.Scale, Beta: 1})
	default:
		l.hidden(s, t, x, drop)
		vk.Gemm(s, y, x, l.w, fuse.fused(vk.GemmOpts{TransB: true, LdB: l.ldw, Bias: l.b,
			LowRank: vk.GemmLowRank{U: t, V: a.B, TransV: true, Alpha: a.Scale}}))
	}
	after.after(s, y)
}

// hidden records forward's adapter hidden t = drop(x)·Aᵀ alone (nothing without an adapter): all that
// backward needs of a linear whose output nobody reads (fc2 in a checkpointed block's recompute).
func (l *linear) hidden(s *vk.Stream, t, x vk.Tensor, drop dropout) {
	a := l.lora
	switch {
	case a == nil:
	case l.thin:
		vk.Gemm(s, t, drop.dropped(s, a, x), a.A, vk.GemmOpts{TransB: true})
	default:
		vk.Gemm(s, t, x, a.A, vk.GemmOpts{TransB: true, Mask: drop.mask(a, x, false)})
	}
}

// backward records dx (overwritten, or accumulated when acc) = dy·W (+ LoRA path), then q's op, and
// accumulates the adapter's gradients: dB += scale·dyᵀ·t, dA += (scale·dy·B)ᵀ·drop(x). dt [rows, r] is
// scratch. The frozen W and b get no gradient. It is backwardWeights then backwardInput, which a block
// records in sub-phases of their own (x is dead before dx is written).
func (l *linear) backward(s *vk.Stream, dx, dy, x, t, dt vk.Tensor, acc bool, drop dropout, q post) {
	l.backwardWeights(s, dy, x, t, dt, drop)
	l.backwardInput(s, dx, dy, dt, acc, drop, q)
}

// backwardWeights accumulates the gradients of the adapter (and of W and b, with weight gradients on) and
// leaves dt = scale·dy·B for backwardInput. Fused, the dA GEMM drops x as it loads it; thin, the dropped
// input goes through scratch.
func (l *linear) backwardWeights(s *vk.Stream, dy, x, t, dt vk.Tensor, drop dropout) {
	if l.gw.Valid() {
		vk.Gemm(s, l.gw, dy, x, vk.GemmOpts{TransA: true, Beta: 1}) // dW += dyᵀ·x
		vk.BiasGradient(s, l.gb, dy)
	}
	a := l.lora
	if a == nil {
		return
	}
	vk.Gemm(s, a.GradB, dy, t, vk.GemmOpts{TransA: true, Alpha: a.Scale, Beta: 1, Workspace: a.splitK})
	vk.Gemm(s, dt, dy, a.B, vk.GemmOpts{Alpha: a.Scale})
	if !l.thin {
		vk.Gemm(s, a.GradA, dt, x, vk.GemmOpts{TransA: true, Beta: 1, Mask: drop.mask(a, x, true), Workspace: a.splitK})
		return
	}
	vk.Gemm(s, a.GradA, dt, drop.dropped(s, a, x), vk.GemmOpts{TransA: true, Beta: 1, Workspace: a.splitK})
}

// inputGrad records dx = dy·W with o's options: dy·(Wᵀ)ᵀ, an NT product, where the transposed copy is kept.
func (l *linear) inputGrad(s *vk.Stream, dx, dy vk.Tensor, o vk.GemmOpts) {
	if l.wT.Valid() {
		o.TransB, o.LdB = true, l.ldwT
		vk.Gemm(s, dx, dy, l.wT, o)
		return
	}
	o.LdB = l.ldw
	vk.Gemm(s, dx, dy, l.w, o)
}

// backwardInput records dx (overwritten, or accumulated when acc) = dy·W (+ the adapter's input gradient
// keep⊙(dt·A)/(1−p)), then q's op. Fused, the adapter's term is the dx GEMM's masked low-rank epilogue;
// thin, it goes through scratch, with a GEMM and a masking pass of its own.
func (l *linear) backwardInput(s *vk.Stream, dx, dy, dt vk.Tensor, acc bool, drop dropout, q post) {
	fuse, after := q.split(l)
	beta := float32(0)
	if acc {
		beta = 1
	}
	a := l.lora
	switch {
	case a == nil:
		l.inputGrad(s, dx, dy, fuse.fused(vk.GemmOpts{Beta: beta}))
	case !l.thin:
		low := vk.GemmLowRank{U: dt, V: a.A}
		if drop.on {
			low.Seed, low.P, low.Salt, low.First = drop.seed, drop.p, drop.saltFor(a), drop.first(dx)
		}
		l.inputGrad(s, dx, dy, fuse.fused(vk.GemmOpts{Beta: beta, LowRank: low}))
	case !drop.on:
		l.inputGrad(s, dx, dy, vk.GemmOpts{Beta: beta})
		vk.Gemm(s, dx, dt, a.A, vk.GemmOpts{Beta: 1})
	default:
		l.inputGrad(s, dx, dy, vk.GemmOpts{Beta: beta})
		g := drop.view(dx.Shape[0], dx.Shape[1]) // d(drop(x)), then masked into dx
		vk.Gemm(s, g, dt, a.A, vk.GemmOpts{})
		vk.DropoutBackwardAt(s, dx, g, drop.seed, drop.p, drop.saltFor(a), drop.first(dx), true)
	}
	after.after(s, dx)
}

// layerNorm is an affine LayerNorm (eps 1e-6 in the model, spec §2.4).
type layerNorm struct {
	w, b   vk.Tensor
	eps    float32
	gw, gb vk.Tensor // f32 gradients, only after Predictor.EnableWeightGrads
}

func loadLayerNorm(d *vk.Device, src WeightSource, name string, dim int) (layerNorm, error) {
	w, err := loadTensor(d, src, name+".weight", vk.F32, dim)
	if err != nil {
		return layerNorm{}, err
	}
	b, err := loadTensor(d, src, name+".bias", vk.F32, dim)
	if err != nil {
		d.Free(w)
		return layerNorm{}, err
	}
	return layerNorm{w: w, b: b, eps: 1e-6}, nil
}

func (n layerNorm) free(d *vk.Device) {
	d.Free(n.w)
	d.Free(n.b)
	d.Free(n.gw)
	d.Free(n.gb)
}
