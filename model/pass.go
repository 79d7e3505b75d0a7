package model

import (
	"fmt"

	"github.com/vjepa-vk/vjepa-vk/vk"
)

// Pass holds the device tensors of one predictor forward/backward over B clips of T frames: its inputs,
// its output, the activations saved for backward and the input gradient. A training step records several
// passes (teacher forcing, rollout steps) into one stream, all on one Arena: each tensor lives only in
// the phases that use it, and tensors of disjoint lifetimes share memory (arena.go).
//
// Token layout (spec §2.3): per clip, T frames of [action, state, (extrinsics), HW patches], N = T·(K+HW)
// tokens, R = B·N rows.
type Pass struct {
	B, T, K, HW, N, R int
	Checkpoint        bool // keep only block inputs; recompute each block in backward (spec-equal gradients)

	// Inputs, written by the caller (upload or device copies) before the stream runs.
	Z          vk.Tensor // [B·T·HW, EmbedDim] patch features of frames 0..T-1
	Actions    vk.Tensor // [B·T, A] (A = Cfg.ActionIn(), 7 officially)
	States     vk.Tensor // [B·T, S]
	Extrinsics vk.Tensor // [B·T, 6] (only with Cfg.Extrinsics)

	Out  vk.Tensor // [B·T·HW, EmbedDim] predictor output (before the loss's parameter-free LayerNorm)
	DOut vk.Tensor // [B·T·HW, EmbedDim] gradient of the loss w.r.t. Out, written by the caller
	DZ   vk.Tensor // [B·T·HW, EmbedDim] gradient w.r.t. Z, computed by Backward (absent if not planned)
	// DActions [B·T, A] and DStates [B·T, S] are the gradients w.r.t. Actions and States, through
	// action_encoder and state_encoder, computed by Backward when planned (PassLives.WantDCond): the
	// gradient planner's d energy / d action.
	DActions, DStates vk.Tensor

	p              *Predictor
	ar             *Arena      // the arena the pass's tensors live on
	own            bool        // ar belongs to the pass (NewPass), not to a caller (NewPassIn)
	fwd, bwd       int         // first of the three phases of Forward and of Backward on ar
	weightGrads    bool        // planned for frozen-weight gradients: Z, Actions, States and xn kept for backward
	moduleGrads    bool        // planned for trained conditioning encoders (modules.go): Actions, States kept
	pe, ca, cs, ce vk.Tensor   // embedded patches [B·T·HW, D]; cond tokens [B·T, D]
	xs             []vk.Tensor // block inputs xs[i] [R, D]; xs[Depth] is the last block's output
	acts           []*blockActs
	xp, xn         vk.Tensor // gathered patch outputs and predictor_norm output [B·T·HW, D]
	nMean, nRstd   vk.Tensor // [B·T·HW]
	dres           vk.Tensor // gradient of the residual stream [R, D], updated in place block by block
	dxn, dxp       vk.Tensor // [B·T·HW, D]
	dcond          vk.Tensor // [B·T, D] conditioning-token gradients (weight gradients of their encoders)
	ws             *Arena    // one block's workspace, laid out over the block's sub-phases
	w              blockActs // workspace activations: all of them with Checkpoint, else only n1, n2
	sc             blockScratch
	drop           dropout
}

// blockActs are what one block saves for backward (llm.c's ActivationTensors, per block). n1 and n2 are
// not kept between forward and backward: backward recomputes them (one LayerNorm each) from x and u.
type blockActs struct {
	n1, mean1, rstd1 vk.Tensor // norm1 output [R, D], stats [R]
	qkv              vk.Tensor // [R, 3D], after RoPE
	tq               vk.Tensor // LoRA hidden of qkv [R, r]
	o, lse           vk.Tensor // attention output [R, D], log-sum-exp [B, H, N]
	tp               vk.Tensor // LoRA hidden of proj
	u                vk.Tensor // x + attn [R, D]
	n2, mean2, rstd2 vk.Tensor
	h, g             vk.Tensor // fc1 output and its GELU [R, Hd], both written by fc1's GEMM
	t1, t2           vk.Tensor // LoRA hiddens of fc1, fc2
}

