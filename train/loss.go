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
// and its backward into the LoRA gradients. Gradients flow through ẑ_1 and every rollout input.
type LossGraph struct {
	B, T, AutoSteps int

	// Inputs written by the caller before the stream runs.
	Features   vk.Tensor // [B·T·HW, E] encoder outputs (before LN₀)
	Actions    vk.Tensor // [B·(T-1), 7] a_0..a_{T-2}
	States     vk.Tensor // [B·T, 7]
	Extrinsics vk.Tensor // [B·T, 6] (extrinsics models only)
	// DLoss [1] is the seed of backward: 1, or the fp16 loss scale.
	DLoss vk.Tensor

	// Outputs, valid after the stream runs.
	LossTF, LossAR vk.Tensor // [1] each
	ZTF            vk.Tensor // [B·(T-1)·HW, E]
	ZAR            vk.Tensor // [B·k·HW, E]

	p                  *model.Predictor
	hw, e              int
	h, hMean, hRstd    vk.Tensor
	tf                 *model.Pass
	tfMean, tfRstd     vk.Tensor
	tgtTF, tgtAR       vk.Tensor
	roll               []*model.Pass // roll[n-1] runs rollout step n on n+1 frames
	rollZ              []vk.Tensor   // LN₀ outputs of each rollout pass [B·(n+1)·HW, E]
	rollMean, rollRstd []vk.Tensor
	dZTF, dZAR         vk.Tensor
	dRoll              []vk.Tensor // gradient w.r.t. rollZ[n-1]
	ws                 vk.Tensor
	owned              []vk.Tensor
}

// NewLossGraph allocates the passes and tensors of the objective. T ≥ 2; 1 ≤ AutoSteps ≤ T−1.
func NewLossGraph(p *model.Predictor, B, T, autoSteps int, checkpoint bool) (*LossGraph, error) {
	if T < 2 {
		return nil, fmt.Errorf("train: loss over %d frames: need at least 2", T)
	}
	if autoSteps < 1 || autoSteps > T-1 {
		return nil, fmt.Errorf("train: auto_steps %d: must be in [1, %d] for %d frames", autoSteps, T-1, T)
	}
	c := p.Cfg
	g := &LossGraph{B: B, T: T, AutoSteps: autoSteps, p: p, hw: c.Grid * c.Grid, e: c.EmbedDim}
	d := p.Device()
	plan, planning := p.Planning()
	var err error
	alloc := func(shape ...int) vk.Tensor {
		if err != nil {
			return vk.Tensor{}
		}
		if planning {
			n := int64(4)
			for _, s := range shape {
				n *= int64(s)
			}
			plan.Add(n)
			return vk.Tensor{DType: vk.F32, Shape: shape}
		}
		var t vk.Tensor
		t, err = d.NewTensor(vk.F32, shape...)
		if err == nil {
			g.owned = append(g.owned, t)
		}
		return t
	}
	HW, E := g.hw, g.e
	g.Features, g.h = alloc(B*T*HW, E), alloc(B*T*HW, E)
	g.hMean, g.hRstd = alloc(B*T*HW), alloc(B*T*HW)
	g.Actions, g.States = alloc(B*(T-1), model.ActionDim), alloc(B*T, model.ActionDim)
	if c.Extrinsics {
		g.Extrinsics = alloc(B*T, model.ExtrinsicsDim)
	}
	g.DLoss, g.LossTF, g.LossAR = alloc(1), alloc(1), alloc(1)
	ptf := B * (T - 1) * HW
	g.ZTF, g.tfMean, g.tfRstd, g.tgtTF, g.dZTF = alloc(ptf, E), alloc(ptf), alloc(ptf), alloc(ptf, E), alloc(ptf, E)
	par := B * autoSteps * HW
	g.ZAR, g.tgtAR, g.dZAR = alloc(par, E), alloc(par, E), alloc(par, E)
	g.ws = alloc(vk.L1WorkspaceSize(ptf * E))
	for n := 1; n < autoSteps; n++ {
		pn := B * (n + 1) * HW
		g.rollZ = append(g.rollZ, alloc(pn, E))
		g.rollMean, g.rollRstd = append(g.rollMean, alloc(pn)), append(g.rollRstd, alloc(pn))
		g.dRoll = append(g.dRoll, alloc(pn, E))
	}
	if err != nil {
		g.Free()
		return nil, fmt.Errorf("train: allocate loss graph B=%d T=%d: %w", B, T, err)
	}
	if g.tf, err = p.NewPass(B, T-1, checkpoint); err != nil {
		g.Free()
		return nil, err
	}
	for n := 1; n < autoSteps; n++ {
		ps, err := p.NewPass(B, n+1, checkpoint)
		if err != nil {
			g.Free()
			return nil, err
		}
		g.roll = append(g.roll, ps)
	}
	return g, nil
}

