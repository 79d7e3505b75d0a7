package main

import (
	"context"
	"fmt"
	"os"

	"github.com/spf13/pflag"

	"github.com/vjepa-vk/vjepa-vk/data"
	"github.com/vjepa-vk/vjepa-vk/data/lerobot"
)

// runMakeDemoData writes a small synthetic dataset, in the exact DROID RLDS schema or as a LeRobot
// dataset (parquet + mp4 encoded by FFmpeg):
//
//	vjepa-vk make-demo-data OUT [--episodes N --steps N --shards N --seed S]
//	vjepa-vk make-demo-data --format lerobot OUT [--version v3.0|v2.1 --codec av1|h264 --image-camera]
func runMakeDemoData(ctx context.Context, args []string) error {
	def := data.DefaultDemoConfig()
	ldef := lerobot.DefaultDemoConfig()
	fs := pflag.NewFlagSet("make-demo-data", pflag.ContinueOnError)
	cfg, lcfg := def, ldef
	format := fs.String("format", "rlds", "rlds (DROID TFRecords) or lerobot (parquet + mp4)")
	fs.IntVar(&cfg.Episodes, "episodes", def.Episodes, "episodes to write")
	fs.IntVar(&cfg.Steps, "steps", def.Steps, "steps per episode (every sixth episode is cut to 3/4)")
	fs.IntVar(&cfg.Shards, "shards", def.Shards, "TFRecord shards (rlds)")
	fs.Uint64Var(&cfg.Seed, "seed", def.Seed, "random seed for scenes and trajectories")
	fs.StringVar(&cfg.Name, "name", def.Name, "dataset name in dataset_info.json and shard file names (rlds)")
	fs.IntVar(&cfg.JPEGQuality, "jpeg-quality", def.JPEGQuality, "JPEG quality of the camera frames (rlds)")
	fs.StringVar(&lcfg.Version, "version", ldef.Version, "LeRobot layout: v3.0 or v2.1 (lerobot)")
	fs.StringVar(&lcfg.Codec, "codec", ldef.Codec, "video codec: av1 (libsvtav1, LeRobot's default) or h264 (lerobot)")
	fs.IntVar(&lcfg.EpisodesPerFile, "episodes-per-file", ldef.EpisodesPerFile, "episodes per data and video file (lerobot v3.0)")
	fs.BoolVar(&lcfg.ImageCamera, "image-camera", ldef.ImageCamera, "also store the wrist camera as a dtype image feature (lerobot)")
	full := fs.Bool("full-size", false, "frames at 320x180 instead of 160x90 (lerobot)")
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
	switch *format {
	case "rlds":
		if err := data.WriteDemoDataset(out, cfg); err != nil {
			return fmt.Errorf("make-demo-data: %w", err)
		}
		fmt.Fprintf(os.Stderr, "wrote %d episodes in %d shards to %s\n", cfg.Episodes, cfg.Shards, out)
	case "lerobot":
		lcfg.Episodes, lcfg.Steps, lcfg.Seed = cfg.Episodes, cfg.Steps, cfg.Seed
		if *full {
			lcfg.Width, lcfg.Height = data.DemoFrameWidth, data.DemoFrameHeight
		}
		if err := lerobot.WriteDemo(out, lcfg); err != nil {
			return fmt.Errorf("make-demo-data: %w", err)
		}
		fmt.Fprintf(os.Stderr, "wrote a LeRobot %s dataset of %d episodes (%s video) to %s\n", lcfg.Version, lcfg.Episodes, lcfg.Codec, out)
	default:
		return usageErrorf("--format %q: want rlds or lerobot", *format)
	}
	return nil
}
