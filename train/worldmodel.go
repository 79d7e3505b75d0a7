package train

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/vjepa-vk/vjepa-vk/data/lerobot"
	"github.com/vjepa-vk/vjepa-vk/model"
	"github.com/vjepa-vk/vjepa-vk/plan"
	"github.com/vjepa-vk/vjepa-vk/vk"
)

// WorldModelOptions say what OpenWorldModel loads for planning (and evaluation).
type WorldModelOptions struct {
	// Checkpoint overrides model.checkpoint: the base weights (spec §9); "" keeps the config's, and a config
	// without one draws the random weights a run of it trained on (the demo).
	Checkpoint string
	// Adapter is a PEFT adapter folder or a training checkpoint (ckpt-*.safetensors); "" plans with the
	// base model.
	Adapter string
	// Merge folds the adapter into the base weights as they load (no adapter GEMMs), instead of running it
	// fused into the base GEMMs.
	Merge bool
	// Precision overrides model.precision for the base weights (fp32, fp16, bf16).
	Precision string
	// NoEncoder skips the encoder (representations come from elsewhere).
	NoEncoder bool
	Plan      plan.Options
}

// AdapterConfigOf reads a trained adapter: a PEFT folder (adapter_config.json, adapter_model.safetensors)
// or a training checkpoint, whose header holds the run's config (returned too; nil for PEFT folders).
func AdapterConfigOf(path string) (model.AdapterConfig, []model.LoRAWeights, *Config, error) {
	ad, cfg, err := ReadTrainedAdapter(path)
	if err != nil {
		return model.AdapterConfig{}, nil, nil, err
	}
	return ad.Config, ad.LoRA, cfg, nil
}

// AdapterNormalization reads what the state and action vectors of an adapter's training went through
// (data.lerobot.normalize): a PEFT folder's lerobot.NormalizationFile, or what a training checkpoint
// recorded in its header. nil: none, the vectors were the robot's own. The file (or header) is checked
// on its own (mode, statistics); planner widths are checked by OpenWorldModel and PlannerWidths.
func AdapterNormalization(path string) (*lerobot.Normalization, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("train: adapter: %w", err)
	}
	name := filepath.Join(path, lerobot.NormalizationFile)
	var raw []byte
	if fi.IsDir() {
		if raw, err = os.ReadFile(name); errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		} else if err != nil {
			return nil, fmt.Errorf("train: adapter: %w", err)
		}
	} else {
		ck, err := ReadCheckpoint(path)
		if err != nil {
			return nil, fmt.Errorf("train: adapter %s: want a PEFT folder or a training checkpoint: %w", path, err)
		}
		if raw = ck.Header.Extra["normalization"]; len(raw) == 0 {
			return nil, nil
		}
		name = path + " (header normalization)"
	}
	return lerobot.ParseNormalization(name, raw)
}

// checkNormalization checks an adapter's normalization n against the predictor it conditions (widths)
// and against cfg: a config that trained with action_reduce sum under normalize sums normalized rows
// per action, which only a record with action_rows maps back.
func checkNormalization(n *lerobot.Normalization, cfg *Config, pcfg model.PredictorConfig, adapter string) error {
	if n == nil {
		return nil
	}
	name := filepath.Join(adapter, lerobot.NormalizationFile)
	if fi, err := os.Stat(adapter); err == nil && !fi.IsDir() {
		name = adapter + " (header normalization)"
	}
	key := map[string]string{"mean_std": "mean", "min_max": "min"}[n.Mode]
	zw, aw := n.Widths()
	for _, c := range []struct {
		field       string
		have, model int
	}{{"state", zw, pcfg.StateIn()}, {"action", aw, pcfg.ActionIn()}} {
		if c.have != c.model {
			return fmt.Errorf("train: adapter %s: %s.%s has %d values, the predictor takes %d-D %ss", name, c.field, key, c.have, c.model, c.field)
		}
	}
	if l := cfg.Data.LeRobot; cfg.Data.Format == FormatLeRobot && l.Normalize != "" && l.ActionReduce == "sum" && n.ActionRows == 0 {
		return fmt.Errorf("train: adapter %s: no action_rows, but config %s sums the normalized actions of several rows (data.lerobot.action_reduce sum): "+
			"a raw action cannot be mapped without their number, which adapters trained before action_rows was recorded lack "+
			"(their checkpoints too); add \"action_rows\": N to its %s, N the dataset rows one model action sums "+
			"(the dataset's fps over data.fps, rounded up), or train it again", name, cfg.Source(), lerobot.NormalizationFile)
	}
	return nil
}

