package train

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"

	"github.com/vjepa-vk/vjepa-vk/data"
	"github.com/vjepa-vk/vjepa-vk/model"
	"github.com/vjepa-vk/vjepa-vk/plan"
	"github.com/vjepa-vk/vjepa-vk/vk"
)

// Tolerances of plan fixtures (fixtures/README.md): energies relative; the search's samples, means, stds
// and final action absolute; poses absolute.
const (
	PlanEnergyTol = 1e-4
	PlanActionTol = 1e-5
	PlanPoseTol   = 1e-6
)

// planFixtureSettings is case.json "plan": cem()'s arguments.
type planFixtureSettings struct {
	Horizon             int      `json:"horizon"`
	Samples             int      `json:"samples"`
	TopK                int      `json:"topk"`
	Iterations          int      `json:"iterations"`
	MomentumMean        float64  `json:"momentum_mean"`
	MomentumStd         float64  `json:"momentum_std"`
	MomentumMeanGripper float64  `json:"momentum_mean_gripper"`
	MomentumStdGripper  float64  `json:"momentum_std_gripper"`
	MaxNorm             float64  `json:"maxnorm"`
	GripperClip         float64  `json:"gripper_clip"`
	GripperRound        float64  `json:"gripper_round"`
	CloseGripper        *float64 `json:"close_gripper"` // null: never
}

func (p planFixtureSettings) settings() plan.Settings {
	cg := -1
	if p.CloseGripper != nil {
		cg = int(*p.CloseGripper)
	}
	return plan.Settings{Samples: p.Samples, Iterations: p.Iterations, TopK: p.TopK, Horizon: p.Horizon, MaxNorm: p.MaxNorm,
		MomentumMean: p.MomentumMean, MomentumStd: p.MomentumStd, MomentumMeanGripper: p.MomentumMeanGripper,
		MomentumStdGripper: p.MomentumStdGripper, GripperClip: p.GripperClip, GripperRound: p.GripperRound, CloseGripper: cg}
}

// compareAbs records the errors of got against want under name, judged by the absolute error.
func (r *VerifyReport) compareAbs(name string, got, want []float32, atol float64) {
	r.compare(name, got, want, atol)
	res := r.Results[name]
	res.Abs, res.OK = true, res.MaxAbs <= atol
	r.Results[name] = res
	if !res.OK {
		r.OK = false
	}
}

