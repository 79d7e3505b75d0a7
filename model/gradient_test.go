package model_test

import (
	"math"
	"testing"

	"github.com/vjepa-vk/vjepa-vk/model"
	"github.com/vjepa-vk/vjepa-vk/model/modeltest"
	"github.com/vjepa-vk/vjepa-vk/vk"
	"github.com/vjepa-vk/vjepa-vk/vk/vktest"
)

// gradientRun uploads candidate-major actions [S, H, A] and states [S, H, Z] into g, runs it (forward
// and backward) and returns the energies [S], d/d actions and d/d states.
func gradientRun(t *testing.T, g *model.EnergyGradient, d *vk.Device, ctx, goal, actions, states []float32) (e, da, ds []float32) {
	t.Helper()
	for _, u := range []struct {
		t vk.Tensor
		v []float32
	}{{g.Context, ctx}, {g.Goal, goal}, {g.Actions, actions}, {g.States, states}} {
		if err := d.Upload(u.t, u.v); err != nil {
			t.Fatal(err)
		}
	}
	s := vktest.Stream(t, d)
	g.Record(s)
	vktest.Run(t, s)
	return vktest.Download(t, d, g.Energies), vktest.Download(t, d, g.DActions), vktest.Download(t, d, g.DStates)
}

// stepMajor turns candidate-major [S, H, w] into the rollout's step-major [H, S, w].
func stepMajor(v []float32, S, H, w int) []float32 {
	out := make([]float32, len(v))
	for s := range S {
		for h := range H {
			copy(out[(h*S+s)*w:(h*S+s+1)*w], v[(s*H+h)*w:(s*H+h+1)*w])
		}
	}
	return out
}

// TestEnergyGradient checks the gradient planner's graph: its energies are the rollout's (the inference
// path, checked against the training passes), checkpointing changes nothing, and d energy / d actions and
// d energy / d states match central finite differences of the energy, at horizons 1 to 3, with adapters,
// on the official widths and a LeRobot robot's.
func TestEnergyGradient(t *testing.T) {
	d := vktest.Device(t)
	for _, cfg := range []model.PredictorConfig{rolloutConfigs[0], rolloutConfigs[2]} {
		p := modeltest.Predictor(t, d, cfg, model.FP32, &model.LoRAConfig{R: 2, Alpha: 4}, false)
		A, Z, F := cfg.ActionIn(), cfg.StateIn(), cfg.Grid*cfg.Grid*cfg.EmbedDim
		for _, H := range []int{1, 2, 3} {
			const S = 3
			t.Run(vktest.Name("A", A, "H", H), func(t *testing.T) {
				ctx := layerNorm0(vktest.RandN(91, F), cfg.EmbedDim)
				// The goal is ±10 away from every predicted value (LN₀ outputs are O(1)): no |ẑ − goal| term
				// changes sign within the finite differences' steps, so the energy is smooth there and the
				// quotients below converge (l1_energy_backward's kinks have their own test in vk).
				goal := vktest.RandN(92, F)
				for i, v := range goal {
					goal[i] = float32(math.Copysign(10, float64(v))) + v
				}
				actions, states := vktest.RandN(93, S*H*A), vktest.RandN(94, S*H*Z)
				g, err := p.NewEnergyGradient(S, H, false)
				if err != nil {
					t.Fatal(err)
				}
				defer g.Free()
				e, da, ds := gradientRun(t, g, d, ctx, goal, actions, states)

				goals := make([]float32, 0, H*F)
				for range H {
					goals = append(goals, goal...)
				}
				roll := runRollout(t, p, model.RolloutConfig{Samples: S, Horizon: H, KVCache: true},
					rolloutInputs{context: ctx, goals: goals, actions: stepMajor(actions, S, H, A), states: stepMajor(states, S, H, Z)})
				// Training passes and the cached inference path: f32 rounding of the whole predictor.
				vktest.Close(t, "energies vs Rollout", e, vktest.F64(roll[(H-1)*S:]), 1e-5, 1e-6)

				gc, err := p.NewEnergyGradient(S, H, true)
				if err != nil {
					t.Fatal(err)
				}
				defer gc.Free()
				_, dac, _ := gradientRun(t, gc, d, ctx, goal, actions, states)
				vktest.Close(t, "d/d actions with checkpointing", dac, vktest.F64(da), 1e-6, 1e-7)

				// Central differences of the device energy (f32, so a coarse step): every action and state
				// component of candidate 1.
				const eps = 1e-2
				worst := 0.0
				for _, in := range []struct {
					name string
					v    []float32
					w    int
					grad []float32
				}{{"actions", actions, A, da}, {"states", states, Z, ds}} {
					for i := 1 * H * in.w; i < 2*H*in.w; i++ {
						energy := func(delta float32) float64 {
							v := append([]float32(nil), in.v...)
							v[i] += delta
							a, st := actions, states
							if in.name == "actions" {
								a = v
							} else {
								st = v
							}
							e, _, _ := gradientRun(t, g, d, ctx, goal, a, st)
							return float64(e[1])
						}
						fd := (energy(eps) - energy(-eps)) / (2 * eps)
						// f32 energies: the quotient's rounding is ~1e-7/eps; its truncation O(eps²).
						err := math.Abs(fd-float64(in.grad[i])) / math.Max(math.Abs(fd), 1e-2)
						worst = max(worst, err)
						if err > 2e-2 {
							t.Errorf("d energy / d %s[%d] = %.6g, finite difference %.6g", in.name, i, in.grad[i], fd)
						}
					}
				}
				t.Logf("worst relative difference to finite differences: %.2e", worst)
				if all0(da[H*A : 2*H*A]) {
					t.Error("d energy / d actions of candidate 1 is zero")
				}
			})
		}
	}
}

func all0(v []float32) bool {
	for _, x := range v {
		if x != 0 {
			return false
		}
	}
	return true
}

func TestEnergyGradientBadInput(t *testing.T) {
	d := vktest.Device(t)
	p := modeltest.Predictor(t, d, rolloutConfigs[0], model.FP32, nil, false)
	for _, c := range [][2]int{{0, 1}, {2, 0}} {
		if _, err := p.NewEnergyGradient(c[0], c[1], false); err == nil {
			t.Errorf("NewEnergyGradient(%d, %d) accepted", c[0], c[1])
		}
	}
	pp, _, err := model.NewPlanPredictor(rolloutConfigs[0], model.LoRAConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pp.NewEnergyGradient(1, 1, false); err == nil {
		t.Error("NewEnergyGradient on a planning predictor")
	}
}
