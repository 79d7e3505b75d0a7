package plan_test

import (
	"image"
	"image/color"
	"math"
	"strings"
	"testing"

	"github.com/vjepa-vk/vjepa-vk/data"
	"github.com/vjepa-vk/vjepa-vk/model"
	"github.com/vjepa-vk/vjepa-vk/plan"
	"github.com/vjepa-vk/vjepa-vk/vk"
	"github.com/vjepa-vk/vjepa-vk/vk/vktest"
)

// tinyWorld is the demo's shapes: a 2-block predictor on a 4×4 grid and a 2-block encoder of 64×64 images.
func tinyWorld(t *testing.T, d *vk.Device, opts plan.Options) *plan.WorldModel {
	t.Helper()
	pcfg := model.PredictorConfig{EmbedDim: 64, Dim: 96, Depth: 2, Heads: 2, Grid: 4, MLPRatio: 4}
	ecfg := model.NewEncoderConfig(64, 2, 2)
	p, err := model.LoadPredictor(d, pcfg, model.InitPredictor(pcfg, 3), model.FP32)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Free)
	e, err := model.LoadEncoder(d, ecfg, model.InitEncoder(ecfg, 4), model.FP32)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Free)
	w, err := plan.NewWorldModel(p, e, 64, 2, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Close)
	return w
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
	start := data.State{0.45, -0.05, 0.32, 3.1, 0.1, -0.3, 0.2}
	st := plan.Settings{Samples: 8, Iterations: 2, TopK: 3, Horizon: 2, MaxNorm: 0.05, MomentumMean: 0.15, MomentumStd: 0.15,
		MomentumMeanGripper: 0.15, MomentumStdGripper: 0.15, GripperClip: 0.75, GripperRound: 0.25, CloseGripper: -1}
	var seen [][]data.Action
	energy := w.Energy(ctx, goal, start)
	res, err := plan.CEM(st, func(a [][]data.Action) ([]float64, error) {
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
	acts := [][]data.Action{{{}, {}}}
	for _, c := range []struct {
		name  string
		ctx   plan.Rep
		goals []plan.Rep
		acts  [][]data.Action
		want  string
	}{
		{"no candidates", rep, []plan.Rep{rep}, nil, "no candidates"},
		{"short rep", rep[:5], []plan.Rep{rep}, acts, "representation 0 has 5 values"},
		{"goal count", rep, []plan.Rep{rep, rep, rep}, acts, "3 goals for 2 steps"},
		{"ragged", rep, []plan.Rep{rep}, [][]data.Action{{{}, {}}, {{}}}, "candidate 1 has 1 actions"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, err := w.Score(c.ctx, c.goals, data.State{}, c.acts); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("Score: %v, want an error containing %q", err, c.want)
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
	if _, err := plan.NewWorldModel(lp, nil, 0, 0, plan.Options{}); err == nil || !strings.Contains(err.Error(), "4-D actions and 6-D states") {
		t.Errorf("NewWorldModel on a 4-D action predictor: %v", err)
	}
}

func TestCheckState(t *testing.T) {
	if err := plan.CheckState(data.State{0.4, 0, 0.3, -math.Pi, 0.2, 3.14, 1}); err != nil {
		t.Errorf("valid state: %v", err)
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
