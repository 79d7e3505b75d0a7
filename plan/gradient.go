package plan

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/vjepa-vk/vjepa-vk/model"
	"github.com/vjepa-vk/vjepa-vk/vk"
)

// The gradient planner: instead of sampling, descend the energy along its gradient with respect to the
// actions, which the predictor's backward pass gives (model.EnergyGradient). It is not in the paper or the
// official code; it starts from zeros (the CEM's initial mean) or refines CEM's plan.

// GradientEnergy scores candidate action sequences [S][H][A] and returns, besides each candidate's energy
// after its last action, the energy's gradient with respect to each of its actions [S][H][A] (through the
// states too when they follow the actions).
type GradientEnergy func(actions [][][]float64) (energies []float64, grads [][][]float64, err error)

// GDSettings configure the gradient planner: Adam on the searched components of H actions, projected
// onto the search space's box after every step.
type GDSettings struct {
	Steps   int     // gradient steps
	LR      float64 // Adam's step per component, in units of the component's initial std in the space
	Beta1   float64 // 0.9
	Beta2   float64 // 0.999
	Starts  int     // descents run side by side: the first from the initial plan, the others from it perturbed
	Horizon int
	// CloseGripper ≥ 0 holds the space's gripper at 1 from that step on (as CEM's close_gripper); −1 never.
	CloseGripper int
}

// DefaultGDSettings are 50 Adam steps of 0.1 std from one start over horizon 1 (the paper's planning
// horizon).
func DefaultGDSettings() GDSettings {
	return GDSettings{Steps: 50, LR: 0.1, Beta1: 0.9, Beta2: 0.999, Starts: 1, Horizon: 1, CloseGripper: -1}
}

// Validate rejects settings the planner cannot run.
func (g GDSettings) Validate() error {
	switch {
	case g.Steps < 1 || g.Starts < 1 || g.Horizon < 1:
		return fmt.Errorf("plan: gradient planner: steps %d, starts %d, horizon %d: each must be >= 1", g.Steps, g.Starts, g.Horizon)
	case !(g.LR > 0) || math.IsInf(g.LR, 0):
		return fmt.Errorf("plan: gradient planner: learning rate %g: must be a positive number", g.LR)
	case !(g.Beta1 >= 0 && g.Beta1 < 1) || !(g.Beta2 >= 0 && g.Beta2 < 1):
		return fmt.Errorf("plan: gradient planner: betas %g, %g: must be in [0, 1)", g.Beta1, g.Beta2)
	case g.CloseGripper < -1:
		return fmt.Errorf("plan: gradient planner: close_gripper %d: want -1 (never) or a step >= 0", g.CloseGripper)
	}
	return nil
}

// GDStep is the state of the descent after a step.
type GDStep struct {
	Energy float64 `json:"energy"` // the lowest energy of any start so far
	// Passes counts the predictor work so far in candidate-frames through the predictor: each evaluation
	// runs, per start, H training passes of 1..H frames forward and their backward (about twice the
	// forward's work), 3·H(H+1)/2 candidate-frames in all.
	Passes int `json:"passes"`
}

// GDResult is a plan by gradient descent.
type GDResult struct {
	Plan   [][]float64 `json:"plan"`   // [H][A] the lowest-energy actions found
	Energy float64     `json:"energy"` // their energy
	Trace  []GDStep    `json:"trace"`  // after each evaluation: [Steps+1]
	Passes int         `json:"passes"`
}

