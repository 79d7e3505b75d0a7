package plan_test

import (
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/vjepa-vk/vjepa-vk/data"
	"github.com/vjepa-vk/vjepa-vk/plan"
)

// TestCEMDROIDSpace: the explicit DROID space is the default one, draw for draw.
func TestCEMDROIDSpace(t *testing.T) {
	lw := newLinearWorld(16, []float64{0.01, 0.02, -0.03, 0, 0, 0, 0.5})
	st := plan.WrapperSettings()
	st.Samples, st.Iterations = 30, 3
	want, err := plan.CEM(st, lw.energy, plan.NewSeededNoise(9))
	if err != nil {
		t.Fatal(err)
	}
	sp := plan.DROIDSpace(st.MaxNorm, st.GripperClip)
	st.Space = &sp
	got, err := plan.CEM(st, lw.energy, plan.NewSeededNoise(9))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.Plan, want.Plan) || !reflect.DeepEqual(got.Iterations[2].Mean, want.Iterations[2].Mean) {
		t.Errorf("explicit DROID space: plan %v, default %v", got.Plan, want.Plan)
	}
}

// TestCEMSpaceSynthetic: on ẑ = z₀ + W·a with 5-D actions, CEM over a space of three searched components
// (one a gripper) lands within 1e-3 of the true action, keeps the fixed components, and forces the
// gripper from CloseGripper on.
func TestCEMSpaceSynthetic(t *testing.T) {
	truth := []float64{0.3, -0.7, 2, 0.4, 0}
	lw := newLinearWorld(40, truth)
	sp, err := plan.ParseSpace("0=-1:1/0.5,1=-1:1/0.5,3=-1:1", 5, 3, "2=2")
	if err != nil {
		t.Fatal(err)
	}
	st := plan.WrapperSettings()
	st.Horizon, st.Iterations, st.Space = 1, 40, &sp
	res, err := plan.CEM(st, lw.energy, plan.NewSeededNoise(2))
	if err != nil {
		t.Fatal(err)
	}
	for k := range truth {
		if d := math.Abs(res.Plan[0][k] - truth[k]); d > 1e-3 {
			t.Errorf("planned %v, true %v: component %d off by %.2g > 1e-3", res.Plan[0], truth, k, d)
		}
	}
	if len(res.Iterations[0].Mean[0]) != 3 {
		t.Errorf("mean of %d searched dims, want 3", len(res.Iterations[0].Mean[0]))
	}
	st.Horizon, st.Iterations, st.CloseGripper = 2, 1, 1
	res, err = plan.CEM(st, lw.energy, plan.NewSeededNoise(2))
	if err != nil {
		t.Fatal(err)
	}
	for _, seq := range res.Iterations[0].Samples {
		if seq[1][3] != 1 || seq[0][2] != 2 || seq[0][4] != 0 {
			t.Fatalf("candidate %v: want the gripper (3) forced to 1 at step 1, component 2 fixed at 2, component 4 at 0", seq)
		}
	}
}

func TestParseSpace(t *testing.T) {
	sp, err := plan.ParseSpace("0=-0.05:0.05/0.05,1=-0.05:0.05/0.05,2=-0.05:0.05/0.05,6=-0.75:0.75/1", 7, 6, "")
	if err != nil {
		t.Fatal(err)
	}
	if want := plan.DROIDSpace(0.05, 0.75); !reflect.DeepEqual(sp, want) {
		t.Errorf("ParseSpace(DROID's flag form) = %+v, want %+v", sp, want)
	}
	sp, err = plan.ParseSpace("1=0:2", 3, -1, "0=0.5")
	if err != nil || sp.Dims[0].Std != 1 || sp.Dims[0].Mean != 0 || sp.Fixed[0] != 0.5 || sp.Gripper != -1 {
		t.Errorf("ParseSpace(1=0:2, fixed 0=0.5) = %+v, %v: want std (hi−lo)/2 = 1, mean 0, fixed[0] 0.5", sp, err)
	}
	for _, c := range []struct {
		spec, fixed string
		width, grip int
		want        string
	}{
		{"0=-1", "", 4, -1, "want INDEX=LO:HI"},
		{"a=-1:1", "", 4, -1, `index "a"`},
		{"0=-1:x", "", 4, -1, `"x" is not a number`},
		{"0=1:-1", "", 4, -1, "bounds [1, -1]"},
		{"4=-1:1", "", 4, -1, "component 4, want 0..3"},
		{"0=-1:1,0=-2:2", "", 4, -1, "searched twice"},
		{"0=-1:1/0", "", 4, -1, "std 0"},
		{"0=-1:1", "", 4, 2, "gripper (component 2) is not searched"},
		{"0=-1:1", "0=3", 4, -1, "component 0 is searched"},
		{"0=-1:1", "7=3", 4, -1, "INDEX in 0..3"},
		{"0=-1:1", "1=y", 4, -1, `"y" is not a number`},
	} {
		if _, err := plan.ParseSpace(c.spec, c.width, c.grip, c.fixed); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("ParseSpace(%q, %d, %d, %q): %v, want %q", c.spec, c.width, c.grip, c.fixed, err, c.want)
		}
	}
}

