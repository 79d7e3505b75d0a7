package model

import (
	"fmt"

	"github.com/vjepa-vk/vjepa-vk/vk"
)

// Pass holds the device tensors of one predictor forward/backward over B clips of T frames: its inputs,
// its output, the activations saved for backward and the input gradient. A training step records several
// passes (teacher forcing, rollout steps) into one stream.
//
// Token layout (spec §2.3): per clip, T frames of [action, state, (extrinsics), HW patches], N = T·(K+HW)
// tokens, R = B·N rows.
type Pass struct {
	B, T, K, HW, N, R int
	Checkpoint        bool // keep only block inputs; recompute each block in backward (spec-equal gradients)

	// Inputs, written by the caller (upload or device copies) before the stream runs.
	Z          vk.Tensor // [B·T·HW, EmbedDim] patch features of frames 0..T-1
	Actions    vk.Tensor // [B·T, 7]
	States     vk.Tensor // [B·T, 7]
	Extrinsics vk.Tensor // [B·T, 6] (only with Cfg.Extrinsics)

	Out  vk.Tensor // [B·T·HW, EmbedDim] predictor output (before the loss's parameter-free LayerNorm)
	DOut vk.Tensor // [B·T·HW, EmbedDim] gradient of the loss w.r.t. Out, written by the caller
	DZ   vk.Tensor // [B·T·HW, EmbedDim] gradient w.r.t. Z, computed by Backward

	p              *Predictor
	pe, ca, cs, ce vk.Tensor   // embedded patches [B·T·HW, D]; cond tokens [B·T, D]
	xs             []vk.Tensor // block inputs xs[i] [R, D]; xs[Depth] is the last block's output
	acts           []*blockActs
	xp, xn         vk.Tensor // gathered patch outputs and predictor_norm output [B·T·HW, D]
	nMean, nRstd   vk.Tensor // [B·T·HW]
	owned          []vk.Tensor
	sc             *scratch
	drop           dropout
}

// blockActs are what one block saves for backward (llm.c's ActivationTensors, per block).
type blockActs struct {
	n1, mean1, rstd1 vk.Tensor // norm1 output [R, D], stats [R]
	qkv              vk.Tensor // [R, 3D], after RoPE
	tq               vk.Tensor // LoRA hidden of qkv [R, r]
	o, lse           vk.Tensor // attention output [R, D], log-sum-exp [B, H, N]
	tp               vk.Tensor // LoRA hidden of proj
	u                vk.Tensor // x + attn [R, D]
	n2, mean2, rstd2 vk.Tensor
	h, g             vk.Tensor // fc1 output and its GELU [R, Hd]
	t1, t2           vk.Tensor // LoRA hiddens of fc1, fc2
}

// scratch is shared by the passes of one predictor (they run one after another on one stream): backward
// temporaries and, with checkpointing, the recomputed block activations.
type scratch struct {
	rows, lseN int
	rank       int       // LoRA rank the adapter scratch was sized for (0: no adapters)
	tmp        vk.Tensor // [R, D] attn proj / fc2 outputs
	gA, gB     vk.Tensor // residual-stream gradients, ping-pong [R, D]
	dn, do     vk.Tensor // [R, D]
	dqkv       vk.Tensor // [R, 3D]
	delta      vk.Tensor // [B·H·N]
	dh, dg     vk.Tensor // [R, Hd]
	dt         vk.Tensor // [R, r]
	dxn, dxp   vk.Tensor // [B·T·HW, D]
	xd         vk.Tensor // [R, Hd] adapter-dropout scratch (only with lora.dropout > 0)
	dcond      vk.Tensor // [B·T, D] conditioning-token gradients (weight gradients of their encoders)
	recompute  *blockActs
	owned      []vk.Tensor
	prev       *scratch // an older, smaller scratch still referenced by earlier passes
}

func (sc *scratch) free(d *vk.Device) {
	for _, t := range sc.owned {
		d.Free(t)
	}
	sc.owned = nil
}

// tensorAlloc allocates tensors, remembering the first error and every allocation. With a plan it
// allocates nothing and only counts bytes, so that memory plans run the very code that allocates.
type tensorAlloc struct {
	d     *vk.Device
	plan  *Plan
	err   error
	owned []vk.Tensor
}

