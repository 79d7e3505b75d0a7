package main

import (
	"fmt"
	"image"
	"io"
	"math"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/pflag"

	"github.com/vjepa-vk/vjepa-vk/model"
	"github.com/vjepa-vk/vjepa-vk/plan"
	"github.com/vjepa-vk/vjepa-vk/train"
	"github.com/vjepa-vk/vjepa-vk/vk"
)

// worldFlags are the flags of the commands that load a world model (plan, energy, bench --plan): the
// config, base weights, adapter and inference settings.
type worldFlags struct {
	cfg        configFlags
	checkpoint *string
	adapter    *string
	merge      *bool
	precision  *string
	chunk      *int
	budgetGiB  *float64
	noCache    *bool
	stateRule  *string
}

func addWorldFlags(fs *pflag.FlagSet) worldFlags {
	return worldFlags{
		cfg:        addConfigFlags(fs, "YAML config: model sizes, base weights and precision (optional when --adapter is a training checkpoint: its config is used)"),
		checkpoint: fs.String("checkpoint", "", "base weights (overrides model.checkpoint; a config without one uses the random weights its runs trained on)"),
		adapter:    fs.String("adapter", "", "trained adapter: a PEFT folder or a training checkpoint (ckpt-*.safetensors); none: the base model"),
		merge:      fs.Bool("merge", false, "fold the adapter into the base weights at load (no adapter GEMMs) instead of running it fused"),
		precision:  fs.String("precision", "", "base weights: fp32, fp16 or bf16 (default: the config's model.precision)"),
		chunk:      fs.Int("chunk", 0, "candidates rolled out at once (0: the largest under --memory-budget)"),
		budgetGiB:  fs.Float64("memory-budget", float64(plan.DefaultMemoryBudget)/(1<<30), "GiB for the rollout's activations and K/V cache when --chunk is 0"),
		noCache:    fs.Bool("no-kv-cache", false, "recompute every frame at every rollout step (no K/V cache)"),
		stateRule:  fs.String("state-rule", "", "how planned states follow the actions: pose (compute_new_pose; the default for 7-D states and actions), hold (the default otherwise), add"),
	}
}

// widths are the state and action widths of the world model the flags load (the config's, or those of
// the adapter's own encoders) and the state rule, checked against them.
func (f worldFlags) widths(cfg *train.Config) (state, action int, rule plan.StateRule, err error) {
	if state, action, err = train.PlannerWidths(cfg, *f.adapter); err != nil {
		return 0, 0, "", err
	}
	rule = plan.StateRule(*f.stateRule)
	if rule == "" {
		rule = plan.DefaultStateRule(state, action)
	}
	if err := rule.Check(state, action); err != nil {
		return 0, 0, "", usageErrorf("--state-rule: %v", err)
	}
	return state, action, rule, nil
}

// load returns the run config: --config (with --set), or the one in a training-checkpoint adapter's header.
func (f worldFlags) load(cmd string) (*train.Config, error) {
	if *f.cfg.path != "" {
		return f.cfg.config()
	}
	if *f.adapter != "" {
		if fi, err := os.Stat(*f.adapter); err == nil && !fi.IsDir() {
			_, _, cfg, err := train.AdapterConfigOf(*f.adapter)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", cmd, err)
			}
			for _, s := range *f.cfg.sets {
				if err := train.ApplySet(cfg, s); err != nil {
					return nil, fmt.Errorf("%s: %w", cmd, err)
				}
			}
			return cfg, nil
		}
	}
	return nil, usageErrorf("--config FILE is required (or --adapter with a training checkpoint, whose config is used)")
}

// options are the loading options of the flags.
func (f worldFlags) options(cmd string) (train.WorldModelOptions, error) {
	if *f.chunk < 0 {
		return train.WorldModelOptions{}, usageErrorf("--chunk %d: want >= 0", *f.chunk)
	}
	if !(*f.budgetGiB > 0) || math.IsInf(*f.budgetGiB, 0) {
		return train.WorldModelOptions{}, usageErrorf("--memory-budget %g: want a positive number of GiB", *f.budgetGiB)
	}
	switch *f.precision {
	case "", "fp32", "fp16", "bf16":
	default:
		return train.WorldModelOptions{}, usageErrorf("--precision %q: want fp32, fp16 or bf16", *f.precision)
	}
	if *f.merge && *f.adapter == "" {
		return train.WorldModelOptions{}, usageErrorf("--merge needs an --adapter")
	}
	return train.WorldModelOptions{Checkpoint: *f.checkpoint, Adapter: *f.adapter, Merge: *f.merge, Precision: *f.precision,
		Plan: plan.Options{Chunk: *f.chunk, MemoryBudget: int64(*f.budgetGiB * (1 << 30)), NoKVCache: *f.noCache,
			StateRule: plan.StateRule(*f.stateRule)}}, nil
}

