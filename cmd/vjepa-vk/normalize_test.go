package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vjepa-vk/vjepa-vk/data"
	"github.com/vjepa-vk/vjepa-vk/data/lerobot"
)

// The statistics of the normalized adapter in these tests (configs/lerobot-demo.yaml's widths: 6-D
// states, 4-D actions). The action means are 0, so that a raw search box centred on 0 is a normalized box
// centred on 0 and CEM's zero initial mean is the same point in both: a search in raw units is then the
// normalized search scaled, candidate for candidate.
var (
	normStateMean = []float64{0.1, 0.4, 0, -2.2, 0, 0.4}
	normStateStd  = []float64{0.3, 0.1, 0.02, 0.1, 0.5, 0.4}
	normActionStd = []float64{2, 2, 4, 0.5}
)

func testNormalization() *lerobot.Normalization {
	f := func(col string, mean, std []float64) lerobot.NormalizedFeature {
		return lerobot.NormalizedFeature{Column: col, FeatureStats: lerobot.FeatureStats{Mean: mean, Std: std, Count: 72}}
	}
	return &lerobot.Normalization{Mode: "mean_std", Source: lerobot.StatsFile, ActionRows: 4,
		State: f("observation.state", normStateMean, normStateStd), Action: f("action", make([]float64, 4), normActionStd)}
}

// normalizedAdapters writes the same PEFT adapter twice: with normalization.json, and without.
func normalizedAdapters(t *testing.T) (normed, plain string) {
	normed, plain = writeAdapter(t, lerobotConfig, 5), writeAdapter(t, lerobotConfig, 5)
	b, err := json.Marshal(testNormalization())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(normed, lerobot.NormalizationFile), b, 0o644); err != nil {
		t.Fatal(err)
	}
	return normed, plain
}

// vector formats v for a flag, exactly.
func vector(v []float64) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = fmt.Sprintf("%.17g", x)
	}
	return strings.Join(s, ",")
}

// scaledSearch is --search over every component: raw ±lo with std; divided by each component's
// normalization scale (std + 1e-8) when normalized.
func scaledSearch(bound, std []float64, normalized bool) string {
	var parts []string
	for k := range bound {
		s := 1.0
		if normalized {
			s = normActionStd[k] + 1e-8
		}
		parts = append(parts, fmt.Sprintf("%d=%.17g:%.17g/%.17g", k, -bound[k]/s, bound[k]/s, std[k]/s))
	}
	return strings.Join(parts, ",")
}

// near reports whether raw = normalized·scale to rounding (the two searches see float32 inputs that
// agree to the last bit; only the float64 scaling differs).
func near(raw, normalized float64, k int) bool {
	want := normalized * (normActionStd[k] + 1e-8)
	return math.Abs(raw-want) <= 1e-9*(1+math.Abs(want))
}

// normalizedInputs writes an observation and a goal image into a fresh dir and the two adapters of
// normalizedAdapters, and returns them with a raw state and its normalized twin z.
func normalizedInputs(t *testing.T) (dir, obs, goal, normed, plain string, state, z []float64) {
	dir = t.TempDir()
	obs, goal = writePNG(t, dir, "obs.png", 64, 64, 0), writePNG(t, dir, "goal.png", 64, 64, 50)
	normed, plain = normalizedAdapters(t)
	state = []float64{0.25, 0.35, 0.01, -2.3, 0.2, 0.9}
	z = make([]float64, 6)
	testNormalization().NormalizeState(z, state)
	return dir, obs, goal, normed, plain, state, z
}

