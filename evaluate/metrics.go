package evaluate

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/vjepa-vk/vjepa-vk/model"
	"github.com/vjepa-vk/vjepa-vk/plan"
)

// Model is the world model the metrics score (plan.WorldModel): it rolls clips out and scores
// candidate actions.
type Model interface {
	ActionWidth() int
	StateWidth() int
	// ScoreEach rolls independent clips from their own contexts with the given states and actions and
	// returns energies[s][h] against goals[s][h] (teacher-forced: frame h ≥ 1 is goals[s][h−1]).
	ScoreEach(contexts []plan.Rep, goals [][]plan.Rep, states, actions [][][]float64, teacherForcing bool) ([][]float64, error)
	// Energy scores candidate action sequences from context and state start against goal.
	Energy(context, goal plan.Rep, start []float64) plan.Energy
}

// Settings say what Evaluate measures.
type Settings struct {
	Horizon     int // K rollout steps, at most T−1; 0: T−1
	Batch       int // clips per rollout run (device memory grows with it); 0: 8
	Distractors int // N distractor actions per transition for action sensitivity; 0 skips it
	Inverse     int // transitions for inverse dynamics; 0 skips it
	// CEM is inverse dynamics' search (its Horizon is forced to 1). Without a Space it searches DROID's
	// space for 7-D actions and, for other widths, the range of the recorded actions (plan.SpaceFromActions).
	CEM  plan.Settings
	Seed uint64
}

// Result is one world model's scores on a set of clips.
type Result struct {
	Name string `json:"name"` // "base" or the adapter
	// Normalization is the mode (mean_std, min_max) the model normalized the clips' raw states and
	// actions with (an adapter trained with data.lerobot.normalize); "": none.
	Normalization string `json:"normalization,omitempty"`
	// TeacherForcing [T−1] is the mean L1 error of frame t = 1..T−1 predicted from the true frames before it.
	TeacherForcing     []float64 `json:"teacher_forcing_l1"`
	TeacherForcingMean float64   `json:"teacher_forcing_l1_mean"`
	// Rollout [K] is the mean L1 error at horizon k = 1..K of the rollout from frame 0.
	Rollout     []float64    `json:"rollout_l1"`
	Sensitivity *Sensitivity `json:"action_sensitivity,omitempty"`
	Inverse     *Inverse     `json:"inverse_dynamics,omitempty"`
	Seconds     float64      `json:"seconds"`
}

// Baseline is the error of copying the last observed frame: what a model that predicts no change scores.
type Baseline struct {
	TeacherForcing     []float64 `json:"teacher_forcing_l1"` // [T−1] mean |z_t − z_{t−1}|
	TeacherForcingMean float64   `json:"teacher_forcing_l1_mean"`
	Rollout            []float64 `json:"rollout_l1"` // [K] mean |z_k − z_0|
}

// Sensitivity is how the energy ranks the recorded action among distractors between adjacent frames.
type Sensitivity struct {
	Distractors int     `json:"distractors"`
	Transitions int     `json:"transitions"`
	MeanRank    float64 `json:"mean_rank"` // distractors with a lower energy than the recorded action; 0 is best
	Recall1     float64 `json:"recall_at_1"`
	Recall5     float64 `json:"recall_at_5"`
	// Mean energies of the recorded actions and of the distractors.
	EnergyRecorded    float64 `json:"energy_recorded"`
	EnergyDistractors float64 `json:"energy_distractors"`
}

// Inverse is how close the action CEM infers between adjacent frames is to the recorded one.
type Inverse struct {
	Transitions int       `json:"transitions"`
	Samples     int       `json:"samples"`
	Iterations  int       `json:"iterations"`
	ErrorAbs    []float64 `json:"error_abs"` // [A] mean |inferred − recorded| per action component
	// Cosine is the mean cosine between inferred and recorded actions over the searched components (Δxyz
	// for DROID), over the Cosines transitions where neither is zero.
	Cosine  float64       `json:"cosine"`
	Cosines int           `json:"cosine_transitions"`
	DROID   *DROIDInverse `json:"droid,omitempty"`
}