// GD minimises energy over H actions in space by projected Adam: from init ([H][A], nil for the space's
// initial means), each step moves every searched component against its gradient by about LR·std, clips it
// to the component's bounds, and keeps the others fixed. Starts > 1 descends from perturbed copies of init
// too (noise of half a std, seeded). It returns the lowest energy seen at any step.
func GD(st GDSettings, space Space, energy GradientEnergy, init [][]float64, seed uint64) (*GDResult, error) {
	if err := st.Validate(); err != nil {
		return nil, err
	}
	if err := space.Validate(); err != nil {
		return nil, err
	}
	H, A, D := st.Horizon, space.Width, len(space.Dims)
	if init != nil && len(init) != H {
		return nil, fmt.Errorf("plan: gradient planner: initial plan of %d actions for horizon %d", len(init), H)
	}
	grip := space.gripperIndex()
	forced := func(h int) bool { return grip >= 0 && st.CloseGripper >= 0 && h >= st.CloseGripper }
	rng := rand.New(rand.NewPCG(seed, 0x6d))
	x := make([][][]float64, st.Starts) // [start][h][A]
	for s := range x {
		x[s] = make([][]float64, H)
		for h := range H {
			a := make([]float64, A)
			for k := range a {
				a[k] = space.fixed(k)
			}
			for _, d := range space.Dims {
				a[d.Index] = d.Mean
			}
			if init != nil {
				if len(init[h]) != A {
					return nil, fmt.Errorf("plan: gradient planner: initial action %d has %d components, want %d", h, len(init[h]), A)
				}
				copy(a, init[h])
			}
			for _, d := range space.Dims {
				if s > 0 {
					a[d.Index] += 0.5 * d.Std * rng.NormFloat64()
				}
				a[d.Index] = min(max(a[d.Index], d.Lo), d.Hi)
			}
			if forced(h) {
				a[grip] = 1
			}
			x[s][h] = a
		}
	}
	m, v := make([]float64, st.Starts*H*D), make([]float64, st.Starts*H*D)
	res := &GDResult{Energy: math.Inf(1)}
	perEval := st.Starts * 3 * H * (H + 1) / 2
	for step := 0; step <= st.Steps; step++ {
		e, g, err := energy(x)
		if err != nil {
			return nil, err
		}
		if len(e) != st.Starts || len(g) != st.Starts {
			return nil, fmt.Errorf("plan: gradient planner: %d energies and %d gradients for %d starts", len(e), len(g), st.Starts)
		}
		res.Passes += perEval
		for s, v := range e {
			if math.IsNaN(v) {
				return nil, fmt.Errorf("plan: gradient planner: step %d: energy of start %d is NaN", step, s)
			}
			if v < res.Energy {
				res.Energy = v
				res.Plan = make([][]float64, H)
				for h := range H {
					res.Plan[h] = slices.Clone(x[s][h])
				}
			}
		}
		res.Trace = append(res.Trace, GDStep{Energy: res.Energy, Passes: res.Passes})
		if step == st.Steps {
			break
		}
		t := float64(step + 1)
		c1, c2 := 1-math.Pow(st.Beta1, t), 1-math.Pow(st.Beta2, t)
		for s := range st.Starts {
			for h := range H {
				if len(g[s][h]) != A {
					return nil, fmt.Errorf("plan: gradient planner: gradient of action %d has %d components, want %d", h, len(g[s][h]), A)
				}
				for k, d := range space.Dims {
					if forced(h) && d.Index == grip {
						continue
					}
					i := (s*H+h)*D + k
					gr := g[s][h][d.Index]
					m[i] = st.Beta1*m[i] + (1-st.Beta1)*gr
					v[i] = st.Beta2*v[i] + (1-st.Beta2)*gr*gr
					step := st.LR * d.Std * (m[i] / c1) / (math.Sqrt(v[i]/c2) + 1e-12)
					x[s][h][d.Index] = min(max(x[s][h][d.Index]-step, d.Lo), d.Hi)
				}
			}
		}
	}
	return res, nil
}

// Jacobians are the derivatives of Next(s, a) with respect to s (js[i][j] = ∂next_i/∂s_j) and to a (ja):
// the identity and zero for hold, the identity twice for add, and for pose central differences in float64
// (step 1e-6: truncation ~1e-12, rounding ~1e-10, far below the f32 gradients they carry; scipy's Euler
// conversion has no convenient closed form).
func (r StateRule) Jacobians(s, a []float64) (js, ja [][]float64) {
	Z, A := len(s), len(a)
	js, ja = make([][]float64, Z), make([][]float64, Z)
	for i := range Z {
		js[i], ja[i] = make([]float64, Z), make([]float64, A)
	}
	switch r {
	case StateHold:
		for i := range Z {
			js[i][i] = 1
		}
	case StateAdd:
		for i := range Z {
			js[i][i], ja[i][i] = 1, 1
		}
	case StatePose:
		const eps = 1e-6
		fd := func(x []float64, col func(i, j int, v float64), next func(x []float64) []float64) {
			for j := range x {
				xj := x[j]
				x[j] = xj + eps
				p := next(x)
				x[j] = xj - eps
				q := next(x)
				x[j] = xj
				for i := range Z {
					d := p[i] - q[i]
					if i >= 3 && i < 6 { // Euler angles wrap at ±π: the difference of the rotation, not of the numbers
						d = math.Remainder(d, 2*math.Pi)
					}
					col(i, j, d/(2*eps))
				}
			}
		}
		ss, aa := slices.Clone(s), slices.Clone(a)
		fd(ss, func(i, j int, v float64) { js[i][j] = v }, func(x []float64) []float64 { return r.Next(x, aa) })
		fd(aa, func(i, j int, v float64) { ja[i][j] = v }, func(x []float64) []float64 { return r.Next(ss, x) })
	}
	return js, ja
}

// chainStates adds to the action gradients da [H][A] what flows through the states: states[h+1] =
// rule.Next(states[h], a_h), so with λ_h = dE/ds_h (total), λ_h = ds_h + J_s(h)ᵀ·λ_{h+1} and dE/da_h +=
// J_a(h)ᵀ·λ_{h+1}. ds [H][Z] are the energy's gradients with the states held fixed; states[0] is given.
func (r StateRule) chainStates(states, actions, da, ds [][]float64) {
	H := len(actions)
	if r == StateHold || H < 2 {
		return
	}
	lambda := slices.Clone(ds[H-1]) // λ_{H−1}
	for h := H - 2; h >= 0; h-- {
		js, ja := r.Jacobians(states[h], actions[h])
		for j := range da[h] {
			for i := range lambda {
				da[h][j] += ja[i][j] * lambda[i]
			}
		}
		next := slices.Clone(ds[h])
		for j := range next {
			for i := range lambda {
				next[j] += js[i][j] * lambda[i]
			}
		}
		lambda = next
	}
}

