package main

import (
	"context"
	"encoding/json"
	"image"
	"image/color"
	"image/png"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vjepa-vk/vjepa-vk/plan"
)

// captureStdout runs fn with os.Stdout redirected and returns what it printed.
func captureStdout(t *testing.T, fn func() error) (string, error) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	old := os.Stdout
	os.Stdout = w
	done := make(chan string)
	go func() {
		b, _ := io.ReadAll(r)
		done <- string(b)
	}()
	err = fn()
	w.Close()
	os.Stdout = old
	return <-done, err
}

// commandJSON runs a command's run function with args (which ask for --json) and decodes what it printed
// into v, failing the test on an error or output that is not JSON.
func commandJSON(t *testing.T, run func(context.Context, []string) error, args []string, v any) {
	t.Helper()
	out, err := captureStdout(t, func() error { return run(context.Background(), args) })
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("%s printed %q: %v", args, out, err)
	}
}

// writePNG writes a w×h test pattern and returns its path.
func writePNG(t *testing.T, dir, name string, w, h, seed int) string {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, color.RGBA{uint8(3*x + seed), uint8(5*y - seed), uint8(x*y + seed), 255})
		}
	}
	path := filepath.Join(dir, name)
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := png.Encode(f, img); err != nil {
		t.Fatal(err)
	}
	return path
}

const (
	demoConfig    = "../../configs/demo.yaml"
	lerobotConfig = "../../configs/lerobot-demo.yaml" // 6-D states, 4-D actions
)

// tinyCEM are settings small enough for lavapipe.
var tinyCEM = []string{"--samples", "6", "--iterations", "2", "--topk", "3"}

func TestPlanCommand(t *testing.T) {
	dir := t.TempDir()
	obs, goal := writePNG(t, dir, "obs.png", 80, 64, 0), writePNG(t, dir, "goal.png", 64, 64, 50)
	args := append([]string{"--config", demoConfig, "--image", obs, "--goal", goal, "--state", "0.4,0,0.3,3.1,0,0,0.5", "--json"}, tinyCEM...)
	var rep planReport
	commandJSON(t, runPlan, args, &rep)
	if len(rep.Plan) != 2 || len(rep.Iterations) != 2 || rep.Settings.Samples != 6 || rep.Settings.MaxNorm != 0.05 {
		t.Errorf("plan report: %d plan steps, %d iterations, settings %+v", len(rep.Plan), len(rep.Iterations), rep.Settings)
	}
	for k := range 3 {
		if a := rep.Action[k]; a < -0.05 || a > 0.05 {
			t.Errorf("action %v outside the 0.05 box", rep.Action)
		}
	}
	if !(rep.Timings.Total >= rep.Timings.Encode+rep.Timings.Rollout) || rep.Timings.Rollout <= 0 {
		t.Errorf("timings %+v", rep.Timings)
	}

	// The paper preset with the episode's frames, state and a goal further on.
	args = append([]string{"--config", demoConfig, "--episode", "../../testdata/droid_sample", "--step", "2", "--goal-step", "6",
		"--preset", "paper", "--json"}, tinyCEM...)
	rep = planReport{}
	commandJSON(t, runPlan, args, &rep)
	if rep.Settings.Horizon != 1 || rep.Settings.MaxNorm != 0.075 || rep.Episode == nil || rep.Episode.GoalStep != 6 {
		t.Errorf("paper preset on an episode: settings %+v, episode %+v", rep.Settings, rep.Episode)
	}

	// The gradient planner, from zeros and from CEM's plan.
	for _, p := range []string{"gd", "cem+gd"} {
		args = append([]string{"--config", demoConfig, "--image", obs, "--goal", goal, "--state", "0.4,0,0.3,3.1,0,0,0.5", "--json",
			"--planner", p, "--gd-steps", "3"}, tinyCEM...)
		rep = planReport{}
		commandJSON(t, runPlan, args, &rep)
		if rep.Planner != plan.Planner(p) || len(rep.GDTrace) != 4 || rep.GD == nil || rep.GD.Horizon != 2 || len(rep.Plan) != 2 ||
			rep.Cost.GDFrames != 4*3*3 || !(rep.Timings.Gradient > 0) {
			t.Errorf("plan --planner %s: %+v", p, rep)
		}
		if (p == "gd") != (len(rep.Iterations) == 0) || !(rep.Energy <= rep.GDTrace[0].Energy+1e-5) {
			t.Errorf("plan --planner %s: %d CEM iterations, energy %v from %v", p, len(rep.Iterations), rep.Energy, rep.GDTrace[0].Energy)
		}
	}
}