// ReadTrainedAdapter reads everything a trained adapter holds: the LoRA pairs and the modules trained in
// full (the conditioning encoders of a robot with other state or action widths), from a PEFT folder
// (model.ReadAdapter) or a training checkpoint, whose header holds the run's config (returned too; nil for
// PEFT folders).
func ReadTrainedAdapter(path string) (*model.Adapter, *Config, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, nil, fmt.Errorf("train: adapter: %w", err)
	}
	if fi.IsDir() {
		ad, err := model.ReadAdapter(path)
		return ad, nil, err
	}
	ck, err := ReadCheckpoint(path)
	if err != nil {
		return nil, nil, fmt.Errorf("train: adapter %s: want a PEFT folder or a training checkpoint: %w", path, err)
	}
	cfg, err := Parse(path+" (config in the header)", []byte(ck.Header.Config))
	if err != nil {
		return nil, nil, err
	}
	refs := make([]model.TensorRef, len(ck.Tensors))
	for i, t := range ck.Tensors {
		refs[i] = ckptRef{t}
	}
	mods, err := model.LoRAFromTensors(path, refs, "")
	if err != nil {
		return nil, nil, err
	}
	if len(mods) == 0 {
		return nil, nil, fmt.Errorf("train: adapter %s: no LoRA tensors (base_model.model.*.lora_A.weight)", path)
	}
	pcfg, _ := modelConfigs(cfg)
	modules, err := model.ModulesFromTensors(path, refs, "", model.ModuleNames(pcfg))
	if err != nil {
		return nil, nil, err
	}
	l := cfg.LoRA
	ad := &model.Adapter{Config: model.NewAdapterConfig(l.R, l.Alpha, l.RSLoRA, l.Targets, cfg.Model.Checkpoint), LoRA: mods,
		Modules: modules}
	ad.Config.ModulesToSave = model.ModuleNames(pcfg)
	return ad, cfg, nil
}

// ckptRef is a checkpoint tensor as a model.TensorRef.
type ckptRef struct{ t Tensor }

func (r ckptRef) Info() model.TensorInfo {
	return model.TensorInfo{Name: r.t.Name, DType: model.DTypeF32, Shape: r.t.Shape}
}
func (r ckptRef) ReadRaw() ([]byte, error)        { return r.t.Data, nil }
func (r ckptRef) ReadFloat32() ([]float32, error) { return r.t.Float32s() }

// adapterWidths is the predictor config of cfg with the conditioning widths of ad's modules (an adapter
// trained for a robot of its own widths brings its own action_encoder / state_encoder). A config that
// names widths other than the official 7 must agree with the adapter's.
func adapterWidths(cfg *Config, pcfg model.PredictorConfig, ad *model.Adapter, path string) (model.PredictorConfig, error) {
	want, err := ad.PredictorConfig(pcfg.Official())
	if err != nil {
		return pcfg, fmt.Errorf("train: adapter %s: %w", path, err)
	}
	for _, w := range []struct {
		key       string
		cfg, have int
	}{{"model.action_dim", pcfg.ActionIn(), want.ActionIn()}, {"model.state_dim", pcfg.StateIn(), want.StateIn()}} {
		if w.cfg != model.ActionDim && w.cfg != w.have {
			return pcfg, fmt.Errorf("train: adapter %s takes %d-D %s, but config %s sets %s %d", path, w.have,
				strings.TrimSuffix(strings.TrimPrefix(w.key, "model."), "_dim")+"s", cfg.Source(), w.key, w.cfg)
		}
	}
	return want, nil
}

// PlannerWidths are the state and action widths of the predictor OpenWorldModel loads for cfg and
// adapter (a path, or "" for none), without loading it: commands check a state against them first.
// The adapter's normalization (AdapterNormalization) is checked against them too.
func PlannerWidths(cfg *Config, adapter string) (state, action int, err error) {
	pcfg, _ := modelConfigs(cfg)
	if adapter != "" {
		ad, _, err := ReadTrainedAdapter(adapter)
		if err != nil {
			return 0, 0, err
		}
		if pcfg, err = adapterWidths(cfg, pcfg, ad, adapter); err != nil {
			return 0, 0, err
		}
		n, err := AdapterNormalization(adapter)
		if err != nil {
			return 0, 0, err
		}
		if err := checkNormalization(n, cfg, pcfg, adapter); err != nil {
			return 0, 0, err
		}
	}
	return pcfg.StateIn(), pcfg.ActionIn(), nil
}

