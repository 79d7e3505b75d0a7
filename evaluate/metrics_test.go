package evaluate_test

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/vjepa-vk/vjepa-vk/evaluate"
	"github.com/vjepa-vk/vjepa-vk/plan"
)

// linearWorld is a synthetic world model on M-value representations: ẑ_{t+1} = ẑ_t + W·a_t (W [M, A]),
// the state ignored. Clips made by it are predicted exactly.
type linearWorld struct {
	w    [][]float64
	A, Z int
}

func newLinearWorld(m, A, Z int, seed uint64) *linearWorld {
	r := rand.New(rand.NewPCG(seed, 1))
	lw := &linearWorld{w: make([][]float64, m), A: A, Z: Z}
	for i := range lw.w {
		lw.w[i] = make([]float64, A)
		for k := range lw.w[i] {
			lw.w[i][k] = r.NormFloat64()
		}
	}
	return lw
}

func (lw *linearWorld) ActionWidth() int { return lw.A }
func (lw *linearWorld) StateWidth() int  { return lw.Z }

func (lw *linearWorld) step(z plan.Rep, a []float64) plan.Rep {
	out := make(plan.Rep, len(z))
	for i := range z {
		v := float64(z[i])
		for k, x := range a {
			v += lw.w[i][k] * x
		}
		out[i] = float32(v)
	}
	return out
}

func l1(a, b plan.Rep) float64 {
	s := 0.0
	for i := range a {
		s += math.Abs(float64(a[i]) - float64(b[i]))
	}
	return s / float64(len(a))
}

func (lw *linearWorld) ScoreEach(contexts []plan.Rep, goals [][]plan.Rep, states, actions [][][]float64, tf bool) ([][]float64, error) {
	out := make([][]float64, len(contexts))
	for s, z := range contexts {
		for h, a := range actions[s] {
			if tf && h > 0 {
				z = goals[s][h-1]
			}
			z = lw.step(z, a)
			out[s] = append(out[s], l1(z, goals[s][h]))
		}
	}
	return out, nil
}

func (lw *linearWorld) Energy(context, goal plan.Rep, start []float64) plan.Energy {
	return func(actions [][][]float64) ([]float64, error) {
		e := make([]float64, len(actions))
		for s, seq := range actions {
			z := context
			for _, a := range seq {
				z = lw.step(z, a)
			}
			e[s] = l1(z, goal)
		}
		return e, nil
	}
}

// linearClips are n clips of T frames that world makes from random starts with random actions: the
// xyz of DROID-like 7-D actions within ±4 cm, rotations 0, gripper deltas of −0.5, 0 or 0.5 (7-D), or
// any components within ±0.5.
func linearClips(world *linearWorld, n, T int, seed uint64) []evaluate.Clip {
	r := rand.New(rand.NewPCG(seed, 2))
	clips := make([]evaluate.Clip, n)
	for c := range clips {
		z := make(plan.Rep, len(world.w))
		for i := range z {
			z[i] = float32(r.NormFloat64())
		}
		clips[c].Frames = []plan.Rep{z}
		for t := range T {
			s := make([]float64, world.Z)
			for k := range s {
				s[k] = r.Float64()
			}
			clips[c].States = append(clips[c].States, s)
			if t == T-1 {
				break
			}
			a := make([]float64, world.A)
			for k := range a {
				a[k] = r.Float64() - 0.5
			}
			if world.A == 7 {
				for k := range 3 {
					a[k] *= 0.08
				}
				a[3], a[4], a[5], a[6] = 0, 0, 0, float64(r.IntN(3)-1)*0.5
			}
			clips[c].Actions = append(clips[c].Actions, a)
			z = world.step(z, a)
			clips[c].Frames = append(clips[c].Frames, z)
		}
	}
	return clips
}

