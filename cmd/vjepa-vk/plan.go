package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"os"
	"slices"
	"strings"

	"github.com/spf13/pflag"

	"github.com/vjepa-vk/vjepa-vk/data"
	"github.com/vjepa-vk/vjepa-vk/data/lerobot"
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
	// Normalization is what the adapter's training did to the vectors (data.lerobot.normalize), which
	// the state and candidate actions went through on their way into the predictor; state, action and
	// plan above are in the robot's raw units. Absent: none.
	Normalization *lerobot.Normalization `json:"normalization,omitempty"`
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
	episode := fs.String("episode", "", "dataset (folder or gs://; DROID RLDS or LeRobot) to take the observation, state and goal from")
	episodeIndex := fs.Int("episode-index", 0, "which episode of --episode (in file order)")
	step := fs.Int("step", -1, "with --episode: the step whose frame is the observation (and whose state is --state's default)")
	camera := fs.String("camera", "", "with --episode: the camera view (default: exterior_image_1_left on RLDS, the config's data.camera on LeRobot)")
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
		stateWidth, actionWidth, rule, cfg})
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
	rep.Normalization = w.Normalization()
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
	printNormalization(r.Normalization)
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

// printNormalization says which normalization the predictor's inputs go through, if any.
func printNormalization(n *lerobot.Normalization) {
	if n == nil {
		return
	}
	rows := ""
	if n.ActionRows > 0 {
		rows = fmt.Sprintf(", each action a sum of %d rows", n.ActionRows)
	}
	fmt.Printf("normalization: %s with %s's statistics of %s and %s%s, applied to the state and the candidate actions; "+
		"every vector shown is in the robot's units\n", n.Mode, n.Source, n.State.Column, n.Action.Column, rows)
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
	actionWidth        int
	rule               plan.StateRule
	cfg                *train.Config // a LeRobot --episode's mapping and sampling rate
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
		if isLeRobot(ctx, o.episode) {
			if err := readLeRobotStep(ctx, o, obs); err != nil {
				return nil, err
			}
			return finishObservation(o, obs, true)
		}
		if o.camera == "" {
			o.camera = data.CameraExterior1
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
		if o.camera != "" {
			return nil, usageErrorf("--camera needs --episode")
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
	return finishObservation(o, obs, ep != nil)
}

// finishObservation adds the goal image files and the state (--state, or the episode's in obs).
func finishObservation(o observationFlags, obs *observation, fromEpisode bool) (*observation, error) {
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
	case !fromEpisode:
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
	return obs, nil
}

// isLeRobot says whether source is a LeRobot dataset (it has meta/info.json).
func isLeRobot(ctx context.Context, source string) bool {
	src, err := data.OpenSource(ctx, source)
	if err != nil {
		return false // OpenRLDS gives the error
	}
	rc, err := src.Open(ctx, lerobot.InfoFile)
	if err != nil {
		return false
	}
	rc.Close()
	return true
}

// readLeRobotStep reads step o.step of episode o.episodeIndex of a LeRobot dataset into obs: the
// camera's frame (and the goal step's), the mapped state and the action the clip of the config would
// hold from that step (the reduction of the rows up to the next sampled frame, spec §7.3). The vectors
// are the raw ones, whatever the config's data.lerobot.normalize: the world model normalizes them as the
// adapter's training did.
func readLeRobotStep(ctx context.Context, o observationFlags, obs *observation) error {
	m, clip := lerobot.DefaultMapping(), data.ClipConfig{FPS: 4, Frames: 2}
	camera := o.camera
	if c := o.cfg; c != nil && c.Data.Format == train.FormatLeRobot {
		m, clip.FPS = c.Data.LeRobot, c.Data.FPS
		if camera == "" {
			camera = c.Data.Camera
		}
	}
	m.Normalize = ""
	f, err := openFormat(ctx, o.episode, "lerobot", "train", lerobot.Options{Mapping: m})
	if err != nil {
		return err
	}
	ds := f.(*lerobot.Dataset)
	defer ds.Close()
	if s, a := ds.Dims(); s != o.stateWidth || a != o.actionWidth {
		return fmt.Errorf("--episode %s gives %d-D states and %d-D actions (data.lerobot mapping of %s), the predictor takes %d-D and %d-D",
			o.episode, s, a, configName(o.cfg), o.stateWidth, o.actionWidth)
	}
	if camera == "" {
		return usageErrorf("--camera: name the camera of --episode %s (%s has %s)", o.episode, lerobot.InfoFile, strings.Join(ds.Info.Cameras(), ", "))
	}
	clip.SourceFPS = ds.FPS()
	ep, err := data.NthFormatEpisode(ctx, ds, o.episodeIndex)
	if err != nil {
		return err
	}
	info := ep.Info()
	if o.step >= info.Steps {
		return fmt.Errorf("--step %d: episode %d (%s) has %d steps", o.step, o.episodeIndex, info.FilePath, info.Steps)
	}
	rows := []int{o.step}
	ref := &episodeReference{Index: o.episodeIndex, FilePath: info.FilePath, Step: o.step}
	if o.goalStep >= 0 {
		if o.goalStep >= info.Steps {
			return fmt.Errorf("--goal-step %d: episode %d has %d steps", o.goalStep, o.episodeIndex, info.Steps)
		}
		rows, ref.GoalStep = append(rows, o.goalStep), o.goalStep
	}
	imgs, err := ep.(interface {
		Images(ctx context.Context, camera string, rows []int) ([]image.Image, error)
	}).Images(ctx, camera, rows)
	if err != nil {
		return err
	}
	obs.current, obs.goals = imgs[0], imgs[1:]
	i := 0
	err = ep.(data.RowVectors).EachRow(clip, func(state, action []float64) {
		if i == o.step {
			obs.state, ref.NextAction = slices.Clone(state), slices.Clone(action)
		}
		i++
	})
	if err != nil {
		return err
	}
	obs.episode = ref
	return nil
}

// configName names a config in messages ("the defaults" for none).
func configName(c *train.Config) string {
	if c == nil {
		return "the defaults"
	}
	return c.Source()
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