// verifyPlan replays a plan fixture (kind "plan"): the official CEM on the fixture's predictor with LoRA,
// with the recorded noise, checking every iteration's samples, energies, elites, mean and std, the final
// action; the one-step energy grid; and compute_new_pose on the recorded poses. The search runs with the
// K/V cache (the default) and again without it.
func verifyPlan(d *vk.Device, f *fixture, rep *VerifyReport) error {
	var c struct {
		EmbedDim int      `json:"embed_dim"`
		PredDim  int      `json:"pred_dim"`
		Depth    int      `json:"depth"`
		Heads    int      `json:"heads"`
		Img      int      `json:"img"`
		R        int      `json:"r"`
		Alpha    float64  `json:"alpha"`
		Targets  []string `json:"targets"`
	}
	cj := filepath.Join(f.dir, "case.json")
	if err := json.Unmarshal(f.meta.Config, &c); err != nil {
		return fmt.Errorf("verify: %s: config: %w", cj, err)
	}
	if c.Img%16 != 0 || c.Img <= 0 {
		return fmt.Errorf("verify: %s: config.img %d: want a positive multiple of 16", cj, c.Img)
	}
	var ps planFixtureSettings
	if raw, ok := f.raw["plan"]; !ok {
		return fmt.Errorf("verify: %s: no \"plan\" settings in a plan case", cj)
	} else if err := json.Unmarshal(raw, &ps); err != nil {
		return fmt.Errorf("verify: %s: plan: %w", cj, err)
	}
	st := ps.settings()
	if err := st.Validate(); err != nil {
		return fmt.Errorf("verify: %s: plan: %w", cj, err)
	}
	cfg := model.PredictorConfig{EmbedDim: c.EmbedDim, Dim: c.PredDim, Depth: c.Depth, Heads: c.Heads, Grid: c.Img / 16, MLPRatio: 4}
	p, err := f.loadPredictor(d, cfg)
	if err != nil {
		return err
	}
	defer p.Free()
	mods, err := model.LoRAFromTensors(filepath.Join(f.dir, "case.safetensors"), f.tensors.Refs(), "lora.")
	if err != nil {
		return err
	}
	if len(mods) > 0 {
		targets := c.Targets
		if len(targets) == 0 {
			targets = []string{"qkv", "proj", "fc1", "fc2"}
		}
		if err := p.LoadAdapters(model.NewAdapterConfig(c.R, c.Alpha, true, targets, "fixture"), mods); err != nil {
			return err
		}
	}
	get := func(name string, shape ...int) ([]float32, error) {
		v, got, err := f.tensor(name)
		if err != nil {
			return nil, err
		}
		if !slices.Equal(got, shape) {
			return nil, fmt.Errorf("verify: %s: %s has shape %v, want %v", filepath.Join(f.dir, "case.safetensors"), name, got, shape)
		}
		return v, nil
	}
	hw, E := cfg.Grid*cfg.Grid, cfg.EmbedDim
	S, H, I, K := st.Samples, st.Horizon, st.Iterations, st.TopK
	in := map[string][]float32{}
	for _, t := range []struct {
		name  string
		shape []int
	}{
		{"inputs.context", []int{hw, E}}, {"inputs.goal", []int{hw, E}}, {"inputs.pose", []int{model.ActionDim}},
		{"plan.noise", []int{I, H, S, 4}}, {"plan.samples", []int{I, S, H, model.ActionDim}}, {"plan.energies", []int{I, S}},
		{"plan.elites", []int{I, K}}, {"plan.mean", []int{I + 1, H, 4}}, {"plan.std", []int{I + 1, H, 4}},
		{"plan.action", []int{H, model.ActionDim}},
	} {
		if in[t.name], err = get(t.name, t.shape...); err != nil {
			return err
		}
	}
	start := make([]float64, model.ActionDim)
	for i, v := range in["inputs.pose"] {
		start[i] = float64(v)
	}
	for _, cache := range []bool{true, false} {
		w, err := plan.NewWorldModel(p, nil, 0, 0, plan.Options{NoKVCache: !cache})
		if err != nil {
			return err
		}
		noise := &plan.RecordedNoise{Values: in["plan.noise"], Iterations: I, H: H, Samples: S}
		res, err := plan.CEM(st, w.Energy(in["inputs.context"], in["inputs.goal"], start), noise)
		if err != nil {
			w.Close()
			return err
		}
		suffix := ""
		if !cache {
			suffix = " (no kv cache)"
		}
		comparePlanSearch(rep, res, in, suffix)
		if cache {
			if err := compareGrid(rep, f, w, in, start); err != nil {
				w.Close()
				return err
			}
		}
		w.Close()
	}
	return comparePoses(rep, f)
}

