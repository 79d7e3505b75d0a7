package train

import (
	"fmt"
	"os"

	"github.com/vjepa-vk/vjepa-vk/model"
	"github.com/vjepa-vk/vjepa-vk/vk"
)

// ExportPEFT writes the predictor's adapters in PEFT's on-disk format to dir.
func ExportPEFT(d *vk.Device, p *model.Predictor, c *Config, dir string) error {
	var mods []model.LoRAWeights
	for _, a := range p.LoRAs {
		av, err := d.Download(a.A)
		if err != nil {
			return err
		}
		bv, err := d.Download(a.B)
		if err != nil {
			return err
		}
		mods = append(mods, model.LoRAWeights{Module: a.Module, R: a.R, In: a.In, Out: a.Out, A: av, B: bv})
	}
	var modules []model.ModuleTensor
	for _, m := range p.Modules() {
		v, err := d.Download(m.Param)
		if err != nil {
			return err
		}
		modules = append(modules, model.ModuleTensor{Name: m.Name, Shape: m.Param.Shape, Data: v})
	}
	if err := model.WritePEFTAdapter(dir, adapterConfig(c), mods, modules...); err != nil {
		return fmt.Errorf("train: export: %w", err)
	}
	return nil
}

// adapterConfig is the PEFT adapter_config.json of a run's adapters; modules_to_save names the
// conditioning encoders trained in full when the run's state or action width is not 7.
func adapterConfig(c *Config) model.AdapterConfig {
	pcfg, _ := modelConfigs(c)
	base := c.Model.Checkpoint
	if base == "" {
		base = "random-init"
	}
	ac := model.NewAdapterConfig(c.LoRA.R, c.LoRA.Alpha, c.LoRA.RSLoRA, c.LoRA.Targets, base)
	ac.LoRADropout = c.LoRA.Dropout
	ac.ModulesToSave = model.ModuleNames(pcfg)
	return ac
}

// FindCheckpoint resolves `export --checkpoint`: "best" (lowest validation loss) or "latest" in the
// checkpoint folder dir, a checkpoint folder (its latest) or a checkpoint file.
func FindCheckpoint(which, dir string) (string, error) {
	switch which {
	case "best":
		return BestCheckpoint(dir)
	case "latest":
		return LatestCheckpoint(dir)
	}
	st, err := os.Stat(which)
	if err != nil {
		return "", fmt.Errorf("train: checkpoint: %w", err)
	}
	if st.IsDir() {
		return LatestCheckpoint(which)
	}
	return which, nil
}

// ExportCheckpoint writes the LoRA adapters (and the modules trained in full, if any) of a trainer
// checkpoint to dir in PEFT's format (with normalization.json when the run normalized its vectors), configured as the checkpoint's own saved config says (rank, alpha,
// targets, base model, state and action widths), without a device. It
// returns the checkpoint's step.
func ExportCheckpoint(path, dir string) (int, error) {
	ck, err := ReadCheckpoint(path) // verifies every checksum first
	if err != nil {
		return 0, err
	}
	cfg, err := Parse(path+" (saved config)", []byte(ck.Header.Config))
	if err != nil {
		return 0, fmt.Errorf("train: export %s: %w", path, err)
	}
	st, err := model.OpenSafetensors(path) // a trainer checkpoint is a safetensors file
	if err != nil {
		return 0, err
	}
	defer st.Close()
	mods, err := model.LoRAFromTensors(st.Source, st.Refs(), "")
	if err != nil {
		return 0, err
	}
	if len(mods) == 0 {
		return 0, fmt.Errorf("train: export %s: no LoRA tensors (base_model.model.*.lora_A.weight) in the checkpoint", path)
	}
	for _, m := range mods {
		if m.R != cfg.LoRA.R {
			return 0, fmt.Errorf("train: export %s: %s has rank %d, its saved config lora.r = %d", path, m.Module, m.R, cfg.LoRA.R)
		}
	}
	ac := adapterConfig(cfg)
	modules, err := model.ModulesFromTensors(st.Source, st.Refs(), "", ac.ModulesToSave)
	if err != nil {
		return 0, fmt.Errorf("train: export %s: %w", path, err)
	}
	if err := model.WritePEFTAdapter(dir, ac, mods, modules...); err != nil {
		return 0, fmt.Errorf("train: export %s: %w", path, err)
	}
	if err := writeNormalization(dir, ck.Header.Extra["normalization"]); err != nil {
		return 0, fmt.Errorf("train: export %s: %w", path, err)
	}
	return ck.Header.Step, nil
}
