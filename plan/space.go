package plan

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/vjepa-vk/vjepa-vk/data"
	"github.com/vjepa-vk/vjepa-vk/model"
)

// The action space a planner searches. cem() searches DROID's (Δx, Δy, Δz, gripper) inside the 7-D action
// with the rotation deltas fixed at 0 (planning §4, vjepa2 issue #60); a robot with another action width
// (a LeRobot adapter's own action_encoder) searches the components its Space names, in their own bounds.

// SearchDim is one searched component of the action.
type SearchDim struct {
	Index int     `json:"index"` // component of the A-D action
	Lo    float64 `json:"lo"`    // samples are clipped to [Lo, Hi]
	Hi    float64 `json:"hi"`
	Mean  float64 `json:"mean"` // initial mean (0 in cem())
	Std   float64 `json:"std"`  // initial standard deviation
}

// Space is the search space of a planner over A-D actions (A = Width): the searched components, in the
// order of the columns of each noise block, and the value of every other component. At most one searched
// component is the gripper: it has its own momenta, is forced to 1 (closed) from Settings.CloseGripper on,
// and its planned mean is rounded to 0 below Settings.GripperRound.
type Space struct {
	Width   int         `json:"width"`
	Dims    []SearchDim `json:"dims"`
	Fixed   []float64   `json:"fixed,omitempty"` // [Width] values of the components not searched; nil: zeros
	Gripper int         `json:"gripper"`         // index into Dims of the gripper; −1: none
}

// DROIDSpace is cem()'s space (planning §4): Δx, Δy, Δz in ±maxnorm with initial std maxnorm, the
// gripper (component 6) in ±gripperClip with initial std 1, rotation deltas 0.
func DROIDSpace(maxNorm, gripperClip float64) Space {
	xyz := func(i int) SearchDim { return SearchDim{Index: i, Lo: -maxNorm, Hi: maxNorm, Std: maxNorm} }
	return Space{Width: model.ActionDim, Dims: []SearchDim{xyz(0), xyz(1), xyz(2),
		{Index: gripperAxis, Lo: -gripperClip, Hi: gripperClip, Std: 1}}, Gripper: 3}
}

// BoxSpace searches every component of a width-wide action in ±bound with initial std bound and no
// gripper: the default for actions that are not DROID's 7-D pose deltas.
func BoxSpace(width int, bound float64) Space {
	sp := Space{Width: width, Gripper: -1}
	for i := range width {
		sp.Dims = append(sp.Dims, SearchDim{Index: i, Lo: -bound, Hi: bound, Std: bound})
	}
	return sp
}

// SpaceFromActions searches every component within the range the recorded actions [N][A] span, with
// their standard deviation as the initial std and 0 (clipped into the range) as the initial mean: a
// search space for a robot whose action bounds are only known from its data.
func SpaceFromActions(actions [][]float64) (Space, error) {
	if len(actions) < 2 {
		return Space{}, fmt.Errorf("plan: search space from %d recorded actions: need at least 2", len(actions))
	}
	A := len(actions[0])
	sp := Space{Width: A, Gripper: -1}
	for k := range A {
		lo, hi, sum := math.Inf(1), math.Inf(-1), 0.0
		for i, a := range actions {
			if len(a) != A {
				return Space{}, fmt.Errorf("plan: search space from actions: action %d has %d components, action 0 has %d", i, len(a), A)
			}
			lo, hi, sum = min(lo, a[k]), max(hi, a[k]), sum+a[k]
		}
		mean, ss := sum/float64(len(actions)), 0.0
		for _, a := range actions {
			ss += (a[k] - mean) * (a[k] - mean)
		}
		std := math.Sqrt(ss / float64(len(actions)-1))
		if !(hi > lo) || !(std > 0) {
			continue // a component the robot never moves is not searched (it stays 0)
		}
		sp.Dims = append(sp.Dims, SearchDim{Index: k, Lo: lo, Hi: hi, Mean: min(max(0, lo), hi), Std: std})
	}
	if len(sp.Dims) == 0 {
		return Space{}, fmt.Errorf("plan: search space from %d recorded actions: every component is constant", len(actions))
	}
	return sp, nil
}

