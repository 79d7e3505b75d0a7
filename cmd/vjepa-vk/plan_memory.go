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

// runPlanMemory prints the GPU memory breakdown of a config, with and without gradient checkpointing;
// with --detail where the activations go; with --allocate the allocator's figures after allocating and
// recording the predictor step on the device without running it; with --measure the allocator's
// figures after one real training step.
func runPlanMemory(ctx context.Context, args []string) error {
	fs := pflag.NewFlagSet("plan-memory", pflag.ContinueOnError)
	cf := addConfigFlags(fs, "YAML config")
	measure := fs.Bool("measure", false, "also run one training step on the device and report the allocator's peak")
	allocate := fs.Bool("allocate", false, "also allocate and record (not run) the predictor step on the device and report the allocator's peak")
	detail := fs.Bool("detail", false, "also list the activations live at their peak")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := cf.config()
	if err != nil {
		return err
	}
	plan, err := train.PlanMemory(cfg)
	if err != nil {
		return err
	}
	other := *cfg
	other.Model.GradCheckpointing = !cfg.Model.GradCheckpointing
	alt, err := train.PlanMemory(&other)
	if err != nil {
		return err
	}
	out := map[string]any{"config": *cf.path, "grad_checkpointing": cfg.Model.GradCheckpointing, "plan": plan,
		"activations_other_checkpointing": alt.Activations}
	if !*asJSON {
		fmt.Printf("memory plan for %s (B=%d, T=%d, %s, %s, checkpointing %v):\n", *cf.path, cfg.Data.BatchSize,
			cfg.Data.Frames, cfg.Model.Precision, cfg.Training.Optimizer, cfg.Model.GradCheckpointing)
		plan.Print(os.Stdout)
		fmt.Printf("(activations with checkpointing %v: %.3f GiB)\n", other.Model.GradCheckpointing, float64(alt.Activations)/(1<<30))
	}
	if *detail && !*asJSON {
		if err := train.ActivationReport(os.Stdout, cfg); err != nil {
			return err
		}
	}
	if *allocate {
		d, err := vk.Open(vk.Options{})
		if err != nil {
			return err
		}
		m, disp, bar, err := train.StepMemory(d, cfg)
		d.Close()
		if err != nil {
			return fmt.Errorf("plan-memory --allocate: %w", err)
		}
		step := plan.PredictorWeights + plan.LoRA + plan.Optimizer + plan.Activations
		out["allocated"], out["allocated_plan"] = m, step
		out["recorded"] = map[string]int{"dispatches": disp, "barriers": bar}
		if !*asJSON {
			fmt.Printf("allocated and recorded the predictor step on %s without running it (encoder not included):\n"+
				"  allocator peak %.3f GiB in tensors (plan of the same tensors: %.3f GiB), %.3f GiB reserved in blocks\n"+
				"  %d dispatches, %d barriers\n",
				d.Info.Name, float64(m.Peak)/(1<<30), float64(step)/(1<<30), float64(m.Reserved)/(1<<30), disp, bar)
		}
	}
	if *measure {
		d, err := vk.Open(vk.Options{})
		if err != nil {
			return err
		}
		defer d.Close()
		tmp, err := os.MkdirTemp("", "vjepa-vk-plan-*")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		run := *cfg
		run.Logging.Dir, run.Checkpoint.Dir, run.Checkpoint.Resume = tmp, tmp+"/ckpt", ""
		run.Logging.Progress = "off"
		run.Checkpoint.Export.PEFT = false
		if err := train.Train(ctx, &run, train.Options{Device: d, MaxStep: 1}); err != nil {
			return fmt.Errorf("plan-memory --measure: %w", err)
		}
		m := d.Memory()
		out["measured"] = m
		if !*asJSON {
			fmt.Printf("measured after one step on %s: peak %.3f GiB in tensors, %.3f GiB reserved in blocks\n",
				d.Info.Name, float64(m.Peak)/(1<<30), float64(m.Reserved)/(1<<30))
		}
	}
	if *asJSON {
		return json.NewEncoder(os.Stdout).Encode(out)
	}
	return nil
}
