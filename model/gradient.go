package model

import (
	"fmt"

	"github.com/vjepa-vk/vjepa-vk/vk"
)

// EnergyGradient records the planning energy of S candidate action sequences over H steps (planning §1:
// one context and one goal shared by all candidates, as Rollout) and its gradient with respect to every
// action and state, for the gradient planner. Forward is the rollout as H training passes (spec §6.3:
// step h runs frames [z_0, ẑ_1..ẑ_h], ẑ_{h+1} = LN₀ of its last output frame); the energy is the mean L1
// distance of ẑ_H to the goal. Backward mirrors it:
//
//	dẑ_H = L1EnergyBackward(ẑ_H, goal, 1)                          per candidate, seeded with 1
//	for h = H−1 .. 0:  DOut_h = LN₀ᵀ(dẑ_{h+1}) on step h's last frame, 0 elsewhere
//	                   step h's Backward: dẑ_1..ẑ_h += its DZ;  dA[·, 0..h] += DActions;  dS[·, 0..h] += DStates
//
// dẑ_{h+1} is complete when step h runs backward: ẑ_{h+1} is an input of steps h+1..H−1 only, which ran
// before. The gradients with respect to the states are returned separately: the state of step h may
// itself depend on earlier actions (compute_new_pose), which the caller chains on the host.
//
// Candidates are independent, so the gradient of Σ_s E_s with respect to candidate s's actions is the
// gradient of E_s alone: one backward serves every candidate. Each pass keeps what its backward needs
// (or only block inputs with checkpointing): the memory is that of H training passes over S clips.
type EnergyGradient struct {
	S, H int

	// Inputs, written by the caller before the stream runs.
	Context    vk.Tensor // [HW, E] z_0 (after LN₀)
	Goal       vk.Tensor // [HW, E] (after LN₀)
	Actions    vk.Tensor // [S, H, A] candidate-major
	States     vk.Tensor // [S, H, Z] the state before each action
	Extrinsics vk.Tensor // [S, H, 6] (predictors with extrinsics only)

	// Outputs.
	Energies vk.Tensor // [S] mean |ẑ_H − goal|
	DActions vk.Tensor // [S, H, A] d Energies[s] / d Actions[s]
	DStates  vk.Tensor // [S, H, Z] d Energies[s] / d States[s] (the states held fixed)

	p                  *Predictor
	hw, e              int
	ar                 *Arena
	passes             []*Pass     // passes[h] runs frames 0..h
	passAr             []*Arena    // their arenas
	zhat, dzhat        vk.Tensor   // [S, H, HW, E] ẑ_1..ẑ_H and their gradients
	last, dlast        vk.Tensor   // [S, HW, E] ẑ_H, contiguous for the energy; its gradient
	lnZ, lnMean, lnRst []vk.Tensor // per step: LN₀ of the pass output [S·(h+1)·HW, E] and its statistics
	dln                []vk.Tensor // per step: the gradient of that LN₀ output
	ones               vk.Tensor   // [S] the energies' seed
}

// NewEnergyGradient allocates the passes and tensors of S candidates over H steps on p (adapters added
// before, fused or merged). With checkpoint the passes keep only their block inputs.
func (p *Predictor) NewEnergyGradient(S, H int, checkpoint bool) (*EnergyGradient, error) {
	if S < 1 || H < 1 {
		return nil, fmt.Errorf("model: energy gradient of %d samples over %d steps: both must be >= 1", S, H)
	}
	if p.d == nil {
		return nil, fmt.Errorf("model: energy gradient on a planning predictor")
	}
	c := p.Cfg
	HW, E := c.Grid*c.Grid, c.EmbedDim
	g := &EnergyGradient{S: S, H: H, p: p, hw: HW, e: E}
	ar := p.NewArena(fmt.Sprintf("energy gradient S=%d H=%d", S, H))
	g.ar = ar
	ar.Persistent(&g.Context, "context", HW, E)
	ar.Persistent(&g.Goal, "goal", HW, E)
	ar.Persistent(&g.Actions, "actions", S, H, c.ActionIn())
	ar.Persistent(&g.States, "states", S, H, c.StateIn())
	if c.Extrinsics {
		ar.Persistent(&g.Extrinsics, "extrinsics", S, H, ExtrinsicsDim)
	}
	ar.Persistent(&g.Energies, "energies", S)
	ar.Persistent(&g.DActions, "dactions", S, H, c.ActionIn())
	ar.Persistent(&g.DStates, "dstates", S, H, c.StateIn())
	ar.Persistent(&g.zhat, "predictions", S, H, HW, E)
	ar.Persistent(&g.dzhat, "prediction gradients", S, H, HW, E)
	ar.Persistent(&g.last, "last prediction", S, HW, E)
	ar.Persistent(&g.dlast, "last prediction gradient", S, HW, E)
	ar.Persistent(&g.ones, "energy seed", S)
	g.lnZ, g.lnMean, g.lnRst, g.dln = make([]vk.Tensor, H), make([]vk.Tensor, H), make([]vk.Tensor, H), make([]vk.Tensor, H)
	for h := range H {
		rows := S * (h + 1) * HW
		ar.Persistent(&g.lnZ[h], fmt.Sprintf("step %d LN₀ output", h), rows, E)
		ar.Persistent(&g.lnMean[h], fmt.Sprintf("step %d LN₀ mean", h), rows)
		ar.Persistent(&g.lnRst[h], fmt.Sprintf("step %d LN₀ rstd", h), rows)
		ar.Persistent(&g.dln[h], fmt.Sprintf("step %d LN₀ output gradient", h), rows, E)
	}
	if err := ar.Allocate(); err != nil {
		return nil, fmt.Errorf("model: allocate %s: %w", ar.name, err)
	}
	for h := range H {
		pa := p.NewArena(fmt.Sprintf("energy gradient step %d", h))
		ps, err := p.NewPassIn(pa, S, h+1, checkpoint, PassLives{Name: fmt.Sprintf("step%d", h), Forward: pa.ForwardPhases("pass"),
			Backward: pa.BackwardPhases("pass"), WantDZ: true, WantDCond: true})
		if err == nil {
			err = pa.Allocate()
		}
		if err != nil {
			g.Free()
			return nil, fmt.Errorf("model: energy gradient step %d: %w", h, err)
		}
		g.passes, g.passAr = append(g.passes, ps), append(g.passAr, pa)
	}
	ones := make([]float32, S)
	for i := range ones {
		ones[i] = 1
	}
	if err := p.d.Upload(g.ones, ones); err != nil {
		g.Free()
		return nil, err
	}
	return g, nil
}

