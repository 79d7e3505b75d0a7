package plan

import (
	"fmt"
	"math"
	"slices"
	"sort"

	"github.com/vjepa-vk/vjepa-vk/data"
	"github.com/vjepa-vk/vjepa-vk/model"
)

// The search space of cem() (planning §4): (Δx, Δy, Δz, gripper); the rotation deltas of the 7-D action
// stay 0 (vjepa2 issue #60).
const (
	searchDim   = 4                   // xyz and the gripper
	gripperAxis = model.ActionDim - 1 // index of the gripper in a 7-D action
)

// Settings are cem()'s arguments (planning §4): Samples candidates per iteration, Iterations (cem_steps),
// TopK elites, Horizon (rollout) actions per candidate, MaxNorm the box on each of Δx, Δy, Δz, the four
// momenta, the gripper clip and rounding, and CloseGripper (≥ 0: the gripper is forced to 1 from that
// step on; −1: never).
type Settings struct {
	Samples, Iterations, TopK, Horizon int
	MaxNorm                            float64
	MomentumMean, MomentumStd          float64 // xyz
	MomentumMeanGripper                float64
	MomentumStdGripper                 float64
	GripperClip                        float64 // 0.75
	GripperRound                       float64 // 0.25: a planned gripper mean below it in magnitude becomes 0
	CloseGripper                       int
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
	case !(s.MaxNorm > 0) || math.IsInf(s.MaxNorm, 0):
		return fmt.Errorf("plan: maxnorm %g: must be a positive number", s.MaxNorm)
	case !(s.GripperClip > 0) || !(s.GripperRound >= 0):
		return fmt.Errorf("plan: gripper clip %g and rounding %g: want clip > 0, rounding >= 0", s.GripperClip, s.GripperRound)
	case s.CloseGripper < -1:
		return fmt.Errorf("plan: close_gripper %d: want -1 (never) or a step >= 0", s.CloseGripper)
	}
	for _, m := range []float64{s.MomentumMean, s.MomentumStd, s.MomentumMeanGripper, s.MomentumStdGripper} {
		if !(m >= 0 && m <= 1) {
			return fmt.Errorf("plan: momentum %g: must be in [0, 1]", m)
		}
	}
	return nil
}

// Energy scores candidate action sequences: actions[s][h] is action h of candidate s (7-D), and the result
// is each candidate's energy after its last action, lower being closer to the goal.
type Energy func(actions [][]data.Action) ([]float64, error)

// Iteration is one CEM iteration: the candidates, their energies, the elites and the updated distribution.
type Iteration struct {
	Samples  [][]data.Action      `json:"-"`      // [S][H] 7-D candidates (after scaling, clipping, forcing)
	Energies []float64            `json:"-"`      // [S]
	Elites   []int                `json:"elites"` // TopK candidate indices, lowest energy first
	Mean     [][searchDim]float64 `json:"mean"`   // [H] after the update: Δx, Δy, Δz, gripper
	Std      [][searchDim]float64 `json:"std"`
	// Statistics of the candidates' energies: mean, standard deviation (population), lowest, and the
	// elites' mean.
	EnergyMean  float64 `json:"energy_mean"`
	EnergyStd   float64 `json:"energy_std"`
	EnergyBest  float64 `json:"energy_best"`
	EnergyElite float64 `json:"energy_elite_mean"`
}

// Result is a planned action sequence.
type Result struct {
	// Plan [H] is the final mean as 7-D actions (xyz, 0, 0, 0, gripper rounded to 0 below GripperRound);
	// the robot executes Plan[0] and plans again.
	Plan        []data.Action        `json:"plan"`
	InitialMean [][searchDim]float64 `json:"initial_mean"`
	InitialStd  [][searchDim]float64 `json:"initial_std"`
	Iterations  []Iteration          `json:"iterations"`
}

// CEM is mpc_utils.cem (planning §4), exactly: mean[h] = 0 and std[h] = (maxnorm ×3, 1); each iteration
// draws a = noise·std[h] + mean[h] for every step h, clips xyz to ±maxnorm and the gripper to ±GripperClip,
// forms (x, y, z, 0, 0, 0, g) (g = 1 from step CloseGripper on), scores every candidate, and moves the
// mean and std towards the TopK lowest-energy candidates' mean and unbiased std (computed on the 7-D
// actions) with the momenta. Arithmetic is float64.
func CEM(st Settings, energy Energy, noise Noise) (*Result, error) {
	if err := st.Validate(); err != nil {
		return nil, err
	}
	S, H := st.Samples, st.Horizon
	mean := make([][searchDim]float64, H)
	std := make([][searchDim]float64, H)
	for h := range std {
		std[h] = [searchDim]float64{st.MaxNorm, st.MaxNorm, st.MaxNorm, 1}
	}
	res := &Result{InitialMean: slices.Clone(mean), InitialStd: slices.Clone(std)}
	draws := make([]float64, S*searchDim)
	for it := range st.Iterations {
		samples := make([][]data.Action, S)
		for s := range samples {
			samples[s] = make([]data.Action, H)
		}
		for h := range H {
			if err := noise.Normal(it, h, draws); err != nil {
				return nil, err
			}
			for s := range S {
				var a [searchDim]float64
				for k := range a {
					a[k] = draws[s*searchDim+k]*std[h][k] + mean[h][k]
				}
				act := &samples[s][h]
				for k := range 3 {
					act[k] = clip(a[k], st.MaxNorm)
				}
				act[gripperAxis] = clip(a[3], st.GripperClip)
				if st.CloseGripper >= 0 && h >= st.CloseGripper {
					act[gripperAxis] = 1
				}
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
		newMean := make([][searchDim]float64, H)
		newStd := make([][searchDim]float64, H)
		for h := range H {
			for k, axis := range [searchDim]int{0, 1, 2, gripperAxis} {
				m, sd := meanStd(samples, elites, h, axis)
				mm, ms := st.MomentumMean, st.MomentumStd
				if axis == gripperAxis {
					mm, ms = st.MomentumMeanGripper, st.MomentumStdGripper
				}
				newMean[h][k] = m*(1-mm) + mean[h][k]*mm
				newStd[h][k] = sd*(1-ms) + std[h][k]*ms
			}
		}
		mean, std = newMean, newStd
		res.Iterations = append(res.Iterations, iterationStats(samples, e, elites, mean, std))
	}
	res.Plan = make([]data.Action, H)
	for h := range H {
		p := &res.Plan[h]
		p[0], p[1], p[2] = mean[h][0], mean[h][1], mean[h][2]
		if g := mean[h][3]; math.Abs(g) >= st.GripperRound {
			p[gripperAxis] = g
		}
	}
	return res, nil
}

func clip(v, bound float64) float64 { return min(max(v, -bound), bound) }

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
func meanStd(samples [][]data.Action, elites []int, h, axis int) (mean, std float64) {
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

func iterationStats(samples [][]data.Action, e []float64, elites []int, mean, std [][searchDim]float64) Iteration {
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

// Rollout returns the poses [H] a candidate passes through: states[0] = start, states[h+1] =
// compute_new_pose(states[h], actions[h]) (planning §3) — the state tokens of its rollout steps.
func Rollout(start data.State, actions []data.Action) []data.State {
	states := make([]data.State, len(actions))
	s := start
	for h, a := range actions {
		states[h] = s
		s = data.ComputeNewPose(s, a)
	}
	return states
}