// cemFlags are cem()'s settings: a preset and per-setting overrides.
type cemFlags struct {
	fs                                 *pflag.FlagSet
	preset                             *string
	samples, iterations, topk, horizon *int
	maxnorm, mm, ms, mmg, msg          *float64
	closeGripper                       *int
	seed                               *uint64
	search, fixed                      *string
	searchGripper                      *int
}

func addCEMFlags(fs *pflag.FlagSet) cemFlags {
	w := plan.WrapperSettings()
	return cemFlags{
		fs:           fs,
		preset:       fs.String("preset", "wrapper", "CEM settings: wrapper (the notebook WorldModel: 400 samples, 10 iterations, top 10, horizon 2, maxnorm 0.05) or paper (800/10/10, horizon 1, maxnorm 0.075)"),
		samples:      fs.Int("samples", w.Samples, "candidates per CEM iteration (overrides the preset)"),
		iterations:   fs.Int("iterations", w.Iterations, "CEM iterations (overrides the preset)"),
		topk:         fs.Int("topk", w.TopK, "elites per iteration (overrides the preset)"),
		horizon:      fs.Int("horizon", w.Horizon, "actions planned ahead (overrides the preset)"),
		maxnorm:      fs.Float64("maxnorm", w.MaxNorm, "box on Δx, Δy, Δz in metres (overrides the preset)"),
		mm:           fs.Float64("momentum-mean", w.MomentumMean, "momentum of the xyz mean"),
		ms:           fs.Float64("momentum-std", w.MomentumStd, "momentum of the xyz std"),
		mmg:          fs.Float64("momentum-mean-gripper", w.MomentumMeanGripper, "momentum of the gripper mean"),
		msg:          fs.Float64("momentum-std-gripper", w.MomentumStdGripper, "momentum of the gripper std"),
		closeGripper: fs.Int("close-gripper", -1, "force the gripper closed (1) from this planned step on; -1 never"),
		seed:         fs.Uint64("seed", 0, "seed of the CEM noise"),
		search: fs.String("search", "", "search space: INDEX=LO:HI[/STD],… per searched action component (default: Δx Δy Δz in ±maxnorm and the gripper in ±0.75 "+
			"for 7-D actions, every component in ±maxnorm otherwise)"),
		searchGripper: fs.Int("search-gripper", -2, "with --search: the component that is the gripper (own momenta, --close-gripper, rounding); -1 none (default: component 6 of 7-D actions when searched, else none)"),
		fixed:         fs.String("fixed", "", "with --search: INDEX=VALUE,… values of the components not searched (default 0)"),
	}
}

// gdFlags choose the planner and configure the gradient planner.
type gdFlags struct {
	planner       *string
	steps, starts *int
	lr            *float64
}

func addGDFlags(fs *pflag.FlagSet) gdFlags {
	d := plan.DefaultGDSettings()
	return gdFlags{
		planner: fs.String("planner", "cem", "cem (the official planner), gd (gradient descent on the energy from zero actions) or cem+gd (CEM, then gradient descent from its plan)"),
		steps:   fs.Int("gd-steps", d.Steps, "gradient planner: Adam steps"),
		starts:  fs.Int("gd-starts", d.Starts, "gradient planner: descents side by side (the others from perturbed starts)"),
		lr:      fs.Float64("gd-lr", d.LR, "gradient planner: step per action component, in units of its initial std in the search space"),
	}
}

// settings are the planner and the gradient planner's settings (horizon and forced gripper come from CEM's).
func (g gdFlags) settings() (plan.Planner, plan.GDSettings, error) {
	p := plan.Planner(*g.planner)
	if err := p.Check(); err != nil {
		return "", plan.GDSettings{}, usageErrorf("--planner: %v", err)
	}
	st := plan.DefaultGDSettings()
	st.Steps, st.Starts, st.LR = *g.steps, *g.starts, *g.lr
	if err := st.Validate(); err != nil {
		return "", plan.GDSettings{}, usageErrorf("--gd-steps, --gd-starts, --gd-lr: %v", err)
	}
	return p, st, nil
}

