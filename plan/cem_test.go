package plan_test

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/vjepa-vk/vjepa-vk/plan"
)

// linearWorld is a synthetic world model ẑ = z₀ + W·Σ_h a_h with W [M, A] and the goal z₀ + W·a*: the
// energy mean|ẑ − z_g| = mean|W·(Σa − a*)| is 0 exactly at the true action and grows linearly away from it.
type linearWorld struct {
	w     [][]float64
	truth []float64
	calls int
}

func newLinearWorld(m int, truth []float64) *linearWorld {
	r := rand.New(rand.NewPCG(7, 8))
	lw := &linearWorld{truth: truth, w: make([][]float64, m)}
	for i := range lw.w {
		lw.w[i] = make([]float64, len(truth))
		for k := range lw.w[i] {
			lw.w[i][k] = r.NormFloat64()
		}
	}
	return lw
}

func (lw *linearWorld) energy(actions [][][]float64) ([]float64, error) {
	lw.calls++
	e := make([]float64, len(actions))
	for s, seq := range actions {
		sum := make([]float64, len(lw.truth))
		for _, a := range seq {
			for k := range a {
				sum[k] += a[k]
			}
		}
		for _, row := range lw.w {
			d := 0.0
			for k := range row {
				d += row[k] * (sum[k] - lw.truth[k])
			}
			e[s] += math.Abs(d) / float64(len(lw.w))
		}
	}
	return e, nil
}

// TestCEMSyntheticWorld: on ẑ = z₀ + W·a, the official CEM rules land within 1e-3 of the true action
// (xyz inside the box, the gripper inside the clip and above the rounding threshold).
func TestCEMSyntheticWorld(t *testing.T) {
	truth := []float64{0.031, -0.017, 0.044, 0, 0, 0, 0.6}
	lw := newLinearWorld(64, truth)
	st := plan.WrapperSettings()
	st.Horizon, st.Iterations = 1, 30
	res, err := plan.CEM(st, lw.energy, plan.NewSeededNoise(1))
	if err != nil {
		t.Fatal(err)
	}
	for k := range truth {
		if d := math.Abs(res.Plan[0][k] - truth[k]); d > 1e-3 {
			t.Errorf("planned action %v, true %v: component %d off by %.2g > 1e-3", res.Plan[0], truth, k, d)
		}
	}
	if lw.calls != st.Iterations {
		t.Errorf("energy called %d times, want once per iteration (%d)", lw.calls, st.Iterations)
	}
	first, last := res.Iterations[0], res.Iterations[len(res.Iterations)-1]
	if !(last.EnergyBest < first.EnergyBest/10) {
		t.Errorf("best energy went from %g to %g: the search did not converge", first.EnergyBest, last.EnergyBest)
	}
}

