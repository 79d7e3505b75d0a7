package model

import (
	"fmt"

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

// NewPlanPredictor returns a predictor that allocates nothing: NewPass on it counts bytes into the
// returned Plan. lora.R > 0 plans adapters on lora.Targets (default all four).
func NewPlanPredictor(cfg PredictorConfig, lora LoRAConfig) (*Predictor, *Plan, error) {
	if err := cfg.Validate(); err != nil {
		return nil, nil, err
	}
	pl := &Plan{}
	p := &Predictor{Cfg: cfg, plan: pl, dropP: float32(lora.Dropout)}
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
				p.LoRAs = append(p.LoRAs, &LoRA{Module: fmt.Sprintf("predictor_blocks.%d.%s", i, t), R: lora.R, In: io[0], Out: io[1],
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
		case len(t.Shape) == 2 && (t.Shape[1] == ActionDim || t.Shape[1] == ExtrinsicsDim):
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
