package plan_test

import (
	"fmt"
	"image"
	"image/color"
	"math"
	"strings"
	"testing"

	"github.com/vjepa-vk/vjepa-vk/data"
	"github.com/vjepa-vk/vjepa-vk/model"
	"github.com/vjepa-vk/vjepa-vk/plan"
	"github.com/vjepa-vk/vjepa-vk/plan/plantest"
	"github.com/vjepa-vk/vjepa-vk/vk"
	"github.com/vjepa-vk/vjepa-vk/vk/vktest"
)

// tinyWorld is the demo's shapes: a 2-block predictor on a 4×4 grid and a 2-block encoder of 64×64 images.
func tinyWorld(t *testing.T, d *vk.Device, opts plan.Options) *plan.WorldModel {
	return plantest.TinyWorld(t, d, opts)
}

// testImage is a w×h image with a pattern that differs everywhere (so that a wrong crop shows).
func testImage(w, h, seed int) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, color.RGBA{uint8(x*7 + y*3 + seed), uint8(x * y), uint8(255 - x - 2*y + seed), 255})
		}
	}
	return img
}

// TestWorldModelEncode: a non-square image encodes as its centre square (planning §2), and different
// images encode differently.
func TestWorldModelEncode(t *testing.T) {
	d := vktest.Device(t)
	w := tinyWorld(t, d, plan.Options{})
	wide := testImage(80, 64, 0)
	crop := image.NewRGBA(image.Rect(0, 0, 64, 64))
	for y := range 64 {
		for x := range 64 {
			crop.Set(x, y, wide.At(x+8, y))
		}
	}
	a, err := w.Encode(wide)
	if err != nil {
		t.Fatal(err)
	}
	b, err := w.Encode(crop)
	if err != nil {
		t.Fatal(err)
	}
	if len(a) != w.RepSize() {
		t.Fatalf("rep of %d values, want %d", len(a), w.RepSize())
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			t.Fatalf("80×64 image and its centre 64×64 crop encode differently at %d: %v vs %v", i, a[i], b[i])
		}
	}
	c, err := w.Encode(testImage(64, 64, 40))
	if err != nil {
		t.Fatal(err)
	}
	if same := func() bool {
		for i := range a {
			if a[i] != c[i] {
				return false
			}
		}
		return true
	}(); same {
		t.Fatal("two different images have the same representation")
	}
	if w.Timings.Encodes != 3 {
		t.Errorf("Timings.Encodes = %d, want 3", w.Timings.Encodes)
	}
	// A clip of the two images as the data pipeline delivers it (square crop, resized, normalized):
	// each frame encodes as the image alone.
	pre, err := data.NewPreprocessor(data.ImageConfig{Height: 64, Width: 64, MinRatio: 1, MaxRatio: 1})
	if err != nil {
		t.Fatal(err)
	}
	frames := make([]float32, 3*2*64*64)
	pre.FrameImage(frames, 2, 0, wide)
	pre.FrameImage(frames, 2, 1, testImage(64, 64, 40))
	reps, err := w.EncodeClip(frames, 2)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []plan.Rep{a, c} {
		// Two frames in one pass instead of one: the GEMM tiles may round differently.
		vktest.Close(t, fmt.Sprintf("EncodeClip frame %d vs Encode", i), reps[i], vktest.F64(want), 1e-5, 1e-6)
	}
	if _, err := w.EncodeClip(frames[:10], 2); err == nil || !strings.Contains(err.Error(), "want [3, 2, 64, 64]") {
		t.Errorf("EncodeClip of a short buffer: %v", err)
	}
}

