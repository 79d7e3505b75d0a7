package serve_test

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/vjepa-vk/vjepa-vk/data/lerobot"
	"github.com/vjepa-vk/vjepa-vk/plan"
	"github.com/vjepa-vk/vjepa-vk/plan/plantest"
	"github.com/vjepa-vk/vjepa-vk/serve"
	"github.com/vjepa-vk/vjepa-vk/vk/vktest"
)

// TestServeNormalized serves a world model whose adapter was trained on normalized vectors: a request's
// raw state and the searched raw actions are normalized for the predictor, and the answer is raw. It is
// the answer of the same model without normalization asked with the normalized state over the
// normalized search box, scaled back (action means 0, so the zero initial mean is the same point).
// GET /info gives the statistics, each answer the mode.
func TestServeNormalized(t *testing.T) {
	d := vktest.Device(t)
	actionStd := []float64{2, 0.5, 4, 1, 1, 1, 1}
	n := &lerobot.Normalization{Mode: "mean_std", Source: lerobot.StatsFile,
		State: lerobot.NormalizedFeature{Column: "observation.state", FeatureStats: lerobot.FeatureStats{
			Mean: []float64{0.4, 0, 0.3, 0, 0, 0, 0}, Std: []float64{0.2, 0.5, 0.1, 2, 2, 2, 1}}},
		Action: lerobot.NormalizedFeature{Column: "action", FeatureStats: lerobot.FeatureStats{Mean: make([]float64, 7), Std: actionStd}}}
	space := func(scaled bool) *plan.Space {
		spec := ""
		for k, b := range []float64{0.05, 0.02, 0.1} {
			s := 1.0
			if scaled {
				s = actionStd[k] + 1e-8
			}
			spec += fmt.Sprintf("%d=%.17g:%.17g/%.17g,", k, -b/s, b/s, b/2/s)
		}
		sp, err := plan.ParseSpace(spec[:len(spec)-1], 7, -1, "")
		if err != nil {
			t.Fatal(err)
		}
		return &sp
	}
	// The hold rule: the states a pose rule rolls in raw units are not the normalized ones rolled.
	answer := func(norm *lerobot.Normalization, state []float64) (serve.PlanResponse, serve.Info) {
		w := plantest.TinyWorld(t, d, plan.Options{StateRule: plan.StateHold, Normalization: norm})
		_, hs := newServer(t, w, func(c *serve.Config) {
			c.Settings.Samples, c.Settings.Iterations, c.Settings.TopK, c.Settings.Space = 8, 2, 3, space(norm == nil)
			c.Normalization = w.Normalization()
		})
		return planOK(t, hs.URL, planBody(t, map[string]any{"state": state})), getInfo(t, hs.URL)
	}
	z := make([]float64, 7)
	n.NormalizeState(z, droidState)
	got, info := answer(n, droidState)
	want, plainInfo := answer(nil, z)
	if got.Normalization != "mean_std" || want.Normalization != "" || info.Normalization == nil || info.Normalization.Source != lerobot.StatsFile ||
		plainInfo.Normalization != nil {
		t.Fatalf("normalization: answer %q, /info %+v; without: %q, %+v", got.Normalization, info.Normalization, want.Normalization, plainInfo.Normalization)
	}
	if math.Abs(got.Energy-want.Energy) > 1e-6*want.Energy {
		t.Errorf("energy %v, %v planning the normalized vectors", got.Energy, want.Energy)
	}
	for h := range want.Plan {
		for k := range 7 {
			if w := want.Plan[h][k] * (actionStd[k] + 1e-8); math.Abs(got.Plan[h][k]-w) > 1e-9*(1+math.Abs(w)) {
				t.Fatalf("plan[%d] = %v (raw), the normalized plan %v × std is not it", h, got.Plan[h], want.Plan[h])
			}
		}
	}

	// Statistics of other widths than the model's are refused.
	bad := *n
	bad.Action.Std = actionStd[:4]
	bad.Action.Mean = make([]float64, 4)
	cfg := serve.DefaultConfig()
	cfg.Normalization = &bad
	if _, err := serve.New(&fakeModel{}, cfg); err == nil || !strings.Contains(err.Error(), "normalization of 7-D states and 4-D actions, the model takes 7-D and 7-D") {
		t.Errorf("serve.New with 4-D action statistics for a 7-D model: %v", err)
	}
}
