package main

import (
	"context"
	"fmt"
	"os"

	"github.com/spf13/pflag"

	"github.com/vjepa-vk/vjepa-vk/train"
)

// runTrain is the product's main job: LoRA fine-tuning of the AC predictor as the config describes.
func runTrain(ctx context.Context, args []string) error {
	fs := pflag.NewFlagSet("train", pflag.ContinueOnError)
	path := fs.String("config", "", "YAML config (see configs/)")
	sets := fs.StringArray("set", nil, "override a config value: section.key=value (repeatable)")
	printCfg := fs.Bool("print-config", false, "print the resolved config and exit")
	resume := fs.String("resume", "", `resume from "auto" (latest checkpoint in checkpoint.dir) or a checkpoint path`)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *path == "" {
		return fmt.Errorf("train: --config FILE is required")
	}
	all := append([]string(nil), *sets...)
	if *resume != "" {
		all = append(all, "checkpoint.resume="+*resume)
	}
	cfg, err := train.Load(*path, all)
	if err != nil {
		return err
	}
	if *printCfg {
		return train.Print(os.Stdout, cfg)
	}
	return train.Train(ctx, cfg, train.Options{Out: os.Stdout})
}
