package plan_test

import (
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/vjepa-vk/vjepa-vk/model"
	"github.com/vjepa-vk/vjepa-vk/plan"
	"github.com/vjepa-vk/vjepa-vk/vk"
	"github.com/vjepa-vk/vjepa-vk/vk/vktest"
)

// gradient is the linear world's energy with its gradient: E = mean_i |w_i·(Σ_h a_h − a*)|, dE/da_h =
// mean_i sign(·)·w_i for every h.
func (lw *linearWorld) gradient(actions [][][]float64) ([]float64, [][][]float64, error) {
	e, err := lw.energy(actions)
	if err != nil {
		return nil, nil, err
	}
	grads := make([][][]float64, len(actions))
	for s, seq := range actions {
		sum := make([]float64, len(lw.truth))
		for _, a := range seq {
			for k := range a {
				sum[k] += a[k]
			}
		}
		g := make([]float64, len(lw.truth))
		for _, row := range lw.w {
			d := 0.0
			for k := range row {
				d += row[k] * (sum[k] - lw.truth[k])
			}
			for k := range row {
				g[k] += math.Copysign(1, d) * row[k] / float64(len(lw.w))
			}
		}
		for range seq {
			grads[s] = append(grads[s], append([]float64(nil), g...))
		}
	}
	return e, grads, nil
}

// TestGDSynthetic: on ẑ = z₀ + W·a, gradient descent from zeros lands near the true action, keeps
// fixed components, holds a forced gripper, stays in the box, and reports the lowest energy with a trace
// that never rises.
func TestGDSynthetic(t *testing.T) {
	truth := []float64{0.031, -0.017, 0.044, 0, 0, 0, 0.6}
	lw := newLinearWorld(64, truth)
	sp := plan.DROIDSpace(0.05, 0.75)
	st := plan.DefaultGDSettings()
	st.Steps, st.Starts = 300, 3
	res, err := plan.GD(st, sp, lw.gradient, nil, 1)
	if err != nil {
		t.Fatal(err)
	}
	for k := range truth {
		// Adam's fixed step leaves the iterate circling the optimum of a piecewise-linear energy within
		// about one step (0.1 std: 5 mm for xyz, 0.1 for the gripper).
		if d := math.Abs(res.Plan[0][k] - truth[k]); d > 0.1*[]float64{0.05, 0.05, 0.05, 1, 1, 1, 1}[k] {
			t.Errorf("planned %v, want %v: component %d off by %.2g", res.Plan[0], truth, k, d)
		}
	}
	if len(res.Trace) != st.Steps+1 || res.Trace[len(res.Trace)-1].Energy != res.Energy {
		t.Fatalf("trace of %d steps ending at %v, result %v", len(res.Trace), res.Trace[len(res.Trace)-1], res.Energy)
	}
	for i := 1; i < len(res.Trace); i++ {
		if res.Trace[i].Energy > res.Trace[i-1].Energy || res.Trace[i].Passes != res.Trace[i-1].Passes+st.Starts*3 {
			t.Fatalf("trace step %d: %+v after %+v", i, res.Trace[i], res.Trace[i-1])
		}
	}
	if !(res.Energy < res.Trace[0].Energy/10) {
		t.Errorf("energy %g from %g: the descent did not converge", res.Energy, res.Trace[0].Energy)
	}

	// From CEM's plan, two steps, the gripper forced from step 1.
	st = plan.DefaultGDSettings()
	st.Horizon, st.Steps, st.CloseGripper = 2, 5, 1
	init := [][]float64{{0.01, 0, 0, 0, 0, 0, 0.3}, {0, 0.01, 0, 0, 0, 0, 0.2}}
	res, err = plan.GD(st, sp, lw.gradient, init, 1)
	if err != nil {
		t.Fatal(err)
	}
	if res.Plan[1][6] != 1 || res.Plan[0][3] != 0 || len(res.Plan) != 2 {
		t.Errorf("plan %v: want the gripper held at 1 in step 1 and rotations 0", res.Plan)
	}
	// A truth far outside the box: the descent pushes against the bounds and stays on them.
	far := newLinearWorld(16, []float64{0.5, -0.5, 0.5, 0, 0, 0, 3})
	res, err = plan.GD(plan.DefaultGDSettings(), sp, far.gradient, nil, 1)
	if err != nil {
		t.Fatal(err)
	}
	for k, d := range sp.Dims {
		if v := res.Plan[0][d.Index]; v < d.Lo || v > d.Hi {
			t.Errorf("dim %d: %v outside [%g, %g]", k, v, d.Lo, d.Hi)
		}
	}
}