// gradScorer is a recorded EnergyGradient for one (samples, horizon).
type gradScorer struct {
	g       *model.EnergyGradient
	s       *vk.Stream
	actions []float32 // [S, H, A] upload buffers
	states  []float32
}

// EnergyGradient is the gradient planner's callback: each candidate's energy after its last action,
// rolled from context and start (states by the world model's rule), against goal, and its gradient with
// respect to the actions through the predictor's backward pass and the state rule.
func (w *WorldModel) EnergyGradient(context, goal Rep, start []float64) GradientEnergy {
	return func(actions [][][]float64) ([]float64, [][][]float64, error) {
		S, H, err := w.checkActions("energy gradient", actions)
		if err != nil {
			return nil, nil, err
		}
		n := w.RepSize()
		if len(context) != n || len(goal) != n || len(start) != w.StateWidth() {
			return nil, nil, fmt.Errorf("plan: energy gradient: context of %d, goal of %d values (want %d), a %d-D state (want %d)",
				len(context), len(goal), n, len(start), w.StateWidth())
		}
		t0 := time.Now()
		gs, err := w.gradScorer(S, H)
		if err != nil {
			return nil, nil, err
		}
		A, Z := w.ActionWidth(), w.StateWidth()
		states := make([][][]float64, S)
		for s, seq := range actions {
			states[s] = w.rule.Rollout(start, seq)
			for h := range H {
				w.inputs(gs.actions[(s*H+h)*A:][:A], gs.states[(s*H+h)*Z:][:Z], seq[h], states[s][h])
			}
		}
		var ja, jz []float64 // d normalized / d raw, per component (Options.Normalization)
		if n := w.opts.Normalization; n != nil {
			jz, ja = n.Jacobians()
		}
		for _, u := range []struct {
			t vk.Tensor
			v []float32
		}{{gs.g.Context, context}, {gs.g.Goal, goal}, {gs.g.Actions, gs.actions}, {gs.g.States, gs.states}} {
			if err := w.d.Upload(u.t, u.v); err != nil {
				return nil, nil, err
			}
		}
		if err := gs.s.Run(); err != nil {
			return nil, nil, fmt.Errorf("plan: energy gradient of %d samples over %d steps: %w", S, H, err)
		}
		var down [3][]float32
		for i, t := range []vk.Tensor{gs.g.Energies, gs.g.DActions, gs.g.DStates} {
			if down[i], err = w.d.Download(t); err != nil {
				return nil, nil, err
			}
		}
		e := make([]float64, S)
		grads := make([][][]float64, S)
		for s := range S {
			e[s] = float64(down[0][s])
			da, ds := make([][]float64, H), make([][]float64, H)
			for h := range H {
				da[h], ds[h] = make([]float64, A), make([]float64, Z)
				for k := range A {
					da[h][k] = float64(down[1][(s*H+h)*A+k])
					if ja != nil {
						da[h][k] *= ja[k]
					}
				}
				for k := range Z {
					ds[h][k] = float64(down[2][(s*H+h)*Z+k])
					if jz != nil {
						ds[h][k] *= jz[k]
					}
				}
			}
			w.rule.chainStates(states[s], actions[s], da, ds)
			grads[s] = da
		}
		w.Timings.Gradient += time.Since(t0)
		w.Timings.Gradients++
		return e, grads, nil
	}
}

func (w *WorldModel) gradScorer(S, H int) (*gradScorer, error) {
	key := [2]int{S, H}
	if gs, ok := w.gradScorers[key]; ok {
		return gs, nil
	}
	g, err := w.Pred.NewEnergyGradient(S, H, w.opts.GradCheckpoint)
	if err != nil {
		return nil, err
	}
	s, err := w.d.NewStream(false)
	if err != nil {
		g.Free()
		return nil, err
	}
	g.Record(s)
	if err := s.Err(); err != nil {
		s.Destroy()
		g.Free()
		return nil, fmt.Errorf("plan: record the energy gradient of %d samples over %d steps: %w", S, H, err)
	}
	if err := w.uploadExtrinsics(g.Extrinsics); err != nil {
		s.Destroy()
		g.Free()
		return nil, err
	}
	gs := &gradScorer{g: g, s: s, actions: make([]float32, S*H*w.ActionWidth()), states: make([]float32, S*H*w.StateWidth())}
	if w.gradScorers == nil {
		w.gradScorers = map[[2]int]*gradScorer{}
	}
	w.gradScorers[key] = gs
	return gs, nil
}
