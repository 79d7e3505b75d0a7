package plan_test

import (
	"math"
	"strings"
	"testing"

	"github.com/vjepa-vk/vjepa-vk/data/lerobot"
	"github.com/vjepa-vk/vjepa-vk/model"
	"github.com/vjepa-vk/vjepa-vk/plan"
	"github.com/vjepa-vk/vjepa-vk/vk/vktest"
)

// testNormalization is LeRobot statistics of 4-D states and actions; rows > 1 is action_reduce sum.
func testNormalization(mode string, rows int) *lerobot.Normalization {
	st := func(mean, std, lo, hi []float64) lerobot.NormalizedFeature {
		return lerobot.NormalizedFeature{FeatureStats: lerobot.FeatureStats{Mean: mean, Std: std, Min: lo, Max: hi, Count: 100}}
	}
	return &lerobot.Normalization{Mode: mode, Source: "meta/stats.json", ActionRows: rows,
		State:  st([]float64{0.3, -0.2, 1.5, 0}, []float64{0.5, 2, 0.25, 1}, []float64{-1, -3, 1, -2}, []float64{1.5, 2, 2.5, 0.5}),
		Action: st([]float64{0.01, -0.02, 0, 0.1}, []float64{0.04, 0.5, 1.5, 0.2}, []float64{-0.1, -1, -2, 0}, []float64{0.1, 1.5, 3, 1})}
}

// normalized returns the model inputs of raw actions [S][H][A] under n.
func normalized(n *lerobot.Normalization, actions [][][]float64) [][][]float64 {
	out := make([][][]float64, len(actions))
	for s, seq := range actions {
		for _, a := range seq {
			v := make([]float64, len(a))
			n.NormalizeAction(v, a)
			out[s] = append(out[s], v)
		}
	}
	return out
}

// TestWorldModelNormalization: a world model with Options.Normalization takes raw states and actions
// and scores them exactly as one without it scores the normalized vectors (bit for bit: the same float32
// inputs reach the same predictor), for both of LeRobot's modes and a summed action; its energy gradient
// is with respect to the raw actions (finite differences, through the add rule's raw states too).
func TestWorldModelNormalization(t *testing.T) {
	d := vktest.Device(t)
	cfg := model.PredictorConfig{EmbedDim: 32, Dim: 64, Depth: 1, Heads: 2, Grid: 2, MLPRatio: 4, ActionDim: 4, StateDim: 4}
	p := randomPredictor(t, d, cfg)
	open := func(opts plan.Options) *plan.WorldModel {
		w, err := plan.NewWorldModel(p, nil, 0, 0, opts)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(w.Close)
		return w
	}
	raw := open(plan.Options{StateRule: plan.StateHold})
	n := raw.RepSize()
	ctx := plan.Rep(vktest.RandN(1, n))
	goal := make(plan.Rep, n) // ±10 from every prediction: the finite differences below stay on one side of each kink
	for i, v := range vktest.RandN(2, n) {
		goal[i] = float32(math.Copysign(10, float64(v))) + v
	}
	start := []float64{0.4, 1.2, 1.6, -0.3}
	actions := [][][]float64{{{0.02, 0.3, -1, 0.5}, {-0.05, 0.1, 2, 0.2}}, {{0, 0, 0, 0}, {0.08, -0.6, 0.5, 0.9}}}
	for _, c := range []struct {
		mode string
		rows int
	}{{"mean_std", 0}, {"min_max", 0}, {"mean_std", 4}, {"min_max", 3}} {
		norm := testNormalization(c.mode, c.rows)
		w := open(plan.Options{StateRule: plan.StateHold, Normalization: norm})
		if w.Normalization() != norm {
			t.Fatalf("Normalization() = %v, want the option's", w.Normalization())
		}
		got, err := w.Score(ctx, []plan.Rep{goal}, start, actions)
		if err != nil {
			t.Fatal(err)
		}
		z := make([]float64, 4)
		norm.NormalizeState(z, start)
		want, err := raw.Score(ctx, []plan.Rep{goal}, z, normalized(norm, actions))
		if err != nil {
			t.Fatal(err)
		}
		for s := range want {
			for h := range want[s] {
				if got[s][h] != want[s][h] {
					t.Errorf("mode=%s,rows=%d: candidate %d step %d: energy %v on raw inputs, %v on normalized ones without normalization",
						c.mode, c.rows, s, h, got[s][h], want[s][h])
				}
			}
		}
		// The normalized inputs are not the raw ones: the energies differ from the raw model's on raw inputs.
		plain, err := raw.Score(ctx, []plan.Rep{goal}, start, actions)
		if err != nil {
			t.Fatal(err)
		}
		if plain[0][0] == got[0][0] {
			t.Errorf("mode=%s: normalization changed no energy (%v)", c.mode, got[0][0])
		}
	}

	// The gradient with respect to the raw actions, states rolled in raw units (add rule) and normalized.
	w := open(plan.Options{StateRule: plan.StateAdd, Normalization: testNormalization("mean_std", 2)})
	ge := w.EnergyGradient(ctx, goal, start)
	e, grads, err := ge(actions)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := w.Energy(ctx, goal, start)(actions)
	if err != nil {
		t.Fatal(err)
	}
	vktest.Close(t, "energy gradient's energies vs Energy", vktest.F32(e), ref, 1e-5, 1e-6)
	checkEnergyGradient(t, w, ctx, goal, start, actions, grads, []float64{0.04, 0.5, 1.5, 0.2}) // each component's std

	// Statistics of other widths than the predictor's are refused.
	bad := testNormalization("mean_std", 0)
	bad.State.Mean = bad.State.Mean[:3]
	if _, err := plan.NewWorldModel(p, nil, 0, 0, plan.Options{Normalization: bad}); err == nil ||
		!strings.Contains(err.Error(), "3-D states and 4-D actions, the predictor takes 4-D and 4-D") {
		t.Errorf("normalization of 3-D states for a 4-D predictor: %v", err)
	}
}