func TestGDBadInput(t *testing.T) {
	lw := newLinearWorld(8, make([]float64, 7))
	sp := plan.DROIDSpace(0.05, 0.75)
	for _, c := range []struct {
		name string
		edit func(*plan.GDSettings)
		init [][]float64
		want string
	}{
		{"steps", func(s *plan.GDSettings) { s.Steps = 0 }, nil, "steps 0"},
		{"lr", func(s *plan.GDSettings) { s.LR = 0 }, nil, "learning rate 0"},
		{"beta", func(s *plan.GDSettings) { s.Beta2 = 1 }, nil, "betas"},
		{"init length", func(*plan.GDSettings) {}, [][]float64{{0}, {0}}, "2 actions for horizon 1"},
		{"init width", func(*plan.GDSettings) {}, [][]float64{{0, 0}}, "2 components, want 7"},
	} {
		st := plan.DefaultGDSettings()
		c.edit(&st)
		if _, err := plan.GD(st, sp, lw.gradient, c.init, 0); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
	nan := func(a [][][]float64) ([]float64, [][][]float64, error) {
		_, g, _ := lw.gradient(a)
		return []float64{math.NaN()}, g, nil
	}
	if _, err := plan.GD(plan.DefaultGDSettings(), sp, nan, nil, 0); err == nil || !strings.Contains(err.Error(), "NaN") {
		t.Errorf("NaN energy: %v", err)
	}
}

// TestStateRuleJacobians checks the state rules' Jacobians: identities for hold and add, and for pose
// xyz and the gripper's identity blocks, the rotation block's identity at the zero pose, and a finite
// derivative where roll sits on the ±π cut.
func TestStateRuleJacobians(t *testing.T) {
	s := []float64{0.4, 0.1, 0.3, 0, 0, 0, 0.5}
	a := []float64{0.01, -0.02, 0.03, 0, 0, 0, 0.1}
	js, ja := plan.StatePose.Jacobians(s, a)
	for i := range 7 {
		for j := range 7 {
			want := 0.0
			if i == j {
				want = 1
			}
			if math.Abs(js[i][j]-want) > 1e-8 || math.Abs(ja[i][j]-want) > 1e-8 {
				t.Fatalf("pose at the zero rotation: ∂next[%d]/∂s[%d] = %g, ∂/∂a = %g; want %g", i, j, js[i][j], ja[i][j], want)
			}
		}
	}
	cut := []float64{0.4, 0.1, 0.3, math.Pi - 1e-7, 0.2, -0.3, 0.5}
	js, _ = plan.StatePose.Jacobians(cut, []float64{0, 0, 0, 1e-3, 0, 0, 0})
	for i := 3; i < 6; i++ {
		for j := range 7 {
			if math.Abs(js[i][j]) > 10 {
				t.Errorf("pose on the roll cut: ∂next[%d]/∂s[%d] = %g: the wrap leaked into the derivative", i, j, js[i][j])
			}
		}
	}
	js, ja = plan.StateAdd.Jacobians([]float64{1, 2}, []float64{3, 4})
	if js[0][0] != 1 || js[0][1] != 0 || ja[1][1] != 1 || ja[1][0] != 0 {
		t.Errorf("add: %v, %v", js, ja)
	}
	js, ja = plan.StateHold.Jacobians([]float64{1, 2}, []float64{3, 4})
	if js[1][1] != 1 || ja[0][0] != 0 {
		t.Errorf("hold: %v, %v", js, ja)
	}
}

// checkEnergyGradient compares grads, the energy gradient of the two-step candidates actions, with central
// differences of w.Energy, component by component; scale[k] is component k's natural size (a
// normalization's std, or 1): the step is 1e-2·scale[k], and errors are relative to the larger of the
// difference and 1e-2/scale[k], the largest gradient such a component can have (f32 energies differ by
// ~1e-7 over a step). It reports the worst relative error.
func checkEnergyGradient(t *testing.T, w *plan.WorldModel, ctx, goal plan.Rep, start []float64, actions, grads [][][]float64, scale []float64) float64 {
	t.Helper()
	worst := 0.0
	for s := range actions {
		for h := range 2 {
			for k := range scale {
				eps := 1e-2 * scale[k]
				at := func(delta float64) float64 {
					moved := [][][]float64{{slices.Clone(actions[s][0]), slices.Clone(actions[s][1])}}
					moved[0][h][k] += delta
					e, err := w.Energy(ctx, goal, start)(moved)
					if err != nil {
						t.Fatal(err)
					}
					return e[0]
				}
				fd := (at(eps) - at(-eps)) / (2 * eps)
				err := math.Abs(fd-grads[s][h][k]) / math.Max(math.Abs(fd), 1e-2/scale[k])
				worst = max(worst, err)
				if err > 2e-2 {
					t.Errorf("candidate %d: dE/da[%d][%d] = %.6g, finite difference %.6g", s, h, k, grads[s][h][k], fd)
				}
			}
		}
	}
	return worst
}

// randomPredictor loads a predictor of cfg with random weights, freed when the test ends.
func randomPredictor(t *testing.T, d *vk.Device, cfg model.PredictorConfig) *model.Predictor {
	t.Helper()
	p, err := model.LoadPredictor(d, cfg, model.InitPredictor(cfg, 3), model.FP32)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Free)
	return p
}