// blockScratch are one block's temporaries, all in the workspace (the adapter-dropout scratch
// [R, max(D, Hd)] too: it is the pass's dropout.scratch).
type blockScratch struct {
	dn, do vk.Tensor // [R, D]
	dqkv   vk.Tensor // [R, 3D]
	delta  vk.Tensor // [B·H·N]
	dh     vk.Tensor // [R, Hd]
	dt     vk.Tensor // [R, r]
}

// The sub-phases of one block, the timeline of its workspace: forward, then backward in mirror order
// (with checkpointing, backward first runs the forward sub-phases again). Backward recomputes n1 and n2
// (subLN1Again, subLN2Again) instead of keeping them across the block. The residual adds, GELU and GELU's
// backward are the epilogues of the GEMMs before them (linear.go's post), so they have no sub-phase.
const (
	subLN1          = iota // n1, mean1, rstd1 = norm1(x)
	subQKV                 // qkv, tq
	subAttn                // RoPE, attention: o, lse
	subProj                // u = x + proj(o), tp
	subLN2                 // n2, mean2, rstd2 = norm2(u)
	subFC1                 // h, g = gelu(h), t1
	subFC2                 // y = u + fc2(g), t2
	subFC2Back             // fc2's adapter (and weight) gradients, dt; g's last reader
	subFC2BackInput        // dh = fc2ᵀ(dy)·gelu'(h): after g's last read, so dh may take g's bytes
	subLN2Again            // n2 = norm2(u)
	subFC1Back             // dn
	subLN2Back             // du = dy + norm2ᵀ(dn), in place
	subProjBack            // do
	subAttnBack            // dqkv, delta; RoPE backward
	subLN1Again            // n1 = norm1(x)
	subQKVBack             // dn
	subLN1Back             // dx = du + norm1ᵀ(dn), in place
	subPhases
)

// PassLives places a pass on a caller's arena: the first phases of its Forward and Backward (from
// Arena.ForwardPhases and Arena.BackwardPhases) and the lifetimes of the tensors the caller writes or
// reads. In covers Z, Actions, States and Extrinsics from the caller's writes to the Forward's first
// phase; Out from Forward's last phase to the caller's last read; DOut from the caller's write to
// Backward's first phase; DZ from Backward's last phase to the caller's last read. A nil lifetime makes
// the tensor persistent. Without WantDZ there is no DZ, and Backward must not be asked for one. With
// WantDCond, Backward also computes DActions and DStates, which live from Backward's last phase for DCond.
type PassLives struct {
	Name                     string // prefixes the names of the pass's tensors in the arena's report
	Forward, Backward        int
	In, Out, DOut, DZ, DCond []Life
	WantDZ, WantDCond        bool
}

// ForwardPhases appends the three phases of a pass's Forward (embedding, blocks, output) and returns the
// first.
func (a *Arena) ForwardPhases(name string) int {
	f := a.Phase(name + ".forward.in")
	a.Phase(name + ".forward.blocks")
	a.Phase(name + ".forward.out")
	return f
}

// BackwardPhases appends the three phases of a pass's Backward (output, blocks, embedding) and returns the
// first.
func (a *Arena) BackwardPhases(name string) int {
	b := a.Phase(name + ".backward.in")
	a.Phase(name + ".backward.blocks")
	a.Phase(name + ".backward.out")
	return b
}

// NewPass allocates a pass over B clips of T frames with an arena of its own: its inputs, outputs and
// gradients persist between runs, its other tensors live only where Forward and Backward use them. Add
// LoRA adapters (and enable weight gradients) before creating passes.
func (p *Predictor) NewPass(B, T int, checkpoint bool) (*Pass, error) {
	ar := p.NewArena(fmt.Sprintf("pass B=%d T=%d", B, T))
	l := PassLives{Name: "pass", Forward: ar.ForwardPhases("pass"), Backward: ar.BackwardPhases("pass"), WantDZ: true}
	ps, err := p.NewPassIn(ar, B, T, checkpoint, l)
	if err != nil {
		return nil, err
	}
	if err := ar.Allocate(); err != nil {
		return nil, fmt.Errorf("model: allocate pass B=%d T=%d: %w", B, T, err)
	}
	ps.own = true
	return ps, nil
}

