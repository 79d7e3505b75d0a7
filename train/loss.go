package train

import (
	"fmt"

	"github.com/vjepa-vk/vjepa-vk/model"
	"github.com/vjepa-vk/vjepa-vk/vk"
)

// lnEps0 is the parameter-free LayerNorm around encoder outputs and predictor outputs (spec §6.1, §11.8).
const lnEps0 = 1e-5

// LossGraph records the training objective of spec §6 for B clips of T frames on one stream:
//
//	h      = LN₀(features)                                       targets and context
//	z_tf   = LN₀(predictor(h[0..T-2], a[0..T-2], s[0..T-2]))     teacher forcing, ONE pass (§6.2)
//	ẑ_1    = z_tf frame 0;  ẑ_{n+1} = last frame of LN₀(predictor([h_0, ẑ_1..ẑ_n], a[0..n], s[0..n]))
//	z_ar   = [ẑ_1..ẑ_k]                                           rollout, k = AutoSteps (§6.3)
//	loss   = mean|z_tf − h[1..T-1]| + mean|z_ar − h[1..k]|        (§6.4)
//
// and its backward into the LoRA gradients. Gradients flow through ẑ_1 and every rollout input. LN₀
// works row by row, so h is never held whole: each part of it is normalized from the features where it
// is used (the same kernel on the same rows, so the same values).
type LossGraph struct {
	B, T, AutoSteps int

	// Inputs written by the caller before the stream runs.
	Features   vk.Tensor // [B·T·HW, E] encoder outputs (before LN₀)
	Actions    vk.Tensor // [B·(T-1), A] a_0..a_{T-2} (A = 7 officially)
	States     vk.Tensor // [B·T, S]
	Extrinsics vk.Tensor // [B·T, 6] (extrinsics models only)
	// DLoss [1] is the seed of backward: 1, or the fp16 loss scale.
	DLoss vk.Tensor

	// Outputs. The losses are valid after the stream runs; ZTF and ZAR only after a stream that records
	// Forward alone (Backward reuses their memory once it has read them).
	LossTF, LossAR vk.Tensor // [1] each
	ZTF            vk.Tensor // [B·(T-1)·HW, E]
	ZAR            vk.Tensor // [B·k·HW, E]

	p                  *model.Predictor
	hw, e              int
	ar                 *model.Arena // every tensor of the graph and its passes, by lifetime
	ph                 lossPhases
	h0                 vk.Tensor // frame 0 of h [B·HW, E], the first input frame of every rollout step
	tf                 *model.Pass
	tfMean, tfRstd     vk.Tensor
	tgtTF, tgtAR       vk.Tensor   // h[1..T-1], h[1..k]
	raw                []vk.Tensor // features frames before LN₀, per use of h (tf inputs, tf targets, rollout targets)
	rawMean, rawRstd   []vk.Tensor
	roll               []*model.Pass // roll[n-1] runs rollout step n on n+1 frames
	rollZ              []vk.Tensor   // LN₀ outputs of each rollout pass [B·(n+1)·HW, E]
	rollMean, rollRstd []vk.Tensor
	dZTF, dZAR         vk.Tensor
	dRoll              []vk.Tensor // gradient w.r.t. rollZ[n-1]
	ws                 vk.Tensor
}

// lossPhases are the graph's own phases on its arena, in recording order; the passes' phases sit between
// them (their forwards after in, tfLoss and rollIn[n-1]; their backwards after rollBackIn[n-1] and
// tfBackIn).
type lossPhases struct {
	in, tfLoss         int   // the teacher-forcing inputs and h_0; teacher-forcing loss
	rollIn, rollOut    []int // per rollout step n (index n-1): its inputs; its LN₀ and z_ar frame
	arLoss, arBack     int   // rollout loss and its gradient
	rollBackIn         []int // rollout step n's output gradient
	rollBackOut        []int // its input gradient into dZAR
	tfBackIn, tfBackLN int   // teacher-forcing loss gradient; LN₀ backward
}