// TestPlanNon7D plans for a robot of its own widths (configs/lerobot-demo.yaml: 6-D states, 4-D actions,
// the fresh encoders its training starts from): every action component searched by default, or the space
// --search gives, and the state checked against the predictor's width.
func TestPlanNon7D(t *testing.T) {
	dir := t.TempDir()
	obs, goal := writePNG(t, dir, "obs.png", 64, 64, 0), writePNG(t, dir, "goal.png", 64, 64, 50)
	base := []string{"--config", lerobotConfig, "--image", obs, "--goal", goal, "--state", "0.1,0.2,0.3,0.4,0.5,0.6", "--json"}
	with := func(extra ...string) []string {
		return append(append(append([]string(nil), base...), tinyCEM...), extra...)
	}
	// A PEFT adapter with its own 4-D action and 6-D state encoders, under the 7-D demo config: its widths win.
	adapter := writeAdapter(t, lerobotConfig, 5)
	for _, c := range []struct {
		extra []string
		dims  int
		bound float64
	}{{nil, 4, 0.05}, {[]string{"--search", "0=-0.2:0.2/0.1,3=0:1", "--fixed", "1=0.5"}, 2, 0.2},
		{[]string{"--config", demoConfig, "--adapter", adapter, "--planner", "cem+gd", "--gd-steps", "2"}, 4, 0.05}} {
		var rep planReport
		commandJSON(t, runPlan, with(c.extra...), &rep)
		if len(rep.Action) != 4 || len(rep.State) != 6 || rep.Settings.Space == nil || len(rep.Settings.Space.Dims) != c.dims {
			t.Fatalf("plan %v: action %v, state %v, space %+v", c.extra, rep.Action, rep.State, rep.Settings.Space)
		}
		if a := rep.Action[0]; a < -c.bound || a > c.bound {
			t.Errorf("plan %v: action %v outside ±%g", c.extra, rep.Action, c.bound)
		}
		if c.dims == 2 && rep.Action[1] != 0.5 {
			t.Errorf("plan %v: action %v, want component 1 fixed at 0.5", c.extra, rep.Action)
		}
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--state", "0,0,0,0,0,0,0"}, "7 values, want 6"},
		{[]string{"--state-rule", "pose"}, "needs 7-D states and actions"},
		{[]string{"--state-rule", "add"}, "as wide as the state"},
		{[]string{"--search", "4=-1:1"}, "component 4, want 0..3"},
		{[]string{"--search", "0=-1:1", "--search-gripper", "2"}, "gripper (component 2) is not searched"},
		{[]string{"--fixed", "1=0.5"}, "need --search"},
		{[]string{"--episode", "../../testdata/droid_sample", "--step", "1", "--image", ""}, "7-D states), the predictor takes 6-D"},
	} {
		args := []string{"--config", lerobotConfig, "--image", obs, "--goal", goal, "--state", "0.1,0.2,0.3,0.4,0.5,0.6"}
		args = append(append(args, tinyCEM...), c.args...)
		if err := runPlan(context.Background(), args); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("plan %v: %v, want %q", c.args, err, c.want)
		}
	}
}

func TestPlanMemoryFlag(t *testing.T) {
	out, err := captureStdout(t, func() error {
		return runPlan(context.Background(), []string{"--config", "../../configs/droid-vitg.yaml", "--plan-memory", "--json"})
	})
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		Memory struct {
			Chunk   int   `json:"chunk"`
			Rollout int64 `json:"rollout"`
			Total   int64 `json:"total"`
		} `json:"memory"`
	}
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatal(err)
	}
	// The official model in bf16 with its encoder, the wrapper setting at the default chunk: a 24 GB card
	// (22.3 GiB usable) holds it.
	if m.Memory.Chunk < 1 || m.Memory.Total > 22<<30 || m.Memory.Rollout > 16<<30 {
		t.Errorf("official planner memory: chunk %d, rollout %.2f GiB, total %.2f GiB", m.Memory.Chunk,
			float64(m.Memory.Rollout)/(1<<30), float64(m.Memory.Total)/(1<<30))
	}
}