// NewPassIn declares a pass over B clips of T frames on the caller's arena, with the phases and
// lifetimes of l. Its tensors are valid once the caller allocates the arena; the arena owns them.
func (p *Predictor) NewPassIn(ar *Arena, B, T int, checkpoint bool, l PassLives) (*Pass, error) {
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
	P := B * T * HW
	lseN := B * c.Heads * N
	F, Bw := l.Forward, l.Backward
	ps := &Pass{B: B, T: T, K: K, HW: HW, N: N, R: R, Checkpoint: checkpoint, p: p, ar: ar, fwd: F, bwd: Bw,
		weightGrads: p.embed != nil && p.embed.gw.Valid(), moduleGrads: p.condGrads()}
	inout := func(dst *vk.Tensor, name string, lives []Life, shape ...int) {
		if lives == nil {
			ar.Persistent(dst, l.Name+" "+name, shape...)
			return
		}
		ar.F32(dst, l.Name+" "+name, lives, shape...)
	}
	f32 := func(dst *vk.Tensor, name string, lives []Life, shape ...int) {
		ar.F32(dst, l.Name+" "+name, lives, shape...)
	}
	in := l.In
	inZ := in
	if in != nil && (ps.weightGrads || ps.moduleGrads) { // the encoders' weight gradients read their inputs at the end of backward
		in = append(append([]Life(nil), in...), Life{F, Bw + 2})
		if ps.weightGrads {
			inZ = in
		}
	}
	inout(&ps.Z, "Z", inZ, P, E)
	inout(&ps.Actions, "actions", in, B*T, c.ActionIn())
	inout(&ps.States, "states", in, B*T, c.StateIn())
	if c.Extrinsics {
		inout(&ps.Extrinsics, "extrinsics", in, B*T, ExtrinsicsDim)
		f32(&ps.ce, "extrinsics tokens", At(F), B*T, D)
	}
	inout(&ps.Out, "out", l.Out, P, E)
	inout(&ps.DOut, "dout", l.DOut, P, E)
	if l.WantDZ {
		inout(&ps.DZ, "dz", l.DZ, P, E)
	}
	if l.WantDCond {
		inout(&ps.DActions, "dactions", l.DCond, B*T, c.ActionIn())
		inout(&ps.DStates, "dstates", l.DCond, B*T, c.StateIn())
	}
	f32(&ps.pe, "embedded patches", At(F), P, D)
	f32(&ps.ca, "action tokens", At(F), B*T, D)
	f32(&ps.cs, "state tokens", At(F), B*T, D)
	ps.xs = make([]vk.Tensor, c.Depth+1)
	for i := range ps.xs {
		life := During(F+1, Bw+1)
		switch i {
		case 0:
			life = During(F, Bw+1)
		case c.Depth:
			life = During(F+1, F+2)
		}
		f32(&ps.xs[i], fmt.Sprintf("block %d input", i), life, R, D)
	}
	lora := len(p.LoRAs) > 0
	r := p.maxLoRARank()
	if !checkpoint {
		saved := During(F+1, Bw+1)
		for i := 0; i < c.Depth; i++ {
			a := &blockActs{}
			t := func(dst *vk.Tensor, name string, shape ...int) {
				f32(dst, fmt.Sprintf("block %d %s", i, name), saved, shape...)
			}
			t(&a.mean1, "mean1", R)
			t(&a.rstd1, "rstd1", R)
			t(&a.qkv, "qkv", R, 3*D)
			t(&a.o, "o", R, D)
			t(&a.lse, "lse", lseN)
			t(&a.u, "u", R, D)
			t(&a.mean2, "mean2", R)
			t(&a.rstd2, "rstd2", R)
			t(&a.h, "h", R, Hd)
			t(&a.g, "g", R, Hd)
			if lora {
				t(&a.tq, "tq", R, r)
				t(&a.tp, "tp", R, r)
				t(&a.t1, "t1", R, r)
				t(&a.t2, "t2", R, r)
			}
			ps.acts = append(ps.acts, a)
		}
	}
	ps.drop = dropout{p: p.dropP, seed: p.dropSeed, salt: p.passes, part: p.batchPart}
	p.passes++
	ps.ws = ar.Nested(l.Name+" block workspace", At(F+1, Bw+1))
	ps.declareWorkspace(R, D, Hd, r, lseN, lora)
	f32(&ps.xp, "gathered patches", During(F+2, Bw), P, D)
	xn := At(F + 2)
	if ps.weightGrads { // predictor_proj's weight gradient reads its input
		xn = During(F+2, Bw)
	}
	f32(&ps.xn, "predictor_norm output", xn, P, D)
	f32(&ps.nMean, "predictor_norm mean", During(F+2, Bw), P)
	f32(&ps.nRstd, "predictor_norm rstd", During(F+2, Bw), P)
	f32(&ps.dres, "residual gradient", During(Bw, Bw+2), R, D)
	f32(&ps.dxn, "predictor_norm output gradient", At(Bw), P, D)
	f32(&ps.dxp, "patch gradient", At(Bw, Bw+2), P, D)
	f32(&ps.dcond, "conditioning gradient", At(Bw+2), B*T, D)
	return ps, nil
}