// NewLossGraph allocates the passes and tensors of the objective. T ≥ 2; 1 ≤ AutoSteps ≤ T−1.
//
// All of them live on one arena (model.Arena): a tensor holds memory only in the phases of the step that
// use it, and tensors of disjoint lifetimes share it. Inputs, outputs and the loss seed persist between
// runs, so a recorded step can be replayed on new inputs or read back.
func NewLossGraph(p *model.Predictor, B, T, autoSteps int, checkpoint bool) (*LossGraph, error) {
	if T < 2 {
		return nil, fmt.Errorf("train: loss over %d frames: need at least 2", T)
	}
	if autoSteps < 1 || autoSteps > T-1 {
		return nil, fmt.Errorf("train: auto_steps %d: must be in [1, %d] for %d frames", autoSteps, T-1, T)
	}
	c := p.Cfg
	g := &LossGraph{B: B, T: T, AutoSteps: autoSteps, p: p, hw: c.Grid * c.Grid, e: c.EmbedDim}
	ar := p.NewArena(fmt.Sprintf("loss B=%d T=%d", B, T))
	g.ar = ar
	ph := &g.ph
	// The timeline, in the order Forward and Backward record it.
	ph.in = ar.Phase("in")
	tfF := ar.ForwardPhases("tf")
	ph.tfLoss = ar.Phase("tf.loss")
	rollF := make([]int, autoSteps)
	for n := 1; n < autoSteps; n++ {
		name := fmt.Sprintf("rollout%d", n)
		ph.rollIn = append(ph.rollIn, ar.Phase(name+".in"))
		rollF[n] = ar.ForwardPhases(name)
		ph.rollOut = append(ph.rollOut, ar.Phase(name+".out"))
	}
	ph.arLoss = ar.Phase("rollout.loss")
	ph.arBack = ar.Phase("rollout.loss.backward")
	ph.rollBackIn, ph.rollBackOut = make([]int, autoSteps-1), make([]int, autoSteps-1)
	rollB := make([]int, autoSteps)
	for n := autoSteps - 1; n >= 1; n-- {
		name := fmt.Sprintf("rollout%d", n)
		ph.rollBackIn[n-1] = ar.Phase(name + ".backward.in")
		rollB[n] = ar.BackwardPhases(name)
		ph.rollBackOut[n-1] = ar.Phase(name + ".backward.out")
	}
	ph.tfBackIn = ar.Phase("tf.loss.backward")
	ph.tfBackLN = ar.Phase("tf.ln.backward")
	tfB := ar.BackwardPhases("tf")

	HW, E := g.hw, g.e
	ar.Persistent(&g.Features, "features", B*T*HW, E)
	ar.Persistent(&g.Actions, "actions", B*(T-1), c.ActionIn())
	ar.Persistent(&g.States, "states", B*T, c.StateIn())
	if c.Extrinsics {
		ar.Persistent(&g.Extrinsics, "extrinsics", B*T, model.ExtrinsicsDim)
	}
	ar.Persistent(&g.DLoss, "dloss", 1)
	ar.Persistent(&g.LossTF, "loss tf", 1)
	ar.Persistent(&g.LossAR, "loss rollout", 1)
	ptf := B * (T - 1) * HW
	par := B * autoSteps * HW
	// ZAR and the rollout targets live to the end of a Forward-only recording (validation reads both).
	ar.F32(&g.ZTF, "z_tf", model.During(ph.tfLoss, ph.tfBackIn), ptf, E)
	ar.F32(&g.ZAR, "z_ar", model.During(ph.tfLoss, ph.arBack), par, E)
	ar.F32(&g.tgtAR, "rollout targets", model.During(ph.arLoss, ph.arBack), par, E)
	ar.F32(&g.tgtTF, "tf targets", model.During(ph.tfLoss, ph.tfBackIn), ptf, E)
	g.raw, g.rawMean, g.rawRstd = make([]vk.Tensor, 3), make([]vk.Tensor, 3), make([]vk.Tensor, 3)
	for i, u := range []struct {
		name  string
		phase int
		rows  int
	}{{"tf inputs", ph.in, ptf}, {"tf targets", ph.tfLoss, ptf}, {"rollout targets", ph.arLoss, par}} {
		ar.F32(&g.raw[i], "features of the "+u.name, model.At(u.phase), u.rows, E)
		ar.F32(&g.rawMean[i], "mean of the "+u.name, model.At(u.phase), u.rows)
		ar.F32(&g.rawRstd[i], "rstd of the "+u.name, model.At(u.phase), u.rows)
	}
	last := ph.in
	if autoSteps > 1 {
		last = ph.rollIn[autoSteps-2]
	}
	ar.F32(&g.h0, "h frame 0", model.During(ph.in, last), B*HW, E)
	ar.F32(&g.tfMean, "z_tf mean", model.During(ph.tfLoss, ph.tfBackLN), ptf)
	ar.F32(&g.tfRstd, "z_tf rstd", model.During(ph.tfLoss, ph.tfBackLN), ptf)
	ar.F32(&g.ws, "l1 workspace", model.At(ph.tfLoss, ph.arLoss), vk.L1WorkspaceSize(ptf*E))
	ar.F32(&g.dZAR, "z_ar gradient", model.During(ph.arBack, ph.tfBackIn), par, E)
	ar.F32(&g.dZTF, "z_tf gradient", model.During(ph.tfBackIn, ph.tfBackLN), ptf, E)
	g.rollZ, g.rollMean, g.rollRstd, g.dRoll = make([]vk.Tensor, autoSteps-1), make([]vk.Tensor, autoSteps-1),
		make([]vk.Tensor, autoSteps-1), make([]vk.Tensor, autoSteps-1)
	for n := 1; n < autoSteps; n++ {
		pn := B * (n + 1) * HW
		name := fmt.Sprintf("rollout%d ", n)
		out, bin := ph.rollOut[n-1], ph.rollBackIn[n-1]
		ar.F32(&g.rollZ[n-1], name+"z", model.At(out), pn, E)
		ar.F32(&g.rollMean[n-1], name+"z mean", model.During(out, bin), pn)
		ar.F32(&g.rollRstd[n-1], name+"z rstd", model.During(out, bin), pn)
		ar.F32(&g.dRoll[n-1], name+"z gradient", model.At(bin), pn, E)
	}
	var err error
	if g.tf, err = p.NewPassIn(ar, B, T-1, checkpoint, model.PassLives{Name: "tf", Forward: tfF, Backward: tfB,
		In: model.During(ph.in, tfF), Out: model.During(tfF+2, ph.tfBackLN), DOut: model.During(ph.tfBackLN, tfB)}); err != nil {
		return nil, err
	}
	for n := 1; n < autoSteps; n++ {
		in, bin, bout := ph.rollIn[n-1], ph.rollBackIn[n-1], ph.rollBackOut[n-1]
		ps, err := p.NewPassIn(ar, B, n+1, checkpoint, model.PassLives{Name: fmt.Sprintf("rollout%d", n), Forward: rollF[n], Backward: rollB[n],
			In: model.During(in, rollF[n]), Out: model.During(rollF[n]+2, bin), DOut: model.During(bin, rollB[n]),
			DZ: model.During(rollB[n]+2, bout), WantDZ: true})
		if err != nil {
			return nil, err
		}
		g.roll = append(g.roll, ps)
	}
	if err := ar.Allocate(); err != nil {
		return nil, fmt.Errorf("train: allocate loss graph B=%d T=%d: %w", B, T, err)
	}
	return g, nil
}