// DROIDInverse are the paper's figures for 7-D DROID actions (App. §11.4: ≈ 1.6 cm error on ≈ 5 cm
// steps, after a linear fit this package does not make).
type DROIDInverse struct {
	ErrorCM float64 `json:"error_cm"` // mean ‖Δxyz inferred − Δxyz recorded‖ in cm
	StepCM  float64 `json:"step_cm"`  // mean ‖Δxyz recorded‖ in cm
	// GripperAccuracy is the fraction of transitions whose gripper moves the same way (closing, opening,
	// or neither: |Δg| below the CEM's gripper rounding) in the inferred and the recorded action.
	GripperAccuracy float64 `json:"gripper_sign_accuracy"`
}

// check validates the clips against each other and the world model.
func check(w Model, clips []Clip) (T int, err error) {
	if len(clips) == 0 {
		return 0, fmt.Errorf("evaluate: no clips")
	}
	T = len(clips[0].Frames)
	if T < 2 {
		return 0, fmt.Errorf("evaluate: clips of %d frames: need at least 2", T)
	}
	for i, c := range clips {
		if len(c.Frames) != T || len(c.States) != T || len(c.Actions) != T-1 {
			return 0, fmt.Errorf("evaluate: clip %d has %d frames, %d states and %d actions; clip 0 has %d frames", i,
				len(c.Frames), len(c.States), len(c.Actions), T)
		}
		if w == nil {
			continue
		}
		if len(c.States[0]) != w.StateWidth() || len(c.Actions[0]) != w.ActionWidth() {
			return 0, fmt.Errorf("evaluate: clip %d has %d-D states and %d-D actions, the predictor takes %d-D and %d-D",
				i, len(c.States[0]), len(c.Actions[0]), w.StateWidth(), w.ActionWidth())
		}
	}
	return T, nil
}

// horizon is K for clips of T frames.
func (st Settings) horizon(T int) (int, error) {
	if st.Horizon < 0 || st.Horizon > T-1 {
		return 0, fmt.Errorf("evaluate: horizon %d: want 1..%d for clips of %d frames", st.Horizon, T-1, T)
	}
	if st.Horizon == 0 {
		return T - 1, nil
	}
	return st.Horizon, nil
}

// Baselines are the copy-the-last-frame errors of the clips: teacher forcing per frame and rollout up to
// horizon K.
func Baselines(clips []Clip, K int) (Baseline, error) {
	T, err := check(nil, clips)
	if err != nil {
		return Baseline{}, err
	}
	if K < 1 || K > T-1 {
		return Baseline{}, fmt.Errorf("evaluate: horizon %d: want 1..%d for clips of %d frames", K, T-1, T)
	}
	b := Baseline{TeacherForcing: make([]float64, T-1), Rollout: make([]float64, K)}
	n := float64(len(clips))
	for _, c := range clips {
		for t := 1; t < T; t++ {
			b.TeacherForcing[t-1] += meanAbs(c.Frames[t], c.Frames[t-1]) / n
		}
		for k := 1; k <= K; k++ {
			b.Rollout[k-1] += meanAbs(c.Frames[k], c.Frames[0]) / n
		}
	}
	b.TeacherForcingMean = mean(b.TeacherForcing)
	return b, nil
}

func meanAbs(a, b plan.Rep) float64 {
	s := 0.0
	for i := range a {
		s += math.Abs(float64(a[i]) - float64(b[i]))
	}
	return s / float64(len(a))
}

func mean(v []float64) float64 {
	s := 0.0
	for _, x := range v {
		s += x
	}
	return s / float64(len(v))
}

