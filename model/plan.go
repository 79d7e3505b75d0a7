package model

import (
	"fmt"
	"strings"

	"github.com/vjepa-vk/vjepa-vk/vk"
)

// Plan counts the device bytes that allocation code would take, without a device. A planning predictor
// runs the same NewPass/scratch code as a real one, so the plan cannot drift from what is allocated.
type Plan struct {
	Bytes int64
}

func (p *Plan) add(n int64) {
	// The allocator rounds every tensor up to the storage alignment (16 B on most devices).
	p.Bytes += (n + 15) / 16 * 16
}

// Add counts n more bytes (used by callers that plan their own tensors).
func (p *Plan) Add(n int64) { p.add(n) }

// tensorAlloc allocates tensors, remembering the first error and every allocation. With a plan it
// allocates nothing and only counts bytes, so that memory plans run the very code that allocates.
type tensorAlloc struct {
	d     *vk.Device
	plan  *Plan
	err   error
	owned []vk.Tensor
}

func (a *tensorAlloc) f32(shape ...int) vk.Tensor {
	if a.err != nil {
		return vk.Tensor{}
	}
	if a.plan != nil {
		n := int64(4)
		for _, s := range shape {
			n *= int64(s)
		}
		a.plan.add(n)
		return vk.Tensor{DType: vk.F32, Shape: shape}
	}
	t, err := a.d.NewTensor(vk.F32, shape...)
	if err != nil {
		a.err = err
		return vk.Tensor{}
	}
	a.owned = append(a.owned, t)
	return t
}

// blockActs allocates one block's activations (the encoder's forward-only pass reuses one set).
func (a *tensorAlloc) blockActs(R, D, Hd, lse int) *blockActs {
	return &blockActs{
		n1: a.f32(R, D), mean1: a.f32(R), rstd1: a.f32(R),
		qkv: a.f32(R, 3*D), o: a.f32(R, D), lse: a.f32(lse),
		u: a.f32(R, D), n2: a.f32(R, D), mean2: a.f32(R), rstd2: a.f32(R),
		h: a.f32(R, Hd), g: a.f32(R, Hd),
	}
}

// NewPlanPredictor returns a predictor that allocates nothing: NewPass on it counts bytes into the
// returned Plan. lora.R > 0 plans adapters on lora.Targets (default all four).
func NewPlanPredictor(cfg PredictorConfig, lora LoRAConfig) (*Predictor, *Plan, error) {
	if err := cfg.Validate(); err != nil {
		return nil, nil, err
	}
	pl := &Plan{}
	p := &Predictor{Cfg: cfg, plan: pl, dropP: float32(lora.Dropout), loraThin: lora.Path == LoRAThin}
	if lora.R > 0 {
		targets := lora.Targets
		if len(targets) == 0 {
			targets = loraTargetNames
		}
		D, Hd := cfg.Dim, cfg.MLPHidden()
		dims := map[string][2]int{"qkv": {D, 3 * D}, "proj": {D, D}, "fc1": {D, Hd}, "fc2": {Hd, D}}
		for i := 0; i < cfg.Depth; i++ {
			for _, t := range targets {
				io, ok := dims[t]
				if !ok {
					return nil, nil, fmt.Errorf("model: lora target %q is not one of %v", t, loraTargetNames)
				}
				p.LoRAs = append(p.LoRAs, &LoRA{Module: fmt.Sprintf("predictor_blocks.%d.%s", i, t), R: lora.R, In: io[0], Out: io[1], Flat: -1,
					A: vk.Tensor{DType: vk.F32, Shape: []int{lora.R, io[0]}}, B: vk.Tensor{DType: vk.F32, Shape: []int{io[1], lora.R}}})
			}
		}
	}
	return p, pl, nil
}

// Planning reports whether p is a planning predictor, and its plan.
func (p *Predictor) Planning() (*Plan, bool) { return p.plan, p.plan != nil }

// ParamCounts are the element counts of the predictor's frozen weights (matrices in the base precision,
// vectors f32) and of its adapters.
type ParamCounts struct {
	Matrices, Vectors, LoRA int64
}

// PredictorParams counts the predictor's parameters as LoadPredictor stores them: the four conditioning
// encoders' matrices stay f32 (Vectors), the rest of the matrices take the base precision.
func PredictorParams(cfg PredictorConfig, loras []*LoRA) ParamCounts {
	var pc ParamCounts
	for _, t := range PredictorTensors(cfg) {
		n := int64(t.Numel())
		switch {
		case strings.HasSuffix(t.Name, "_encoder.weight"): // action, state, extrinsics
			pc.Vectors += n
		case len(t.Shape) == 2:
			pc.Matrices += n
		default:
			pc.Vectors += n
		}
	}
	for _, a := range loras {
		pc.LoRA += int64(a.R * (a.In + a.Out))
	}
	return pc
}

// EncoderParams counts the encoder's parameters the same way.
func EncoderParams(cfg EncoderConfig) ParamCounts {
	var pc ParamCounts
	for _, t := range EncoderTensors(cfg) {
		if len(t.Shape) >= 2 {
			pc.Matrices += int64(t.Numel())
		} else {
			pc.Vectors += int64(t.Numel())
		}
	}
	return pc
}

// NewPlanEncoderPass counts the bytes of an encoder pass over [B, 3, F, H, W].
func NewPlanEncoderPass(cfg EncoderConfig, B, F, H, W int) (int64, error) {
	e := &Encoder{Cfg: cfg}
	pl := &Plan{}
	if _, err := e.newPass(&tensorAlloc{plan: pl}, B, F, H, W); err != nil {
		return 0, err
	}
	return pl.Bytes, nil
}