// TestEvaluateLinearWorld scores clips made by a linear world with that world: every prediction is exact,
// the recorded action ranks first, and CEM infers it; a different world does worse on all of them.
func TestEvaluateLinearWorld(t *testing.T) {
	for _, A := range []int{7, 4} {
		world := newLinearWorld(48, A, 6, 3)
		clips := linearClips(world, 5, 4, 4)
		cem := plan.WrapperSettings()
		cem.Iterations, cem.Samples = 30, 200
		st := evaluate.Settings{Batch: 2, Distractors: 8, Inverse: 6, CEM: cem, Seed: 1}
		r, err := evaluate.Evaluate(world, "truth", clips, st)
		if err != nil {
			t.Fatal(err)
		}
		if len(r.TeacherForcing) != 3 || len(r.Rollout) != 3 {
			t.Fatalf("A=%d: %d teacher-forcing frames, %d horizons; want 3 and 3", A, len(r.TeacherForcing), len(r.Rollout))
		}
		for k := range 3 {
			// float32 frames accumulate rounding along the rollout only.
			if r.TeacherForcing[k] > 1e-6 || r.Rollout[k] > 1e-5 {
				t.Errorf("A=%d: errors %v, %v of the world that made the clips: want 0", A, r.TeacherForcing, r.Rollout)
			}
		}
		s := r.Sensitivity
		if s.Transitions != 15 || s.Recall1 != 1 || s.MeanRank != 0 || !(s.EnergyDistractors > s.EnergyRecorded) {
			t.Errorf("A=%d: sensitivity %+v: want the recorded action first every time", A, s)
		}
		inv := r.Inverse
		if inv.Transitions != 6 || !(inv.Cosine > 0.99) {
			t.Errorf("A=%d: inverse dynamics %+v", A, inv)
		}
		for k, e := range inv.ErrorAbs {
			if e > 2e-3 {
				t.Errorf("A=%d: inferred actions off by %g in component %d: %v", A, e, k, inv.ErrorAbs)
			}
		}
		if A == 7 {
			if inv.DROID == nil || inv.DROID.ErrorCM > 0.2 || inv.DROID.GripperAccuracy != 1 || !(inv.DROID.StepCM > 1) {
				t.Errorf("DROID inverse dynamics %+v", inv.DROID)
			}
		} else if inv.DROID != nil {
			t.Errorf("A=4: DROID figures %+v for non-DROID actions", inv.DROID)
		}
		wrong, err := evaluate.Evaluate(newLinearWorld(48, A, 6, 99), "wrong", clips, st)
		if err != nil {
			t.Fatal(err)
		}
		if !(wrong.Rollout[0] > 1e-2) || !(wrong.Sensitivity.MeanRank > 0) || !(mean(wrong.Inverse.ErrorAbs) > mean(inv.ErrorAbs)) {
			t.Errorf("A=%d: a different world scores rollout %v, rank %g, inverse %v", A, wrong.Rollout, wrong.Sensitivity.MeanRank, wrong.Inverse.ErrorAbs)
		}
	}
}

func mean(v []float64) float64 {
	s := 0.0
	for _, x := range v {
		s += x
	}
	return s / float64(len(v))
}

func TestBaselines(t *testing.T) {
	clips := []evaluate.Clip{
		{Frames: []plan.Rep{{0, 0}, {1, 0}, {1, 2}}, States: make([][]float64, 3), Actions: make([][]float64, 2)},
		{Frames: []plan.Rep{{0, 0}, {0, 0}, {3, 3}}, States: make([][]float64, 3), Actions: make([][]float64, 2)},
	}
	b, err := evaluate.Baselines(clips, 2)
	if err != nil {
		t.Fatal(err)
	}
	// Clip 0: |z1−z0| = 0.5, |z2−z1| = 1, |z2−z0| = 1.5; clip 1: 0, 3, 3.
	want := evaluate.Baseline{TeacherForcing: []float64{0.25, 2}, TeacherForcingMean: 1.125, Rollout: []float64{0.25, 2.25}}
	for i := range 2 {
		if b.TeacherForcing[i] != want.TeacherForcing[i] || b.Rollout[i] != want.Rollout[i] {
			t.Errorf("baselines %+v, want %+v", b, want)
		}
	}
	if b.TeacherForcingMean != want.TeacherForcingMean {
		t.Errorf("mean %v, want %v", b.TeacherForcingMean, want.TeacherForcingMean)
	}
	if _, err := evaluate.Baselines(clips, 3); err == nil || !strings.Contains(err.Error(), "horizon 3: want 1..2") {
		t.Errorf("Baselines(K = 3 of 3 frames): %v", err)
	}
}

func TestEvaluateBadInput(t *testing.T) {
	world := newLinearWorld(8, 4, 6, 3)
	clips := linearClips(world, 3, 3, 4)
	short := append([]evaluate.Clip(nil), clips...)
	short[1].Frames = short[1].Frames[:2]
	one := linearClips(world, 1, 2, 4)
	for _, c := range []struct {
		name  string
		world evaluate.Model
		clips []evaluate.Clip
		st    evaluate.Settings
		want  string
	}{
		{"no clips", world, nil, evaluate.Settings{}, "no clips"},
		{"ragged clips", world, short, evaluate.Settings{}, "clip 1 has 2 frames"},
		{"widths", newLinearWorld(8, 7, 7, 3), clips, evaluate.Settings{}, "6-D states and 4-D actions, the predictor takes 7-D and 7-D"},
		{"horizon", world, clips, evaluate.Settings{Horizon: 3}, "horizon 3: want 1..2"},
		{"negative", world, clips, evaluate.Settings{Distractors: -1}, "distractors -1"},
		{"one transition", world, one, evaluate.Settings{Distractors: 2}, "at least 2 transitions"},
		{"bad cem", world, clips, evaluate.Settings{Inverse: 2, CEM: plan.Settings{Samples: 5, Iterations: 1, TopK: 1}}, "topk 1"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, err := evaluate.Evaluate(c.world, "m", c.clips, c.st); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("Evaluate: %v, want %q", err, c.want)
			}
		})
	}
}