// TestPlanNormalized plans with an adapter trained on normalized vectors: the state given in raw units
// and every candidate action are normalized on their way into the predictor, and the plan comes back in
// raw units. It is the plan of the same adapter without normalization.json given the normalized state
// and the normalized search box, scaled back: same energies, actions × (std + 1e-8).
func TestPlanNormalized(t *testing.T) {
	_, obs, goal, normed, plain, state, z := normalizedInputs(t)
	bound, std := []float64{0.2, 0.1, 0.4, 0.05}, []float64{0.1, 0.05, 0.2, 0.02}
	planJSON := func(adapter string, state []float64, search string) planReport {
		args := append([]string{"--config", lerobotConfig, "--adapter", adapter, "--image", obs, "--goal", goal, "--state", vector(state),
			"--search", search, "--json"}, tinyCEM...)
		var rep planReport
		commandJSON(t, runPlan, args, &rep)
		return rep
	}
	got := planJSON(normed, state, scaledSearch(bound, std, false))
	want := planJSON(plain, z, scaledSearch(bound, std, true))
	if got.Normalization == nil || got.Normalization.Mode != "mean_std" || got.Normalization.ActionRows != 4 || want.Normalization != nil {
		t.Fatalf("normalization in the reports: %+v with normalization.json, %+v without", got.Normalization, want.Normalization)
	}
	if vector(got.State) != vector(state) {
		t.Errorf("report's state %v, want the raw %v", got.State, state)
	}
	if math.Abs(got.Energy-want.Energy) > 1e-6*want.Energy {
		t.Errorf("plan energy %v, %v planning the normalized vectors", got.Energy, want.Energy)
	}
	for h := range want.Plan {
		for k := range want.Plan[h] {
			if !near(got.Plan[h][k], want.Plan[h][k], k) {
				t.Fatalf("plan[%d] = %v in raw units, the normalized plan is %v: want it × (std + 1e-8) %v", h, got.Plan[h], want.Plan[h], normActionStd)
			}
		}
	}
	if math.Abs(got.Plan[0][2]) < 1e-3 {
		t.Errorf("raw action %v: component 2 too small to tell raw from normalized", got.Plan[0])
	}

	// The text output names the normalization.
	args := append([]string{"--config", lerobotConfig, "--adapter", normed, "--image", obs, "--goal", goal, "--state", vector(state)}, tinyCEM...)
	out, err := captureStdout(t, func() error { return runPlan(context.Background(), args) })
	if err != nil || !strings.Contains(out, "normalization: mean_std with meta/stats.json's statistics of observation.state and action, each action a sum of 4 rows") {
		t.Errorf("plan: %v, printed %q", err, out)
	}
}

