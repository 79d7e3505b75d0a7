package train

import (
	"fmt"

	"github.com/vjepa-vk/vjepa-vk/model"
	"github.com/vjepa-vk/vjepa-vk/vk"
)

// param is one trained tensor with its gradient and AdamW state (f32 moments, or 8-bit codes + scales).
type param struct {
	name        string // PEFT key: base_model.model.<module>.lora_A.weight
	p, g        vk.Tensor
	m, v        vk.Tensor // f32 moments, or U8 codes with 8-bit AdamW
	mScale, vSc vk.Tensor // 8-bit block scales
	decay       bool
	inFlat      bool // a view of the optimizer's flat group: zeroed, summed and updated through it
}

// optimizer is AdamW (f32 or 8-bit) over every LoRA tensor and every module trained in full, driven by a small hyper-parameter buffer so
// that its recorded stream replays unchanged from step to step.
type optimizer struct {
	d        *vk.Device
	eightBit bool
	params   []*param
	// flat is every adapter tensor at once (f32 AdamW over a predictor with flat LoRA storage): its p and g
	// are the predictor's flat tensors, its m and v the optimizer's, with each adapter tensor's param a view
	// at the same offset. One dispatch each zeroes, sums and updates them all; the zeros between the views
	// stay zero under AdamW (g = p = m = v = 0).
	flat  *param
	hyper vk.Tensor // [vk.AdamHyperLen]
	qmap  vk.Tensor // 8-bit code maps
	acc   vk.Tensor // [2]: Σg², non-finite flag
	ws    vk.Tensor
	owned []vk.Tensor
	steps int // AdamW's t: applied updates (skipped steps do not count, as torch's GradScaler)
}

func newOptimizer(d *vk.Device, p *model.Predictor, eightBit bool) (*optimizer, error) {
	o := &optimizer{d: d, eightBit: eightBit}
	var err error
	alloc := func(dt vk.DType, shape ...int) vk.Tensor {
		if err != nil {
			return vk.Tensor{}
		}
		var t vk.Tensor
		if t, err = d.NewTensor(dt, shape...); err == nil {
			o.owned = append(o.owned, t)
		}
		return t
	}
	maxN := 1
	if params, grads := p.LoRAStorage(); params.Valid() && !eightBit {
		n := params.Numel()
		maxN = n
		o.flat = &param{p: params, g: grads, m: alloc(vk.F32, n), v: alloc(vk.F32, n), decay: true}
	}
	for _, a := range p.LoRAs {
		for _, w := range []struct {
			suffix string
			p, g   vk.Tensor
		}{{"lora_A", a.A, a.GradA}, {"lora_B", a.B, a.GradB}} {
			n := w.p.Numel()
			maxN = max(maxN, n)
			// LoRA matrices are 2-D weights: weight decay applies (spec §10 param groups).
			pr := &param{name: "base_model.model." + a.Module + "." + w.suffix + ".weight", p: w.p, g: w.g, decay: true}
			if f := o.flat; f != nil && err == nil {
				off := a.Flat
				if w.suffix == "lora_B" {
					off += a.FlatB
				}
				view := func(t vk.Tensor) vk.Tensor { return t.Slice(off, n).Reshape(w.p.Shape...) }
				pr.m, pr.v, pr.inFlat = view(f.m), view(f.v), true
			} else if eightBit {
				blocks := (n + vk.Adam8BitBlock - 1) / vk.Adam8BitBlock
				pr.m, pr.v = alloc(vk.U8, n), alloc(vk.U8, n)
				pr.mScale, pr.vSc = alloc(vk.F32, blocks), alloc(vk.F32, blocks)
			} else {
				pr.m, pr.v = alloc(vk.F32, w.p.Shape...), alloc(vk.F32, w.p.Shape...)
			}
			o.params = append(o.params, pr)
		}
	}
	// Modules trained in full (other state/action widths): weights decay, biases do not (spec §10).
	for _, m := range p.Modules() {
		n := m.Param.Numel()
		maxN = max(maxN, n)
		pr := &param{name: "base_model.model." + m.Name, p: m.Param, g: m.Grad, decay: len(m.Param.Shape) == 2}
		if eightBit {
			blocks := (n + vk.Adam8BitBlock - 1) / vk.Adam8BitBlock
			pr.m, pr.v = alloc(vk.U8, n), alloc(vk.U8, n)
			pr.mScale, pr.vSc = alloc(vk.F32, blocks), alloc(vk.F32, blocks)
		} else {
			pr.m, pr.v = alloc(vk.F32, m.Param.Shape...), alloc(vk.F32, m.Param.Shape...)
		}
		o.params = append(o.params, pr)
	}
	o.hyper = alloc(vk.F32, vk.AdamHyperLen)
	o.acc = alloc(vk.F32, 2)
	o.ws = alloc(vk.F32, vk.ReduceWorkspaceSize(maxN))
	if eightBit {
		o.qmap = alloc(vk.F32, len(vk.Adam8BitMaps()))
	}
	if err != nil {
		o.free()
		return nil, fmt.Errorf("train: allocate optimizer state: %w", err)
	}
	if eightBit {
		if err := d.Upload(o.qmap, vk.Adam8BitMaps()); err != nil {
			o.free()
			return nil, err
		}
	}
	if err := o.reset(); err != nil {
		o.free()
		return nil, err
	}
	return o, nil
}

