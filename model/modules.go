package model

import (
	"fmt"
	"slices"

	"github.com/vjepa-vk/vjepa-vk/vk"
)

// Modules trained in full next to the adapters (PEFT's modules_to_save). A robot whose state or action
// is not the official 7-D vector needs action_encoder / state_encoder layers of its own width; they are
// new, so they are trained whole (weight and bias) while the rest of the predictor stays frozen. They
// travel with the adapter: in trainer checkpoints, in the PEFT export as
// base_model.model.<module>.weight/.bias with adapter_config.json's modules_to_save naming them, and into
// merged checkpoints, where they replace the base's 7-D encoders.

// ModuleNames lists the modules c trains in full: action_encoder when its input is not 7 wide,
// state_encoder likewise; none for the official widths.
func ModuleNames(c PredictorConfig) []string {
	var out []string
	if c.ActionIn() != ActionDim {
		out = append(out, "action_encoder")
	}
	if c.StateIn() != ActionDim {
		out = append(out, "state_encoder")
	}
	return out
}

// InitModules returns fresh weights for the modules of c, read against base (a 7-D checkpoint or random
// init): weight 0 and bias the base encoder's bias. Each new encoder then starts by giving, for every
// input, the token the pretrained encoder gives a zero input (no motion for actions): the predictor
// starts exactly as the pretrained one does on zero conditioning, in distribution, and the first
// updates move the tokens away from it gradually (LoRA's B = 0 start, applied to a new layer). The
// weight's gradient dY·Xᵀ is not zero, so it trains from the first step.
func InitModules(c PredictorConfig, base WeightSource) (MapWeights, error) {
	out := MapWeights{}
	for _, m := range ModuleNames(c) {
		in := c.ActionIn()
		if m == "state_encoder" {
			in = c.StateIn()
		}
		b, err := base.ReadFloat32(m + ".bias")
		if err != nil {
			return nil, fmt.Errorf("model: init %s: %w", m, err)
		}
		if len(b) != c.Dim {
			return nil, fmt.Errorf("model: init %s: base bias has %d values, want %d", m, len(b), c.Dim)
		}
		out[m+".weight"] = make([]float32, c.Dim*in) // [D, in]
		out[m+".bias"] = b                           // [D]
	}
	return out, nil
}

// Overlay reads each tensor from Top when it has it, else from Base: a base checkpoint with trained
// modules in place of its own.
type Overlay struct {
	Top  MapWeights
	Base WeightSource
}

// ReadFloat32 reads name from Top, else Base.
func (o Overlay) ReadFloat32(name string) ([]float32, error) {
	if v, ok := o.Top[name]; ok {
		return slices.Clone(v), nil
	}
	return o.Base.ReadFloat32(name)
}

// ModuleParam is one tensor of a module trained in full, with its gradient.
type ModuleParam struct {
	Name        string    // state_dict name: "action_encoder.weight"
	Param, Grad vk.Tensor // f32, same shape; Grad accumulates
}

// TrainModules allocates zeroed gradients for the modules of ModuleNames(p.Cfg); passes created from
// then on accumulate into them. Nothing changes for the official widths.
func (p *Predictor) TrainModules() error {
	for _, m := range ModuleNames(p.Cfg) {
		l := p.moduleLinear(m)
		if l.gw.Valid() {
			continue
		}
		var err error
		if p.plan != nil { // a planning predictor: count the gradients' bytes
			p.plan.add(int64(4 * l.out * (l.in + 1)))
			continue
		}
		for _, g := range []*vk.Tensor{&l.gw, &l.gb} {
			shape := []int{l.out, l.in}
			if g == &l.gb {
				shape = []int{l.out}
			}
			if *g, err = p.d.NewTensor(vk.F32, shape...); err == nil {
				err = p.d.WriteBytes(*g, make([]byte, g.Bytes()))
			}
			if err != nil {
				return fmt.Errorf("model: gradient of %s: %w", m, err)
			}
		}
	}
	return nil
}

// Modules lists the weights and gradients of the modules trained in full, in state_dict order (empty
// before TrainModules, and for the official widths).
func (p *Predictor) Modules() []ModuleParam {
	var out []ModuleParam
	for _, m := range ModuleNames(p.Cfg) {
		l := p.moduleLinear(m)
		if !l.gw.Valid() {
			continue
		}
		out = append(out, ModuleParam{m + ".weight", l.w, l.gw}, ModuleParam{m + ".bias", l.b, l.gb})
	}
	return out
}

func (p *Predictor) moduleLinear(name string) *linear {
	if name == "state_encoder" {
		return p.stateEnc
	}
	return p.actionEnc
}

// condGrads reports whether a conditioning encoder has gradients of its own (TrainModules).
func (p *Predictor) condGrads() bool {
	return p.actionEnc != nil && (p.actionEnc.gw.Valid() || p.stateEnc.gw.Valid())
}
