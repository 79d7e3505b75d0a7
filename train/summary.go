package train

// The start banner and the end summary of a training run: what runs where before the first step, and
// where the results are after the last, so a user never has to guess a path or scroll for the best
// validation loss.

import (
	"fmt"
	"math"
	"path/filepath"
	"strings"

	"github.com/vjepa-vk/vjepa-vk/model"
)

// banner is printed before the first step:
//
//	training on llvmpipe (LLVM 15.0.6, 256 bits) (cpu, Vulkan 1.3.255)
//	  precision   fp32, loss scaling off, adamw, LoRA r=4 alpha 8 on qkv, proj, fc1, fc2 (fused)
//	  trainable   6.14K parameters (1.31% of the predictor's 469K)
//	  steps       150 of 2 clips × 4 frames (grad_accum 1), from step 0
//	  run dir     runs/demo (metrics.jsonl, TensorBoard events, adapter/)
//	  checkpoints runs/demo/checkpoints, every 50 steps
func (t *trainer) banner() string {
	c := t.cfg
	var b strings.Builder
	in := t.d.Info
	fmt.Fprintf(&b, "training on %s (%s, Vulkan %s)\n", in.Name, in.Type, in.APIVersion)
	scaling := "loss scaling off"
	if c.Training.LossScale.Enabled {
		scaling = fmt.Sprintf("loss scaling from %g", c.Training.LossScale.Init)
	}
	path := c.LoRA.Path
	if path == "" {
		path = string(model.LoRAFused)
	}
	fmt.Fprintf(&b, "  precision   %s, %s, %s, LoRA r=%d alpha %g on %s (%s)\n", c.Model.Precision, scaling,
		c.Training.Optimizer, c.LoRA.R, c.LoRA.Alpha, strings.Join(c.LoRA.Targets, ", "), path)
	pc := model.PredictorParams(t.pcfg, t.pred.LoRAs)
	frozen := pc.Matrices + pc.Vectors
	fmt.Fprintf(&b, "  trainable   %s parameters (%.3g%% of the predictor's %s)\n", humanCount(pc.LoRA),
		100*float64(pc.LoRA)/float64(max(frozen, 1)), humanCount(frozen))
	fmt.Fprintf(&b, "  steps       %d of %d clips × %d frames (grad_accum %d), from step %d\n", c.Training.Steps,
		c.Data.BatchSize*t.ranks(), c.Data.Frames, c.Training.GradAccum, t.step)
	if t.comm != nil {
		fmt.Fprintf(&b, "  ranks       %d (data.batch_size %d each), gradients all-reduced over %s\n", t.ranks(), c.Data.BatchSize, t.commName())
	}
	fmt.Fprintf(&b, "  run dir     %s (%s)\n", c.Logging.Dir, strings.Join(runDirContents(c), ", "))
	every := "at the end"
	if c.Checkpoint.Every > 0 {
		every = fmt.Sprintf("every %d steps", c.Checkpoint.Every)
	}
	fmt.Fprintf(&b, "  checkpoints %s, %s", c.Checkpoint.Dir, every)
	if c.Checkpoint.GCSSync.URL != "" {
		fmt.Fprintf(&b, ", synced to %s", c.Checkpoint.GCSSync.URL)
	}
	return b.String()
}

// runDirContents lists what the run writes into logging.dir.
func runDirContents(c *Config) []string {
	var out []string
	if c.Logging.JSONL {
		out = append(out, MetricsFile)
	}
	if c.Logging.TensorBoard {
		out = append(out, "TensorBoard events")
	}
	if c.Checkpoint.Export.PEFT || c.Checkpoint.Export.Merged {
		out = append(out, "adapter/")
	}
	if c.Checkpoint.Export.Merged {
		out = append(out, "predictor_merged.safetensors")
	}
	return out
}

// summary is printed after the last checkpoint and export: how far the run got, how fast, where its
// results are, the best validation loss, and the data problems skipped.
func (t *trainer) summary(last int) string {
	c := t.cfg
	var b strings.Builder
	verb := "finished"
	if t.step < last {
		verb = "stopped"
	}
	fmt.Fprintf(&b, "%s at step %d of %d", verb, t.step, c.Training.Steps)
	if steps, elapsed, itPerSec, clipsPerSec := t.progress.Totals(); steps > 0 {
		fmt.Fprintf(&b, ": %d steps in %s, %.3g it/s, %.3g clips/s", steps, formatETA(elapsed), itPerSec, clipsPerSec)
	}
	b.WriteString("\n")
	if c.Checkpoint.Export.PEFT || c.Checkpoint.Export.Merged {
		fmt.Fprintf(&b, "  adapter     %s (PEFT: adapter_model.safetensors, adapter_config.json)\n", filepath.Join(c.Logging.Dir, "adapter"))
	} else {
		b.WriteString("  adapter     not exported (checkpoint.export.peft: false); the checkpoints hold the LoRA weights\n")
	}
	if c.Checkpoint.Export.Merged {
		fmt.Fprintf(&b, "  merged      %s\n", filepath.Join(c.Logging.Dir, "predictor_merged.safetensors"))
	}
	man, err := ReadManifest(c.Checkpoint.Dir)
	switch {
	case err != nil:
		fmt.Fprintf(&b, "  checkpoints %s (manifest: %v)\n", c.Checkpoint.Dir, err)
	default:
		fmt.Fprintf(&b, "  checkpoints %s: latest %s", c.Checkpoint.Dir, man.Latest)
		if man.Best != "" && man.Best != man.Latest {
			fmt.Fprintf(&b, ", best %s", man.Best)
		}
		b.WriteString("\n")
	}
	if best, ok := t.bestValidation(man); ok {
		fmt.Fprintf(&b, "  best val    loss %.4f at step %d\n", best.loss, best.step)
	} else if c.Training.ValEvery > 0 {
		b.WriteString("  best val    none yet (no validation ran)\n")
	}
	if t.warnings != nil {
		if s := t.warnings.Summary(); s != "" {
			fmt.Fprintf(&b, "  data        %s\n", s)
		}
	}
	fmt.Fprintf(&b, "  plots       vjepa-vk report %s", c.Logging.Dir)
	if c.Logging.TensorBoard {
		fmt.Fprintf(&b, "; tensorboard --logdir %s", c.Logging.Dir)
	}
	return b.String()
}

type stepLoss struct {
	step int
	loss float64
}

// bestValidation is the lowest validation loss of the run: this process's validations, and the kept
// checkpoints' (which carry it across a resume).
func (t *trainer) bestValidation(man *Manifest) (stepLoss, bool) {
	best, ok := stepLoss{}, false
	if vm, found := t.progress.Best(); found {
		best, ok = stepLoss{vm.Step, vm.Loss}, true
	}
	if man != nil {
		for _, e := range man.Checkpoints {
			if e.ValLoss != nil && !math.IsNaN(*e.ValLoss) && (!ok || *e.ValLoss < best.loss) {
				best, ok = stepLoss{e.Step, *e.ValLoss}, true
			}
		}
	}
	return best, ok
}

// humanCount prints a parameter count with a metric suffix: 6.14K, 469K, 1.21M, 3.1B.
func humanCount(n int64) string {
	v := float64(n)
	for _, u := range []struct {
		scale  float64
		suffix string
	}{{1e9, "B"}, {1e6, "M"}, {1e3, "K"}} {
		if v >= u.scale {
			return fmt.Sprintf("%.3g%s", v/u.scale, u.suffix)
		}
	}
	return fmt.Sprint(n)
}
