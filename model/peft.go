package model

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// LoRA adapters in Hugging Face PEFT layout, so that an adapter trained here loads with
// PeftModel.from_pretrained on the PyTorch model and back: a directory with adapter_config.json and
// adapter_model.safetensors holding, per wrapped module, "base_model.model.<module>.lora_A.weight" [r, in]
// and "base_model.model.<module>.lora_B.weight" [out, r]. The update is W x + scaling·B(A x) with
// scaling = lora_alpha/sqrt(r) under use_rslora (the AC fine-tune's choice) and lora_alpha/r otherwise.

const (
	AdapterConfigFile  = "adapter_config.json"
	AdapterWeightsFile = "adapter_model.safetensors"
	peftPrefix         = "base_model.model."
)

// AdapterConfig is adapter_config.json with the fields PEFT's LoraConfig writes. Fields this package cannot
// honour (rank_pattern, alpha_pattern, use_dora, a bias other than "none") make ReadPEFTAdapter fail rather
// than load a different adapter than the one saved.
type AdapterConfig struct {
	PeftType            string             `json:"peft_type"`
	TaskType            *string            `json:"task_type"`
	BaseModelNameOrPath string             `json:"base_model_name_or_path"`
	Revision            *string            `json:"revision"`
	R                   int                `json:"r"`
	LoRAAlpha           float64            `json:"lora_alpha"`
	LoRADropout         float64            `json:"lora_dropout"`
	TargetModules       []string           `json:"target_modules"`
	UseRSLoRA           bool               `json:"use_rslora"`
	Bias                string             `json:"bias"`
	FanInFanOut         bool               `json:"fan_in_fan_out"`
	InferenceMode       bool               `json:"inference_mode"`
	InitLoRAWeights     bool               `json:"init_lora_weights"`
	UseDoRA             bool               `json:"use_dora"`
	ModulesToSave       []string           `json:"modules_to_save"`
	LayersToTransform   any                `json:"layers_to_transform"` // null, an int or a list of ints
	LayersPattern       any                `json:"layers_pattern"`      // null, a string or a list
	RankPattern         map[string]int     `json:"rank_pattern"`
	AlphaPattern        map[string]float64 `json:"alpha_pattern"`
}

// NewAdapterConfig fills the defaults PEFT writes for an inference-ready LoRA adapter.
func NewAdapterConfig(r int, alpha float64, rslora bool, targets []string, baseModel string) AdapterConfig {
	return AdapterConfig{
		PeftType: "LORA", BaseModelNameOrPath: baseModel, R: r, LoRAAlpha: alpha, TargetModules: targets,
		UseRSLoRA: rslora, Bias: "none", InferenceMode: true, InitLoRAWeights: true,
		RankPattern: map[string]int{}, AlphaPattern: map[string]float64{},
	}
}

// Scaling is the factor on B(A x).
func (c AdapterConfig) Scaling() float64 {
	if c.UseRSLoRA {
		return c.LoRAAlpha / math.Sqrt(float64(c.R))
	}
	return c.LoRAAlpha / float64(c.R)
}

// UnmarshalJSON also accepts target_modules as a single string (PEFT allows a regex there).
func (c *AdapterConfig) UnmarshalJSON(b []byte) error {
	type plain AdapterConfig
	var aux struct {
		*plain
		TargetModules json.RawMessage `json:"target_modules"`
	}
	aux.plain = (*plain)(c)
	if err := json.Unmarshal(b, &aux); err != nil {
		return err
	}
	c.TargetModules = nil
	if len(aux.TargetModules) == 0 || string(aux.TargetModules) == "null" {
		return nil
	}
	var one string
	if json.Unmarshal(aux.TargetModules, &one) == nil {
		c.TargetModules = []string{one}
		return nil
	}
	return json.Unmarshal(aux.TargetModules, &c.TargetModules)
}