// comparePlanSearch compares a replayed search with the fixture's plan.* tensors.
func comparePlanSearch(rep *VerifyReport, res *plan.Result, in map[string][]float32, suffix string) {
	var samples, energies, means, stds []float32
	put := func(dst *[]float32, ms [][]float64) {
		for _, m := range ms {
			for _, v := range m {
				*dst = append(*dst, float32(v))
			}
		}
	}
	put(&means, res.InitialMean)
	put(&stds, res.InitialStd)
	mismatched := 0
	want := in["plan.elites"]
	for i, it := range res.Iterations {
		for _, seq := range it.Samples {
			for _, a := range seq {
				for _, v := range a {
					samples = append(samples, float32(v))
				}
			}
		}
		for _, e := range it.Energies {
			energies = append(energies, float32(e))
		}
		put(&means, it.Mean)
		put(&stds, it.Std)
		k := len(it.Elites)
		w := make([]int, k)
		for j := range w {
			w[j] = int(want[i*k+j])
		}
		g := slices.Clone(it.Elites)
		slices.Sort(g)
		slices.Sort(w)
		if !slices.Equal(g, w) {
			mismatched++
		}
	}
	var action []float32
	for _, a := range res.Plan {
		for _, v := range a {
			action = append(action, float32(v))
		}
	}
	rep.compareAbs("plan.samples"+suffix, samples, in["plan.samples"], PlanActionTol)
	rep.compare("plan.energies"+suffix, energies, in["plan.energies"], PlanEnergyTol)
	// Elite sets must be identical: the result counts the iterations whose set differs.
	el := VerifyResult{MaxAbs: float64(mismatched), Tol: 0, Abs: true, OK: mismatched == 0}
	rep.Results["plan.elites"+suffix] = el
	rep.OK = rep.OK && el.OK
	rep.compareAbs("plan.mean"+suffix, means, in["plan.mean"], PlanActionTol)
	rep.compareAbs("plan.std"+suffix, stds, in["plan.std"], PlanActionTol)
	rep.compareAbs("plan.action"+suffix, action, in["plan.action"], PlanActionTol)
}

// compareGrid scores the one-step energy landscape grid.actions from the context (horizon 1).
func compareGrid(rep *VerifyReport, f *fixture, w *plan.WorldModel, in map[string][]float32, start []float64) error {
	acts, shape, err := f.tensor("grid.actions")
	if err != nil {
		return err
	}
	want, _, err := f.tensor("grid.energies")
	if err != nil {
		return err
	}
	if len(shape) != 2 || shape[1] != model.ActionDim || len(want) != shape[0] {
		return fmt.Errorf("verify: %s: grid.actions %v and grid.energies of %d: want [G, 7] and [G]", f.dir, shape, len(want))
	}
	cands := make([][][]float64, shape[0])
	for g := range cands {
		a := make([]float64, model.ActionDim)
		for k := range a {
			a[k] = float64(acts[g*model.ActionDim+k])
		}
		cands[g] = [][]float64{a}
	}
	e, err := w.Score(in["inputs.context"], []plan.Rep{in["inputs.goal"]}, start, cands)
	if err != nil {
		return err
	}
	got := make([]float32, len(e))
	for g, row := range e {
		got[g] = float32(row[0])
	}
	rep.compare("grid.energies", got, want, PlanEnergyTol)
	return nil
}

// comparePoses checks compute_new_pose (scipy's extrinsic xyz Euler angles) on pose.poses and
// pose.actions against pose.next.
func comparePoses(rep *VerifyReport, f *fixture) error {
	var t [3][]float32
	for i, name := range []string{"pose.poses", "pose.actions", "pose.next"} {
		v, shape, err := f.tensor(name)
		if err != nil {
			return err
		}
		if len(shape) != 2 || shape[1] != model.ActionDim {
			return fmt.Errorf("verify: %s: %s has shape %v, want [P, 7]", f.dir, name, shape)
		}
		t[i] = v
	}
	if len(t[0]) != len(t[1]) || len(t[0]) != len(t[2]) {
		return fmt.Errorf("verify: %s: pose.poses, pose.actions and pose.next differ in length", f.dir)
	}
	got := make([]float32, 0, len(t[2]))
	for i := 0; i < len(t[0]); i += model.ActionDim {
		var s data.State
		var a data.Action
		for k := range model.ActionDim {
			s[k], a[k] = float64(t[0][i+k]), float64(t[1][i+k])
		}
		for _, v := range data.ComputeNewPose(s, a) {
			got = append(got, float32(v))
		}
	}
	// Angles wrap at ±π: a pose update that lands on the other side of the cut is the same rotation but
	// a different number, which is exactly what this check must catch, so no wrapping is forgiven.
	rep.compareAbs("pose.next", got, t[2], PlanPoseTol)
	return nil
}
