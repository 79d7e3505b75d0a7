package model

import (
	"fmt"
	"strings"
)

// MergeLoRA streams a predictor state_dict from src to the safetensors file out with every adapter folded
// into its base weight: W' = W + scaling·B·A (PEFT's merge_and_unload), in float64 accumulation, stored
// in dtype (f32, f16 or bf16; biases and vectors stay f32). Each adapter must match a 2-D base weight of
// shape [out, in]; an adapter without its base weight is an error naming it.
func MergeLoRA(out string, src *StateDict, cfg AdapterConfig, mods []LoRAWeights, dtype DType) error {
	byName := map[string]LoRAWeights{}
	for _, m := range mods {
		byName[m.Module+".weight"] = m
	}
	infos := src.Infos()
	outInfos := make([]TensorInfo, len(infos))
	for i, in := range infos {
		outInfos[i] = TensorInfo{Name: in.Name, DType: DTypeF32, Shape: in.Shape}
		if len(in.Shape) >= 2 {
			outInfos[i].DType = dtype
		}
		if m, ok := byName[in.Name]; ok {
			if len(in.Shape) != 2 || in.Shape[0] != m.Out || in.Shape[1] != m.In {
				return fmt.Errorf("model: merge: %s: base shape %v, adapter wants [%d %d]", in.Name, in.Shape, m.Out, m.In)
			}
			delete(byName, in.Name)
		}
	}
	if len(byName) > 0 {
		var missing []string
		for n := range byName {
			missing = append(missing, n)
		}
		return fmt.Errorf("model: merge: %s has no base weight for adapters on %s", src.Source, strings.Join(missing, ", "))
	}
	w, err := CreateSafetensors(out, outInfos, map[string]string{"format": "pt", "merged_lora": fmt.Sprintf("r=%d alpha=%g rslora=%v", cfg.R, cfg.LoRAAlpha, cfg.UseRSLoRA)})
	if err != nil {
		return err
	}
	scale := cfg.Scaling()
	adapters := map[string]LoRAWeights{}
	for _, m := range mods {
		adapters[m.Module+".weight"] = m
	}
	for i, in := range infos {
		v, err := src.ReadFloat32(in.Name)
		if err != nil {
			w.Abort()
			return err
		}
		if m, ok := adapters[in.Name]; ok {
			for o := 0; o < m.Out; o++ {
				for j := 0; j < m.In; j++ {
					var acc float64
					for r := 0; r < m.R; r++ {
						acc += float64(m.B[o*m.R+r]) * float64(m.A[r*m.In+j])
					}
					v[o*m.In+j] = float32(float64(v[o*m.In+j]) + scale*acc)
				}
			}
		}
		raw, err := EncodeFloat32(outInfos[i].DType, v)
		if err != nil {
			w.Abort()
			return err
		}
		if err := w.WriteTensor(in.Name, raw); err != nil {
			w.Abort()
			return err
		}
	}
	return w.Close()
}
