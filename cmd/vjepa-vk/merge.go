package main

import (
	"context"
	"fmt"

	"github.com/spf13/pflag"

	"github.com/vjepa-vk/vjepa-vk/model"
)

// runMerge folds a PEFT adapter into the predictor weights for inference.
func runMerge(ctx context.Context, args []string) error {
	fs := pflag.NewFlagSet("merge", pflag.ContinueOnError)
	base := fs.String("base", "", "checkpoint with the predictor (.pt or .safetensors)")
	key := fs.String("key", "predictor", "state_dict key inside the checkpoint")
	adapter := fs.String("adapter", "", "PEFT adapter folder (adapter_config.json, adapter_model.safetensors)")
	out := fs.String("out", "", "output .safetensors")
	dtype := fs.String("dtype", "f32", "storage of the merged matrices: f32, f16 or bf16")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *base == "" || *adapter == "" || *out == "" {
		return usageErrorf("--base, --adapter and --out are required")
	}
	dt, err := model.ParseDType(*dtype)
	if err != nil || !dt.IsFloat() || dt == model.DTypeF64 {
		return usageErrorf("--dtype %q, want f32, f16 or bf16", *dtype)
	}
	ad, err := model.ReadAdapter(*adapter) // LoRA pairs and modules_to_save (other state/action widths)
	if err != nil {
		return err
	}
	sd, err := model.OpenStateDict(*base, *key)
	if err != nil {
		return err
	}
	defer sd.Close()
	if err := model.MergeAdapter(*out, sd, ad, dt); err != nil {
		return err
	}
	fmt.Printf("merged %d adapters (scaling %g) and %d module tensors (%v) into %s\n", len(ad.LoRA), ad.Config.Scaling(),
		len(ad.Modules), ad.Config.ModulesToSave, *out)
	return nil
}