func (a *tensorAlloc) f32(shape ...int) vk.Tensor {
	if a.err != nil {
		return vk.Tensor{}
	}
	if a.plan != nil {
		n := int64(4)
		for _, s := range shape {
			n *= int64(s)
		}
		a.plan.add(n)
		return vk.Tensor{DType: vk.F32, Shape: shape}
	}
	t, err := a.d.NewTensor(vk.F32, shape...)
	if err != nil {
		a.err = err
		return vk.Tensor{}
	}
	a.owned = append(a.owned, t)
	return t
}

func (a *tensorAlloc) blockActs(R, D, Hd, r, lse int, lora bool) *blockActs {
	ba := &blockActs{
		n1: a.f32(R, D), mean1: a.f32(R), rstd1: a.f32(R),
		qkv: a.f32(R, 3*D), o: a.f32(R, D), lse: a.f32(lse),
		u: a.f32(R, D), n2: a.f32(R, D), mean2: a.f32(R), rstd2: a.f32(R),
		h: a.f32(R, Hd), g: a.f32(R, Hd),
	}
	if lora {
		ba.tq, ba.tp, ba.t1, ba.t2 = a.f32(R, r), a.f32(R, r), a.f32(R, r), a.f32(R, r)
	}
	return ba
}

// NewPass allocates a pass over B clips of T frames. Add LoRA adapters before creating passes.
func (p *Predictor) NewPass(B, T int, checkpoint bool) (*Pass, error) {
	c := p.Cfg
	if B < 1 || T < 1 {
		return nil, fmt.Errorf("model: pass B=%d T=%d: both must be >= 1", B, T)
	}
	K := 2
	if c.Extrinsics {
		K = 3
	}
	HW := c.Grid * c.Grid
	N := T * (K + HW)
	R := B * N
	D, E, Hd := c.Dim, c.EmbedDim, c.MLPHidden()
	r := p.maxLoRARank()
	lora := len(p.LoRAs) > 0
	ps := &Pass{B: B, T: T, K: K, HW: HW, N: N, R: R, Checkpoint: checkpoint, p: p}
	a := &tensorAlloc{d: p.d, plan: p.plan}
	P := B * T * HW
	ps.Z, ps.Out, ps.DOut, ps.DZ = a.f32(P, E), a.f32(P, E), a.f32(P, E), a.f32(P, E)
	ps.Actions, ps.States = a.f32(B*T, ActionDim), a.f32(B*T, ActionDim)
	if c.Extrinsics {
		ps.Extrinsics = a.f32(B*T, ExtrinsicsDim)
		ps.ce = a.f32(B*T, D)
	}
	ps.pe, ps.ca, ps.cs = a.f32(P, D), a.f32(B*T, D), a.f32(B*T, D)
	for i := 0; i <= c.Depth; i++ {
		ps.xs = append(ps.xs, a.f32(R, D))
	}
	if !checkpoint {
		for i := 0; i < c.Depth; i++ {
			ps.acts = append(ps.acts, a.blockActs(R, D, Hd, r, B*c.Heads*N, lora))
		}
	}
	ps.xp, ps.xn, ps.nMean, ps.nRstd = a.f32(P, D), a.f32(P, D), a.f32(P), a.f32(P)
	ps.owned = a.owned
	if a.err != nil {
		ps.Free()
		return nil, fmt.Errorf("model: allocate pass B=%d T=%d: %w", B, T, a.err)
	}
	sc, err := p.scratchFor(R, B*c.Heads*N, P)
	if err != nil {
		ps.Free()
		return nil, err
	}
	ps.sc = sc
	ps.drop = dropout{p: p.dropP, seed: p.dropSeed, salt: p.passes, scratch: sc.xd}
	p.passes++
	return ps, nil
}

// Free releases the pass's own tensors (scratch belongs to the predictor).
func (ps *Pass) Free() {
	if ps.p.d == nil {
		return
	}
	for _, t := range ps.owned {
		ps.p.d.Free(t)
	}
	ps.owned = nil
}