// TestEnergyNormalized: energy's grid, minimum and true action are raw actions, normalized for the
// predictor: the landscape of the normalized grid (extent / scale) without normalization.json.
func TestEnergyNormalized(t *testing.T) {
	dir, obs, goal, normed, plain, state, z := normalizedInputs(t)
	type landscape struct {
		Energies      []float64              `json:"energies"`
		Min           []float64              `json:"min_action"`
		Truth         []float64              `json:"true_action"`
		Normalization *lerobot.Normalization `json:"normalization"`
	}
	run := func(adapter string, state []float64, extent float64, name string) landscape {
		prefix := filepath.Join(dir, name)
		args := []string{"--config", lerobotConfig, "--adapter", adapter, "--image", obs, "--goal", goal, "--state", vector(state),
			"--axes", "0,1", "--points", "5", "--extent", fmt.Sprintf("%.17g", extent), "--true-action", "0.1,0,0,0", "--out", prefix}
		if _, err := captureStdout(t, func() error { return runEnergy(context.Background(), args) }); err != nil {
			t.Fatal(err)
		}
		var l landscape
		b, err := os.ReadFile(prefix + ".json")
		if err == nil {
			err = json.Unmarshal(b, &l)
		}
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	got := run(normed, state, 0.3, "normed")
	want := run(plain, z, 0.3/(2+1e-8), "plain") // components 0 and 1 have std 2
	if got.Normalization == nil || got.Normalization.Mode != "mean_std" || want.Normalization != nil {
		t.Errorf("normalization in the JSON: %+v, and %+v without normalization.json", got.Normalization, want.Normalization)
	}
	for i := range want.Energies {
		if math.Abs(got.Energies[i]-want.Energies[i]) > 1e-6*want.Energies[i] {
			t.Fatalf("energy %d: %v on the raw grid, %v on the normalized grid", i, got.Energies[i], want.Energies[i])
		}
	}
	for k := range 2 {
		if !near(got.Min[k], want.Min[k], k) {
			t.Errorf("minimum at %v (raw), %v (normalized)", got.Min, want.Min)
		}
	}
	if vector(got.Truth) != "0.10000000000000001,0,0,0" {
		t.Errorf("true action %v, want the raw 0.1,0,0,0", got.Truth)
	}
}

// TestPlanNormalizationBadInput: a normalization.json that does not fit the predictor, or is damaged, is
// an error naming the file and the field, before any device work.
func TestPlanNormalizationBadInput(t *testing.T) {
	dir := t.TempDir()
	obs := writePNG(t, dir, "obs.png", 64, 64, 0)
	good, err := json.Marshal(testNormalization())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, old, new string
		sets           []string
		want           string
	}{
		{"state width", `"mean":[0.1,0.4,0,-2.2,0,0.4],"std":[0.3,`, `"mean":[0.7,0.1,0.4,0,-2.2,0,0.4],"std":[0.3,0.3,`, nil, "normalization.json: state.mean has 7 values, the predictor takes 6-D states"},
		{"action width", `"std":[2,2,4,0.5]`, `"std":[2,2,4,0.5,1]`, nil, "normalization.json: action.mean has 4 values, action.std 5"},
		{"mode", `"mode":"mean_std"`, `"mode":"zscore"`, nil, `normalization.json: mode "zscore": want mean_std or min_max`},
		{"sum without action_rows", `"action_rows":4`, `"action_rows":0`, []string{"data.lerobot.normalize=mean_std"},
			"normalization.json: no action_rows, but config ../../configs/lerobot-demo.yaml sums the normalized actions"},
	} {
		t.Run(c.name, func(t *testing.T) {
			adapter := writeAdapter(t, lerobotConfig, 5)
			bad := strings.Replace(string(good), c.old, c.new, 1)
			if bad == string(good) {
				t.Fatalf("%s is not in %s", c.old, good)
			}
			if err := os.WriteFile(filepath.Join(adapter, lerobot.NormalizationFile), []byte(bad), 0o644); err != nil {
				t.Fatal(err)
			}
			args := []string{"--config", lerobotConfig, "--adapter", adapter, "--image", obs, "--goal", obs, "--state", "0,0,0,0,0,0"}
			for _, s := range c.sets {
				args = append(args, "--set", s)
			}
			for _, cmd := range []func(context.Context, []string) error{runPlan, runEnergy} {
				if err := cmd(context.Background(), args); err == nil || !strings.Contains(err.Error(), c.want) ||
					!strings.Contains(err.Error(), filepath.Join(adapter, lerobot.NormalizationFile)) {
					t.Errorf("%v, want an error naming %s and containing %q", err, filepath.Join(adapter, lerobot.NormalizationFile), c.want)
				}
			}
		})
	}
}