// OpenWorldModel loads the encoder and the predictor of cfg (sizes, base weights, precision) on d with the
// adapter of o, for plan.WorldModel. An adapter with modules trained in full (other state or action
// widths) brings its conditioning encoders; without an adapter, a config of other widths gets the fresh
// encoders its training started from (model.InitModules). The world model takes the robot's raw
// vectors: an adapter trained on normalized ones (AdapterNormalization) has them normalized as its
// training did (plan.Options.Normalization). close frees everything.
func OpenWorldModel(d *vk.Device, cfg *Config, o WorldModelOptions) (w *plan.WorldModel, close func(), err error) {
	c := *cfg
	if o.Checkpoint != "" {
		c.Model.Checkpoint = o.Checkpoint
	}
	if o.Precision != "" {
		c.Model.Precision = o.Precision
	}
	pcfg, ecfg := modelConfigs(&c)
	var ad *model.Adapter
	if o.Adapter != "" {
		if ad, _, err = ReadTrainedAdapter(o.Adapter); err != nil {
			return nil, nil, err
		}
		if pcfg, err = adapterWidths(&c, pcfg, ad, o.Adapter); err != nil {
			return nil, nil, err
		}
		n, err := AdapterNormalization(o.Adapter)
		if err != nil {
			return nil, nil, err
		}
		if err := checkNormalization(n, &c, pcfg, o.Adapter); err != nil {
			return nil, nil, err
		}
		o.Plan.Normalization = n
	}
	pw, ew, closeW, err := loadWeights(&c, pcfg, ecfg)
	if err != nil {
		return nil, nil, err
	}
	defer closeW()
	switch {
	case ad == nil:
		if pw, err = withModules(pcfg, pw); err != nil {
			return nil, nil, err
		}
	case o.Merge:
		pw = ad.Overlay(model.NewMergedWeights(pw, ad.Config, ad.LoRA))
	default:
		pw = ad.Overlay(pw)
	}
	prec := model.Precision(c.Model.Precision)
	p, err := model.LoadPredictor(d, pcfg, pw, prec)
	if err != nil {
		return nil, nil, err
	}
	var enc *model.Encoder
	fail := func(err error) (*plan.WorldModel, func(), error) {
		if enc != nil {
			enc.Free()
		}
		p.Free()
		return nil, nil, err
	}
	if ad != nil && !o.Merge {
		if err := p.LoadAdapters(ad.Config, ad.LoRA); err != nil {
			return fail(fmt.Errorf("train: adapter %s: %w", filepath.Clean(o.Adapter), err))
		}
	}
	if !o.NoEncoder {
		if enc, err = model.LoadEncoder(d, ecfg, ew, prec); err != nil {
			return fail(err)
		}
	}
	w, err = plan.NewWorldModel(p, enc, c.Model.Img, c.Model.Tubelet, o.Plan)
	if err != nil {
		return fail(err)
	}
	return w, func() {
		w.Close()
		if enc != nil {
			enc.Free()
		}
		p.Free()
	}, nil
}

// PlannerMemory is the device memory of a planner, by part, in bytes.
type PlannerMemory struct {
	Chunk            int   `json:"chunk"`
	KVCache          bool  `json:"kv_cache"`
	PredictorWeights int64 `json:"predictor_weights"`
	EncoderWeights   int64 `json:"encoder_weights"`
	LoRA             int64 `json:"lora"`         // fused adapters (weights and their unused gradients)
	EncoderPass      int64 `json:"encoder_pass"` // one image
	Rollout          int64 `json:"rollout"`      // activations, K/V cache, candidate inputs and energies
	Total            int64 `json:"total"`
}

// PlanPlannerMemory counts the memory of planning samples candidates over horizon steps with cfg and o, at
// o.Plan.Chunk (0: the chunk the budget gives), by running the allocation code in planning mode.
func PlanPlannerMemory(cfg *Config, o WorldModelOptions, samples, horizon int) (PlannerMemory, error) {
	c := *cfg
	if o.Precision != "" {
		c.Model.Precision = o.Precision
	}
	pcfg, ecfg := modelConfigs(&c)
	var lc model.LoRAConfig
	if o.Adapter != "" && !o.Merge {
		ac, _, _, err := AdapterConfigOf(o.Adapter)
		if err != nil {
			return PlannerMemory{}, err
		}
		lc = model.LoRAConfig{R: ac.R, Alpha: ac.LoRAAlpha, Targets: ac.TargetModules}
	}
	rc := model.RolloutConfig{Samples: samples, Horizon: horizon, Chunk: o.Plan.Chunk, KVCache: !o.Plan.NoKVCache}
	if rc.Chunk == 0 {
		budget := o.Plan.MemoryBudget
		if budget == 0 {
			budget = plan.DefaultMemoryBudget
		}
		var err error
		if rc.Chunk, err = model.ChunkForBudget(pcfg, lc, rc, budget); err != nil {
			return PlannerMemory{}, err
		}
	}
	m := PlannerMemory{Chunk: min(rc.Chunk, samples), KVCache: rc.KVCache}
	var err error
	if m.Rollout, err = model.RolloutBytes(pcfg, lc, rc); err != nil {
		return PlannerMemory{}, err
	}
	p, _, err := model.NewPlanPredictor(pcfg, lc)
	if err != nil {
		return PlannerMemory{}, err
	}
	wb := precisionBytes(c.Model.Precision)
	pp := model.PredictorParams(pcfg, p.LoRAs)
	m.PredictorWeights = pp.Matrices*wb + pp.Vectors*4 + 2*4*int64(pcfg.Dim)
	m.LoRA = 2 * 4 * pp.LoRA
	if !o.NoEncoder {
		ep := model.EncoderParams(ecfg)
		m.EncoderWeights = ep.Matrices*wb + ep.Vectors*4
		if m.EncoderPass, err = model.NewPlanEncoderPass(ecfg, 1, c.Model.Tubelet, c.Model.Img, c.Model.Img); err != nil {
			return PlannerMemory{}, err
		}
	}
	m.Total = m.PredictorWeights + m.EncoderWeights + m.LoRA + m.EncoderPass + m.Rollout
	return m, nil
}