// TestWorldModelEnergyGradient checks the gradient planner's callback on the tiny world model: its
// energies are Energy's (the inference path), and its action gradients, which include what flows
// through compute_new_pose's states, match central differences of Energy.
func TestWorldModelEnergyGradient(t *testing.T) {
	d := vktest.Device(t)
	w := tinyWorld(t, d, plan.Options{})
	ctx, err := w.Encode(testImage(64, 64, 1))
	if err != nil {
		t.Fatal(err)
	}
	// A goal ±10 away from every predicted value: no |ẑ − goal| term changes sign within the finite
	// differences, so they converge (the energy's kinks are l1_energy_backward's own test).
	goal := make(plan.Rep, w.RepSize())
	for i, v := range vktest.RandN(5, len(goal)) {
		goal[i] = float32(math.Copysign(10, float64(v))) + v
	}
	start := []float64{0.45, -0.05, 0.32, 3.1, 0.1, -0.3, 0.2}
	actions := [][][]float64{
		{{0.03, -0.02, 0.01, 0.05, -0.1, 0.2, 0.3}, {-0.01, 0.04, 0.02, 0.1, 0.02, -0.05, -0.2}},
		{{0.5, 0.1, -0.3, 0, 0, 0, 0.1}, {0.2, -0.4, 0.1, 0.3, 0, 0, 0}},
	}
	ge := w.EnergyGradient(ctx, goal, start)
	e, grads, err := ge(actions)
	if err != nil {
		t.Fatal(err)
	}
	want, err := w.Energy(ctx, goal, start)(actions)
	if err != nil {
		t.Fatal(err)
	}
	vktest.Close(t, "gradient planner's energies vs Energy", vktest.F32(e), want, 1e-5, 1e-6)
	worst := checkEnergyGradient(t, w, ctx, goal, start, actions, grads, []float64{1, 1, 1, 1, 1, 1, 1})
	t.Logf("worst relative difference to finite differences: %.2e", worst)
	if w.Timings.Gradients != 1 {
		t.Errorf("Timings.Gradients = %d, want 1", w.Timings.Gradients)
	}
	if _, _, err := ge([][][]float64{{{0}}}); err == nil || !strings.Contains(err.Error(), "1 components, the predictor takes 7") {
		t.Errorf("a 1-D action: %v", err)
	}

	// Descending it from zeros lowers the energy.
	st := plan.DefaultGDSettings()
	st.Steps = 4
	res, err := plan.GD(st, plan.DROIDSpace(0.05, 0.75), ge, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !(res.Energy < res.Trace[0].Energy) {
		t.Errorf("gradient descent: energy %v from %v", res.Energy, res.Trace[0].Energy)
	}
}

func TestPlanStepBadInput(t *testing.T) {
	d := vktest.Device(t)
	w := tinyWorld(t, d, plan.Options{})
	rep := make(plan.Rep, w.RepSize())
	start := make([]float64, 7)
	st := plan.WrapperSettings()
	if _, err := w.PlanStep("sgd", st, plan.DefaultGDSettings(), rep, rep, start, 0); err == nil || !strings.Contains(err.Error(), `planner "sgd"`) {
		t.Errorf("PlanStep(sgd): %v", err)
	}
	sp := plan.BoxSpace(4, 0.1)
	st.Space = &sp
	if _, err := w.PlanStep(plan.PlannerGD, st, plan.DefaultGDSettings(), rep, rep, start, 0); err == nil || !strings.Contains(err.Error(), "4-D, the predictor takes 7-D") {
		t.Errorf("PlanStep with a 4-D space: %v", err)
	}
}
