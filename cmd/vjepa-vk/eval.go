package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"

	"github.com/spf13/pflag"

	"github.com/vjepa-vk/vjepa-vk/data"
	"github.com/vjepa-vk/vjepa-vk/evaluate"
	"github.com/vjepa-vk/vjepa-vk/plan"
	"github.com/vjepa-vk/vjepa-vk/train"
	"github.com/vjepa-vk/vjepa-vk/vk"
)

// runEval scores the base world model and trained adapters side by side on held-out episodes (package
// evaluate): teacher-forcing and rollout errors against copying the last frame, action sensitivity and
// inverse dynamics; PREFIX.json, PREFIX.png and a table.
func runEval(ctx context.Context, args []string) error {
	fs := pflag.NewFlagSet("eval", pflag.ContinueOnError)
	cfgFlags := addConfigFlags(fs, "YAML config: model sizes, base weights, the dataset and its held-out episodes (optional when the first --adapter is a training checkpoint: its config is used)")
	adapters := fs.StringArray("adapter", nil, "trained adapter to compare with the base: a PEFT folder or a training checkpoint (repeatable)")
	checkpoint := fs.String("checkpoint", "", "base weights (overrides model.checkpoint)")
	precision := fs.String("precision", "", "base weights: fp32, fp16 or bf16 (default: the config's model.precision)")
	merge := fs.Bool("merge", false, "fold each adapter into the base weights at load instead of running it fused")
	source := fs.String("source", "", "dataset to evaluate on (default: the config's data.source; its format and mapping are the config's)")
	episodes := fs.Int("episodes", -1, "evaluate the first N episodes in shard order (default: data.val_episodes, the episodes training held out, when --source is the config's; else all)")
	passes := fs.Int("passes", 1, "clips per episode (one per pass over the episodes, each at its own seeded start)")
	maxClips := fs.Int("clips", 1000, "at most this many clips")
	frames := fs.Int("frames", 0, "frames per clip T (default: data.frames)")
	horizon := fs.Int("horizon", 0, "rollout steps K, at most T-1 (default T-1)")
	distractors := fs.Int("distractors", 31, "random recorded actions each true action is ranked against (0: skip action sensitivity)")
	inverse := fs.Int("inverse", 8, "transitions to infer the action of by CEM (0: skip inverse dynamics)")
	invSamples := fs.Int("inverse-samples", 400, "CEM samples per iteration for inverse dynamics")
	invIterations := fs.Int("inverse-iterations", 10, "CEM iterations for inverse dynamics")
	invMaxNorm := fs.Float64("inverse-maxnorm", 0.075, "box on Δx, Δy, Δz of DROID actions for inverse dynamics (the paper's 0.075)")
	search := fs.String("search", "", "inverse dynamics' search space INDEX=LO:HI[/STD],… (default: DROID's for 7-D actions, the range of the recorded actions otherwise)")
	batch := fs.Int("batch", 8, "clips rolled out at once (device memory grows with it)")
	chunk := fs.Int("chunk", 0, "candidates rolled out at once in action sensitivity and CEM (0: the largest under the default budget)")
	seed := fs.Uint64("seed", 0, "seed of the clip starts, distractors and CEM noise")
	out := fs.String("out", "eval", "output prefix: PREFIX.json and PREFIX.png")
	asJSON := fs.Bool("json", false, "print the JSON report to stdout instead of the table")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErrorf("unexpected arguments %v", fs.Args())
	}
	for _, c := range []struct {
		name string
		v    int
		min  int
	}{{"--passes", *passes, 1}, {"--clips", *maxClips, 1}, {"--frames", *frames, 0}, {"--horizon", *horizon, 0},
		{"--distractors", *distractors, 0}, {"--inverse", *inverse, 0}, {"--batch", *batch, 1}, {"--chunk", *chunk, 0},
		{"--episodes", *episodes, -1}} {
		if c.v < c.min {
			return usageErrorf("%s %d: want >= %d", c.name, c.v, c.min)
		}
	}
	if *frames == 1 {
		return usageErrorf("--frames 1: a clip needs at least 2 frames")
	}
	switch *precision {
	case "", "fp32", "fp16", "bf16":
	default:
		return usageErrorf("--precision %q: want fp32, fp16 or bf16", *precision)
	}
	if *merge && len(*adapters) == 0 {
		return usageErrorf("--merge needs an --adapter")
	}
	if *out == "" {
		return usageErrorf("--out is empty")
	}
	cfg, err := evalConfig(cfgFlags, *adapters)
	if err != nil {
		return err
	}
	heldOut := *source == "" || *source == cfg.Data.Source
	if *source != "" {
		cfg.Data.Source = *source
	}
	if *frames > 0 {
		cfg.Data.Frames = *frames
	}

	if *horizon > cfg.Data.Frames-1 {
		return usageErrorf("--horizon %d: at most T-1 = %d", *horizon, cfg.Data.Frames-1)
	}
	cem := plan.WrapperSettings()
	cem.Samples, cem.Iterations, cem.Horizon, cem.MaxNorm = *invSamples, *invIterations, 1, *invMaxNorm
	cem.TopK = min(cem.TopK, cem.Samples)
	if err := cem.Validate(); err != nil {
		return usageErrorf("--inverse-samples, --inverse-iterations, --inverse-maxnorm: %v", err)
	}

	// The clips keep the robot's raw vectors, whatever data.lerobot.normalize says: each model normalizes
	// them as its own training did (an adapter's normalization.json; the base none), as plan and serve
	// do, so that base and adapters see the same episodes and inverse dynamics' errors are raw units.
	rawCfg := *cfg
	rawCfg.Data.LeRobot.Normalize = ""
	f, err := train.OpenDataset(ctx, &rawCfg, data.GCSOptions{})
	if err != nil {
		return commandError("eval", err)
	}
	if c, ok := f.(io.Closer); ok {
		defer c.Close()
	}
	stateWidth, actionWidth := f.Dims()
	for _, a := range *adapters { // before any device work: a missing adapter or one for another robot
		z, ac, err := train.PlannerWidths(cfg, a)
		if err != nil {
			return commandError("eval", err)
		}
		if z != stateWidth || ac != actionWidth {
			return fmt.Errorf("eval: adapter %s takes %d-D states and %d-D actions, %s gives %d-D and %d-D", a, z, ac, f, stateWidth, actionWidth)
		}
	}
	if *search != "" {
		sp, err := parseSearch(*search, actionWidth, -2, "")
		if err != nil {
			return err
		}
		cem.Space = &sp
	}
	lc := train.ClipLoaderConfig(cfg, f)
	lc.Seed, lc.Epochs = *seed, *passes
	n := *episodes
	if n < 0 && heldOut {
		n = cfg.Data.ValEpisodes
	}
	if n > 0 {
		lc.Keep = train.HeldOut(f.Shards(), n)
	}
	d, err := vk.Open(vk.Options{})
	if err != nil {
		return err
	}
	defer d.Close()
	o := train.WorldModelOptions{Checkpoint: *checkpoint, Precision: *precision, Merge: *merge, Plan: plan.Options{Chunk: *chunk}}
	st := evaluate.Settings{Horizon: *horizon, Batch: *batch, Distractors: *distractors, Inverse: *inverse, CEM: cem, Seed: *seed}

	// The base model encodes the clips (the encoder is frozen: adapters share its representations).
	w, closeW, err := train.OpenWorldModel(d, cfg, o)
	if err != nil {
		return err
	}
	if w.StateWidth() != stateWidth || w.ActionWidth() != actionWidth {
		closeW()
		return fmt.Errorf("eval: %s gives %d-D states and %d-D actions, the base predictor of %s takes %d-D and %d-D",
			f, stateWidth, actionWidth, cfg.Source(), w.StateWidth(), w.ActionWidth())
	}
	clips, counts, err := evaluate.LoadClips(ctx, f, lc, *maxClips, w)
	if err != nil {
		closeW()
		return err
	}
	rep := &evaluate.Report{Dataset: f.String(), Clips: len(clips), Frames: cfg.Data.Frames, Horizon: *horizon, Data: counts}
	if rep.Horizon == 0 {
		rep.Horizon = cfg.Data.Frames - 1
	}
	if rep.Baseline, err = evaluate.Baselines(clips, rep.Horizon); err != nil {
		closeW()
		return err
	}
	progress := func(name string) {
		if !*asJSON {
			fmt.Fprintf(os.Stderr, "eval: %s on %d clips of %d frames from %s\n", name, len(clips), rep.Frames, rep.Dataset)
		}
	}
	progress("base")
	r, err := evaluate.Evaluate(w, "base", clips, st)
	if n := w.Normalization(); n != nil && err == nil {
		r.Normalization = n.Mode
	}
	closeW()
	if err != nil {
		return fmt.Errorf("eval: base: %w", err)
	}
	rep.Models = append(rep.Models, r)
	for _, a := range *adapters {
		progress(a)
		o.Adapter, o.NoEncoder = a, true
		w, closeW, err := train.OpenWorldModel(d, cfg, o)
		if err != nil {
			return err
		}
		r, err := evaluate.Evaluate(w, a, clips, st)
		if n := w.Normalization(); n != nil && err == nil {
			r.Normalization = n.Mode
		}
		closeW()
		if err != nil {
			return fmt.Errorf("eval: adapter %s: %w", a, err)
		}
		rep.Models = append(rep.Models, r)
	}
	for _, m := range rep.Models {
		for _, v := range append(append([]float64(nil), m.Rollout...), m.TeacherForcing...) {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return fmt.Errorf("eval: %s: non-finite error %v (diverged weights?)", m.Name, v)
			}
		}
	}
	js, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(*out+".json", append(js, '\n'), 0o666); err != nil {
		return fmt.Errorf("eval: %w", err)
	}
	if err := rep.WritePNG(*out + ".png"); err != nil {
		return err
	}
	if *asJSON {
		_, err := os.Stdout.Write(append(js, '\n'))
		return err
	}
	fmt.Printf("%s: %d clips of %d frames (%d episodes read); mean L1 to the true frame (tf: teacher forcing; k: rollout horizon)\n",
		rep.Dataset, rep.Clips, rep.Frames, counts.Episodes)
	if err := rep.Table(os.Stdout); err != nil {
		return err
	}
	fmt.Printf("wrote %s.json and %s.png\n", *out, *out)
	return nil
}

// evalConfig is --config (with --set), or the config in the first adapter when it is a training checkpoint.
func evalConfig(c configFlags, adapters []string) (*train.Config, error) {
	if *c.path != "" || len(adapters) == 0 {
		return c.config()
	}
	wf := worldFlags{cfg: c, adapter: &adapters[0]}
	return wf.load("eval")
}
