package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"os"
	"strings"

	"github.com/spf13/pflag"

	"github.com/vjepa-vk/vjepa-vk/data"
	"github.com/vjepa-vk/vjepa-vk/model"
	"github.com/vjepa-vk/vjepa-vk/plan"
	"github.com/vjepa-vk/vjepa-vk/train"
)

// planReport is what `vjepa-vk plan --json` prints.
type planReport struct {
	Device     string            `json:"device"`
	Settings   plan.Settings     `json:"settings"`
	Seed       uint64            `json:"seed"`
	Chunk      int               `json:"chunk"`
	KVCache    bool              `json:"kv_cache"`
	State      []float64         `json:"state"`
	Goal       int               `json:"goal"` // index of the goal planned towards (--switch)
	Planner    plan.Planner      `json:"planner"`
	GD         *plan.GDSettings  `json:"gd_settings,omitempty"`
	Action     []float64         `json:"action"`
	Plan       [][]float64       `json:"plan"`
	Energy     float64           `json:"energy"` // the plan's energy after its last action
	Iterations []plan.Iteration  `json:"iterations,omitempty"`
	GDTrace    []plan.GDStep     `json:"gd_trace,omitempty"`
	Cost       plan.PlanCost     `json:"cost"`
	Timings    planTimings       `json:"timings"`
	Episode    *episodeReference `json:"episode,omitempty"`
}

type planTimings struct {
	Encode   float64 `json:"encode_s"`
	Rollout  float64 `json:"rollout_s"`
	Gradient float64 `json:"gradient_s"`
	Total    float64 `json:"total_s"`
}

// newPlanReport is the report of one planning step.
func newPlanReport(device string, st plan.Settings, gd plan.GDSettings, seed uint64, chunk int, kvCache bool, state []float64,
	goal int, step *plan.Step, encode float64) planReport {
	r := planReport{Device: device, Settings: st, Seed: seed, Chunk: chunk, KVCache: kvCache, State: state, Goal: goal,
		Planner: step.Planner, Action: step.Action, Plan: step.Plan, Energy: step.Energy, Cost: step.Cost,
		Timings: planTimings{Encode: encode, Rollout: step.Timing.Rollout, Gradient: step.Timing.Gradient, Total: encode + step.Timing.Total}}
	if step.CEM != nil {
		r.Iterations = step.CEM.Iterations
	}
	if step.GD != nil {
		gd.Horizon, gd.CloseGripper = st.Horizon, st.CloseGripper
		r.GD, r.GDTrace = &gd, step.GD.Trace
	}
	return r
}

// episodeReference is what the dataset says about the planned step, for comparison.
type episodeReference struct {
	Index      int       `json:"index"`
	FilePath   string    `json:"file_path"`
	Step       int       `json:"step"`
	GoalStep   int       `json:"goal_step,omitempty"`
	NextAction []float64 `json:"next_action,omitempty"` // the action the robot took at Step (spec §7.5); none at the last step
}

// runPlan plans the next action with the official CEM (spec planning §4) from an observation, goal
// image(s) and the robot state.
func runPlan(ctx context.Context, args []string) error {
	fs := pflag.NewFlagSet("plan", pflag.ContinueOnError)
	wf := addWorldFlags(fs)
	cf := addCEMFlags(fs)
	gf := addGDFlags(fs)
	imagePath := fs.String("image", "", "current observation: an image file (PNG or JPEG)")
	episode := fs.String("episode", "", "RLDS dataset (folder or gs://) to take the observation, state and goal from")
	episodeIndex := fs.Int("episode-index", 0, "which episode of --episode (record index in file order)")
	step := fs.Int("step", -1, "with --episode: the step whose frame is the observation (and whose state is --state's default)")
	camera := fs.String("camera", data.CameraExterior1, "with --episode: the camera view")
	goals := fs.StringArray("goal", nil, "goal image file; repeat for sub-goals (with --switch)")
	goalStep := fs.Int("goal-step", -1, "with --episode: the step whose frame is the goal")
	switchAt := fs.String("switch", "", "planning steps per goal, e.g. 4,10,4 for three sub-goals (planning §4)")
	planningStep := fs.Int("planning-step", 0, "index of this planning step in the task: --switch picks the goal from it")
	stateFlag := fs.String("state", "", "robot state x,y,z,roll,pitch,yaw,gripper: metres, radians (scipy extrinsic xyz), gripper 0..1; "+
		"for a robot of its own widths (an adapter with its own state_encoder) its N values")
	asJSON := fs.Bool("json", false, "print one JSON object")
	planMemory := fs.Bool("plan-memory", false, "print the planner's device memory at the chunk size and exit without running")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErrorf("unexpected arguments %v", fs.Args())
	}
	opts, err := wf.options("plan")
	if err != nil {
		return err
	}
	cfg, err := wf.load("plan")
	if err != nil {
		return err
	}
	stateWidth, actionWidth, rule, err := wf.widths(cfg)
	if err != nil {
		return commandError("plan", err)
	}
	st, err := cf.settings("plan", actionWidth)
	if err != nil {
		return err
	}
	planner, gd, err := gf.settings()
	if err != nil {
		return err
	}
	if *planMemory {
		m, err := train.PlanPlannerMemory(cfg, opts, st.Samples, st.Horizon)
		if err != nil {
			return err
		}
		return printPlannerMemory(m, cfg, st, *asJSON)
	}
	obs, err := readObservation(ctx, observationFlags{*imagePath, *episode, *episodeIndex, *step, *camera, *goals, *goalStep, *stateFlag,
		stateWidth, rule})
	if err != nil {
		return commandError("plan", err)
	}
	sched, err := plan.ParseSchedule(*switchAt, len(obs.goals))
	if err != nil {
		return usageErrorf("--switch: %v", err)
	}
	if *planningStep < 0 {
		return usageErrorf("--planning-step %d: want >= 0", *planningStep)
	}
	goalIndex := sched.Goal(*planningStep)

	ss, err := openSession(cfg, opts, obs.current, obs.goals[goalIndex])
	if err != nil {
		return err
	}
	defer ss.close()
	w := ss.w
	planned, err := w.PlanStep(planner, st, gd, ss.context, ss.goal, obs.state, *cf.seed)
	if err != nil {
		return err
	}
	chunk, _ := w.Chunk(st.Samples, st.Horizon)
	rep := newPlanReport(ss.d.Info.Name, st, gd, *cf.seed, chunk, !opts.Plan.NoKVCache, obs.state, goalIndex, planned, w.Timings.Encode.Seconds())
	rep.Episode = obs.episode
	if *asJSON {
		return json.NewEncoder(os.Stdout).Encode(rep)
	}
	printPlan(rep)
	return nil
}