// Free releases the graph's tensors and passes.
func (g *LossGraph) Free() {
	if g.p.Device() != nil {
		g.ar.Free()
	}
}

// Arena returns the arena holding the graph's tensors (its Report lists what is live at the peak).
func (g *LossGraph) Arena() *model.Arena { return g.ar }

// frames copies nf frames of HW·E values per clip from src (Ts frames a clip, starting at frame fs) to dst
// (Td frames a clip, starting at fd), adding when acc.
func (g *LossGraph) frames(s *vk.Stream, dst vk.Tensor, Td, fd int, src vk.Tensor, Ts, fs, nf int, acc bool) {
	F := g.hw * g.e
	vk.CopyBlocks(s, dst, src, vk.CopyArgs{
		Count: g.B, Rows: 1, Cols: nf * F,
		SrcOffset: fs * F, SrcBlock: Ts * F,
		DstOffset: fd * F, DstBlock: Td * F,
		Accumulate: acc,
	})
}

// conds copies nf rows of width w per clip (actions, states, extrinsics) from src (Ts rows a clip) to dst.
func (g *LossGraph) conds(s *vk.Stream, dst vk.Tensor, Td int, src vk.Tensor, Ts, nf, w int) {
	vk.CopyBlocks(s, dst, src, vk.CopyArgs{Count: g.B, Rows: 1, Cols: nf * w, SrcBlock: Ts * w, DstBlock: Td * w})
}

func (g *LossGraph) passInputs(s *vk.Stream, ps *model.Pass, nf int) {
	g.conds(s, ps.Actions, nf, g.Actions, g.T-1, nf, g.p.Cfg.ActionIn())
	g.conds(s, ps.States, nf, g.States, g.T, nf, g.p.Cfg.StateIn())
	if g.Extrinsics.Valid() {
		g.conds(s, ps.Extrinsics, nf, g.Extrinsics, g.T, nf, model.ExtrinsicsDim)
	}
}