// settings are the preset with the flags that were given, searching actions of width A.
func (c cemFlags) settings(cmd string, A int) (plan.Settings, error) {
	var st plan.Settings
	switch *c.preset {
	case "wrapper":
		st = plan.WrapperSettings()
	case "paper":
		st = plan.PaperSettings()
	default:
		return plan.Settings{}, usageErrorf("--preset %q: want wrapper or paper", *c.preset)
	}
	set := func(name string, dst *int, v int) {
		if c.fs.Changed(name) {
			*dst = v
		}
	}
	setF := func(name string, dst *float64, v float64) {
		if c.fs.Changed(name) {
			*dst = v
		}
	}
	set("samples", &st.Samples, *c.samples)
	set("iterations", &st.Iterations, *c.iterations)
	set("topk", &st.TopK, *c.topk)
	set("horizon", &st.Horizon, *c.horizon)
	set("close-gripper", &st.CloseGripper, *c.closeGripper)
	setF("maxnorm", &st.MaxNorm, *c.maxnorm)
	setF("momentum-mean", &st.MomentumMean, *c.mm)
	setF("momentum-std", &st.MomentumStd, *c.ms)
	setF("momentum-mean-gripper", &st.MomentumMeanGripper, *c.mmg)
	setF("momentum-std-gripper", &st.MomentumStdGripper, *c.msg)
	if *c.search != "" {
		sp, err := parseSearch(*c.search, A, *c.searchGripper, *c.fixed)
		if err != nil {
			return plan.Settings{}, err
		}
		st.Space = &sp
	} else if c.fs.Changed("search-gripper") || *c.fixed != "" {
		return plan.Settings{}, usageErrorf("--search-gripper and --fixed need --search")
	}
	st, err := st.ForWidth(A)
	if err != nil {
		return plan.Settings{}, usageErrorf("%v", err)
	}
	return st, nil
}

// parseSearch is --search for A-D actions: gripper −2 means DROID's gripper (component 6 of a 7-D
// action) when it is searched, else none.
func parseSearch(spec string, A, gripper int, fixed string) (plan.Space, error) {
	auto := gripper == -2
	if auto {
		gripper = -1
	}
	sp, err := plan.ParseSpace(spec, A, gripper, fixed)
	if err != nil {
		return plan.Space{}, usageErrorf("--search: %v", err)
	}
	if auto && A == model.ActionDim {
		for i, d := range sp.Dims {
			if d.Index == model.ActionDim-1 {
				sp.Gripper = i
			}
		}
	}
	return sp, nil
}

// parseState reads a width-wide state ("x,y,z,roll,pitch,yaw,gripper" for DROID's poses) and validates
// it (plan.CheckStateOf: DROID poses are checked for degrees and the gripper range).
func parseState(s string, width int, rule plan.StateRule) ([]float64, error) {
	st, err := parseVector(s, "--state")
	if err != nil {
		return nil, err
	}
	if len(st) != width {
		what := ""
		if rule == plan.StatePose {
			what = " (x,y,z in metres, roll,pitch,yaw in radians, gripper 0..1)"
		}
		return nil, usageErrorf("--state %q: %d values, want %d%s", s, len(st), width, what)
	}
	if err := plan.CheckStateOf(st, width, rule); err != nil {
		return nil, usageErrorf("--state %q: %v", s, err)
	}
	return st, nil
}

// parseVector reads comma-separated numbers.
func parseVector(s, flag string) ([]float64, error) {
	fields := strings.Split(s, ",")
	v := make([]float64, len(fields))
	for i, f := range fields {
		x, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
		if err != nil {
			return nil, usageErrorf("%s %q: value %d (%q) is not a number", flag, s, i, f)
		}
		v[i] = x
	}
	return v, nil
}

// maxImageFile bounds an image file read whole: a 4096×4096 PNG of noise is 48 MiB.
const maxImageFile = 256 << 20

// loadImage decodes a PNG or JPEG file (plan.DecodeImage: size-checked from its header first).
func loadImage(path string) (image.Image, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if fi.Size() > maxImageFile {
		return nil, fmt.Errorf("image %s: %d bytes, more than the %d allowed", path, fi.Size(), maxImageFile)
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", path, err)
	}
	img, err := plan.DecodeImage(b, 0)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", path, err)
	}
	return img, nil
}

// session is a world model on an opened device with an observation's context and goal encoded.
type session struct {
	d             *vk.Device
	w             *plan.WorldModel
	context, goal plan.Rep
	close         func()
}

// openSession opens the device, loads the world model of cfg and encodes the current image and the goal.
func openSession(cfg *train.Config, opts train.WorldModelOptions, current, goal image.Image) (*session, error) {
	d, err := vk.Open(vk.Options{})
	if err != nil {
		return nil, err
	}
	w, closeW, err := train.OpenWorldModel(d, cfg, opts)
	if err != nil {
		d.Close()
		return nil, err
	}
	s := &session{d: d, w: w, close: func() { closeW(); d.Close() }}
	if s.context, err = w.Encode(current); err == nil {
		s.goal, err = w.Encode(goal)
	}
	if err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}