func TestPlanBadInput(t *testing.T) {
	dir := t.TempDir()
	obs := writePNG(t, dir, "obs.png", 64, 64, 0)
	notImage := filepath.Join(dir, "notes.txt")
	os.WriteFile(notImage, []byte("hello"), 0o644)
	base := []string{"--config", demoConfig, "--image", obs, "--goal", obs, "--state", "0.4,0,0.3,3.1,0,0,0.5"}
	with := func(extra ...string) []string { return append(append([]string(nil), base...), extra...) }
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"no config", []string{"--image", obs, "--goal", obs}, "--config FILE is required"},
		{"degrees", []string{"--config", demoConfig, "--image", obs, "--goal", obs, "--state", "0.4,0,0.3,178,0,0,0.5"}, "degrees?"},
		{"six values", []string{"--config", demoConfig, "--image", obs, "--goal", obs, "--state", "0.4,0,0.3,0,0,0"}, "6 values, want 7"},
		{"not a number", []string{"--config", demoConfig, "--image", obs, "--goal", obs, "--state", "0.4,0,x,0,0,0,0"}, "value 2"},
		{"gripper", []string{"--config", demoConfig, "--image", obs, "--goal", obs, "--state", "0.4,0,0,0,0,0,2"}, "gripper is in [0, 1]"},
		{"no state", []string{"--config", demoConfig, "--image", obs, "--goal", obs}, "--state is required"},
		{"no goal", []string{"--config", demoConfig, "--image", obs, "--state", "0,0,0,0,0,0,0"}, "a goal is required"},
		{"no observation", []string{"--config", demoConfig, "--goal", obs, "--state", "0,0,0,0,0,0,0"}, "an observation is required"},
		{"missing image", with("--goal", filepath.Join(dir, "nope.png")), "nope.png"},
		{"not an image", with("--goal", notImage), "want PNG or JPEG"},
		{"bad preset", with("--preset", "fast"), "--preset \"fast\""},
		{"topk 1", with("--topk", "1"), "topk 1"},
		{"schedule", with("--switch", "4,10"), "2 entries for 1 goals"},
		{"several goals without schedule", with("--goal", obs), "need a switch schedule"},
		{"negative chunk", with("--chunk", "-1"), "--chunk -1"},
		{"zero budget", with("--memory-budget", "0"), "--memory-budget 0"},
		{"precision", with("--precision", "fp8"), "--precision \"fp8\""},
		{"merge without adapter", with("--merge"), "--merge needs an --adapter"},
		{"missing adapter", with("--adapter", filepath.Join(dir, "nope")), "adapter"},
		{"image and episode", with("--episode", "../../testdata/droid_sample", "--step", "1"), "not both"},
		{"episode without step", []string{"--config", demoConfig, "--episode", "../../testdata/droid_sample", "--goal-step", "3"}, "needs --step"},
		{"step past the episode", []string{"--config", demoConfig, "--episode", "../../testdata/droid_sample", "--step", "100000", "--goal-step", "3"}, "--step 100000"},
		{"step without episode", with("--step", "3"), "need --episode"},
		{"extra argument", with("stray"), "unexpected arguments"},
		{"planner", with("--planner", "newton"), `planner "newton"`},
		{"gd steps", with("--planner", "gd", "--gd-steps", "0"), "steps 0"},
		{"gd lr", with("--planner", "gd", "--gd-lr", "-1"), "learning rate -1"},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := runPlan(context.Background(), c.args)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("plan %v: %v, want an error containing %q", c.args, err, c.want)
			}
		})
	}
}