func printPlan(r planReport) {
	droid := r.Settings.Space == nil
	f := func(a []float64) string {
		if droid && len(a) == model.ActionDim {
			return fmt.Sprintf("[% .4f % .4f % .4f  %.0f %.0f %.0f  % .3f]", a[0], a[1], a[2], a[3], a[4], a[5], a[6])
		}
		return fmt.Sprintf("% .4f", a)
	}
	space := fmt.Sprintf("maxnorm %g", r.Settings.MaxNorm)
	if !droid {
		space = fmt.Sprintf("%d of %d action components searched", len(r.Settings.Space.Dims), r.Settings.Space.Width)
	}
	method := fmt.Sprintf("CEM %d samples × %d iterations, top %d", r.Settings.Samples, r.Settings.Iterations, r.Settings.TopK)
	if r.GD != nil {
		gd := fmt.Sprintf("gradient descent %d steps × %d starts (lr %g std)", r.GD.Steps, r.GD.Starts, r.GD.LR)
		method = map[plan.Planner]string{plan.PlannerGD: gd, plan.PlannerCEMGD: method + ", then " + gd}[r.Planner]
	}
	fmt.Printf("%s: %s, horizon %d, %s (chunk %d, kv cache %v), goal %d\n",
		r.Device, method, r.Settings.Horizon, space, r.Chunk, r.KVCache, r.Goal)
	if droid {
		fmt.Printf("action  %s   (Δx Δy Δz in m, rotation 0, gripper)\n", f(r.Action))
	} else {
		fmt.Printf("action  %s\n", f(r.Action))
	}
	for h, a := range r.Plan[1:] {
		fmt.Printf("plan %d  %s\n", h+1, f(a))
	}
	if r.Episode != nil && r.Episode.NextAction != nil {
		fmt.Printf("episode %d step %d: the recorded action was %s\n", r.Episode.Index, r.Episode.Step, f(r.Episode.NextAction))
	}
	if len(r.Iterations) > 0 {
		fmt.Println("iteration  energy mean     std      best  elite mean")
		for i, it := range r.Iterations {
			fmt.Printf("%9d  %11.5f %7.5f %9.5f %11.5f\n", i, it.EnergyMean, it.EnergyStd, it.EnergyBest, it.EnergyElite)
		}
	}
	if n := len(r.GDTrace); n > 0 {
		fmt.Printf("gradient descent: energy %.5f at the start, %.5f after %d steps\n", r.GDTrace[0].Energy, r.GDTrace[n-1].Energy, n-1)
	}
	fmt.Printf("plan energy %.5f for %d candidate-frames of predictor work\n", r.Energy, r.Cost.Total)
	fmt.Printf("timings: encode %.3f s, rollout %.3f s, gradient %.3f s, total %.3f s\n", r.Timings.Encode, r.Timings.Rollout,
		r.Timings.Gradient, r.Timings.Total)
}

