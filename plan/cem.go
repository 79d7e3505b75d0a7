package plan

import (
	"fmt"
	"math"
	"slices"
	"sort"

	"github.com/vjepa-vk/vjepa-vk/model"
)

// gripperAxis is the gripper's component in DROID's 7-D action (spec §7.5).
const gripperAxis = model.ActionDim - 1

// Settings are cem()'s arguments (planning §4): Samples candidates per iteration, Iterations (cem_steps),
// TopK elites, Horizon (rollout) actions per candidate, MaxNorm the box on each of Δx, Δy, Δz, the four
// momenta, the gripper clip and rounding, and CloseGripper (≥ 0: the gripper is forced to 1 from that
// step on; −1: never). Space, when set, replaces the DROID space MaxNorm and GripperClip describe
// (another action width, other bounds, other searched components).
type Settings struct {
	Samples, Iterations, TopK, Horizon int
	MaxNorm                            float64
	MomentumMean, MomentumStd          float64 // xyz
	MomentumMeanGripper                float64
	MomentumStdGripper                 float64
	GripperClip                        float64 // 0.75
	GripperRound                       float64 // 0.25: a planned gripper mean below it in magnitude becomes 0
	CloseGripper                       int
	Space                              *Space `json:",omitempty"`
}

// WrapperSettings are the notebook WorldModel's default mpc_args: 400 samples, 10 iterations, top 10,
// horizon 2, maxnorm 0.05, momenta 0.15 (the default of vjepa-vk plan).
func WrapperSettings() Settings {
	return Settings{Samples: 400, Iterations: 10, TopK: 10, Horizon: 2, MaxNorm: 0.05, MomentumMean: 0.15,
		MomentumStd: 0.15, MomentumMeanGripper: 0.15, MomentumStdGripper: 0.15, GripperClip: 0.75, GripperRound: 0.25,
		CloseGripper: -1}
}

// PaperSettings are the paper's robot runs (§11.2): 800 samples, 10 iterations, top 10, horizon 1, maxnorm
// 0.075, with the code's rules and the wrapper's momenta (the paper states none).
func PaperSettings() Settings {
	s := WrapperSettings()
	s.Samples, s.Horizon, s.MaxNorm = 800, 1, 0.075
	return s
}

// Validate rejects settings cem() cannot run.
func (s Settings) Validate() error {
	switch {
	case s.Samples < 1 || s.Iterations < 1 || s.Horizon < 1:
		return fmt.Errorf("plan: samples %d, iterations %d, horizon %d: each must be >= 1", s.Samples, s.Iterations, s.Horizon)
	case s.TopK < 2 || s.TopK > s.Samples:
		return fmt.Errorf("plan: topk %d: must be in [2, samples = %d] (the elites' std needs two)", s.TopK, s.Samples)
	case s.Space == nil && (!(s.MaxNorm > 0) || math.IsInf(s.MaxNorm, 0)):
		return fmt.Errorf("plan: maxnorm %g: must be a positive number", s.MaxNorm)
	case s.Space == nil && !(s.GripperClip > 0), !(s.GripperRound >= 0):
		return fmt.Errorf("plan: gripper clip %g and rounding %g: want clip > 0, rounding >= 0", s.GripperClip, s.GripperRound)
	case s.CloseGripper < -1:
		return fmt.Errorf("plan: close_gripper %d: want -1 (never) or a step >= 0", s.CloseGripper)
	}
	for _, m := range []float64{s.MomentumMean, s.MomentumStd, s.MomentumMeanGripper, s.MomentumStdGripper} {
		if !(m >= 0 && m <= 1) {
			return fmt.Errorf("plan: momentum %g: must be in [0, 1]", m)
		}
	}
	if s.Space != nil {
		return s.Space.Validate()
	}
	return nil
}

// Energy scores candidate action sequences: actions[s][h] is action h of candidate s (A-D, A the
// predictor's action width), and the result is each candidate's energy after its last action, lower
// being closer to the goal.
type Energy func(actions [][][]float64) ([]float64, error)

