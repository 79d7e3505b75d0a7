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
	w, b    vk.Tensor // w [out, in] in the base precision; b [out] f32
	lora    *LoRA
	thin    bool      // run the adapter as separate GEMMs over the output (LoRAThin) instead of fused
	gw, gb  vk.Tensor // f32 gradients of w and b, accumulated; only after Predictor.EnableWeightGrads
}

// loadLinear uploads name.weight and name.bias.
func loadLinear(d *vk.Device, src WeightSource, name string, in, out int, wdt vk.DType) (*linear, error) {
	l := &linear{name: name, in: in, out: out}
	var err error
	if l.w, err = loadTensor(d, src, name+".weight", wdt, out, in); err != nil {
		return nil, err
	}
	if l.b, err = loadTensor(d, src, name+".bias", vk.F32, out); err != nil {
		d.Free(l.w)
		return nil, err
	}
	return l, nil
}

func loadTensor(d *vk.Device, src WeightSource, name string, dt vk.DType, shape ...int) (vk.Tensor, error) {
	v, err := src.ReadFloat32(name)
	if err != nil {
		return vk.Tensor{}, err
	}
	t, err := d.NewTensor(dt, shape...)
	if err != nil {
		return vk.Tensor{}, fmt.Errorf("model: %s: %w", name, err)
	}
	if len(v) != t.Numel() {
		d.Free(t)
		return vk.Tensor{}, fmt.Errorf("model: %s: %d values, want shape %v", name, len(v), shape)
	}
	if err := d.Upload(t, v); err != nil {
		d.Free(t)
		return vk.Tensor{}, fmt.Errorf("model: upload %s: %w", name, err)
	}
	return t, nil
}

func (l *linear) free(d *vk.Device) {
	d.Free(l.w)
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
	scratch vk.Tensor // thin adapters: [rows ≥ R, max in] f32, the dropped input, then its gradient
}

func (d dropout) saltFor(a *LoRA) uint32 { return d.salt*4096 + uint32(a.Index) }

// dropped returns the adapter's input: x itself, or dropout(x) written into scratch.
func (d dropout) dropped(s *vk.Stream, a *LoRA, x vk.Tensor) vk.Tensor {
	if !d.on {
		return x
	}
	xd := d.view(x.Shape[0], x.Shape[1])
	vk.Dropout(s, xd, x, d.seed, d.p, d.saltFor(a))
	return xd
}

func (d dropout) view(rows, cols int) vk.Tensor {
	return d.scratch.Reshape(d.scratch.Numel()).Slice(0, rows*cols).Reshape(rows, cols)
}

// mask is the adapter's dropout as a GEMM operand mask (fused path): the input dropped as it is loaded,
// as A of t = drop(x)·Aᵀ or as B of dA += dtᵀ·drop(x).
func (d dropout) mask(a *LoRA, onB bool) vk.GemmMask {
	if !d.on {
		return vk.GemmMask{}
	}
	return vk.GemmMask{Seed: d.seed, P: d.p, Salt: d.saltFor(a), OnB: onB}
}

// forward records y [rows, out] = x·Wᵀ + b (+ LoRA: scale·(drop(x)·Aᵀ)·Bᵀ, keeping t = drop(x)·Aᵀ
// [rows, r] for backward). t is ignored without an adapter. Fused, x is dropped out as the t GEMM loads
// it and the adapter's second product is the base GEMM's low-rank epilogue; thin, the dropped input is
// written to scratch and the second product is a GEMM of its own that reads and writes y again.
func (l *linear) forward(s *vk.Stream, y, x, t vk.Tensor, drop dropout) {
	a := l.lora
	if a == nil {
		vk.Gemm(s, y, x, l.w, vk.GemmOpts{TransB: true, Bias: l.b})
		return
	}
	if l.thin {
		vk.Gemm(s, t, drop.dropped(s, a, x), a.A, vk.GemmOpts{TransB: true})
		vk.Gemm(s, y, x, l.w, vk.GemmOpts{TransB: true, Bias: l.b})
		vk.Gemm(s, y, t, a.B, vk.GemmOpts{TransB: true, Alpha: a.Scale, Beta: 1})
		return
	}
	vk.Gemm(s, t, x, a.A, vk.GemmOpts{TransB: true, Mask: drop.mask(a, false)})
	vk.Gemm(s, y, x, l.w, vk.GemmOpts{TransB: true, Bias: l.b,
		LowRank: vk.GemmLowRank{U: t, V: a.B, TransV: true, Alpha: a.Scale}})
}

// backward records dx (overwritten, or accumulated when acc) = dy·W (+ LoRA path) and accumulates the
// adapter's gradients: dB += scale·dyᵀ·t, dA += (scale·dy·B)ᵀ·drop(x). dt [rows, r] is scratch. The
// frozen W and b get no gradient. Fused, the dA GEMM drops x as it loads it and the adapter's input
// gradient keep⊙(dt·A)/(1−p) is the dx GEMM's masked low-rank epilogue; thin, the dropped input and that
// gradient go through scratch, with GEMMs and a masking pass of their own.
func (l *linear) backward(s *vk.Stream, dx, dy, x, t, dt vk.Tensor, acc bool, drop dropout) {
	beta := float32(0)
	if acc {
		beta = 1
	}
	if l.gw.Valid() {
		vk.Gemm(s, l.gw, dy, x, vk.GemmOpts{TransA: true, Beta: 1}) // dW += dyᵀ·x
		vk.BiasGradient(s, l.gb, dy)
	}
	a := l.lora
	if a == nil {
		vk.Gemm(s, dx, dy, l.w, vk.GemmOpts{Beta: beta})
		return
	}
	vk.Gemm(s, a.GradB, dy, t, vk.GemmOpts{TransA: true, Alpha: a.Scale, Beta: 1})
	vk.Gemm(s, dt, dy, a.B, vk.GemmOpts{Alpha: a.Scale})
	if !l.thin {
		vk.Gemm(s, a.GradA, dt, x, vk.GemmOpts{TransA: true, Beta: 1, Mask: drop.mask(a, true)})
		low := vk.GemmLowRank{U: dt, V: a.A}
		if drop.on {
			low.Seed, low.P, low.Salt = drop.seed, drop.p, drop.saltFor(a)
		}
		vk.Gemm(s, dx, dy, l.w, vk.GemmOpts{Beta: beta, LowRank: low})
		return
	}
	vk.Gemm(s, a.GradA, dt, drop.dropped(s, a, x), vk.GemmOpts{TransA: true, Beta: 1})
	vk.Gemm(s, dx, dy, l.w, vk.GemmOpts{Beta: beta})
	if !drop.on {
		vk.Gemm(s, dx, dt, a.A, vk.GemmOpts{Beta: 1})
		return
	}
	g := drop.view(x.Shape[0], x.Shape[1]) // d(drop(x)), then masked into dx
	vk.Gemm(s, g, dt, a.A, vk.GemmOpts{})
	vk.DropoutBackward(s, dx, g, drop.seed, drop.p, drop.saltFor(a), true)
}

// layerNorm is an affine LayerNorm (eps 1e-6 in the model, spec §2.4).
type layerNorm struct {
	w, b   vk.Tensor
	eps    float32
	gw, gb vk.Tensor // f32 gradients, only after Predictor.EnableWeightGrads
}

// grads returns where backward accumulates the parameter gradients: the norm's own, or the predictor's
// shared sinks when weight gradients are off.
func (n layerNorm) grads(sinkW, sinkB vk.Tensor) (vk.Tensor, vk.Tensor) {
	if n.gw.Valid() {
		return n.gw, n.gb
	}
	return sinkW, sinkB
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