// Free releases the graph's tensors and passes.
func (g *LossGraph) Free() {
	d := g.p.Device()
	if d == nil {
		return
	}
	for _, t := range g.owned {
		d.Free(t)
	}
	g.owned = nil
	if g.tf != nil {
		g.tf.Free()
	}
	for _, ps := range g.roll {
		ps.Free()
	}
}

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
	g.conds(s, ps.Actions, nf, g.Actions, g.T-1, nf, model.ActionDim)
	g.conds(s, ps.States, nf, g.States, g.T, nf, model.ActionDim)
	if g.Extrinsics.Valid() {
		g.conds(s, ps.Extrinsics, nf, g.Extrinsics, g.T, nf, model.ExtrinsicsDim)
	}
}

// Forward records the losses.
func (g *LossGraph) Forward(s *vk.Stream) {
	T, k := g.T, g.AutoSteps
	vk.LayerNorm(s, g.h, g.hMean, g.hRstd, g.Features, vk.Tensor{}, vk.Tensor{}, lnEps0)
	// Teacher forcing: frames 0..T-2 in, predictions of frames 1..T-1 out.
	g.frames(s, g.tf.Z, T-1, 0, g.h, T, 0, T-1, false)
	g.passInputs(s, g.tf, T-1)
	g.tf.Forward(s)
	vk.LayerNorm(s, g.ZTF, g.tfMean, g.tfRstd, g.tf.Out, vk.Tensor{}, vk.Tensor{}, lnEps0)
	g.frames(s, g.tgtTF, T-1, 0, g.h, T, 1, T-1, false)
	vk.L1Loss(s, g.LossTF, g.ZTF, g.tgtTF, g.ws)
	// Rollout: z_ar[0] = ẑ_1 from teacher forcing; step n feeds [h_0, ẑ_1..ẑ_n].
	g.frames(s, g.ZAR, k, 0, g.ZTF, T-1, 0, 1, false)
	for n := 1; n < k; n++ {
		ps := g.roll[n-1]
		g.frames(s, ps.Z, n+1, 0, g.h, T, 0, 1, false)
		g.frames(s, ps.Z, n+1, 1, g.ZAR, k, 0, n, false)
		g.passInputs(s, ps, n+1)
		ps.Forward(s)
		vk.LayerNorm(s, g.rollZ[n-1], g.rollMean[n-1], g.rollRstd[n-1], ps.Out, vk.Tensor{}, vk.Tensor{}, lnEps0)
		g.frames(s, g.ZAR, k, n, g.rollZ[n-1], n+1, n, 1, false)
	}
	g.frames(s, g.tgtAR, k, 0, g.h, T, 1, k, false)
	vk.L1Loss(s, g.LossAR, g.ZAR, g.tgtAR, g.ws)
}

// Backward records d(loss)/d(LoRA weights), accumulated into each adapter's GradA/GradB, seeded by DLoss.
// It mirrors Forward in reverse order.
func (g *LossGraph) Backward(s *vk.Stream) {
	T, k := g.T, g.AutoSteps
	vk.L1LossBackward(s, g.dZAR, g.ZAR, g.tgtAR, g.DLoss, false)
	for n := k - 1; n >= 1; n-- {
		ps, dz := g.roll[n-1], g.dRoll[n-1]
		// Only the last frame of step n's output is used: ẑ_{n+1} = z_ar[n].
		vk.Zero(s, dz)
		g.frames(s, dz, n+1, n, g.dZAR, k, n, 1, false)
		vk.LayerNormBackward(s, ps.DOut, vk.Tensor{}, vk.Tensor{}, dz, ps.Out, vk.Tensor{}, g.rollMean[n-1], g.rollRstd[n-1], false)
		ps.Backward(s, true)
		// Inputs ẑ_1..ẑ_n of step n were z_ar[0..n-1]: add their gradients.
		g.frames(s, g.dZAR, k, 0, ps.DZ, n+1, 1, n, true)
	}
	vk.L1LossBackward(s, g.dZTF, g.ZTF, g.tgtTF, g.DLoss, false)
	g.frames(s, g.dZTF, T-1, 0, g.dZAR, k, 0, 1, true) // ẑ_1 is z_tf frame 0
	vk.LayerNormBackward(s, g.tf.DOut, vk.Tensor{}, vk.Tensor{}, g.dZTF, g.tf.Out, vk.Tensor{}, g.tfMean, g.tfRstd, false)
	g.tf.Backward(s, false)
}

// ZeroGrads records zeroing every adapter gradient (start of an accumulation window).
func ZeroGrads(s *vk.Stream, p *model.Predictor) {
	for _, a := range p.LoRAs {
		vk.Zero(s, a.GradA)
		vk.Zero(s, a.GradB)
	}
}