// Iteration is one CEM iteration: the candidates, their energies, the elites and the updated distribution.
type Iteration struct {
	Samples  [][][]float64 `json:"-"`      // [S][H][A] candidates (after scaling, clipping, forcing)
	Energies []float64     `json:"-"`      // [S]
	Elites   []int         `json:"elites"` // TopK candidate indices, lowest energy first
	Mean     [][]float64   `json:"mean"`   // [H][D] after the update, per searched dim (Δx, Δy, Δz, gripper for DROID)
	Std      [][]float64   `json:"std"`
	// Statistics of the candidates' energies: mean, standard deviation (population), lowest, and the
	// elites' mean.
	EnergyMean  float64 `json:"energy_mean"`
	EnergyStd   float64 `json:"energy_std"`
	EnergyBest  float64 `json:"energy_best"`
	EnergyElite float64 `json:"energy_elite_mean"`
}

// Result is a planned action sequence.
type Result struct {
	// Plan [H][A] is the final mean as actions (the fixed components as the space says: rotation 0 for
	// DROID; the gripper rounded to 0 below GripperRound); the robot executes Plan[0] and plans again.
	Plan        [][]float64 `json:"plan"`
	InitialMean [][]float64 `json:"initial_mean"` // [H][D]
	InitialStd  [][]float64 `json:"initial_std"`
	Iterations  []Iteration `json:"iterations"`
}

// ForWidth returns st for a predictor of A-D actions: with its Space, which must be A wide, or else with
// cem()'s DROID space for A = 7 and every component in ±MaxNorm (BoxSpace) otherwise.
func (st Settings) ForWidth(A int) (Settings, error) {
	switch {
	case st.Space != nil && st.Space.Width != A:
		return st, fmt.Errorf("plan: the search space is %d-D, the predictor takes %d-D actions", st.Space.Width, A)
	case st.Space == nil && A != model.ActionDim:
		sp := BoxSpace(A, st.MaxNorm)
		st.Space = &sp
	}
	return st, st.Validate()
}

// SearchSpace is the space CEM searches: st.Space, or cem()'s DROID space from MaxNorm and GripperClip.
func (st Settings) SearchSpace() Space {
	if st.Space != nil {
		return *st.Space
	}
	return DROIDSpace(st.MaxNorm, st.GripperClip)
}