// Evaluate scores the world model w on the clips: teacher forcing, rollout, and (when st asks for them)
// action sensitivity and inverse dynamics.
func Evaluate(w Model, name string, clips []Clip, st Settings) (Result, error) {
	t0 := time.Now()
	T, err := check(w, clips)
	if err != nil {
		return Result{}, err
	}
	K, err := st.horizon(T)
	if err != nil {
		return Result{}, err
	}
	if st.Batch < 0 || st.Distractors < 0 || st.Inverse < 0 {
		return Result{}, fmt.Errorf("evaluate: batch %d, distractors %d, inverse transitions %d: want >= 0", st.Batch, st.Distractors, st.Inverse)
	}
	r := Result{Name: name}
	if r.TeacherForcing, err = Rollouts(w, clips, T-1, true, st.Batch); err != nil {
		return Result{}, err
	}
	r.TeacherForcingMean = mean(r.TeacherForcing)
	if r.Rollout, err = Rollouts(w, clips, K, false, st.Batch); err != nil {
		return Result{}, err
	}
	if st.Distractors > 0 {
		if r.Sensitivity, err = ActionSensitivity(w, clips, st.Distractors, st.Seed); err != nil {
			return Result{}, err
		}
	}
	if st.Inverse > 0 {
		if r.Inverse, err = InverseDynamics(w, clips, st.Inverse, st.CEM, st.Seed); err != nil {
			return Result{}, err
		}
	}
	r.Seconds = time.Since(t0).Seconds()
	return r, nil
}

// Rollouts is the mean L1 error over the clips of each of H steps: rolled out from frame 0 with the
// recorded actions and states (rollout error at horizon h+1), or, teacher-forced, with the true frame h
// as the input of step h (the error of frame h+1 given frames 0..h). Clips run batch at a time (0: 8).
func Rollouts(w Model, clips []Clip, H int, teacherForcing bool, batch int) ([]float64, error) {
	T, err := check(w, clips)
	if err != nil {
		return nil, err
	}
	if H < 1 || H > T-1 {
		return nil, fmt.Errorf("evaluate: %d steps: want 1..%d for clips of %d frames", H, T-1, T)
	}
	if batch <= 0 {
		batch = 8
	}
	out := make([]float64, H)
	for c0 := 0; c0 < len(clips); c0 += batch {
		part := clips[c0:min(c0+batch, len(clips))]
		contexts, goals := make([]plan.Rep, len(part)), make([][]plan.Rep, len(part))
		states, actions := make([][][]float64, len(part)), make([][][]float64, len(part))
		for i, c := range part {
			contexts[i], goals[i], states[i], actions[i] = c.Frames[0], c.Frames[1:H+1], c.States[:H], c.Actions[:H]
		}
		e, err := w.ScoreEach(contexts, goals, states, actions, teacherForcing)
		if err != nil {
			return nil, err
		}
		for _, row := range e {
			for h, v := range row {
				out[h] += v / float64(len(clips))
			}
		}
	}
	return out, nil
}

// transition is step t of clip c: frames t and t+1 with the action between them.
type transition struct{ c, t int }

func transitions(clips []Clip) []transition {
	var out []transition
	for c, cl := range clips {
		for t := range cl.Actions {
			out = append(out, transition{c, t})
		}
	}
	return out
}

// ActionSensitivity ranks, for every transition of the clips, the recorded action among n distractors
// (recorded actions of other transitions, drawn with replacement, seeded) by their one-step energy from
// frame t towards frame t+1 with the recorded state.
func ActionSensitivity(w Model, clips []Clip, n int, seed uint64) (*Sensitivity, error) {
	if _, err := check(w, clips); err != nil {
		return nil, err
	}
	tr := transitions(clips)
	if len(tr) < 2 {
		return nil, fmt.Errorf("evaluate: action sensitivity needs at least 2 transitions to draw distractors from, the clips have %d", len(tr))
	}
	rng := rand.New(rand.NewPCG(seed, 0x5e45))
	s := &Sensitivity{Distractors: n, Transitions: len(tr)}
	var ranks, top1, top5 int
	for i, x := range tr {
		c := clips[x.c]
		cands := [][][]float64{{c.Actions[x.t]}}
		for range n {
			j := rng.IntN(len(tr) - 1)
			if j >= i {
				j++
			}
			cands = append(cands, [][]float64{clips[tr[j].c].Actions[tr[j].t]})
		}
		e, err := w.Energy(c.Frames[x.t], c.Frames[x.t+1], c.States[x.t])(cands)
		if err != nil {
			return nil, err
		}
		rank := 0
		for _, v := range e[1:] {
			if v < e[0] {
				rank++
			}
			s.EnergyDistractors += v / float64(n*len(tr))
		}
		s.EnergyRecorded += e[0] / float64(len(tr))
		ranks += rank
		if rank < 1 {
			top1++
		}
		if rank < 5 {
			top5++
		}
	}
	s.MeanRank = float64(ranks) / float64(len(tr))
	s.Recall1, s.Recall5 = float64(top1)/float64(len(tr)), float64(top5)/float64(len(tr))
	return s, nil
}