// TestCEMRules checks the sampling rules on a constant energy: clipping to the box and the gripper clip,
// zero rotations, forced gripper from CloseGripper on, the elites' statistics with the momenta, and the
// gripper rounding of the result.
func TestCEMRules(t *testing.T) {
	st := plan.Settings{Samples: 50, Iterations: 2, TopK: 5, Horizon: 3, MaxNorm: 0.05, MomentumMean: 0.25,
		MomentumStd: 0.95, MomentumMeanGripper: 0.15, MomentumStdGripper: 0.15, GripperClip: 0.75, GripperRound: 0.25,
		CloseGripper: 1}
	// Energy = index: the elites are always candidates 0..4.
	energy := func(a [][][]float64) ([]float64, error) {
		e := make([]float64, len(a))
		for i := range e {
			e[i] = float64(i)
		}
		return e, nil
	}
	res, err := plan.CEM(st, energy, plan.NewSeededNoise(3))
	if err != nil {
		t.Fatal(err)
	}
	for i, it := range res.Iterations {
		for s, seq := range it.Samples {
			for h, a := range seq {
				for k := range 3 {
					if math.Abs(a[k]) > st.MaxNorm {
						t.Fatalf("iteration %d candidate %d step %d: %v outside the box", i, s, h, a)
					}
				}
				if a[3] != 0 || a[4] != 0 || a[5] != 0 {
					t.Fatalf("rotation deltas %v, want 0", a[3:6])
				}
				if h >= 1 && a[6] != 1 {
					t.Fatalf("step %d gripper %g, want forced 1", h, a[6])
				}
				if h < 1 && math.Abs(a[6]) > st.GripperClip {
					t.Fatalf("gripper %g outside ±%g", a[6], st.GripperClip)
				}
			}
		}
		if want := []int{0, 1, 2, 3, 4}; !equalInts(it.Elites, want) {
			t.Fatalf("elites %v, want %v", it.Elites, want)
		}
	}
	// The update of iteration 1 from iteration 0's distribution, recomputed here.
	it, prev := res.Iterations[1], res.Iterations[0]
	for h := range st.Horizon {
		var m, ss float64
		for _, i := range it.Elites {
			m += it.Samples[i][h][0] / 5
		}
		for _, i := range it.Elites {
			ss += (it.Samples[i][h][0] - m) * (it.Samples[i][h][0] - m)
		}
		wantMean := m*0.75 + prev.Mean[h][0]*0.25
		wantStd := math.Sqrt(ss/4)*0.05 + prev.Std[h][0]*0.95
		if math.Abs(it.Mean[h][0]-wantMean) > 1e-15 || math.Abs(it.Std[h][0]-wantStd) > 1e-15 {
			t.Errorf("step %d: mean %g std %g, want %g %g", h, it.Mean[h][0], it.Std[h][0], wantMean, wantStd)
		}
		// Forced grippers enter the statistics: their mean is 1, the std 0.
		if h >= 1 && math.Abs(it.Mean[h][3]-(0.85+0.15*prev.Mean[h][3])) > 1e-15 {
			t.Errorf("step %d gripper mean %g with forced grippers", h, it.Mean[h][3])
		}
	}
	for h, p := range res.Plan {
		g := res.Iterations[1].Mean[h][3]
		if want := map[bool]float64{true: g, false: 0}[math.Abs(g) >= 0.25]; p[6] != want {
			t.Errorf("plan step %d gripper %g, mean %g: want %g", h, p[6], g, want)
		}
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestCEMBadInput(t *testing.T) {
	ok := func(a [][][]float64) ([]float64, error) { return make([]float64, len(a)), nil }
	for _, c := range []struct {
		name   string
		edit   func(*plan.Settings)
		energy plan.Energy
		want   string
	}{
		{"topk 1", func(s *plan.Settings) { s.TopK = 1 }, ok, "topk 1"},
		{"topk above samples", func(s *plan.Settings) { s.TopK = 500 }, ok, "topk 500"},
		{"zero horizon", func(s *plan.Settings) { s.Horizon = 0 }, ok, "horizon 0"},
		{"negative maxnorm", func(s *plan.Settings) { s.MaxNorm = -1 }, ok, "maxnorm -1"},
		{"momentum above 1", func(s *plan.Settings) { s.MomentumStd = 1.5 }, ok, "momentum 1.5"},
		{"bad space", func(s *plan.Settings) {
			s.Space = &plan.Space{Width: 4, Dims: []plan.SearchDim{{Index: 5, Lo: -1, Hi: 1, Std: 1}}}
		}, ok, "component 5"},
		{"short energies", func(*plan.Settings) {}, func(a [][][]float64) ([]float64, error) { return []float64{1}, nil }, "returned 1 energies"},
		{"NaN energy", func(*plan.Settings) {}, func(a [][][]float64) ([]float64, error) {
			e := make([]float64, len(a))
			e[3] = math.NaN()
			return e, nil
		}, "candidate 3 is NaN"},
	} {
		t.Run(c.name, func(t *testing.T) {
			st := plan.WrapperSettings()
			c.edit(&st)
			_, err := plan.CEM(st, c.energy, plan.NewSeededNoise(1))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("CEM: %v, want an error containing %q", err, c.want)
			}
		})
	}
	short := &plan.RecordedNoise{Values: make([]float32, 8), Iterations: 1, H: 1, Samples: 2}
	st := plan.WrapperSettings()
	if _, err := plan.CEM(st, ok, short); err == nil || !strings.Contains(err.Error(), "recorded noise") {
		t.Errorf("CEM with too few recorded draws: %v", err)
	}
}