func (c AdapterConfig) validate() error {
	switch {
	case c.PeftType != "LORA":
		return fmt.Errorf("peft_type %q, want \"LORA\"", c.PeftType)
	case c.R <= 0:
		return fmt.Errorf("r = %d, want > 0", c.R)
	case len(c.RankPattern) > 0 || len(c.AlphaPattern) > 0:
		return errors.New("rank_pattern/alpha_pattern are not supported, want one r and lora_alpha for all modules")
	case c.UseDoRA:
		return errors.New("use_dora is not supported")
	case c.Bias != "" && c.Bias != "none":
		return fmt.Errorf("bias %q is not supported, want \"none\"", c.Bias)
	case c.FanInFanOut:
		return errors.New("fan_in_fan_out is not supported (nn.Linear weights are [out, in])")
	}
	return nil
}

// LoRAWeights is one wrapped nn.Linear's adapter.
type LoRAWeights struct {
	Module  string    // state_dict path of the wrapped Linear, e.g. "predictor_blocks.0.attn.qkv"
	R       int       // rank
	In, Out int       // the Linear's input and output features
	A       []float32 // [R, In], lora_A.weight
	B       []float32 // [Out, R], lora_B.weight
}

func (l LoRAWeights) check() error {
	if l.R <= 0 || l.In <= 0 || l.Out <= 0 || len(l.A) != l.R*l.In || len(l.B) != l.Out*l.R {
		return fmt.Errorf("%s: r=%d in=%d out=%d with len(A)=%d len(B)=%d, want A [r, in] and B [out, r]", l.Module, l.R, l.In, l.Out, len(l.A), len(l.B))
	}
	return nil
}

// ModuleTensor is one tensor of a module trained in full (modules.go), under its state_dict name.
type ModuleTensor struct {
	Name  string // "action_encoder.weight"
	Shape []int
	Data  []float32
}

// WritePEFTAdapter writes dir/adapter_config.json and dir/adapter_model.safetensors (F32), creating dir.
// Modules trained in full are stored as PEFT's save_pretrained stores modules_to_save,
// base_model.model.<name> (the ".modules_to_save.default" of the live module dropped), and
// cfg.ModulesToSave must name their modules.
func WritePEFTAdapter(dir string, cfg AdapterConfig, mods []LoRAWeights, modules ...ModuleTensor) error {
	fail := func(err error) error { return fmt.Errorf("model: write peft adapter %s: %w", dir, err) }
	if err := cfg.validate(); err != nil {
		return fail(err)
	}
	tensors := make([]RawTensor, 0, 2*len(mods))
	for _, m := range mods {
		if err := m.check(); err != nil {
			return fail(err)
		}
		if m.R != cfg.R {
			return fail(fmt.Errorf("%s: rank %d, config r = %d", m.Module, m.R, cfg.R))
		}
		a, _ := EncodeFloat32(DTypeF32, m.A)
		b, _ := EncodeFloat32(DTypeF32, m.B)
		tensors = append(tensors,
			RawTensor{TensorInfo{peftPrefix + m.Module + ".lora_A.weight", DTypeF32, []int{m.R, m.In}}, a},
			RawTensor{TensorInfo{peftPrefix + m.Module + ".lora_B.weight", DTypeF32, []int{m.Out, m.R}}, b})
	}
	for _, m := range modules {
		mod, _, _ := strings.Cut(m.Name, ".")
		if !slices.Contains(cfg.ModulesToSave, mod) {
			return fail(fmt.Errorf("%s: module %s is not in modules_to_save %v", m.Name, mod, cfg.ModulesToSave))
		}
		b, _ := EncodeFloat32(DTypeF32, m.Data)
		tensors = append(tensors, RawTensor{TensorInfo{peftPrefix + m.Name, DTypeF32, m.Shape}, b})
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fail(err)
	}
	js, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return fail(err)
	}
	if err := writeFileAtomic(filepath.Join(dir, AdapterConfigFile), append(js, '\n')); err != nil {
		return fail(err)
	}
	return WriteSafetensors(filepath.Join(dir, AdapterWeightsFile), tensors, map[string]string{"format": "pt"})
}

