package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"

	"github.com/spf13/pflag"

	"github.com/vjepa-vk/vjepa-vk/dist"
	"github.com/vjepa-vk/vjepa-vk/train"
	"github.com/vjepa-vk/vjepa-vk/vk"
)

// runBench measures a whole training step at a config's shapes: step time, clips/s, tokens/s, TFLOP/s,
// peak memory and, with --timings, GPU time per op. With --plan it measures planning one action instead.
// Under mpirun every rank runs the training step and the gradient all-reduce, and rank 0 reports, the
// all-reduce's time included.
func runBench(ctx context.Context, args []string) error {
	fs := pflag.NewFlagSet("bench", pflag.ContinueOnError)
	wf := addWorldFlags(fs)
	cemf := addCEMFlags(fs)
	planMode := fs.Bool("plan", false, "time planning one action (all CEM iterations, --preset and the CEM flags) instead of a training step")
	steps := fs.Int("steps", 5, "timed steps, or planned actions with --plan (the median is reported)")
	warmup := fs.Int("warmup", 2, "untimed steps (or actions) first")
	timings := fs.Bool("timings", true, "also run one step (one CEM iteration's rollouts) with GPU timestamps and report time per op")
	asJSON := fs.Bool("json", false, "print one JSON object")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *steps < 1 || *warmup < 0 {
		return usageErrorf("--steps must be >= 1 and --warmup >= 0, got %d and %d", *steps, *warmup)
	}
	if *planMode {
		return benchPlan(wf, cemf, *steps, *warmup, *timings, *asJSON)
	}
	cfg, err := wf.cfg.config()
	if err != nil {
		return err
	}
	w, err := dist.Init()
	if err != nil {
		return err
	}
	r, err := benchRank(w, cfg, *steps, *warmup, *timings)
	if err = endJob(w, err); err != nil || !w.IsRoot() {
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
	if r.Ranks > 1 {
		fmt.Printf("  %d ranks: gradient all-reduce of %.2f MiB %.2f ms per step (%.1f%% of the step), whole exchange %.2f ms\n",
			r.Ranks, float64(r.GradBytes)/(1<<20), r.AllReduceMedian*1e3, 100*r.AllReduceMedian/r.StepMedian, r.GradSyncMedian*1e3)
	} else {
		fmt.Printf("  gradient all-reduce with several ranks: %.2f MiB per step (one rank: none)\n", float64(r.GradBytes)/(1<<20))
	}
	for _, o := range r.Ops {
		fmt.Printf("  %-28s %5d× %9.3f ms  %5.1f%%\n", o.Op, o.Count, o.Seconds*1e3, 100*o.Share)
	}
	return nil
}

// benchRank runs the training-step bench on this rank's GPU.
func benchRank(w *dist.World, cfg *train.Config, steps, warmup int, timings bool) (*train.BenchResult, error) {
	d, err := vk.Open(vk.Options{LocalRank: w.LocalRank()})
	if err != nil {
		return nil, err
	}
	defer d.Close()
	return train.Bench(d, cfg, steps, warmup, timings, w)
}

// benchPlan is bench --plan: the time to plan one action at the config's sizes.
func benchPlan(wf worldFlags, cemf cemFlags, actions, warmup int, timings, asJSON bool) error {
	opts, err := wf.options("bench --plan")
	if err != nil {
		return err
	}
	cfg, err := wf.load("bench --plan")
	if err != nil {
		return err
	}
	_, actionWidth, _, err := wf.widths(cfg)
	if err != nil {
		return err
	}
	st, err := cemf.settings("bench --plan", actionWidth)
	if err != nil {
		return err
	}
	d, err := vk.Open(vk.Options{})
	if err != nil {
		return err
	}
	defer d.Close()
	r, err := train.BenchPlan(d, cfg, st, opts, actions, warmup, timings)
	if err != nil {
		return err
	}
	if asJSON {
		return json.NewEncoder(os.Stdout).Encode(r)
	}
	fmt.Printf("%s: plan %d samples × %d iterations, top %d, horizon %d (chunk %d, kv cache %v, %s, tensor cores %v)\n", r.Device,
		r.Samples, r.Iterations, r.TopK, r.Horizon, r.Chunk, r.KVCache, r.Precision, r.TensorCores)
	fmt.Printf("  %.4f s per action (min %.4f), %.1f candidates/s, %.2f TFLOP/s (%.3g FLOP/action)\n", r.ActionMedian,
		r.ActionMin, r.CandidatesPerS, r.TFLOPs, r.FlopsPerAction)
	fmt.Printf("  peak memory %.2f GiB, %d dispatches per iteration\n", r.PeakMemGiB, r.Dispatches)
	for _, o := range r.Ops {
		fmt.Printf("  %-28s %5d× %9.3f ms  %5.1f%%\n", o.Op, o.Count, o.Seconds*1e3, 100*o.Share)
	}
	return nil
}