// TestWorldModelPlan plans on the tiny model end to end: Energy is Score's last step, the chunk size does
// not change the energies, and CEM runs on the world model.
func TestWorldModelPlan(t *testing.T) {
	d := vktest.Device(t)
	w := tinyWorld(t, d, plan.Options{})
	w2 := tinyWorld(t, d, plan.Options{Chunk: 3, NoKVCache: true})
	ctx, err := w.Encode(testImage(64, 64, 1))
	if err != nil {
		t.Fatal(err)
	}
	goal, err := w.Encode(testImage(64, 64, 90))
	if err != nil {
		t.Fatal(err)
	}
	start := []float64{0.45, -0.05, 0.32, 3.1, 0.1, -0.3, 0.2}
	st := plan.Settings{Samples: 8, Iterations: 2, TopK: 3, Horizon: 2, MaxNorm: 0.05, MomentumMean: 0.15, MomentumStd: 0.15,
		MomentumMeanGripper: 0.15, MomentumStdGripper: 0.15, GripperClip: 0.75, GripperRound: 0.25, CloseGripper: -1}
	var seen [][][]float64
	energy := w.Energy(ctx, goal, start)
	res, err := plan.CEM(st, func(a [][][]float64) ([]float64, error) {
		seen = a
		return energy(a)
	}, plan.NewSeededNoise(5))
	if err != nil {
		t.Fatal(err)
	}
	all, err := w.Score(ctx, []plan.Rep{goal}, start, seen)
	if err != nil {
		t.Fatal(err)
	}
	other, err := w2.Score(ctx, []plan.Rep{goal, goal}, start, seen)
	if err != nil {
		t.Fatal(err)
	}
	last := res.Iterations[len(res.Iterations)-1]
	for s := range seen {
		if all[s][1] != last.Energies[s] {
			t.Errorf("candidate %d: Energy %v, Score's last step %v", s, last.Energies[s], all[s][1])
		}
		for h := range 2 {
			if math.Abs(all[s][h]-other[s][h]) > 2e-6*all[s][h] {
				t.Errorf("candidate %d step %d: %v with the cache in one chunk, %v without in chunks of 3", s, h, all[s][h], other[s][h])
			}
		}
	}
	if c, _ := w2.Chunk(8, 2); c != 3 {
		t.Errorf("Chunk = %d, want the forced 3", c)
	}
	if w.Timings.Rollouts != 3 {
		t.Errorf("Timings.Rollouts = %d, want 3", w.Timings.Rollouts)
	}
}

func TestWorldModelBadInput(t *testing.T) {
	d := vktest.Device(t)
	w := tinyWorld(t, d, plan.Options{})
	rep := make(plan.Rep, w.RepSize())
	a7 := make([]float64, 7)
	acts := [][][]float64{{a7, a7}}
	s7 := make([]float64, 7)
	for _, c := range []struct {
		name  string
		ctx   plan.Rep
		goals []plan.Rep
		start []float64
		acts  [][][]float64
		want  string
	}{
		{"no candidates", rep, []plan.Rep{rep}, s7, nil, "no candidates"},
		{"short rep", rep[:5], []plan.Rep{rep}, s7, acts, "representation 0 has 5 values"},
		{"goal count", rep, []plan.Rep{rep, rep, rep}, s7, acts, "3 goals for 2 steps"},
		{"ragged", rep, []plan.Rep{rep}, s7, [][][]float64{{a7, a7}, {a7}}, "candidate 1 has 1 actions"},
		{"action width", rep, []plan.Rep{rep}, s7, [][][]float64{{a7, a7[:4]}}, "candidate 0 action 1 has 4 components, the predictor takes 7"},
		{"state width", rep, []plan.Rep{rep}, s7[:6], acts, "a 6-D start state"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, err := w.Score(c.ctx, c.goals, c.start, c.acts); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("Score: %v, want an error containing %q", err, c.want)
			}
		})
	}
	for _, c := range []struct {
		name     string
		contexts []plan.Rep
		goals    [][]plan.Rep
		states   [][][]float64
		want     string
	}{
		{"context count", []plan.Rep{rep, rep}, [][]plan.Rep{{rep, rep}}, [][][]float64{{s7, s7}}, "2 contexts"},
		{"goals per step", []plan.Rep{rep}, [][]plan.Rep{{rep}}, [][][]float64{{s7, s7}}, "candidate 0 has 1 goals and 2 states for 2 actions"},
		{"short goal", []plan.Rep{rep}, [][]plan.Rep{{rep, rep[:3]}}, [][][]float64{{s7, s7}}, "goal 1 of candidate 0 has 3 values"},
		{"state width", []plan.Rep{rep}, [][]plan.Rep{{rep, rep}}, [][][]float64{{s7, s7[:2]}}, "state 1 of candidate 0 has 2 values"},
	} {
		t.Run("each/"+c.name, func(t *testing.T) {
			if _, err := w.ScoreEach(c.contexts, c.goals, c.states, acts, false); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("ScoreEach: %v, want an error containing %q", err, c.want)
			}
		})
	}
	if _, err := plan.NewWorldModel(w.Pred, w.Enc, 64, 2, plan.Options{Chunk: -1}); err == nil {
		t.Error("NewWorldModel accepted chunk -1")
	}
	lcfg := model.PredictorConfig{EmbedDim: 64, Dim: 96, Depth: 1, Heads: 2, Grid: 4, MLPRatio: 4, ActionDim: 4, StateDim: 6}
	lp, err := model.LoadPredictor(d, lcfg, model.InitPredictor(lcfg, 3), model.FP32)
	if err != nil {
		t.Fatal(err)
	}
	defer lp.Free()
	for rule, want := range map[plan.StateRule]string{plan.StatePose: "needs 7-D states and actions", plan.StateAdd: "as wide as the state", "fly": `"fly"`} {
		if _, err := plan.NewWorldModel(lp, nil, 0, 0, plan.Options{StateRule: rule}); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("NewWorldModel on a 4-D action, 6-D state predictor with rule %s: %v, want %q", rule, err, want)
		}
	}
}