// declareWorkspace lays out one block's activations (with checkpointing) and temporaries over the
// block's sub-phases: each lives from the sub-phase that writes it to the last that reads it.
func (ps *Pass) declareWorkspace(R, D, Hd, r, lseN int, lora bool) {
	w, a, sc := ps.ws, &ps.w, &ps.sc
	for _, n := range [subPhases]string{"ln1", "qkv", "attention", "proj", "ln2", "fc1", "fc2", "fc2.backward",
		"fc2.backward.input", "ln2.again", "fc1.backward", "ln2.backward", "proj.backward", "attention.backward", "ln1.again",
		"qkv.backward", "ln1.backward"} {
		w.Phase(n)
	}
	w.F32(&a.n1, "n1", append(During(subLN1, subQKV), During(subLN1Again, subQKVBack)...), R, D)
	w.F32(&a.n2, "n2", append(During(subLN2, subFC1), During(subLN2Again, subFC1Back)...), R, D)
	w.F32(&sc.dh, "dh", During(subFC2BackInput, subFC1Back), R, Hd)
	w.F32(&sc.dn, "dn", append(During(subFC1Back, subLN2Back), During(subQKVBack, subLN1Back)...), R, D)
	w.F32(&sc.do, "do", During(subProjBack, subAttnBack), R, D)
	w.F32(&sc.dqkv, "dqkv", During(subAttnBack, subQKVBack), R, 3*D)
	w.F32(&sc.delta, "delta", At(subAttnBack), lseN)
	if lora {
		w.F32(&sc.dt, "dt", append(During(subFC2Back, subFC2BackInput), At(subFC1Back, subProjBack, subQKVBack)...), R, r)
	}
	if ps.p.dropP > 0 && ps.p.loraThin { // thin adapters' dropped input, then its gradient, in each linear
		// (fused adapters drop their input as their GEMMs load it)
		linears := At(subQKV, subProj, subFC1, subFC2, subFC2Back, subFC2BackInput, subFC1Back, subProjBack, subQKVBack)
		w.F32(&ps.drop.scratch, "dropout", linears, R, max(D, Hd))
	}
	if !ps.Checkpoint {
		return
	}
	w.F32(&a.mean1, "mean1", During(subLN1, subLN1Back), R)
	w.F32(&a.rstd1, "rstd1", During(subLN1, subLN1Back), R)
	w.F32(&a.qkv, "qkv", During(subQKV, subAttnBack), R, 3*D)
	w.F32(&a.o, "o", During(subAttn, subAttnBack), R, D)
	w.F32(&a.lse, "lse", During(subAttn, subAttnBack), lseN)
	w.F32(&a.u, "u", During(subProj, subLN2Back), R, D)
	w.F32(&a.mean2, "mean2", During(subLN2, subLN2Back), R)
	w.F32(&a.rstd2, "rstd2", During(subLN2, subLN2Back), R)
	w.F32(&a.h, "h", During(subFC1, subFC2BackInput), R, Hd)
	w.F32(&a.g, "g", During(subFC1, subFC2Back), R, Hd)
	if lora {
		w.F32(&a.tq, "tq", During(subQKV, subQKVBack), R, r)
		w.F32(&a.tp, "tp", During(subProj, subProjBack), R, r)
		w.F32(&a.t1, "t1", During(subFC1, subFC1Back), R, r)
		w.F32(&a.t2, "t2", During(subFC2, subFC2Back), R, r)
	}
}