// Forward records the losses.
func (g *LossGraph) Forward(s *vk.Stream) {
	T, k, ph := g.T, g.AutoSteps, &g.ph
	g.ar.Enter(s, ph.in)
	// Teacher forcing: frames 0..T-2 in, predictions of frames 1..T-1 out.
	g.h(s, 0, g.tf.Z, 0, T-1)
	g.frames(s, g.h0, 1, 0, g.tf.Z, T-1, 0, 1, false)
	g.passInputs(s, g.tf, T-1)
	g.tf.Forward(s)
	g.ar.Enter(s, ph.tfLoss)
	vk.LayerNorm(s, g.ZTF, g.tfMean, g.tfRstd, g.tf.Out, vk.Tensor{}, vk.Tensor{}, lnEps0)
	g.h(s, 1, g.tgtTF, 1, T-1)
	vk.L1Loss(s, g.LossTF, g.ZTF, g.tgtTF, g.ws)
	// Rollout: z_ar[0] = ẑ_1 from teacher forcing; step n feeds [h_0, ẑ_1..ẑ_n].
	g.frames(s, g.ZAR, k, 0, g.ZTF, T-1, 0, 1, false)
	for n := 1; n < k; n++ {
		ps := g.roll[n-1]
		g.ar.Enter(s, ph.rollIn[n-1])
		g.frames(s, ps.Z, n+1, 0, g.h0, 1, 0, 1, false)
		g.frames(s, ps.Z, n+1, 1, g.ZAR, k, 0, n, false)
		g.passInputs(s, ps, n+1)
		ps.Forward(s)
		g.ar.Enter(s, ph.rollOut[n-1])
		vk.LayerNorm(s, g.rollZ[n-1], g.rollMean[n-1], g.rollRstd[n-1], ps.Out, vk.Tensor{}, vk.Tensor{}, lnEps0)
		g.frames(s, g.ZAR, k, n, g.rollZ[n-1], n+1, n, 1, false)
	}
	g.ar.Enter(s, ph.arLoss)
	g.h(s, 2, g.tgtAR, 1, k)
	vk.L1Loss(s, g.LossAR, g.ZAR, g.tgtAR, g.ws)
}

// h records dst = h[first..first+nf-1] = LN₀ of those frames of the features, per clip, through the
// features' copy raw[use].
func (g *LossGraph) h(s *vk.Stream, use int, dst vk.Tensor, first, nf int) {
	g.frames(s, g.raw[use], nf, 0, g.Features, g.T, first, nf, false)
	vk.LayerNorm(s, dst, g.rawMean[use], g.rawRstd[use], g.raw[use], vk.Tensor{}, vk.Tensor{}, lnEps0)
}

// Backward records d(loss)/d(LoRA weights), accumulated into each adapter's GradA/GradB, seeded by DLoss.
// It mirrors Forward in reverse order.
func (g *LossGraph) Backward(s *vk.Stream) {
	T, k, ph := g.T, g.AutoSteps, &g.ph
	g.ar.Enter(s, ph.arBack)
	vk.L1LossBackward(s, g.dZAR, g.ZAR, g.tgtAR, g.DLoss, false)
	for n := k - 1; n >= 1; n-- {
		ps, dz := g.roll[n-1], g.dRoll[n-1]
		g.ar.Enter(s, ph.rollBackIn[n-1])
		// Only the last frame of step n's output is used: ẑ_{n+1} = z_ar[n].
		vk.Zero(s, dz)
		g.frames(s, dz, n+1, n, g.dZAR, k, n, 1, false)
		vk.LayerNormBackward(s, ps.DOut, vk.Tensor{}, vk.Tensor{}, dz, ps.Out, vk.Tensor{}, g.rollMean[n-1], g.rollRstd[n-1], false)
		ps.Backward(s, true)
		g.ar.Enter(s, ph.rollBackOut[n-1])
		// Inputs ẑ_1..ẑ_n of step n were z_ar[0..n-1]: add their gradients.
		g.frames(s, g.dZAR, k, 0, ps.DZ, n+1, 1, n, true)
	}
	g.ar.Enter(s, ph.tfBackIn)
	vk.L1LossBackward(s, g.dZTF, g.ZTF, g.tgtTF, g.DLoss, false)
	g.frames(s, g.dZTF, T-1, 0, g.dZAR, k, 0, 1, true) // ẑ_1 is z_tf frame 0
	g.ar.Enter(s, ph.tfBackLN)
	vk.LayerNormBackward(s, g.tf.DOut, vk.Tensor{}, vk.Tensor{}, g.dZTF, g.tf.Out, vk.Tensor{}, g.tfMean, g.tfRstd, false)
	g.tf.Backward(s, false)
}

// ZeroGrads records zeroing every adapter gradient (start of an accumulation window).
func ZeroGrads(s *vk.Stream, p *model.Predictor) {
	if _, grads := p.LoRAStorage(); grads.Valid() {
		vk.Zero(s, grads)
	} else {
		for _, a := range p.LoRAs {
			vk.Zero(s, a.GradA)
			vk.Zero(s, a.GradB)
		}
	}
	for _, m := range p.Modules() {
		vk.Zero(s, m.Grad)
	}
}
