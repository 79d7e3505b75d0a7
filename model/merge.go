package model

import (
	"fmt"
	"slices"
	"strings"
)

// MergeLoRA streams a predictor state_dict from src to the safetensors file out with every adapter folded
// into its base weight: W' = W + scaling·B·A (PEFT's merge_and_unload), in float64 accumulation, stored
// in dtype (f32, f16 or bf16; biases and vectors stay f32). Each adapter must match a 2-D base weight of
// shape [out, in]; an adapter without its base weight is an error naming it.
func MergeLoRA(out string, src *StateDict, cfg AdapterConfig, mods []LoRAWeights, dtype DType) error {
	return MergeAdapter(out, src, &Adapter{Config: cfg, LoRA: mods}, dtype)
}

// MergeAdapter is MergeLoRA for a whole adapter: the adapters folded in, and the modules trained in full
// (modules.go) written in place of the base's tensors of the same names, whatever their shapes there.
func MergeAdapter(out string, src *StateDict, ad *Adapter, dtype DType) error {
	cfg, mods := ad.Config, ad.LoRA
	replaced := map[string]ModuleTensor{}
	for _, m := range ad.Modules {
		replaced[m.Name] = m
	}
	byName := map[string]LoRAWeights{}
	for _, m := range mods {
		byName[m.Module+".weight"] = m
	}
	infos := src.Infos()
	outInfos := make([]TensorInfo, len(infos))
	for i, in := range infos {
		outInfos[i] = TensorInfo{Name: in.Name, DType: DTypeF32, Shape: in.Shape}
		if m, ok := replaced[in.Name]; ok {
			outInfos[i].Shape = m.Shape
			delete(replaced, in.Name)
		}
		if len(outInfos[i].Shape) >= 2 {
			outInfos[i].DType = dtype
		}
		if m, ok := byName[in.Name]; ok {
			if len(in.Shape) != 2 || in.Shape[0] != m.Out || in.Shape[1] != m.In {
				return fmt.Errorf("model: merge: %s: base shape %v, adapter wants [%d %d]", in.Name, in.Shape, m.Out, m.In)
			}
			delete(byName, in.Name)
		}
	}
	for n := range replaced {
		return fmt.Errorf("model: merge: %s has no tensor %s for the adapter's module to replace", src.Source, n)
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
	modules := map[string][]float32{}
	for _, m := range ad.Modules {
		modules[m.Name] = m.Data
	}
	for i, in := range infos {
		v, err := src.ReadFloat32(in.Name)
		if mv, ok := modules[in.Name]; ok {
			v, err = slices.Clone(mv), nil
		}
		if err != nil {
			w.Abort()
			return err
		}
		if m, ok := adapters[in.Name]; ok {
			foldLoRA(v, m, scale)
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

// foldLoRA adds scale·B·A to the base weight w [Out, In] in place, accumulating each element in float64.
func foldLoRA(w []float32, m LoRAWeights, scale float64) {
	for o := 0; o < m.Out; o++ {
		for j := 0; j < m.In; j++ {
			var acc float64
			for r := 0; r < m.R; r++ {
				acc += float64(m.B[o*m.R+r]) * float64(m.A[r*m.In+j])
			}
			w[o*m.In+j] = float32(float64(w[o*m.In+j]) + scale*acc)
		}
	}
}

// MergedWeights serves a predictor's weights with adapters folded in as they are read, W' = W +
// scaling·B·A (MergeLoRA without the file): an inference predictor loaded from it runs no adapter GEMMs.
type MergedWeights struct {
	src      WeightSource
	scale    float64
	adapters map[string]LoRAWeights // by the wrapped weight's name
}

// NewMergedWeights folds mods (with cfg's scaling) into src's weights.
func NewMergedWeights(src WeightSource, cfg AdapterConfig, mods []LoRAWeights) *MergedWeights {
	m := &MergedWeights{src: src, scale: cfg.Scaling(), adapters: map[string]LoRAWeights{}}
	for _, a := range mods {
		m.adapters[a.Module+".weight"] = a
	}
	return m
}

// ReadFloat32 reads name from the source, with its adapter folded in when it has one.
func (m *MergedWeights) ReadFloat32(name string) ([]float32, error) {
	v, err := m.src.ReadFloat32(name)
	if err != nil {
		return nil, err
	}
	if a, ok := m.adapters[name]; ok {
		if len(v) != a.Out*a.In {
			return nil, fmt.Errorf("model: merge: %s: %d values, adapter wants [%d %d]", name, len(v), a.Out, a.In)
		}
		v = append([]float32(nil), v...) // the source may hand out its own slice
		foldLoRA(v, a, m.scale)
	}
	return v, nil
}
