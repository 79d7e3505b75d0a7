package plan

import (
	"fmt"
	"time"
)

// Planner names a way to choose the actions of one planning step.
type Planner string

const (
	PlannerCEM   Planner = "cem"    // the official cem() (planning §4)
	PlannerGD    Planner = "gd"     // gradient descent on the energy from the space's initial mean (zeros)
	PlannerCEMGD Planner = "cem+gd" // CEM, then gradient descent from its plan
)

// Check rejects an unknown planner.
func (p Planner) Check() error {
	switch p {
	case PlannerCEM, PlannerGD, PlannerCEMGD:
		return nil
	}
	return fmt.Errorf("plan: planner %q: want cem, gd or cem+gd", p)
}

// Step is one planning step's outcome: the plan, its energy, how it was found and what it cost.
type Step struct {
	Planner Planner     `json:"planner"`
	Action  []float64   `json:"action"` // Plan[0], what the robot executes
	Plan    [][]float64 `json:"plan"`   // [H][A]
	// Energy is the plan's energy after its last action (one more rollout of it): the comparable result
	// of every planner (CEM's plan is a mean that none of its samples need have been).
	Energy float64    `json:"energy"`
	CEM    *Result    `json:"cem,omitempty"`
	GD     *GDResult  `json:"gd,omitempty"`
	Cost   PlanCost   `json:"cost"`
	Timing StepTiming `json:"timings"`
}

// PlanCost is a planning step's predictor work in candidate-frames (one candidate's frame through the
// predictor forward): CEM's rollouts cost Samples·H per iteration with the K/V cache (Samples·H(H+1)/2
// without), the gradient planner's GDStep.Passes.
type PlanCost struct {
	CEMFrames int `json:"cem_candidate_frames"`
	GDFrames  int `json:"gd_candidate_frames"`
	Total     int `json:"candidate_frames"`
}

// StepTiming is a planning step's wall-clock time on the device, by kind of work.
type StepTiming struct {
	Rollout  float64 `json:"rollout_s"`
	Gradient float64 `json:"gradient_s"`
	Total    float64 `json:"total_s"`
}

// PlanStep plans one step from context towards goal from the state start with planner p: CEM with st
// (noise seeded by seed), gradient descent with gd (its Horizon and CloseGripper taken from st), or CEM
// refined by gradient descent. st must fit the world model's action width (Settings.ForWidth).
func (w *WorldModel) PlanStep(p Planner, st Settings, gd GDSettings, context, goal Rep, start []float64, seed uint64) (*Step, error) {
	if err := p.Check(); err != nil {
		return nil, err
	}
	if err := st.Validate(); err != nil {
		return nil, err
	}
	if sp := st.SearchSpace(); sp.Width != w.ActionWidth() {
		return nil, fmt.Errorf("plan: the search space is %d-D, the predictor takes %d-D actions", sp.Width, w.ActionWidth())
	}
	t0, r0, g0 := time.Now(), w.Timings.Rollout, w.Timings.Gradient
	out := &Step{Planner: p}
	var init [][]float64
	if p != PlannerGD {
		res, err := CEM(st, w.Energy(context, goal, start), NewSeededNoise(seed))
		if err != nil {
			return nil, err
		}
		out.CEM, out.Plan, init = res, res.Plan, res.Plan
		frames := st.Horizon
		if w.opts.NoKVCache {
			frames = st.Horizon * (st.Horizon + 1) / 2
		}
		out.Cost.CEMFrames = st.Iterations * st.Samples * frames
	}
	if p != PlannerCEM {
		gd.Horizon, gd.CloseGripper = st.Horizon, st.CloseGripper
		res, err := GD(gd, st.SearchSpace(), w.EnergyGradient(context, goal, start), init, seed)
		if err != nil {
			return nil, err
		}
		out.GD, out.Plan = res, res.Plan
		out.Cost.GDFrames = res.Passes
	}
	e, err := w.Energy(context, goal, start)([][][]float64{out.Plan})
	if err != nil {
		return nil, err
	}
	out.Energy, out.Action = e[0], out.Plan[0]
	out.Cost.Total = out.Cost.CEMFrames + out.Cost.GDFrames
	out.Timing = StepTiming{Rollout: (w.Timings.Rollout - r0).Seconds(), Gradient: (w.Timings.Gradient - g0).Seconds(),
		Total: time.Since(t0).Seconds()}
	return out, nil
}