// Free releases the graph's memory.
func (g *EnergyGradient) Free() {
	for _, a := range g.passAr {
		a.Free()
	}
	g.passAr, g.passes = nil, nil
	g.ar.Free()
}

// frames copies nf frames of HW·E values per candidate from src (Ts frames a candidate, from frame fs)
// to dst (Td frames a candidate, from frame fd); Ts = 0 repeats src's frame for every candidate.
func (g *EnergyGradient) frames(s *vk.Stream, dst vk.Tensor, Td, fd int, src vk.Tensor, Ts, fs, nf int, acc bool) {
	F := g.hw * g.e
	vk.CopyBlocks(s, dst, src, vk.CopyArgs{Count: g.S, Rows: 1, Cols: nf * F, SrcOffset: fs * F, SrcBlock: Ts * F,
		DstOffset: fd * F, DstBlock: Td * F, Accumulate: acc})
}

// conds copies (or adds) the first nf rows of width w per candidate between an [S, H, w] tensor of the
// graph and an [S, nf, w] tensor of a pass.
func (g *EnergyGradient) conds(s *vk.Stream, dst vk.Tensor, Td int, src vk.Tensor, Ts, nf, w int, acc bool) {
	vk.CopyBlocks(s, dst, src, vk.CopyArgs{Count: g.S, Rows: 1, Cols: nf * w, SrcBlock: Ts * w, DstBlock: Td * w, Accumulate: acc})
}

// Record records the energies (Forward) and their gradients (Backward) into s.
func (g *EnergyGradient) Record(s *vk.Stream) {
	g.Forward(s)
	g.Backward(s)
}

// Forward records the rollout and the energies.
func (g *EnergyGradient) Forward(s *vk.Stream) {
	c, H := g.p.Cfg, g.H
	for h, ps := range g.passes {
		T := h + 1
		g.frames(s, ps.Z, T, 0, g.Context, 0, 0, 1, false) // z_0 for every candidate
		if h > 0 {
			g.frames(s, ps.Z, T, 1, g.zhat, H, 0, h, false) // ẑ_1..ẑ_h
		}
		g.conds(s, ps.Actions, T, g.Actions, H, T, c.ActionIn(), false)
		g.conds(s, ps.States, T, g.States, H, T, c.StateIn(), false)
		if c.Extrinsics {
			g.conds(s, ps.Extrinsics, T, g.Extrinsics, H, T, ExtrinsicsDim, false)
		}
		ps.Forward(s)
		vk.LayerNorm(s, g.lnZ[h], g.lnMean[h], g.lnRst[h], ps.Out, vk.Tensor{}, vk.Tensor{}, lnEps0) // [S·T·HW, E]
		g.frames(s, g.zhat, H, h, g.lnZ[h], T, h, 1, false)                                          // ẑ_{h+1}
	}
	g.frames(s, g.last, 1, 0, g.zhat, H, H-1, 1, false)
	vk.L1Energy(s, g.Energies, g.last, g.Goal) // [S]
}

// Backward records the gradients of every candidate's energy with respect to its actions and states.
func (g *EnergyGradient) Backward(s *vk.Stream) {
	c, H := g.p.Cfg, g.H
	vk.L1EnergyBackward(s, g.dlast, g.last, g.Goal, g.ones) // [S, HW·E]
	vk.Zero(s, g.dzhat)
	g.frames(s, g.dzhat, H, H-1, g.dlast, 1, 0, 1, false)
	for h := H - 1; h >= 0; h-- {
		ps, T := g.passes[h], h+1
		// Only the last output frame of step h is used: ẑ_{h+1}.
		vk.Zero(s, g.dln[h])
		g.frames(s, g.dln[h], T, h, g.dzhat, H, h, 1, false)
		vk.LayerNormBackward(s, ps.DOut, vk.Tensor{}, vk.Tensor{}, g.dln[h], ps.Out, vk.Tensor{}, g.lnMean[h], g.lnRst[h], false)
		ps.Backward(s, h > 0)
		if h > 0 { // inputs ẑ_1..ẑ_h of step h
			g.frames(s, g.dzhat, H, 0, ps.DZ, T, 1, h, true)
		}
		acc := h < H-1 // the last step covers every action first
		g.conds(s, g.DActions, H, ps.DActions, T, T, c.ActionIn(), acc)
		g.conds(s, g.DStates, H, ps.DStates, T, T, c.StateIn(), acc)
	}
}