// CEM is mpc_utils.cem (planning §4), exactly, over the search space of st: mean[h] and std[h] start at
// the space's (0 and (maxnorm ×3, 1) for DROID); each iteration draws a = noise·std[h] + mean[h] for
// every step h, clips each searched component to its bounds (±maxnorm for xyz and ±GripperClip for the
// gripper), fills the others with the space's fixed values (x, y, z, 0, 0, 0, g), forces the gripper to 1
// from step CloseGripper on, scores every candidate, and moves the mean and std towards the TopK
// lowest-energy candidates' mean and unbiased std (computed on the actions, so a forced gripper enters
// them) with the momenta (the gripper's own). Arithmetic is float64.
func CEM(st Settings, energy Energy, noise Noise) (*Result, error) {
	if err := st.Validate(); err != nil {
		return nil, err
	}
	sp := st.SearchSpace()
	S, H, D := st.Samples, st.Horizon, len(sp.Dims)
	grip := sp.gripperIndex()
	mean, std := make([][]float64, H), make([][]float64, H)
	for h := range H {
		mean[h], std[h] = make([]float64, D), make([]float64, D)
		for k, d := range sp.Dims {
			mean[h][k], std[h][k] = d.Mean, d.Std
		}
	}
	res := &Result{InitialMean: clone2(mean), InitialStd: clone2(std)}
	draws := make([]float64, S*D)
	for it := range st.Iterations {
		samples := make([][][]float64, S)
		for s := range samples {
			samples[s] = make([][]float64, H)
		}
		for h := range H {
			if err := noise.Normal(it, h, draws); err != nil {
				return nil, err
			}
			for s := range S {
				act := make([]float64, sp.Width)
				for k := range act {
					act[k] = sp.fixed(k)
				}
				for k, d := range sp.Dims {
					a := draws[s*D+k]*std[h][k] + mean[h][k]
					act[d.Index] = min(max(a, d.Lo), d.Hi)
				}
				if grip >= 0 && st.CloseGripper >= 0 && h >= st.CloseGripper {
					act[grip] = 1
				}
				samples[s][h] = act
			}
		}
		e, err := energy(samples)
		if err != nil {
			return nil, err
		}
		if len(e) != S {
			return nil, fmt.Errorf("plan: energy callback returned %d energies for %d candidates", len(e), S)
		}
		for s, v := range e {
			if math.IsNaN(v) {
				return nil, fmt.Errorf("plan: iteration %d: energy of candidate %d is NaN", it, s)
			}
		}
		elites := lowest(e, st.TopK)
		newMean, newStd := make([][]float64, H), make([][]float64, H)
		for h := range H {
			newMean[h], newStd[h] = make([]float64, D), make([]float64, D)
			for k, d := range sp.Dims {
				m, sd := meanStd(samples, elites, h, d.Index)
				mm, ms := st.MomentumMean, st.MomentumStd
				if k == sp.Gripper {
					mm, ms = st.MomentumMeanGripper, st.MomentumStdGripper
				}
				newMean[h][k] = m*(1-mm) + mean[h][k]*mm
				newStd[h][k] = sd*(1-ms) + std[h][k]*ms
			}
		}
		mean, std = newMean, newStd
		res.Iterations = append(res.Iterations, iterationStats(samples, e, elites, mean, std))
	}
	res.Plan = make([][]float64, H)
	for h := range H {
		p := make([]float64, sp.Width)
		for k := range p {
			p[k] = sp.fixed(k)
		}
		for k, d := range sp.Dims {
			p[d.Index] = mean[h][k]
			if k == sp.Gripper && math.Abs(mean[h][k]) < st.GripperRound {
				p[d.Index] = 0
			}
		}
		res.Plan[h] = p
	}
	return res, nil
}

func clone2(v [][]float64) [][]float64 {
	out := make([][]float64, len(v))
	for i := range v {
		out[i] = slices.Clone(v[i])
	}
	return out
}

// lowest returns the indices of the k smallest energies, smallest first (torch.topk(largest=False)).
func lowest(e []float64, k int) []int {
	idx := make([]int, len(e))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return e[idx[a]] < e[idx[b]] })
	return idx[:k]
}

// meanStd is the mean and unbiased standard deviation of component axis of action h over the elites.
func meanStd(samples [][][]float64, elites []int, h, axis int) (mean, std float64) {
	for _, i := range elites {
		mean += samples[i][h][axis]
	}
	mean /= float64(len(elites))
	var ss float64
	for _, i := range elites {
		d := samples[i][h][axis] - mean
		ss += d * d
	}
	return mean, math.Sqrt(ss / float64(len(elites)-1))
}

func iterationStats(samples [][][]float64, e []float64, elites []int, mean, std [][]float64) Iteration {
	it := Iteration{Samples: samples, Energies: e, Elites: elites, Mean: mean, Std: std, EnergyBest: math.Inf(1)}
	for _, v := range e {
		it.EnergyMean += v
		it.EnergyBest = min(it.EnergyBest, v)
	}
	it.EnergyMean /= float64(len(e))
	for _, v := range e {
		it.EnergyStd += (v - it.EnergyMean) * (v - it.EnergyMean)
	}
	it.EnergyStd = math.Sqrt(it.EnergyStd / float64(len(e)))
	for _, i := range elites {
		it.EnergyElite += e[i] / float64(len(elites))
	}
	return it
}