// reset zeroes the moments.
func (o *optimizer) reset() error {
	for _, pr := range o.groups() {
		for _, t := range []vk.Tensor{pr.m, pr.v, pr.mScale, pr.vSc} {
			if !t.Valid() {
				continue
			}
			if err := o.d.WriteBytes(t, make([]byte, t.Bytes())); err != nil {
				return err
			}
		}
	}
	o.steps = 0
	return nil
}

func (o *optimizer) free() {
	for _, t := range o.owned {
		o.d.Free(t)
	}
	o.owned = nil
}

// groups lists what the optimizer zeroes, sums and updates as units: the flat group of every adapter
// tensor, when there is one, then each param outside it.
func (o *optimizer) groups() []*param {
	var gs []*param
	if o.flat != nil {
		gs = append(gs, o.flat)
	}
	for _, pr := range o.params {
		if !pr.inFlat {
			gs = append(gs, pr)
		}
	}
	return gs
}

// recordNorm records acc = [Σ g², non-finite] over every gradient.
func (o *optimizer) recordNorm(s *vk.Stream) {
	vk.Zero(s, o.acc)
	for _, pr := range o.groups() {
		vk.SumSquares(s, o.acc, pr.g, o.ws)
	}
}

// recordUpdate records one AdamW update of every parameter from the hyper buffer.
func (o *optimizer) recordUpdate(s *vk.Stream) {
	for _, pr := range o.groups() {
		if o.eightBit {
			vk.AdamW8bit(s, pr.p, pr.m, pr.v, pr.mScale, pr.vSc, pr.g, o.hyper, o.qmap, pr.decay)
		} else {
			vk.AdamW(s, pr.p, pr.m, pr.v, pr.g, o.hyper, pr.decay)
		}
	}
}

// namedTensor is one tensor of the trained state under its checkpoint name.
type namedTensor struct {
	name string
	t    vk.Tensor
}

// state lists what a checkpoint must hold to resume exactly: each LoRA tensor under its PEFT name, and
// its AdamW state under "opt.<name>.m", ".v" (and ".m_scale", ".v_scale" for 8-bit moments).
func (o *optimizer) state() []namedTensor {
	var out []namedTensor
	for _, pr := range o.params {
		opt := "opt." + pr.name
		out = append(out, namedTensor{pr.name, pr.p}, namedTensor{opt + ".m", pr.m}, namedTensor{opt + ".v", pr.v})
		if o.eightBit {
			out = append(out, namedTensor{opt + ".m_scale", pr.mScale}, namedTensor{opt + ".v_scale", pr.vSc})
		}
	}
	return out
}