func TestBenchPlan(t *testing.T) {
	args := append([]string{"--plan", "--config", demoConfig, "--steps", "1", "--warmup", "0", "--json"}, tinyCEM...)
	out, err := captureStdout(t, func() error { return runBench(context.Background(), args) })
	if err != nil {
		t.Fatal(err)
	}
	var r struct {
		Samples        int     `json:"samples"`
		ActionMedian   float64 `json:"s_per_action_median"`
		CandidatesPerS float64 `json:"candidates_per_s"`
		Ops            []struct {
			Op string `json:"op"`
		} `json:"ops"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("bench --plan --json printed %q: %v", out, err)
	}
	if r.Samples != 6 || !(r.ActionMedian > 0) || !(r.CandidatesPerS > 0) {
		t.Errorf("bench --plan: %+v", r)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--plan", "--config", demoConfig, "--topk", "1"}, "topk 1"},
		{[]string{"--plan", "--config", demoConfig, "--steps", "0"}, "--steps must be >= 1"},
		{[]string{"--plan"}, "--config FILE is required"},
	} {
		if err := runBench(context.Background(), c.args); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("bench %v: %v, want %q", c.args, err, c.want)
		}
	}
}

func TestEnergyCommand(t *testing.T) {
	dir := t.TempDir()
	prefix := filepath.Join(dir, "landscape")
	args := []string{"--config", demoConfig, "--episode", "../../testdata/droid_sample", "--step", "2", "--goal-step", "3",
		"--axes", "x,y,z", "--points", "3", "--out", prefix}
	if _, err := captureStdout(t, func() error { return runEnergy(context.Background(), args) }); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(prefix + ".json")
	if err != nil {
		t.Fatal(err)
	}
	var l struct {
		Axes     []struct{ Name string } `json:"axes"`
		Energies []float64               `json:"energies"`
		Truth    *[7]float64             `json:"true_action"`
	}
	if err := json.Unmarshal(b, &l); err != nil {
		t.Fatal(err)
	}
	if len(l.Axes) != 3 || len(l.Energies) != 27 || l.Truth == nil {
		t.Errorf("landscape JSON: %d axes, %d energies, true action %v", len(l.Axes), len(l.Energies), l.Truth)
	}
	f, err := os.Open(prefix + ".png")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := png.Decode(f); err != nil {
		t.Errorf("landscape PNG: %v", err)
	}

	obs := writePNG(t, dir, "obs.png", 64, 64, 0)
	base := []string{"--config", demoConfig, "--image", obs, "--goal", obs, "--state", "0,0,0,0,0,0,0", "--out", prefix}
	for _, c := range []struct {
		extra []string
		want  string
	}{
		{[]string{"--axes", "x"}, "two or three"},
		{[]string{"--axes", "x,yaw"}, "\"yaw\""},
		{[]string{"--points", "1"}, "1 points"},
		{[]string{"--extent", "0"}, "positive extent"},
		{[]string{"--true-action", "1,2,3"}, "3 values, want 7"},
		{[]string{"--out", ""}, "--out is empty"},
		{[]string{"--out", filepath.Join(dir, "no", "such", "dir", "x")}, "no such file"},
		{[]string{"--chunk", "-2"}, "--chunk -2"},
	} {
		if err := runEnergy(context.Background(), append(append([]string(nil), base...), c.extra...)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("energy %v: %v, want %q", c.extra, err, c.want)
		}
	}
	if err := runEnergy(context.Background(), []string{"--config", demoConfig, "--image", obs, "--state", "0,0,0,0,0,0,0"}); err == nil ||
		!strings.Contains(err.Error(), "a goal is required") {
		t.Errorf("energy without a goal: %v", err)
	}
}

// TestPlanExitStatus checks the planning commands against the CLI conventions: a wrong command line
// exits 2 with the usage, a run-time failure 1, help 0.
func TestPlanExitStatus(t *testing.T) {
	dir := t.TempDir()
	obs := writePNG(t, dir, "obs.png", 64, 64, 0)
	for _, c := range []struct {
		args   []string
		code   int
		stderr string
	}{
		{[]string{"plan", "--image", obs, "--goal", obs}, 2, "vjepa-vk: plan: --config FILE is required"},
		{[]string{"plan", "--config", demoConfig, "--image", obs, "--goal", obs, "--state", "0,0,0,90,0,0,0"}, 2, "usage: vjepa-vk plan"},
		{[]string{"plan", "--config", demoConfig, "--image", obs, "--goal", filepath.Join(dir, "none.png"), "--state", "0,0,0,0,0,0,0"}, 1, "vjepa-vk: plan: open"},
		{[]string{"energy", "--config", demoConfig, "--axes", "x"}, 2, "usage: vjepa-vk energy"},
		{[]string{"bench", "--plan", "--config", demoConfig, "--preset", "fast"}, 2, "--preset \"fast\""},
	} {
		code, _, stderr := run(c.args...)
		if code != c.code || !strings.Contains(stderr, c.stderr) {
			t.Errorf("%v: exit %d, stderr %q; want %d and %q", c.args, code, stderr, c.code, c.stderr)
		}
	}
	if code, stdout, _ := run("help", "plan"); code != 0 || !strings.Contains(stdout, "--plan-memory") {
		t.Errorf("help plan: exit %d, %q", code, stdout)
	}
}