// Free releases the pass's memory if the pass owns its arena (NewPass); a caller's arena is freed by
// the caller.
func (ps *Pass) Free() {
	if ps.own && ps.p.d != nil {
		ps.ar.Free()
	}
}

func (ps *Pass) ropeShape() vk.RopeShape {
	c := ps.p.Cfg
	return vk.RopeShape{B: ps.B, T: ps.T, K: ps.K, GridH: c.Grid, GridW: c.Grid, Heads: c.Heads, HeadDim: c.Dim / c.Heads}
}

func (ps *Pass) attnShape() vk.AttnShape {
	c := ps.p.Cfg
	return vk.AttnShape{B: ps.B, N: ps.N, Heads: c.Heads, HeadDim: c.Dim / c.Heads, FrameTokens: ps.K + ps.HW}
}

// actsFor returns block i's activations: the workspace's with checkpointing, else the saved ones with the
// workspace's n1 and n2.
func (ps *Pass) actsFor(i int) *blockActs {
	if ps.Checkpoint {
		return &ps.w
	}
	a := *ps.acts[i]
	a.n1, a.n2 = ps.w.n1, ps.w.n2
	return &a
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
	ps.ar.Enter(s, ps.fwd)
	p.embed.forward(s, ps.pe, ps.Z, vk.Tensor{}, dropout{}, post{})           // [B·T·HW, D]
	p.actionEnc.forward(s, ps.ca, ps.Actions, vk.Tensor{}, dropout{}, post{}) // [B·T, D]
	p.stateEnc.forward(s, ps.cs, ps.States, vk.Tensor{}, dropout{}, post{})   // [B·T, D]
	ps.condCopy(s, ps.xs[0], ps.ca, 0, false)
	ps.condCopy(s, ps.xs[0], ps.cs, 1, false)
	if p.Cfg.Extrinsics {
		p.extrinsicsEnc.forward(s, ps.ce, ps.Extrinsics, vk.Tensor{}, dropout{}, post{})
		ps.condCopy(s, ps.xs[0], ps.ce, 2, false)
	}
	ps.patchCopy(s, ps.xs[0], ps.pe, false) // [R, D]
	ps.ar.Enter(s, ps.fwd+1)
	for i, b := range p.blocks {
		b.forward(s, ps.xs[i+1], ps.xs[i], ps.actsFor(i), ps.ropeShape(), ps.attnShape(), ps.drop, ps.ws)
	}
	ps.ar.Enter(s, ps.fwd+2)
	ps.patchCopy(s, ps.xs[p.Cfg.Depth], ps.xp, true)                                  // [B·T·HW, D]
	vk.LayerNorm(s, ps.xn, ps.nMean, ps.nRstd, ps.xp, p.norm.w, p.norm.b, p.norm.eps) // [B·T·HW, D]
	p.proj.forward(s, ps.Out, ps.xn, vk.Tensor{}, dropout{}, post{})                  // [B·T·HW, E]
}