// TestPlanLeRobotEpisode plans and sweeps energies on a step of the LeRobot demo: the observation and goal
// are the episode's frames, the state its row, and the true action the one a clip of the config holds
// from that step (the sum of the 4 rows to the next sampled frame), all raw even when the config
// normalizes (the adapter's normalization is the world model's business).
func TestPlanLeRobotEpisode(t *testing.T) {
	requireFFmpeg(t)
	const source = "../../testdata/lerobot_demo"
	normed, _ := normalizedAdapters(t)
	// What the dataset holds at episode 1, step 3: the raw row and the 4 action rows summed.
	ds, err := openFormat(context.Background(), source, "lerobot", "train", lerobot.Options{Mapping: lerobot.Mapping{ActionReduce: "sum"}})
	if err != nil {
		t.Fatal(err)
	}
	defer ds.(*lerobot.Dataset).Close()
	ep, err := data.NthFormatEpisode(context.Background(), ds, 1)
	if err != nil {
		t.Fatal(err)
	}
	var wantState, wantAction []float64
	i := 0
	ep.(data.RowVectors).EachRow(data.ClipConfig{FPS: 4, SourceFPS: ds.(*lerobot.Dataset).FPS(), Frames: 2}, func(s, a []float64) {
		if i == 3 {
			wantState, wantAction = s, a
		}
		i++
	})
	for _, sets := range [][]string{nil, {"--set", "data.lerobot.normalize=mean_std"}} {
		args := append(append([]string{"--config", lerobotConfig, "--adapter", normed, "--episode", source, "--episode-index", "1", "--step", "3",
			"--goal-step", "11", "--json"}, sets...), tinyCEM...)
		var rep planReport
		commandJSON(t, runPlan, args, &rep)
		if rep.Episode == nil || rep.Episode.Step != 3 || rep.Episode.GoalStep != 11 || !strings.Contains(rep.Episode.FilePath, "episode_index=1") ||
			vector(rep.State) != vector(wantState) || vector(rep.Episode.NextAction) != vector(wantAction) || rep.Normalization == nil {
			t.Errorf("plan %v on the LeRobot demo: state %v, episode %+v; want state %v, next action %v", sets, rep.State, rep.Episode, wantState, wantAction)
		}
	}
	prefix := filepath.Join(t.TempDir(), "energy")
	args := []string{"--config", lerobotConfig, "--adapter", normed, "--episode", source, "--episode-index", "1", "--step", "3", "--goal-step", "7",
		"--axes", "0,1", "--points", "3", "--out", prefix}
	if _, err := captureStdout(t, func() error { return runEnergy(context.Background(), args) }); err != nil {
		t.Fatal(err)
	}
	var l struct {
		Truth []float64 `json:"true_action"`
	}
	b, err := os.ReadFile(prefix + ".json")
	if err == nil {
		err = json.Unmarshal(b, &l)
	}
	if err != nil || vector(l.Truth) != vector(wantAction) {
		t.Errorf("energy on the LeRobot demo: true action %v (%v), want %v", l.Truth, err, wantAction)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--step", "999"}, "--step 999: episode 1"},
		{[]string{"--step", "3", "--camera", "observation.state"}, `"observation.state" is not a camera`},
		{[]string{"--step", "3", "--episode-index", "99"}, "episode 99 of"},
	} {
		args := append([]string{"--config", lerobotConfig, "--episode", source, "--goal-step", "4", "--episode-index", "1"}, c.args...)
		if err := runPlan(context.Background(), append(args, tinyCEM...)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("plan %v: %v, want %q", c.args, err, c.want)
		}
	}
}

// TestEvalNormalized evaluates on the LeRobot demo with a config that normalizes: the clips keep their
// raw vectors (the base scores the same as without data.lerobot.normalize), the adapter with
// normalization.json normalizes them for its predictor (and says so), the same adapter without it does
// not (other errors).
func TestEvalNormalized(t *testing.T) {
	requireFFmpeg(t)
	normed, plain := normalizedAdapters(t)
	report := func(extra ...string) evalJSON {
		args := append([]string{"--config", lerobotConfig, "--set", "data.source=../../testdata/lerobot_demo", "--clips", "2", "--distractors", "2",
			"--inverse", "1", "--inverse-samples", "8", "--inverse-iterations", "2", "--out", filepath.Join(t.TempDir(), "eval"), "--json"}, extra...)
		var r evalJSON
		commandJSON(t, runEval, args, &r)
		return r
	}
	got := report("--set", "data.lerobot.normalize=mean_std", "--adapter", normed, "--adapter", plain)
	raw := report("--inverse", "0", "--distractors", "0")
	if len(got.Models) != 3 || got.Models[0].Normalization != "" || got.Models[1].Normalization != "mean_std" || got.Models[2].Normalization != "" {
		t.Fatalf("models %+v: want base and the plain adapter without normalization, the other mean_std", got.Models)
	}
	if fmt.Sprint(got.Models[0].TF) != fmt.Sprint(raw.Models[0].TF) {
		t.Errorf("base teacher forcing %v with data.lerobot.normalize, %v without: the clips must stay raw", got.Models[0].TF, raw.Models[0].TF)
	}
	if fmt.Sprint(got.Models[1].TF) == fmt.Sprint(got.Models[2].TF) {
		t.Errorf("the adapter scores %v with its normalization and without it: normalization.json was not applied", got.Models[1].TF)
	}
}