// InverseDynamics infers, for up to n transitions of the clips (a seeded choice), the one-step action
// from frame t towards frame t+1 with the recorded state by CEM (st with horizon 1), and compares it with
// the recorded action.
func InverseDynamics(w Model, clips []Clip, n int, st plan.Settings, seed uint64) (*Inverse, error) {
	if _, err := check(w, clips); err != nil {
		return nil, err
	}
	tr := transitions(clips)
	A := w.ActionWidth()
	st.Horizon = 1
	if st.Space == nil && A != model.ActionDim {
		var recorded [][]float64
		for _, x := range tr {
			recorded = append(recorded, clips[x.c].Actions[x.t])
		}
		sp, err := plan.SpaceFromActions(recorded)
		if err != nil {
			return nil, fmt.Errorf("evaluate: inverse dynamics: %w", err)
		}
		st.Space = &sp
	}
	st, err := st.ForWidth(A)
	if err != nil {
		return nil, err
	}
	sp := st.SearchSpace()
	rng := rand.New(rand.NewPCG(seed, 0x1d))
	rng.Shuffle(len(tr), func(i, j int) { tr[i], tr[j] = tr[j], tr[i] })
	tr = tr[:min(n, len(tr))]
	droid := st.Space == nil // cem()'s own space: Δxyz and the gripper of DROID's 7-D actions
	inv := &Inverse{Transitions: len(tr), Samples: st.Samples, Iterations: st.Iterations, ErrorAbs: make([]float64, A)}
	if droid {
		inv.DROID = &DROIDInverse{}
	}
	gripperSame := 0
	for i, x := range tr {
		c := clips[x.c]
		res, err := plan.CEM(st, w.Energy(c.Frames[x.t], c.Frames[x.t+1], c.States[x.t]), plan.NewSeededNoise(seed+uint64(i)))
		if err != nil {
			return nil, err
		}
		got, want := res.Plan[0], c.Actions[x.t]
		for k := range A {
			inv.ErrorAbs[k] += math.Abs(got[k]-want[k]) / float64(len(tr))
		}
		dims := make([]int, 0, len(sp.Dims))
		for k, d := range sp.Dims {
			if !droid || k != sp.Gripper {
				dims = append(dims, d.Index)
			}
		}
		if cos, ok := cosine(got, want, dims); ok {
			inv.Cosine += cos
			inv.Cosines++
		}
		if droid {
			var e, step float64
			for k := range 3 {
				e += (got[k] - want[k]) * (got[k] - want[k])
				step += want[k] * want[k]
			}
			inv.DROID.ErrorCM += 100 * math.Sqrt(e) / float64(len(tr))
			inv.DROID.StepCM += 100 * math.Sqrt(step) / float64(len(tr))
			g := model.ActionDim - 1
			if gripperSign(got[g], st.GripperRound) == gripperSign(want[g], st.GripperRound) {
				gripperSame++
			}
		}
	}
	if droid {
		inv.DROID.GripperAccuracy = float64(gripperSame) / float64(len(tr))
	}
	if inv.Cosines > 0 {
		inv.Cosine /= float64(inv.Cosines)
	}
	return inv, nil
}

// cosine is the cosine between a and b over the components dims, and whether both are non-zero there.
func cosine(a, b []float64, dims []int) (float64, bool) {
	var ab, aa, bb float64
	for _, k := range dims {
		ab += a[k] * b[k]
		aa += a[k] * a[k]
		bb += b[k] * b[k]
	}
	if aa == 0 || bb == 0 {
		return 0, false
	}
	return ab / math.Sqrt(aa*bb), true
}

// gripperSign is −1 (opening), 0 (|Δg| < deadband) or 1 (closing).
func gripperSign(g, deadband float64) int {
	switch {
	case g >= deadband:
		return 1
	case g <= -deadband:
		return -1
	}
	return 0
}