// forward runs one pre-norm block (spec §2.4), saving activations in a; y may be absent (the recompute
// of checkpointing needs only the activations, so fc2 computes only its adapter's hidden). w, if not nil,
// is the workspace whose sub-phases the block enters. The residual adds and GELU are the epilogues of
// proj's, fc2's and fc1's GEMMs:
//
//	u = x + proj(attn(rope(qkv(norm1(x)))))
//	y = u + fc2(gelu(fc1(norm2(u))))
func (b *acBlock) forward(s *vk.Stream, y, x vk.Tensor, a *blockActs, rope vk.RopeShape, attn vk.AttnShape, drop dropout, w *Arena) {
	w.Enter(s, subLN1)
	vk.LayerNorm(s, a.n1, a.mean1, a.rstd1, x, b.norm1.w, b.norm1.b, b.norm1.eps) // [R, D]
	w.Enter(s, subQKV)
	b.qkv.forward(s, a.qkv, a.n1, a.tq, drop, post{}) // [R, 3D]
	w.Enter(s, subAttn)
	vk.Rope(s, a.qkv, rope)
	vk.AttentionForward(s, a.o, a.lse, a.qkv, attn) // [R, D]
	w.Enter(s, subProj)
	b.proj.forward(s, a.u, a.o, a.tp, drop, post{residual: x}) // [R, D] u = x + proj(o)
	w.Enter(s, subLN2)
	vk.LayerNorm(s, a.n2, a.mean2, a.rstd2, a.u, b.norm2.w, b.norm2.b, b.norm2.eps)
	w.Enter(s, subFC1)
	b.fc1.forward(s, a.h, a.n2, a.t1, drop, post{gelu: a.g}) // [R, Hd] h, g = gelu(h)
	w.Enter(s, subFC2)
	if y.Valid() {
		b.fc2.forward(s, y, a.g, a.t2, drop, post{residual: a.u}) // [R, D] y = u + fc2(g)
	} else {
		b.fc2.hidden(s, a.t2, a.g, drop) // [R, r]
	}
}

// Backward records the gradients of the loss (given in DOut) w.r.t. the adapters (accumulated into each
// LoRA's GradA/GradB), with wantDZ w.r.t. the input Z (DZ, overwritten), and, when planned, w.r.t. the
// actions and states (DActions, DStates, overwritten). It mirrors Forward in reverse order.
func (ps *Pass) Backward(s *vk.Stream, wantDZ bool) {
	p := ps.p
	if wantDZ && ps.DZ.Shape == nil { // not planned: NewPassIn without WantDZ
		panic("model: Backward with wantDZ on a pass planned without DZ")
	}
	if p.embed.gw.Valid() != ps.weightGrads || p.condGrads() != ps.moduleGrads {
		panic("model: weight gradients were enabled or disabled after the pass was planned")
	}
	ps.drop.on = p.training && p.dropP > 0
	ps.ar.Enter(s, ps.bwd)
	p.proj.backward(s, ps.dxn, ps.DOut, ps.xn, vk.Tensor{}, vk.Tensor{}, false, dropout{}, post{})
	vk.LayerNormBackward(s, ps.dxp, p.norm.gw, p.norm.gb, ps.dxn, ps.xp, p.norm.w, ps.nMean, ps.nRstd, false)
	vk.Zero(s, ps.dres) // conditioning outputs are discarded (spec §2.3 step 5): zero gradient
	ps.patchCopy(s, ps.dres, ps.dxp, false)
	ps.ar.Enter(s, ps.bwd+1)
	for i := p.Cfg.Depth - 1; i >= 0; i-- {
		a := ps.actsFor(i)
		if ps.Checkpoint {
			// recompute the saved activations
			p.blocks[i].forward(s, vk.Tensor{}, ps.xs[i], a, ps.ropeShape(), ps.attnShape(), ps.drop, ps.ws)
		}
		// The first block's input gradient feeds only the conditioning encoders' and the embedding's
		// gradients, and the pass's own input gradients: when none is wanted, it is not formed.
		needDx := i > 0 || wantDZ || p.embed.gw.Valid() || ps.moduleGrads || ps.DActions.Valid()
		ps.blockBackward(s, p.blocks[i], ps.dres, ps.xs[i], a, needDx)
	}
	ps.ar.Enter(s, ps.bwd+2)
	g := ps.dres
	if p.embed.gw.Valid() || ps.moduleGrads { // weight gradients of the conditioning encoders (their outputs' rows of g)
		encs := []*linear{p.actionEnc, p.stateEnc}
		ins := []vk.Tensor{ps.Actions, ps.States}
		if p.Cfg.Extrinsics {
			encs, ins = append(encs, p.extrinsicsEnc), append(ins, ps.Extrinsics)
		}
		for slot, l := range encs {
			if !l.gw.Valid() {
				continue // a frozen encoder next to a trained one (modules_to_save)
			}
			ps.condCopy(s, g, ps.dcond, slot, true)
			vk.Gemm(s, l.gw, ps.dcond, ins[slot], vk.GemmOpts{TransA: true, Beta: 1})
			vk.BiasGradient(s, l.gb, ps.dcond)
		}
	}
	if ps.DActions.Valid() { // input gradients through the conditioning encoders (the gradient planner)
		for slot, u := range []struct {
			l   *linear
			dst vk.Tensor
		}{{p.actionEnc, ps.DActions}, {p.stateEnc, ps.DStates}} {
			ps.condCopy(s, g, ps.dcond, slot, true)
			u.l.backwardInput(s, u.dst, ps.dcond, vk.Tensor{}, false, dropout{}, post{}) // [B·T, A] = dcond·W
		}
	}
	if wantDZ || p.embed.gw.Valid() {
		dpe := ps.dxp
		ps.patchCopy(s, g, dpe, true)
		if wantDZ {
			p.embed.backward(s, ps.DZ, dpe, ps.Z, vk.Tensor{}, vk.Tensor{}, false, dropout{}, post{})
		} else {
			vk.Gemm(s, p.embed.gw, dpe, ps.Z, vk.GemmOpts{TransA: true, Beta: 1})
			vk.BiasGradient(s, p.embed.gb, dpe)
		}
	}
}