// Validate checks the space on its own.
func (sp Space) Validate() error {
	if sp.Width < 1 {
		return fmt.Errorf("plan: search space of width %d: want >= 1", sp.Width)
	}
	if len(sp.Dims) == 0 {
		return fmt.Errorf("plan: search space of width %d searches no component", sp.Width)
	}
	if sp.Fixed != nil && len(sp.Fixed) != sp.Width {
		return fmt.Errorf("plan: search space: %d fixed values for %d components", len(sp.Fixed), sp.Width)
	}
	seen := map[int]bool{}
	finite := func(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
	for i, d := range sp.Dims {
		switch {
		case d.Index < 0 || d.Index >= sp.Width:
			return fmt.Errorf("plan: search space: dim %d is component %d, want 0..%d", i, d.Index, sp.Width-1)
		case seen[d.Index]:
			return fmt.Errorf("plan: search space: component %d is searched twice", d.Index)
		case !finite(d.Lo) || !finite(d.Hi) || !(d.Lo < d.Hi):
			return fmt.Errorf("plan: search space: component %d bounds [%g, %g]: want finite lo < hi", d.Index, d.Lo, d.Hi)
		case !finite(d.Std) || !(d.Std > 0):
			return fmt.Errorf("plan: search space: component %d std %g: want a positive number", d.Index, d.Std)
		case !finite(d.Mean):
			return fmt.Errorf("plan: search space: component %d mean %g: want a finite number", d.Index, d.Mean)
		}
		seen[d.Index] = true
	}
	if sp.Gripper < -1 || sp.Gripper >= len(sp.Dims) {
		return fmt.Errorf("plan: search space: gripper %d: want -1 (none) or one of the %d searched dims", sp.Gripper, len(sp.Dims))
	}
	return nil
}

// fixed is the value of component k when it is not searched.
func (sp Space) fixed(k int) float64 {
	if sp.Fixed == nil {
		return 0
	}
	return sp.Fixed[k]
}

// gripperIndex is the action component of the gripper, or −1.
func (sp Space) gripperIndex() int {
	if sp.Gripper < 0 {
		return -1
	}
	return sp.Dims[sp.Gripper].Index
}

// ParseSpace reads a search space over width-wide actions from its flag form: comma-separated
// components "INDEX=LO:HI[/STD]" (STD defaults to (HI−LO)/2, the initial mean is 0 clipped into
// [LO, HI]), gripper the component index of the gripper (−1: none; it must be searched), fixed
// "INDEX=VALUE,…" the values of components not searched (default 0). E.g. DROID's default is
// "0=-0.05:0.05/0.05,1=-0.05:0.05/0.05,2=-0.05:0.05/0.05,6=-0.75:0.75/1" with gripper 6.
func ParseSpace(spec string, width, gripper int, fixed string) (Space, error) {
	sp := Space{Width: width, Gripper: -1}
	for i, f := range strings.Split(spec, ",") {
		f = strings.TrimSpace(f)
		idx, rng, ok := strings.Cut(f, "=")
		lohi, stdS, hasStd := strings.Cut(rng, "/")
		loS, hiS, ok2 := strings.Cut(lohi, ":")
		if !ok || !ok2 {
			return Space{}, fmt.Errorf("plan: search space %q: entry %d (%q): want INDEX=LO:HI[/STD]", spec, i, f)
		}
		k, err := strconv.Atoi(strings.TrimSpace(idx))
		if err != nil {
			return Space{}, fmt.Errorf("plan: search space %q: entry %d (%q): index %q is not an integer", spec, i, f, idx)
		}
		var v [3]float64
		for j, s := range []string{loS, hiS, stdS} {
			if j == 2 && !hasStd {
				break
			}
			if v[j], err = strconv.ParseFloat(strings.TrimSpace(s), 64); err != nil {
				return Space{}, fmt.Errorf("plan: search space %q: entry %d (%q): %q is not a number", spec, i, f, s)
			}
		}
		if !hasStd {
			v[2] = (v[1] - v[0]) / 2
		}
		sp.Dims = append(sp.Dims, SearchDim{Index: k, Lo: v[0], Hi: v[1], Mean: min(max(0, v[0]), v[1]), Std: v[2]})
		if k == gripper {
			sp.Gripper = len(sp.Dims) - 1
		}
	}
	if gripper >= 0 && sp.Gripper < 0 {
		return Space{}, fmt.Errorf("plan: search space %q: the gripper (component %d) is not searched", spec, gripper)
	}
	if strings.TrimSpace(fixed) != "" {
		sp.Fixed = make([]float64, width)
		for i, f := range strings.Split(fixed, ",") {
			idx, val, ok := strings.Cut(strings.TrimSpace(f), "=")
			k, err := strconv.Atoi(strings.TrimSpace(idx))
			if !ok || err != nil || k < 0 || k >= width {
				return Space{}, fmt.Errorf("plan: fixed components %q: entry %d (%q): want INDEX=VALUE with INDEX in 0..%d", fixed, i, f, width-1)
			}
			if sp.Fixed[k], err = strconv.ParseFloat(strings.TrimSpace(val), 64); err != nil {
				return Space{}, fmt.Errorf("plan: fixed components %q: entry %d (%q): %q is not a number", fixed, i, f, val)
			}
			if slices.ContainsFunc(sp.Dims, func(d SearchDim) bool { return d.Index == k }) {
				return Space{}, fmt.Errorf("plan: fixed components %q: component %d is searched", fixed, k)
			}
		}
	}
	return sp, sp.Validate()
}

// StateRule is how the robot state of the rollout's state tokens moves under an action (planning §3).
type StateRule string

const (
	// StatePose is compute_new_pose: DROID's 7-D pose moved by a 7-D pose delta (xyz added, rotation
	// composed in extrinsic xyz Euler angles, gripper clipped to [0, 1]).
	StatePose StateRule = "pose"
	// StateHold keeps the current state for every planned step: robots whose state dynamics the planner
	// does not know (at horizon 1 only the current state is used anyway).
	StateHold StateRule = "hold"
	// StateAdd adds the action to the state: delta actions of the state's own width.
	StateAdd StateRule = "add"
)

// DefaultStateRule is pose for 7-D states and actions, hold otherwise.
func DefaultStateRule(stateWidth, actionWidth int) StateRule {
	if stateWidth == model.ActionDim && actionWidth == model.ActionDim {
		return StatePose
	}
	return StateHold
}

// Check rejects a rule the widths cannot follow.
func (r StateRule) Check(stateWidth, actionWidth int) error {
	switch r {
	case StatePose:
		if stateWidth != model.ActionDim || actionWidth != model.ActionDim {
			return fmt.Errorf("plan: state rule pose needs 7-D states and actions (compute_new_pose), the predictor takes %d-D states and %d-D actions", stateWidth, actionWidth)
		}
	case StateAdd:
		if stateWidth != actionWidth {
			return fmt.Errorf("plan: state rule add needs actions as wide as the state, the predictor takes %d-D states and %d-D actions", stateWidth, actionWidth)
		}
	case StateHold:
	default:
		return fmt.Errorf("plan: state rule %q: want pose, hold or add", r)
	}
	return nil
}

// Next is the state after action a from state s.
func (r StateRule) Next(s, a []float64) []float64 {
	switch r {
	case StatePose:
		var st data.State
		var ac data.Action
		copy(st[:], s)
		copy(ac[:], a)
		n := data.ComputeNewPose(st, ac)
		return n[:]
	case StateAdd:
		out := slices.Clone(s)
		for k := range out {
			out[k] += a[k]
		}
		return out
	}
	return slices.Clone(s)
}

// Rollout returns the states [H] a candidate passes through: states[0] = start, states[h+1] =
// rule.Next(states[h], actions[h]) (planning §3): the state tokens of its rollout steps.
func (r StateRule) Rollout(start []float64, actions [][]float64) [][]float64 {
	states := make([][]float64, len(actions))
	s := start
	for h, a := range actions {
		states[h] = s
		s = r.Next(s, a)
	}
	return states
}

// CheckStateOf validates a robot state for a predictor of stateWidth-D states under rule: the width,
// finite numbers, and for DROID poses (rule pose) the angle and gripper ranges of CheckState.
func CheckStateOf(s []float64, stateWidth int, rule StateRule) error {
	if len(s) != stateWidth {
		return fmt.Errorf("state has %d values, the predictor takes %d", len(s), stateWidth)
	}
	for i, v := range s {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("state[%d] = %v: want a finite number", i, v)
		}
	}
	if rule == StatePose {
		var st data.State
		copy(st[:], s)
		return CheckState(st)
	}
	return nil
}
