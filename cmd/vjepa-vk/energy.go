package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"

	"github.com/spf13/pflag"

	"github.com/vjepa-vk/vjepa-vk/data/lerobot"
	"github.com/vjepa-vk/vjepa-vk/plan"
)

// runEnergy computes the one-step energy landscape over a grid of two or three action components (the
// energy notebook, the paper's Fig. 9) and writes it as JSON and a PNG heat map.
func runEnergy(ctx context.Context, args []string) error {
	fs := pflag.NewFlagSet("energy", pflag.ContinueOnError)
	wf := addWorldFlags(fs)
	imagePath := fs.String("image", "", "current observation: an image file (PNG or JPEG)")
	episode := fs.String("episode", "", "dataset (folder or gs://; DROID RLDS or LeRobot) to take the observation, state, goal and true action from")
	episodeIndex := fs.Int("episode-index", 0, "which episode of --episode (in file order)")
	step := fs.Int("step", -1, "with --episode: the observation's step (its recorded action is the true action)")
	camera := fs.String("camera", "", "with --episode: the camera view (default: exterior_image_1_left on RLDS, the config's data.camera on LeRobot)")
	goal := fs.String("goal", "", "goal image file")
	goalStep := fs.Int("goal-step", -1, "with --episode: the goal's step (usually --step + 1)")
	stateFlag := fs.String("state", "", "robot state x,y,z,roll,pitch,yaw,gripper (radians, gripper 0..1)")
	axes := fs.String("axes", "x,y", "swept action components: two or three of x, y, z, gripper (7-D actions) or component indices")
	points := fs.Int("points", 21, "grid points per axis")
	extent := fs.Float64("extent", 0.075, "each axis spans [-extent, extent] (metres for x, y, z)")
	truth := fs.String("true-action", "", "the action known to reach the goal, one value per action component (default with --episode: the recorded action at --step)")
	out := fs.String("out", "energy", "output prefix: PREFIX.json and PREFIX.png")
	asJSON := fs.Bool("json", false, "also print the JSON to stdout")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErrorf("unexpected arguments %v", fs.Args())
	}
	opts, err := wf.options("energy")
	if err != nil {
		return err
	}
	cfg, err := wf.load("energy")
	if err != nil {
		return err
	}
	stateWidth, actionWidth, rule, err := wf.widths(cfg)
	if err != nil {
		return commandError("energy", err)
	}
	ax, err := plan.NewLandscapeAxes(*axes, *points, actionWidth, *extent)
	if err != nil {
		return usageErrorf("%v", err)
	}
	var goals []string
	if *goal != "" {
		goals = []string{*goal}
	}
	obs, err := readObservation(ctx, observationFlags{*imagePath, *episode, *episodeIndex, *step, *camera, goals, *goalStep, *stateFlag,
		stateWidth, actionWidth, rule, cfg})
	if err != nil {
		return commandError("energy", err)
	}
	var trueAction []float64
	switch {
	case *truth != "":
		if trueAction, err = parseVector(*truth, "--true-action"); err != nil {
			return err
		}
		if len(trueAction) != actionWidth {
			return usageErrorf("--true-action %q: %d values, want %d", *truth, len(trueAction), actionWidth)
		}
	case obs.episode != nil:
		trueAction = obs.episode.NextAction
	}
	if *out == "" {
		return usageErrorf("--out is empty")
	}
	ss, err := openSession(cfg, opts, obs.current, obs.goals[0])
	if err != nil {
		return err
	}
	defer ss.close()
	l, err := plan.ComputeLandscape(ax, actionWidth, ss.w.Energy(ss.context, ss.goal, obs.state))
	if err != nil {
		return err
	}
	l.Truth = trueAction
	// The grid, its minimum and the true action are raw actions; with an adapter trained on normalized
	// vectors each went through its normalization on the way into the predictor, which the JSON says.
	js, err := json.Marshal(struct {
		*plan.Landscape
		Normalization *lerobot.Normalization `json:"normalization,omitempty"`
	}{l, ss.w.Normalization()})
	if err != nil {
		return err
	}
	if err := os.WriteFile(*out+".json", append(js, '\n'), 0o666); err != nil {
		return fmt.Errorf("energy: %w", err)
	}
	if err := l.WritePNG(*out + ".png"); err != nil {
		return err
	}
	if *asJSON {
		fmt.Println(string(js))
		return nil
	}
	printNormalization(ss.w.Normalization())
	fmt.Printf("energy over %s (%d points each, ±%g): minimum %.5f at %v; wrote %s.json and %s.png\n", *axes, *points, *extent,
		l.MinEnergy, l.Min, *out, *out)
	if trueAction != nil {
		fmt.Printf("true action %v\n", trueAction)
	}
	return nil
}