// blockBackward turns g, the gradient w.r.t. the block's output y, into the gradient w.r.t. its input x,
// in place (the residual connections carry it through: du = dy + norm2ᵀ(…), dx = du + norm1ᵀ(…)), and
// accumulates the adapter gradients. It mirrors acBlock.forward. Without needDx it stops once the adapter
// gradients are done, and g is left partial.
func (ps *Pass) blockBackward(s *vk.Stream, b *acBlock, g, x vk.Tensor, a *blockActs, needDx bool) {
	w, sc, drop := ps.ws, &ps.sc, ps.drop
	// y = u + fc2(gelu(fc1(norm2(u))))
	w.Enter(s, subFC2Back)
	b.fc2.backwardWeights(s, g, a.g, a.t2, sc.dt, drop)
	w.Enter(s, subFC2BackInput)
	b.fc2.backwardInput(s, sc.dh, g, sc.dt, false, drop, post{geluOf: a.h}) // [R, Hd] dh = fc2ᵀ(g)·gelu'(h)
	w.Enter(s, subLN2Again)                                                 // the same kernel on the same input: bit-identical to the forward's n2
	vk.LayerNorm(s, a.n2, a.mean2, a.rstd2, a.u, b.norm2.w, b.norm2.b, b.norm2.eps)
	w.Enter(s, subFC1Back)
	b.fc1.backward(s, sc.dn, sc.dh, a.n2, a.t1, sc.dt, false, drop, post{})
	w.Enter(s, subLN2Back)
	vk.LayerNormBackward(s, g, b.norm2.gw, b.norm2.gb, sc.dn, a.u, b.norm2.w, a.mean2, a.rstd2, true) // g = du
	// u = x + proj(attn(rope(qkv(norm1(x)))))
	w.Enter(s, subProjBack)
	b.proj.backward(s, sc.do, g, a.o, a.tp, sc.dt, false, drop, post{})
	w.Enter(s, subAttnBack)
	vk.AttentionBackward(s, sc.dqkv, sc.delta, sc.do, a.qkv, a.o, a.lse, ps.attnShape())
	vk.RopeBackward(s, sc.dqkv, ps.ropeShape())
	w.Enter(s, subLN1Again)
	vk.LayerNorm(s, a.n1, a.mean1, a.rstd1, x, b.norm1.w, b.norm1.b, b.norm1.eps)
	w.Enter(s, subQKVBack)
	if !needDx {
		b.qkv.backwardWeights(s, sc.dqkv, a.n1, a.tq, sc.dt, drop)
		return
	}
	b.qkv.backward(s, sc.dn, sc.dqkv, a.n1, a.tq, sc.dt, false, drop, post{})
	w.Enter(s, subLN1Back)
	vk.LayerNormBackward(s, g, b.norm1.gw, b.norm1.gb, sc.dn, x, b.norm1.w, a.mean1, a.rstd1, true) // g = dx
}