// scratchFor returns a scratch with room for R rows, growing (and keeping the old one alive for the
// passes that recorded it) when needed.
func (p *Predictor) scratchFor(R, lseN, P int) (*scratch, error) {
	rank := 0
	if len(p.LoRAs) > 0 {
		rank = p.maxLoRARank()
	}
	if sc := p.scratch; sc != nil && sc.rows >= R && sc.lseN >= lseN && sc.rank == rank {
		return sc, nil
	}
	c := p.Cfg
	D, Hd, r := c.Dim, c.MLPHidden(), p.maxLoRARank()
	a := &tensorAlloc{d: p.d, plan: p.plan}
	sc := &scratch{rows: R, lseN: lseN, rank: rank, prev: p.scratch}
	sc.tmp, sc.gA, sc.gB, sc.dn, sc.do = a.f32(R, D), a.f32(R, D), a.f32(R, D), a.f32(R, D), a.f32(R, D)
	sc.dqkv, sc.delta = a.f32(R, 3*D), a.f32(lseN)
	sc.dh, sc.dg, sc.dt = a.f32(R, Hd), a.f32(R, Hd), a.f32(R, r)
	sc.dxn, sc.dxp = a.f32(P, D), a.f32(P, D)
	sc.dcond = a.f32(P/(c.Grid*c.Grid), D)
	if p.dropP > 0 {
		sc.xd = a.f32(R, Hd)
	}
	sc.recompute = a.blockActs(R, D, Hd, r, lseN, len(p.LoRAs) > 0)
	sc.owned = a.owned
	if a.err != nil {
		sc.free(p.d)
		return nil, fmt.Errorf("model: allocate predictor scratch for %d rows: %w", R, a.err)
	}
	p.scratch = sc
	return sc, nil
}

// rows returns a view of the first n rows of a scratch tensor sized for more rows.
func rows(t vk.Tensor, n int) vk.Tensor {
	if t.Shape[0] == n {
		return t
	}
	return t.Slice(0, n)
}

func (ps *Pass) ropeShape() vk.RopeShape {
	c := ps.p.Cfg
	return vk.RopeShape{B: ps.B, T: ps.T, K: ps.K, GridH: c.Grid, GridW: c.Grid, Heads: c.Heads, HeadDim: c.Dim / c.Heads}
}

func (ps *Pass) attnShape() vk.AttnShape {
	c := ps.p.Cfg
	return vk.AttnShape{B: ps.B, N: ps.N, Heads: c.Heads, HeadDim: c.Dim / c.Heads, FrameTokens: ps.K + ps.HW}
}

// actsFor returns block i's saved activations, or the shared recompute set with checkpointing. Views
// of scratch sized for more rows are cut to this pass's R rows.
func (ps *Pass) actsFor(i int) *blockActs {
	if !ps.Checkpoint {
		return ps.acts[i]
	}
	s := ps.sc.recompute
	R, lse := ps.R, ps.B*ps.p.Cfg.Heads*ps.N
	cut := func(t vk.Tensor) vk.Tensor {
		if !t.Valid() {
			return t
		}
		return rows(t, R)
	}
	return &blockActs{
		n1: cut(s.n1), mean1: cut(s.mean1), rstd1: cut(s.rstd1), qkv: cut(s.qkv), tq: cut(s.tq),
		o: cut(s.o), lse: rows(s.lse, lse), tp: cut(s.tp), u: cut(s.u), n2: cut(s.n2),
		mean2: cut(s.mean2), rstd2: cut(s.rstd2), h: cut(s.h), g: cut(s.g), t1: cut(s.t1), t2: cut(s.t2),
	}
}

// condCopy interleaves (or, with back, gathers) one conditioning token per frame at slot ℓ.
func (ps *Pass) condCopy(s *vk.Stream, seq, tok vk.Tensor, slot int, back bool) {
	D := ps.p.Cfg.Dim
	per := (ps.K + ps.HW) * D
	a := vk.CopyArgs{Count: ps.B * ps.T, Rows: 1, Cols: D}
	if back {
		a.SrcOffset, a.SrcBlock, a.DstBlock = slot*D, per, D
		vk.CopyBlocks(s, tok, seq, a)
		return
	}
	a.SrcBlock, a.DstOffset, a.DstBlock = D, slot*D, per
	vk.CopyBlocks(s, seq, tok, a)
}

// patchCopy scatters patch rows [B·T·HW, D] into the token sequence [R, D] (after each frame's K
// conditioning tokens), or gathers them back with back.
func (ps *Pass) patchCopy(s *vk.Stream, seq, patches vk.Tensor, back bool) {
	D := ps.p.Cfg.Dim
	a := vk.CopyArgs{Count: ps.B * ps.T, Rows: ps.HW, Cols: D}
	if back {
		a.SrcOffset, a.SrcBlock, a.SrcRow = ps.K*D, (ps.K+ps.HW)*D, D
		a.DstBlock, a.DstRow = ps.HW*D, D
		vk.CopyBlocks(s, patches, seq, a)
		return
	}
	a.SrcBlock, a.SrcRow = ps.HW*D, D
	a.DstOffset, a.DstBlock, a.DstRow = ps.K*D, (ps.K+ps.HW)*D, D
	vk.CopyBlocks(s, seq, patches, a)
}

