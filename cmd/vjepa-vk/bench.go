package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"

	"github.com/spf13/pflag"

	"github.com/vjepa-vk/vjepa-vk/train"
	"github.com/vjepa-vk/vjepa-vk/vk"
)

// runBench measures a whole training step at a config's shapes: step time, clips/s, tokens/s, TFLOP/s,
// peak memory and, with --timings, GPU time per op.
func runBench(ctx context.Context, args []string) error {
	fs := pflag.NewFlagSet("bench", pflag.ContinueOnError)
	cf := addConfigFlags(fs, "YAML config")
	steps := fs.Int("steps", 5, "timed steps (the median is reported)")
	warmup := fs.Int("warmup", 2, "untimed steps first")
	timings := fs.Bool("timings", true, "also run one step with GPU timestamps and report time per op")
	asJSON := fs.Bool("json", false, "print one JSON object")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *steps < 1 || *warmup < 0 {
		return usageErrorf("--steps must be >= 1 and --warmup >= 0, got %d and %d", *steps, *warmup)
	}
	cfg, err := cf.config()
	if err != nil {
		return err
	}
	d, err := vk.Open(vk.Options{})
	if err != nil {
		return err
	}
	defer d.Close()
	r, err := train.Bench(d, cfg, *steps, *warmup, *timings)
	if err != nil {
		return err
	}
	if *asJSON {
		return json.NewEncoder(os.Stdout).Encode(r)
	}
	fmt.Printf("%s: T=%d B=%d checkpointing=%v %s %s, LoRA %s (dropout %g), tensor cores %v\n", r.Device, r.T, r.B,
		r.Checkpointing, r.Precision, r.Optimizer, r.LoRAPath, r.LoRADropout, r.TensorCores)
	fmt.Printf("  step %.4f s (min %.4f), %.2f clips/s, %.0f tokens/s, %.2f TFLOP/s (%.3g FLOP/step)\n",
		r.StepMedian, r.StepMin, r.ClipsPerSec, r.TokensPerSec, r.TFLOPs, r.FlopsPerStep)
	fmt.Printf("  peak memory %.2f GiB, %d dispatches, %d barriers\n", r.PeakMemGiB, r.Dispatches, r.Barriers)
	for _, o := range r.Ops {
		fmt.Printf("  %-28s %5d× %9.3f ms  %5.1f%%\n", o.Op, o.Count, o.Seconds*1e3, 100*o.Share)
	}
	return nil
}