func writeFileAtomic(path string, b []byte) error {
	f, err := NewPendingFile(path)
	if err != nil {
		return err
	}
	defer f.Cleanup()
	if _, err := f.Write(b); err != nil {
		return err
	}
	return f.CloseAtomicallyReplace()
}

// ReadPEFTAdapter reads an adapter directory written by WritePEFTAdapter or by PEFT's save_pretrained.
func ReadPEFTAdapter(dir string) (AdapterConfig, []LoRAWeights, error) {
	var cfg AdapterConfig
	fail := func(err error) (AdapterConfig, []LoRAWeights, error) {
		return AdapterConfig{}, nil, fmt.Errorf("model: read peft adapter %s: %w", dir, err)
	}
	b, err := os.ReadFile(filepath.Join(dir, AdapterConfigFile))
	if err != nil {
		return fail(err)
	}
	if err := json.Unmarshal(b, &cfg); err != nil {
		return fail(fmt.Errorf("%s: %w", AdapterConfigFile, err))
	}
	if err := cfg.validate(); err != nil {
		return fail(fmt.Errorf("%s: %w", AdapterConfigFile, err))
	}
	st, err := OpenSafetensors(filepath.Join(dir, AdapterWeightsFile))
	if err != nil {
		return fail(err)
	}
	defer st.Close()
	mods, err := LoRAFromTensors(st.Source, st.Refs(), "")
	if err != nil {
		return fail(err)
	}
	for _, m := range mods {
		if m.R != cfg.R {
			return fail(fmt.Errorf("%s: rank %d, %s says r = %d", m.Module, m.R, AdapterConfigFile, cfg.R))
		}
	}
	return cfg, mods, nil
}

// LoRAFromTensors collects PEFT-named LoRA tensors ("<prefix>base_model.model.<module>.lora_{A,B}.weight")
// into per-module weights, in order of first appearance; other tensors are ignored. The fixtures keep
// theirs under prefix "lora.".
func LoRAFromTensors(source string, refs []TensorRef, prefix string) ([]LoRAWeights, error) {
	type pair struct{ a, b TensorRef }
	var order []string
	pairs := map[string]*pair{}
	for _, r := range refs {
		name, ok := strings.CutPrefix(r.Info().Name, prefix+peftPrefix)
		if !ok {
			continue
		}
		var mod string
		var isA bool
		if !strings.Contains(name, ".lora_") {
			continue // a module trained in full (modules_to_save): ReadAdapter reads those
		}
		if m, ok := strings.CutSuffix(name, ".lora_A.weight"); ok {
			mod, isA = m, true
		} else if m, ok := strings.CutSuffix(name, ".lora_B.weight"); ok {
			mod = m
		} else {
			return nil, fmt.Errorf("model: read lora %s: %s: want a name ending in .lora_A.weight or .lora_B.weight", source, r.Info().Name)
		}
		p := pairs[mod]
		if p == nil {
			p = &pair{}
			pairs[mod] = p
			order = append(order, mod)
		}
		if isA {
			p.a = r
		} else {
			p.b = r
		}
	}
	out := make([]LoRAWeights, 0, len(order))
	for _, mod := range order {
		p := pairs[mod]
		if p.a == nil || p.b == nil {
			return nil, fmt.Errorf("model: read lora %s: %s: has only one of lora_A and lora_B", source, mod)
		}
		ai, bi := p.a.Info(), p.b.Info()
		if len(ai.Shape) != 2 || len(bi.Shape) != 2 || ai.Shape[0] != bi.Shape[1] || !ai.DType.IsFloat() || !bi.DType.IsFloat() {
			return nil, fmt.Errorf("model: read lora %s: %s: lora_A %v %v and lora_B %v %v, want float [r, in] and [out, r]", source, mod, ai.DType, ai.Shape, bi.DType, bi.Shape)
		}
		l := LoRAWeights{Module: mod, R: ai.Shape[0], In: ai.Shape[1], Out: bi.Shape[0]}
		var err error
		if l.A, err = p.a.ReadFloat32(); err != nil {
			return nil, err
		}
		if l.B, err = p.b.ReadFloat32(); err != nil {
			return nil, err
		}
		if err := l.check(); err != nil {
			return nil, fmt.Errorf("model: read lora %s: %w", source, err)
		}
		out = append(out, l)
	}
	return out, nil
}