// TestWorldModelNon7D plans on a predictor with a LeRobot robot's own widths (4-D actions, 6-D states):
// the default state rule holds the state, CEM searches the space it is given, and ScoreEach with one
// clip per candidate matches Score candidate by candidate.
func TestWorldModelNon7D(t *testing.T) {
	d := vktest.Device(t)
	cfg := model.PredictorConfig{EmbedDim: 32, Dim: 64, Depth: 1, Heads: 2, Grid: 2, MLPRatio: 4, ActionDim: 4, StateDim: 6}
	p := randomPredictor(t, d, cfg)
	w, err := plan.NewWorldModel(p, nil, 0, 0, plan.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if w.StateRule() != plan.StateHold || w.ActionWidth() != 4 || w.StateWidth() != 6 {
		t.Fatalf("world model: rule %s, widths %d/%d; want hold, 4, 6", w.StateRule(), w.ActionWidth(), w.StateWidth())
	}
	n := w.RepSize()
	ctx, goal := plan.Rep(vktest.RandN(1, n)), plan.Rep(vktest.RandN(2, n))
	start := []float64{0.1, 0.2, 0.3, 0.4, 0.5, 0.6}
	sp, err := plan.ParseSpace("0=-0.5:0.5/0.2,2=-1:1,3=0:1", 4, 3, "1=0.25")
	if err != nil {
		t.Fatal(err)
	}
	st := plan.Settings{Samples: 12, Iterations: 2, TopK: 3, Horizon: 2, MomentumMean: 0.15, MomentumStd: 0.15,
		MomentumMeanGripper: 0.15, MomentumStdGripper: 0.15, GripperRound: 0.25, CloseGripper: -1, Space: &sp}
	var seen [][][]float64
	energy := w.Energy(ctx, goal, start)
	res, err := plan.CEM(st, func(a [][][]float64) ([]float64, error) {
		seen = a
		return energy(a)
	}, plan.NewSeededNoise(5))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Plan) != 2 || len(res.Plan[0]) != 4 || res.Plan[0][1] != 0.25 {
		t.Errorf("plan %v: want 2 steps of 4-D actions with component 1 fixed at 0.25", res.Plan)
	}
	for _, seq := range seen {
		for _, a := range seq {
			if a[0] < -0.5 || a[0] > 0.5 || a[3] < 0 || a[3] > 1 || a[1] != 0.25 {
				t.Fatalf("candidate action %v outside the space", a)
			}
		}
	}
	all, err := w.Score(ctx, []plan.Rep{goal}, start, seen)
	if err != nil {
		t.Fatal(err)
	}
	// The same candidates as independent clips (their own copy of the context and goal, held states).
	S := len(seen)
	contexts, goals, states := make([]plan.Rep, S), make([][]plan.Rep, S), make([][][]float64, S)
	for s := range S {
		contexts[s], goals[s], states[s] = ctx, []plan.Rep{goal, goal}, [][]float64{start, start}
	}
	each, err := w.ScoreEach(contexts, goals, states, seen, false)
	if err != nil {
		t.Fatal(err)
	}
	for s := range S {
		for h := range 2 {
			if math.Abs(all[s][h]-each[s][h]) > 2e-6*all[s][h] {
				t.Errorf("candidate %d step %d: Score %v, ScoreEach %v", s, h, all[s][h], each[s][h])
			}
		}
	}
}

func TestCheckState(t *testing.T) {
	if err := plan.CheckState(data.State{0.4, 0, 0.3, -math.Pi, 0.2, 3.14, 1}); err != nil {
		t.Errorf("valid state: %v", err)
	}
	// A roll of π as DROID records it (float32, 8.7e-8 above π).
	if err := plan.CheckState(data.State{0.4, 0, 0.3, float64(float32(math.Pi)), 0, -float64(float32(math.Pi)), 0}); err != nil {
		t.Errorf("π in float32: %v", err)
	}
	for _, c := range []struct {
		s    data.State
		want string
	}{
		{data.State{0.4, 0, 0.3, 180, 0, 0, 0}, "degrees? 180° is 3.1416 rad"},
		{data.State{math.NaN(), 0, 0, 0, 0, 0, 0}, "state[0] = NaN"},
		{data.State{0, math.Inf(1), 0, 0, 0, 0, 0}, "state[1] = +Inf"},
		{data.State{0, 0, 0, 0, 0, 0, 1.5}, "gripper is in [0, 1]"},
	} {
		if err := plan.CheckState(c.s); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("CheckState(%v): %v, want %q", c.s, err, c.want)
		}
	}
}