// Forward records the predictor on the pass's inputs (spec §2.3):
//
//	x = interleave(action_encoder(A), state_encoder(S), [extrinsics_encoder(E)], predictor_embed(Z))
//	x = ACBlock_i(x) for i < Depth          block-causal mask §3, 3-D RoPE §4
//	Out = predictor_proj(predictor_norm(patches of x))
func (ps *Pass) Forward(s *vk.Stream) {
	p := ps.p
	ps.drop.on = p.training && p.dropP > 0
	p.embed.forward(s, ps.pe, ps.Z, vk.Tensor{}, dropout{})           // [B·T·HW, D]
	p.actionEnc.forward(s, ps.ca, ps.Actions, vk.Tensor{}, dropout{}) // [B·T, D]
	p.stateEnc.forward(s, ps.cs, ps.States, vk.Tensor{}, dropout{})   // [B·T, D]
	ps.condCopy(s, ps.xs[0], ps.ca, 0, false)
	ps.condCopy(s, ps.xs[0], ps.cs, 1, false)
	if p.Cfg.Extrinsics {
		p.extrinsicsEnc.forward(s, ps.ce, ps.Extrinsics, vk.Tensor{}, dropout{})
		ps.condCopy(s, ps.xs[0], ps.ce, 2, false)
	}
	ps.patchCopy(s, ps.xs[0], ps.pe, false) // [R, D]
	for i, b := range p.blocks {
		b.forward(s, ps.xs[i+1], ps.xs[i], ps.actsFor(i), rows(ps.sc.tmp, ps.R), ps.ropeShape(), ps.attnShape(), ps.drop)
	}
	ps.patchCopy(s, ps.xs[p.Cfg.Depth], ps.xp, true)                                  // [B·T·HW, D]
	vk.LayerNorm(s, ps.xn, ps.nMean, ps.nRstd, ps.xp, p.norm.w, p.norm.b, p.norm.eps) // [B·T·HW, D]
	p.proj.forward(s, ps.Out, ps.xn, vk.Tensor{}, dropout{})                          // [B·T·HW, E]
}

// forward runs one pre-norm block (spec §2.4), saving activations in a; tmp [R, D] is scratch and may be y:
//
//	u = x + proj(attn(rope(qkv(norm1(x)))))
//	y = u + fc2(gelu(fc1(norm2(u))))
func (b *acBlock) forward(s *vk.Stream, y, x vk.Tensor, a *blockActs, tmp vk.Tensor, rope vk.RopeShape, attn vk.AttnShape, drop dropout) {
	vk.LayerNorm(s, a.n1, a.mean1, a.rstd1, x, b.norm1.w, b.norm1.b, b.norm1.eps) // [R, D]
	b.qkv.forward(s, a.qkv, a.n1, a.tq, drop)                                     // [R, 3D]
	vk.Rope(s, a.qkv, rope)
	vk.AttentionForward(s, a.o, a.lse, a.qkv, attn) // [R, D]
	b.proj.forward(s, tmp, a.o, a.tp, drop)         // [R, D]
	vk.Add(s, a.u, x, tmp)
	vk.LayerNorm(s, a.n2, a.mean2, a.rstd2, a.u, b.norm2.w, b.norm2.b, b.norm2.eps)
	b.fc1.forward(s, a.h, a.n2, a.t1, drop) // [R, Hd]
	vk.Gelu(s, a.g, a.h)
	b.fc2.forward(s, tmp, a.g, a.t2, drop) // [R, D]
	vk.Add(s, y, a.u, tmp)
}