func TestSpaceFromActions(t *testing.T) {
	acts := [][]float64{{0.1, 0, -1}, {-0.3, 0, 1}, {0.2, 0, 0.5}}
	sp, err := plan.SpaceFromActions(acts)
	if err != nil {
		t.Fatal(err)
	}
	// Component 1 never moves: it is not searched.
	if sp.Width != 3 || len(sp.Dims) != 2 || sp.Dims[0].Index != 0 || sp.Dims[1].Index != 2 {
		t.Fatalf("space %+v: want components 0 and 2 searched", sp)
	}
	if d := sp.Dims[0]; d.Lo != -0.3 || d.Hi != 0.2 || math.Abs(d.Std-math.Sqrt(0.07)) > 1e-12 {
		t.Errorf("component 0: %+v, want [-0.3, 0.2] with std sqrt(0.07)", d)
	}
	if _, err := plan.SpaceFromActions(acts[:1]); err == nil {
		t.Error("a space from one action")
	}
	if _, err := plan.SpaceFromActions([][]float64{{1, 2}, {1, 2}}); err == nil || !strings.Contains(err.Error(), "constant") {
		t.Errorf("a space from constant actions: %v", err)
	}
}

func TestStateRule(t *testing.T) {
	s := []float64{0.4, 0.1, 0.3, 3.1, 0.2, -0.5, 0.9}
	a := []float64{0.01, -0.02, 0.03, 0.1, 0, 0.05, 0.3}
	var ds data.State
	var da data.Action
	copy(ds[:], s)
	copy(da[:], a)
	want := data.ComputeNewPose(ds, da)
	if got := plan.StatePose.Next(s, a); !reflect.DeepEqual(got, want[:]) {
		t.Errorf("pose: %v, want compute_new_pose %v", got, want)
	}
	if got := plan.StateHold.Next(s, a); !reflect.DeepEqual(got, s) {
		t.Errorf("hold: %v, want %v", got, s)
	}
	if got := plan.StateAdd.Next([]float64{1, 2}, []float64{0.5, -1}); !reflect.DeepEqual(got, []float64{1.5, 1}) {
		t.Errorf("add: %v", got)
	}
	states := plan.StateAdd.Rollout([]float64{0}, [][]float64{{1}, {2}, {3}})
	if !reflect.DeepEqual(states, [][]float64{{0}, {1}, {3}}) {
		t.Errorf("add rollout: %v, want the state before each action", states)
	}
	if plan.DefaultStateRule(7, 7) != plan.StatePose || plan.DefaultStateRule(6, 4) != plan.StateHold {
		t.Error("DefaultStateRule: want pose for 7/7, hold otherwise")
	}
	for _, c := range []struct {
		s    []float64
		w    int
		rule plan.StateRule
		want string
	}{
		{[]float64{1, 2}, 3, plan.StateHold, "2 values, the predictor takes 3"},
		{[]float64{1, math.NaN()}, 2, plan.StateHold, "state[1] = NaN"},
		{[]float64{0, 0, 0, 90, 0, 0, 0}, 7, plan.StatePose, "degrees?"},
	} {
		if err := plan.CheckStateOf(c.s, c.w, c.rule); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("CheckStateOf(%v, %d, %s): %v, want %q", c.s, c.w, c.rule, err, c.want)
		}
	}
	if err := plan.CheckStateOf([]float64{0, 0, 0, 90, 0, 0, 0}, 7, plan.StateHold); err != nil {
		t.Errorf("a 7-D state that is not a DROID pose, under hold: %v", err)
	}
}