func printPlannerMemory(m train.PlannerMemory, cfg *train.Config, st plan.Settings, asJSON bool) error {
	if asJSON {
		return json.NewEncoder(os.Stdout).Encode(map[string]any{"config": cfg.Source(), "samples": st.Samples,
			"horizon": st.Horizon, "memory": m})
	}
	gib := func(b int64) float64 { return float64(b) / (1 << 30) }
	fmt.Printf("planner memory for %s (%d samples, horizon %d, chunk %d, kv cache %v, %s):\n", cfg.Source(), st.Samples,
		st.Horizon, m.Chunk, m.KVCache, cfg.Model.Precision)
	for _, r := range []struct {
		k string
		v int64
	}{{"predictor weights", m.PredictorWeights}, {"encoder weights", m.EncoderWeights}, {"adapters", m.LoRA},
		{"encoder pass", m.EncoderPass}, {"rollout", m.Rollout}, {"total", m.Total}} {
		fmt.Printf("  %-18s %8.3f GiB\n", r.k, gib(r.v))
	}
	return nil
}

// observationFlags are where the observation, goals and state come from.
type observationFlags struct {
	image              string
	episode            string
	episodeIndex, step int
	camera             string
	goals              []string
	goalStep           int
	state              string
	stateWidth         int // the predictor's
	rule               plan.StateRule
}

// observation is a planning step's input: the current image, the goal images and the robot state.
type observation struct {
	current image.Image
	goals   []image.Image
	state   []float64
	episode *episodeReference
}

func readObservation(ctx context.Context, o observationFlags) (*observation, error) {
	obs := &observation{}
	var ep *data.Episode
	if o.episode != "" {
		if o.image != "" {
			return nil, usageErrorf("give --image or --episode, not both")
		}
		if o.step < 0 {
			return nil, usageErrorf("--episode needs --step N (the observation's step)")
		}
		if o.stateWidth != model.ActionDim {
			return nil, usageErrorf("--episode reads DROID RLDS episodes (7-D states), the predictor takes %d-D states: give --image and --state", o.stateWidth)
		}
		src, err := data.OpenSource(ctx, o.episode)
		if err != nil {
			return nil, err
		}
		if ep, err = data.NthEpisode(ctx, src, "train", o.episodeIndex); err != nil {
			return nil, err
		}
		if o.step >= ep.Steps {
			return nil, fmt.Errorf("--step %d: episode %d (%s) has %d steps", o.step, o.episodeIndex, ep.FilePath, ep.Steps)
		}
		frame := func(t int) (image.Image, error) {
			b, err := ep.Frame(o.camera, t)
			if err != nil {
				return nil, err
			}
			img, _, err := image.Decode(bytes.NewReader(b))
			if err != nil {
				return nil, fmt.Errorf("episode %d step %d %s: %w", o.episodeIndex, t, o.camera, err)
			}
			return img, nil
		}
		if obs.current, err = frame(o.step); err != nil {
			return nil, err
		}
		states, err := ep.States()
		if err != nil {
			return nil, err
		}
		obs.state = states[o.step][:]
		ref := &episodeReference{Index: o.episodeIndex, FilePath: ep.FilePath, Step: o.step}
		if o.step+1 < ep.Steps {
			ref.NextAction = data.StatesToActions(states[o.step : o.step+2])[0][:]
		}
		if o.goalStep >= 0 {
			if o.goalStep >= ep.Steps {
				return nil, fmt.Errorf("--goal-step %d: episode %d has %d steps", o.goalStep, o.episodeIndex, ep.Steps)
			}
			g, err := frame(o.goalStep)
			if err != nil {
				return nil, err
			}
			obs.goals = append(obs.goals, g)
			ref.GoalStep = o.goalStep
		}
		obs.episode = ref
	} else {
		if o.image == "" {
			return nil, usageErrorf("an observation is required: --image FILE or --episode SRC --step N")
		}
		if o.goalStep >= 0 || o.step >= 0 {
			return nil, usageErrorf("--step and --goal-step need --episode")
		}
		img, err := loadImage(o.image)
		if err != nil {
			return nil, err
		}
		obs.current = img
	}
	for _, g := range o.goals {
		img, err := loadImage(g)
		if err != nil {
			return nil, err
		}
		obs.goals = append(obs.goals, img)
	}
	if len(obs.goals) == 0 {
		return nil, usageErrorf("a goal is required: --goal FILE (repeatable) or --episode with --goal-step")
	}
	switch {
	case o.state != "":
		st, err := parseState(o.state, o.stateWidth, o.rule)
		if err != nil {
			return nil, err
		}
		obs.state = st
	case ep == nil:
		what := "x,y,z,roll,pitch,yaw,gripper"
		if o.rule != plan.StatePose {
			what = fmt.Sprintf("%d values", o.stateWidth)
		}
		return nil, usageErrorf("--state is required with --image (%s)", what)
	default:
		if err := plan.CheckStateOf(obs.state, o.stateWidth, o.rule); err != nil {
			return nil, fmt.Errorf("episode %d step %d: %w", o.episodeIndex, o.step, err)
		}
	}
	if strings.TrimSpace(o.camera) == "" {
		return nil, usageErrorf("--camera is empty")
	}
	return obs, nil
}

// commandError prefixes err with the command's name, unless it is a usage error (dispatch names the
// command in those).
func commandError(cmd string, err error) error {
	var u *usageError
	if errors.As(err, &u) {
		return err
	}
	return fmt.Errorf("%s: %w", cmd, err)
}