// Backward records the gradients of the loss (given in DOut) w.r.t. the adapters (accumulated into each
// LoRA's GradA/GradB) and, with wantDZ, w.r.t. the input Z (DZ, overwritten). It mirrors Forward in
// reverse order.
func (ps *Pass) Backward(s *vk.Stream, wantDZ bool) {
	p, sc := ps.p, ps.sc
	ps.drop.on = p.training && p.dropP > 0
	P := ps.B * ps.T * ps.HW
	dxn, dxp := rows(sc.dxn, P), rows(sc.dxp, P)
	g, gNext := rows(sc.gA, ps.R), rows(sc.gB, ps.R)
	p.proj.backward(s, dxn, ps.DOut, ps.xn, vk.Tensor{}, vk.Tensor{}, false, dropout{})
	nw, nb := p.norm.grads(p.normGradW, p.normGradB)
	vk.LayerNormBackward(s, dxp, nw, nb, dxn, ps.xp, p.norm.w, ps.nMean, ps.nRstd, false)
	vk.Zero(s, g) // conditioning outputs are discarded (spec §2.3 step 5): zero gradient
	ps.patchCopy(s, g, dxp, false)
	for i := p.Cfg.Depth - 1; i >= 0; i-- {
		a := ps.actsFor(i)
		if ps.Checkpoint {
			tmp := rows(sc.tmp, ps.R)
			p.blocks[i].forward(s, tmp, ps.xs[i], a, tmp, ps.ropeShape(), ps.attnShape(), ps.drop) // recompute the saved activations
		}
		ps.blockBackward(s, p.blocks[i], gNext, g, ps.xs[i], a)
		g, gNext = gNext, g
	}
	if p.embed.gw.Valid() { // weight gradients of the conditioning encoders (their outputs' rows of g)
		encs := []*linear{p.actionEnc, p.stateEnc}
		ins := []vk.Tensor{ps.Actions, ps.States}
		if p.Cfg.Extrinsics {
			encs, ins = append(encs, p.extrinsicsEnc), append(ins, ps.Extrinsics)
		}
		dc := rows(sc.dcond, ps.B*ps.T)
		for slot, l := range encs {
			ps.condCopy(s, g, dc, slot, true)
			vk.Gemm(s, l.gw, dc, ins[slot], vk.GemmOpts{TransA: true, Beta: 1})
			vk.BiasGradient(s, l.gb, dc)
		}
	}
	if wantDZ || p.embed.gw.Valid() {
		dpe := dxp
		ps.patchCopy(s, g, dpe, true)
		if wantDZ {
			p.embed.backward(s, ps.DZ, dpe, ps.Z, vk.Tensor{}, vk.Tensor{}, false, dropout{})
		} else {
			vk.Gemm(s, p.embed.gw, dpe, ps.Z, vk.GemmOpts{TransA: true, Beta: 1})
			vk.BiasGradient(s, p.embed.gb, dpe)
		}
	}
}

// blockBackward computes dx (overwritten) from dy for one block, accumulating adapter gradients.
func (ps *Pass) blockBackward(s *vk.Stream, b *acBlock, dx, dy, x vk.Tensor, a *blockActs) {
	sc, p := ps.sc, ps.p
	R := ps.R
	dn, do, dqkv := rows(sc.dn, R), rows(sc.do, R), rows(sc.dqkv, R)
	dh, dg, dt := rows(sc.dh, R), rows(sc.dg, R), rows(sc.dt, R)
	delta := rows(sc.delta, ps.B*p.Cfg.Heads*ps.N)
	// y = u + fc2(gelu(fc1(norm2(u))))
	b.fc2.backward(s, dg, dy, a.g, a.t2, dt, false, ps.drop)
	vk.GeluBackward(s, dh, dg, a.h)
	b.fc1.backward(s, dn, dh, a.n2, a.t1, dt, false, ps.drop)
	vk.Scale(s, dx, dy, 1) // du = dy + norm2ᵀ(dn): dx holds du from here on
	n2w, n2b := b.norm2.grads(p.normGradW, p.normGradB)
	vk.LayerNormBackward(s, dx, n2w, n2b, dn, a.u, b.norm2.w, a.mean2, a.rstd2, true)
	// u = x + proj(attn(rope(qkv(norm1(x)))))
	b.proj.backward(s, do, dx, a.o, a.tp, dt, false, ps.drop)
	vk.AttentionBackward(s, dqkv, delta, do, a.qkv, a.o, a.lse, ps.attnShape())
	vk.RopeBackward(s, dqkv, ps.ropeShape())
	b.qkv.backward(s, dn, dqkv, a.n1, a.tq, dt, false, ps.drop)
	n1w, n1b := b.norm1.grads(p.normGradW, p.normGradB)
	vk.LayerNormBackward(s, dx, n1w, n1b, dn, x, b.norm1.w, a.mean1, a.rstd1, true)
}
