package main

import (
	"context"
	"fmt"
	"os"

	"github.com/spf13/pflag"

	"github.com/vjepa-vk/vjepa-vk/data"
)

// runMakeDemoData writes a small synthetic dataset in the exact DROID RLDS schema:
//
//	vjepa-vk make-demo-data OUT [--episodes N --steps N --shards N --seed S]
func runMakeDemoData(ctx context.Context, args []string) error {
	def := data.DefaultDemoConfig()
	fs := pflag.NewFlagSet("make-demo-data", pflag.ContinueOnError)
	cfg := def
	fs.IntVar(&cfg.Episodes, "episodes", def.Episodes, "episodes to write")
	fs.IntVar(&cfg.Steps, "steps", def.Steps, "steps per episode (every sixth episode is cut to 3/4)")
	fs.IntVar(&cfg.Shards, "shards", def.Shards, "TFRecord shards")
	fs.Uint64Var(&cfg.Seed, "seed", def.Seed, "random seed for scenes and trajectories")
	fs.StringVar(&cfg.Name, "name", def.Name, "dataset name in dataset_info.json and shard file names")
	fs.IntVar(&cfg.JPEGQuality, "jpeg-quality", def.JPEGQuality, "JPEG quality of the camera frames")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageErrorf("want one output directory, got %d arguments", fs.NArg())
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	out := fs.Arg(0)
	if err := data.WriteDemoDataset(out, cfg); err != nil {
		return fmt.Errorf("make-demo-data: %w", err)
	}
	fmt.Fprintf(os.Stderr, "wrote %d episodes in %d shards to %s\n", cfg.Episodes, cfg.Shards, out)
	return nil
}
