package main

import (
	"context"
	"os"

	"github.com/spf13/pflag"

	"github.com/vjepa-vk/vjepa-vk/train"
)

// runTrain is the product's main job: LoRA fine-tuning of the AC predictor as the config describes.
func runTrain(ctx context.Context, args []string) error {
	fs := pflag.NewFlagSet("train", pflag.ContinueOnError)
	cf := addConfigFlags(fs, "YAML config (see configs/)")
	printCfg := fs.Bool("print-config", false, "print the resolved config and exit")
	resume := fs.String("resume", "", `resume from "auto" (latest checkpoint in checkpoint.dir) or a checkpoint path`)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	var extra []string
	if *resume != "" {
		extra = append(extra, "checkpoint.resume="+*resume)
	}
	cfg, err := cf.config(extra...)
	if err != nil {
		return err
	}
	if *printCfg {
		return train.Print(os.Stdout, cfg)
	}
	return train.Train(ctx, cfg, train.Options{Out: os.Stdout})
}