// Adapter is everything a PEFT adapter folder holds: its config, the LoRA pairs, and the modules trained
// in full (modules_to_save: the conditioning encoders of another state or action width).
type Adapter struct {
	Config  AdapterConfig
	LoRA    []LoRAWeights
	Modules []ModuleTensor
}

// ReadAdapter reads an adapter folder: what ReadPEFTAdapter reads, and the tensors of every module
// adapter_config.json's modules_to_save names (base_model.model.<module>.weight and .bias). This is the
// loader for inference (merge, eval, plan): Overlay puts the modules over the base weights and
// PredictorConfig gives the widths they need.
func ReadAdapter(dir string) (*Adapter, error) {
	cfg, mods, err := ReadPEFTAdapter(dir)
	if err != nil {
		return nil, err
	}
	ad := &Adapter{Config: cfg, LoRA: mods}
	if len(cfg.ModulesToSave) == 0 {
		return ad, nil
	}
	st, err := OpenSafetensors(filepath.Join(dir, AdapterWeightsFile))
	if err != nil {
		return nil, err
	}
	defer st.Close()
	if ad.Modules, err = ModulesFromTensors(st.Source, st.Refs(), "", cfg.ModulesToSave); err != nil {
		return nil, fmt.Errorf("model: read peft adapter %s: %s names them in modules_to_save: %w", dir, AdapterConfigFile, err)
	}
	return ad, nil
}

// ModulesFromTensors reads the weight and bias of each module trained in full (names, e.g.
// "action_encoder") from refs, stored as prefix + base_model.model.<module>.weight/.bias: a PEFT adapter
// file or a trainer checkpoint.
func ModulesFromTensors(source string, refs []TensorRef, prefix string, names []string) ([]ModuleTensor, error) {
	have := map[string]TensorRef{}
	for _, r := range refs {
		have[r.Info().Name] = r
	}
	var out []ModuleTensor
	for _, mod := range names {
		for _, part := range []string{".weight", ".bias"} {
			r, ok := have[prefix+peftPrefix+mod+part]
			if !ok {
				return nil, fmt.Errorf("model: read module %s: %s has no %s", mod, source, prefix+peftPrefix+mod+part)
			}
			v, err := r.ReadFloat32()
			if err != nil {
				return nil, err
			}
			out = append(out, ModuleTensor{Name: mod + part, Shape: r.Info().Shape, Data: v})
		}
	}
	return out, nil
}

// Overlay returns base with the adapter's modules in place of its own tensors.
func (ad *Adapter) Overlay(base WeightSource) WeightSource {
	if len(ad.Modules) == 0 {
		return base
	}
	top := MapWeights{}
	for _, m := range ad.Modules {
		top[m.Name] = m.Data
	}
	return Overlay{Top: top, Base: base}
}

// PredictorConfig returns base with the conditioning widths the adapter's modules have (base as it is
// when the adapter has none), or an error when a module does not fit base's width D.
func (ad *Adapter) PredictorConfig(base PredictorConfig) (PredictorConfig, error) {
	c := base
	for _, m := range ad.Modules {
		if !strings.HasSuffix(m.Name, ".weight") {
			continue
		}
		if len(m.Shape) != 2 || m.Shape[0] != base.Dim {
			return c, fmt.Errorf("model: adapter module %s: shape %v, want [%d, width]", m.Name, m.Shape, base.Dim)
		}
		switch m.Name {
		case "action_encoder.weight":
			c.ActionDim = m.Shape[1]
		case "state_encoder.weight":
			c.StateDim = m.Shape[1]
		default:
			return c, fmt.Errorf("model: adapter module %s: only action_encoder and state_encoder can be trained in full", m.Name)
		}
	}
	return c, nil
}
