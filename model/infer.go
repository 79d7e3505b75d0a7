package model

import (
	"fmt"

	"github.com/vjepa-vk/vjepa-vk/vk"
)

// The predictor's inference path for planning (spec planning §1, §3): forward only, nothing kept for a
// backward pass, no dropout, no checkpointing. A Rollout scores S candidate action sequences by rolling
// each one H steps from the current observation and measuring the L1 energy of every predicted frame
// against a goal, all on the device: the host writes actions and poses, and reads back S·H energies.
//
// Candidates run in chunks of C (the memory grows linearly with C; the energies do not depend on it).
// Each step predicts one frame per candidate:
//
//	step h: frames 0..h = [z_0, ẑ_1..ẑ_h], actions a_0..a_h, states s_0..s_h
//	        ẑ_{h+1} = LN₀(predictor_proj(predictor_norm(patches of frame h after the blocks)))
//	        E[h, s] = mean |ẑ_{h+1} − goal_h|
//
// With TeacherForcing, frame h ≥ 1 is the goal of step h−1 instead of the prediction ẑ_h: given the
// true frames as goals (evaluation), E[h, s] is the teacher-forcing error of frame h+1 (spec §6.2),
// otherwise the rollout error at horizon h+1 (spec §6.3). With PerSample, each candidate has its own
// context and goals (evaluation over many clips at once); otherwise all candidates share them (planning).
//
// Only frame h's patch tokens go through predictor_norm and predictor_proj. With the K/V cache, only
// frame h's tokens go through the blocks at all: block causality (spec §3) makes the keys and values of
// frames 0..h−1 the same at every later step, so each candidate keeps them per block and a step attends
// its new frame to them (vk.AttentionCached). Without it, every step runs the blocks on all h+1 frames.

// lnEps0 is the parameter-free LayerNorm that makes frames and goals (planning §1, §2; spec §6.1).
const lnEps0 = 1e-5

// RolloutConfig sizes a Rollout.
type RolloutConfig struct {
	Samples int  // S candidate action sequences scored per run
	Horizon int  // H rollout steps: frames predicted per candidate
	Chunk   int  // candidates per chunk; 0 (or ≥ Samples) runs them all at once
	KVCache bool // keep each candidate's keys and values across steps (exact by block causality)
	// PerSample gives every candidate its own context and goals: Context [S, HW, E], Goals [H, S, HW, E].
	PerSample bool
	// TeacherForcing feeds goal h−1 as frame h (h ≥ 1) instead of the prediction ẑ_h.
	TeacherForcing bool
}

// chunk is the effective chunk size.
func (c RolloutConfig) chunk() int {
	if c.Chunk <= 0 || c.Chunk > c.Samples {
		return c.Samples
	}
	return c.Chunk
}

// Validate rejects sizes a rollout cannot run.
func (c RolloutConfig) Validate() error {
	if c.Samples < 1 || c.Horizon < 1 || c.Chunk < 0 {
		return fmt.Errorf("model: rollout of %d samples over %d steps in chunks of %d: samples and horizon must be >= 1, chunk >= 0",
			c.Samples, c.Horizon, c.Chunk)
	}
	return nil
}

// Rollout holds the device tensors of the planner's forward-only rollouts for one RolloutConfig. Record it
// once into a stream; each run of that stream scores the candidates currently in Actions and States.
type Rollout struct {
	Cfg   RolloutConfig
	HW, F int // patches per frame; tokens per frame (conditioning tokens + patches, spec §2.3)

	// Inputs, written by the caller before the stream runs.
	Context    vk.Tensor // [HW, E] z_0, the current observation's representation (after LN₀); [S, HW, E] with PerSample
	Goals      vk.Tensor // [H, HW, E] the goal representation each step's frame is compared with (after LN₀); [H, S, HW, E] with PerSample
	Actions    vk.Tensor // [H, S, A] action h of every candidate (step-major; A = Cfg.ActionIn(), 7 officially)
	States     vk.Tensor // [H, S, Z] the state before action h (s_0: the current one; Z = Cfg.StateIn())
	Extrinsics vk.Tensor // [H, S, 6] camera extrinsics per step (only with Cfg.Extrinsics of the predictor)

	// Energies [H, S] is the output: E[h, s] = mean over HW·E of |ẑ_{h+1}(s) − goal_h|.
	Energies vk.Tensor

	p          *Predictor
	ar         *Arena
	ctxEmb     vk.Tensor // [HW, D] predictor_embed(z_0), shared by every candidate's frame 0; [C·HW, D] per chunk with PerSample
	z, pe      vk.Tensor // [C·HW, E] newest predicted frame; [C·HW, D] its embedding
	ca, cs, ce vk.Tensor // [C, D] conditioning tokens of the current step
	tok        vk.Tensor // [C, H, F, D] every frame's input tokens (without the cache)
	x, u       vk.Tensor // [rows, D] residual stream; rows = C·F with the cache, C·H·F without
	sc         inferScratch
	kv         []vk.Tensor // per block [C·(H−1)·F, 2D]: k | v of the cached frames (with the cache)
	xp, xn     vk.Tensor   // [C·HW, D] the newest frame's patches after the blocks; after predictor_norm
	out        vk.Tensor   // [C·HW, E] predictor_proj output
	lnMean     vk.Tensor   // [C·HW] LayerNorm statistics of the output rows
	lnRstd     vk.Tensor
}

// inferScratch is one block's temporaries, shared by every block: n holds norm1's output, then the
// attention output, then norm2's (each dead when the next is written); GELU runs in place on fc1's output.
type inferScratch struct {
	n          vk.Tensor // [rows, D]
	qkv        vk.Tensor // [rows, 3D]
	g          vk.Tensor // [rows, Hd]
	t          vk.Tensor // [rows, r] adapter hidden (fused LoRA)
	mean, rstd vk.Tensor // [rows]
	lse        vk.Tensor // [C·Heads·H·F] attention statistics (without the cache; AttentionForward writes them)
}

// NewRollout allocates a rollout on p (or, on a planning predictor, counts its bytes). Adapters must be
// added before: their hiddens are part of the scratch.
func (p *Predictor) NewRollout(cfg RolloutConfig) (*Rollout, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c := p.Cfg
	K := 2
	if c.Extrinsics {
		K = 3
	}
	HW := c.Grid * c.Grid
	F := K + HW
	S, H, C := cfg.Samples, cfg.Horizon, cfg.chunk()
	D, E, Hd := c.Dim, c.EmbedDim, c.MLPHidden()
	rows := C * F
	if !cfg.KVCache {
		rows = C * H * F
	}
	r := &Rollout{Cfg: cfg, HW: HW, F: F, p: p}
	ar := p.NewArena(fmt.Sprintf("rollout S=%d H=%d chunk=%d cache=%v", S, H, C, cfg.KVCache))
	r.ar = ar
	all := At(ar.Phase("rollout"))
	G := 1 // contexts and goals per step
	if cfg.PerSample {
		G = S
	}
	ar.Persistent(&r.Context, "context", G, HW, E)
	ar.Persistent(&r.Goals, "goals", H, G, HW, E)
	ar.Persistent(&r.Actions, "actions", H, S, c.ActionIn())
	ar.Persistent(&r.States, "states", H, S, c.StateIn())
	if c.Extrinsics {
		ar.Persistent(&r.Extrinsics, "extrinsics", H, S, ExtrinsicsDim)
		ar.F32(&r.ce, "extrinsics tokens", all, C, D)
	}
	ar.Persistent(&r.Energies, "energies", H, S)
	ar.F32(&r.ctxEmb, "embedded context", all, HW*min(G, C), D)
	ar.F32(&r.z, "predicted frame", all, C*HW, E)
	ar.F32(&r.pe, "embedded frame", all, C*HW, D)
	ar.F32(&r.ca, "action tokens", all, C, D)
	ar.F32(&r.cs, "state tokens", all, C, D)
	ar.F32(&r.x, "residual stream", all, rows, D)
	ar.F32(&r.u, "residual stream after attention", all, rows, D)
	ar.F32(&r.sc.n, "norm and attention output", all, rows, D)
	ar.F32(&r.sc.qkv, "qkv", all, rows, 3*D)
	ar.F32(&r.sc.g, "mlp hidden", all, rows, Hd)
	ar.F32(&r.sc.mean, "norm mean", all, rows)
	ar.F32(&r.sc.rstd, "norm rstd", all, rows)
	if len(p.LoRAs) > 0 {
		ar.F32(&r.sc.t, "adapter hidden", all, rows, p.maxLoRARank())
	}
	if cfg.KVCache {
		if H > 1 {
			r.kv = make([]vk.Tensor, c.Depth)
			for i := range r.kv {
				ar.F32(&r.kv[i], fmt.Sprintf("block %d k|v cache", i), all, C*(H-1)*F, 2*D)
			}
		}
	} else {
		ar.F32(&r.tok, "frame tokens", all, C, H, F, D)
		ar.F32(&r.sc.lse, "attention lse", all, C*c.Heads*H*F)
	}
	ar.F32(&r.xp, "frame patches", all, C*HW, D)
	ar.F32(&r.xn, "predictor_norm output", all, C*HW, D)
	ar.F32(&r.out, "predictor_proj output", all, C*HW, E)
	ar.F32(&r.lnMean, "output norm mean", all, C*HW)
	ar.F32(&r.lnRstd, "output norm rstd", all, C*HW)
	if err := ar.Allocate(); err != nil {
		return nil, fmt.Errorf("model: allocate %s: %w", ar.name, err)
	}
	return r, nil
}

// RolloutBytes is the device memory a Rollout of rc takes on a predictor of cfg with adapters lora (R 0:
// none, e.g. merged), counted by the allocation code itself (weights not included).
func RolloutBytes(cfg PredictorConfig, lora LoRAConfig, rc RolloutConfig) (int64, error) {
	p, plan, err := NewPlanPredictor(cfg, lora)
	if err != nil {
		return 0, err
	}
	if _, err := p.NewRollout(rc); err != nil {
		return 0, err
	}
	return plan.Bytes, nil
}

// ChunkForBudget is the largest chunk (≤ rc.Samples) whose rollout fits budget bytes, or an error naming
// the smallest footprint when not even one candidate fits.
func ChunkForBudget(cfg PredictorConfig, lora LoRAConfig, rc RolloutConfig, budget int64) (int, error) {
	bytes := func(c int) (int64, error) {
		rc.Chunk = c
		return RolloutBytes(cfg, lora, rc)
	}
	lo, hi := 1, rc.Samples
	b, err := bytes(lo)
	if err != nil {
		return 0, err
	}
	if b > budget {
		return 0, fmt.Errorf("model: rollout of one candidate over %d steps needs %.2f GiB, over the budget of %.2f GiB",
			rc.Horizon, float64(b)/(1<<30), float64(budget)/(1<<30))
	}
	for lo < hi { // the largest c in [lo, hi] with bytes(c) ≤ budget
		mid := (lo + hi + 1) / 2
		if b, err = bytes(mid); err != nil {
			return 0, err
		}
		if b <= budget {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	return lo, nil
}

// Free releases the rollout's memory.
func (r *Rollout) Free() {
	if r.p.d != nil {
		r.ar.Free()
	}
}

// Record records the scoring of all S candidates, chunk after chunk, into s.
func (r *Rollout) Record(s *vk.Stream) {
	p := r.p
	if !r.Cfg.PerSample {
		p.embed.forward(s, r.ctxEmb, r.Context, vk.Tensor{}, dropout{}, post{}) // [HW, D]
	}
	C := r.Cfg.chunk()
	for c0 := 0; c0 < r.Cfg.Samples; c0 += C {
		n := min(C, r.Cfg.Samples-c0)
		if r.Cfg.PerSample {
			p.embed.forward(s, r.ctxEmb.Slice(0, n*r.HW), r.Context.Slice(c0, n).Reshape(n*r.HW, p.Cfg.EmbedDim), vk.Tensor{}, dropout{}, post{}) // [n·HW, D]
		}
		for h := range r.Cfg.Horizon {
			r.step(s, c0, n, h)
		}
	}
}

// step records rollout step h of candidates c0..c0+n−1: frame h's tokens in, ẑ_{h+1} and its energy out.
func (r *Rollout) step(s *vk.Stream, c0, n, h int) {
	p, c := r.p, r.p.Cfg
	D, HW, F, H, S := c.Dim, r.HW, r.F, r.Cfg.Horizon, r.Cfg.Samples
	K := F - HW
	of := func(t vk.Tensor, width int) vk.Tensor { // the chunk's rows of step h of an [H, S, width] input
		return t.Slice(h, 1).Reshape(S, width).Slice(c0, n)
	}
	head := func(t vk.Tensor, rows int) vk.Tensor { return t.Slice(0, rows) }
	ca, cs := head(r.ca, n), head(r.cs, n)
	p.actionEnc.forward(s, ca, of(r.Actions, c.ActionIn()), vk.Tensor{}, dropout{}, post{}) // [n, D]
	p.stateEnc.forward(s, cs, of(r.States, c.StateIn()), vk.Tensor{}, dropout{}, post{})    // [n, D]
	cond := []vk.Tensor{ca, cs}
	if c.Extrinsics {
		ce := head(r.ce, n)
		p.extrinsicsEnc.forward(s, ce, of(r.Extrinsics, ExtrinsicsDim), vk.Tensor{}, dropout{}, post{})
		cond = append(cond, ce)
	}
	// Frame h's tokens [n, F, D] go to x (with the cache) or to slot h of tok (without); at h = 0 every
	// candidate's patches are the embedded context, later its prediction ẑ_h or, teacher-forced, goal h−1.
	patches, patchBlock := r.ctxEmb, 0
	if r.Cfg.PerSample {
		patchBlock = HW * D
	}
	if h > 0 {
		pe := head(r.pe, n*HW)
		frame, block := head(r.z, n*HW), HW*D
		if r.Cfg.TeacherForcing {
			g := r.goalRows(h-1, c0, n)
			frame = g.Reshape(g.Numel()/c.EmbedDim, c.EmbedDim)
			if !r.Cfg.PerSample {
				pe, block = head(r.pe, HW), 0
			}
		}
		p.embed.forward(s, pe, frame, vk.Tensor{}, dropout{}, post{}) // [n·HW, D] (or [HW, D] shared)
		patches, patchBlock = pe, block
	}
	dst, dstOff, dstBlock := r.x, 0, F*D
	if !r.Cfg.KVCache {
		dst, dstOff, dstBlock = r.tok, h*F*D, H*F*D
	}
	for slot, t := range cond {
		vk.CopyBlocks(s, dst, t, vk.CopyArgs{Count: n, Rows: 1, Cols: D, SrcBlock: D, DstOffset: dstOff + slot*D, DstBlock: dstBlock})
	}
	vk.CopyBlocks(s, dst, patches, vk.CopyArgs{Count: n, Rows: HW, Cols: D, SrcBlock: patchBlock, SrcRow: D,
		DstOffset: dstOff + K*D, DstBlock: dstBlock, DstRow: D})

	T, rows := 1, n*F // frames through the blocks
	if !r.Cfg.KVCache {
		T, rows = h+1, n*(h+1)*F
		vk.CopyBlocks(s, r.x, r.tok, vk.CopyArgs{Count: n, Rows: 1, Cols: T * F * D, SrcBlock: H * F * D, DstBlock: T * F * D})
	}
	x, u := head(r.x, rows), head(r.u, rows)
	sc := r.sc.rows(rows)
	dh := D / c.Heads
	rope := vk.RopeShape{B: n, T: T, K: K, GridH: c.Grid, GridW: c.Grid, Heads: c.Heads, HeadDim: dh}
	for i, b := range p.blocks {
		var mix func(s *vk.Stream, o, qkv vk.Tensor)
		if r.Cfg.KVCache {
			mix = r.cachedAttention(i, n, h, rope)
		} else {
			lse := r.sc.lse.Slice(0, c.Heads*rows) // [n, Heads, T·F]
			mix = func(s *vk.Stream, o, qkv vk.Tensor) {
				vk.Rope(s, qkv, rope)
				vk.AttentionForward(s, o, lse, qkv, vk.AttnShape{B: n, N: T * F, Heads: c.Heads, HeadDim: dh, FrameTokens: F})
			}
		}
		b.infer(s, x, u, sc, mix)
	}
	// The newest frame's patch tokens: predictor_norm, predictor_proj, LN₀ (spec §2.3, planning §3).
	xp, xn, out, z := head(r.xp, n*HW), head(r.xn, n*HW), head(r.out, n*HW), head(r.z, n*HW)
	mean, rstd := head(r.lnMean, n*HW), head(r.lnRstd, n*HW)
	vk.CopyBlocks(s, xp, x, vk.CopyArgs{Count: n, Rows: HW, Cols: D, SrcOffset: ((T-1)*F + K) * D, SrcBlock: T * F * D,
		SrcRow: D, DstBlock: HW * D, DstRow: D})
	vk.LayerNorm(s, xn, mean, rstd, xp, p.norm.w, p.norm.b, p.norm.eps)                     // [n·HW, D]
	p.proj.forward(s, out, xn, vk.Tensor{}, dropout{}, post{})                              // [n·HW, E]
	vk.LayerNorm(s, z, mean, rstd, out, vk.Tensor{}, vk.Tensor{}, lnEps0)                   // ẑ_{h+1} [n·HW, E]
	vk.L1Energy(s, r.Energies.Slice(h, 1).Reshape(S).Slice(c0, n), z, r.goalRows(h, c0, n)) // [n]
}

// goalRows is the goal of step h for candidates c0..c0+n−1: [HW, E] shared, or their rows [n, HW, E].
func (r *Rollout) goalRows(h, c0, n int) vk.Tensor {
	g := r.Goals.Slice(h, 1) // [1, G, HW, E]
	if !r.Cfg.PerSample {
		return g.Reshape(r.HW, r.p.Cfg.EmbedDim)
	}
	return g.Reshape(r.Cfg.Samples, r.HW, r.p.Cfg.EmbedDim).Slice(c0, n)
}

// cachedAttention is block i's RoPE and attention at step h with the K/V cache: frame h's keys and
// values join the cache (unless no later step reads them) and its queries attend to frames 0..h.
func (r *Rollout) cachedAttention(i, n, h int, rope vk.RopeShape) func(s *vk.Stream, o, qkv vk.Tensor) {
	c := r.p.Cfg
	D, F := c.Dim, r.F
	capRows := (r.Cfg.Horizon - 1) * F
	var kv vk.Tensor
	if r.kv != nil {
		kv = r.kv[i].Slice(0, n*capRows)
	}
	rope.TimeOffset = h
	return func(s *vk.Stream, o, qkv vk.Tensor) {
		vk.Rope(s, qkv, rope)
		if h < r.Cfg.Horizon-1 {
			vk.CopyBlocks(s, kv, qkv, vk.CopyArgs{Count: n, Rows: F, Cols: 2 * D, SrcOffset: D, SrcBlock: F * 3 * D,
				SrcRow: 3 * D, DstOffset: h * F * 2 * D, DstBlock: capRows * 2 * D, DstRow: 2 * D})
		}
		vk.AttentionCached(s, o, qkv, kv, vk.AttnCachedShape{B: n, NQ: F, NC: h * F, Cap: capRows, Heads: c.Heads,
			HeadDim: D / c.Heads, FrameTokens: F})
	}
}

// rows returns the scratch's views for the first rows token rows.
func (sc inferScratch) rows(rows int) inferScratch {
	v := sc
	v.n, v.qkv, v.g = sc.n.Slice(0, rows), sc.qkv.Slice(0, rows), sc.g.Slice(0, rows)
	v.mean, v.rstd = sc.mean.Slice(0, rows), sc.rstd.Slice(0, rows)
	if sc.t.Valid() {
		v.t = sc.t.Slice(0, rows)
	}
	return v
}

// infer runs one pre-norm block forward only (spec §2.4), updating the residual stream x [rows, D] in
// place, with u [rows, D] and sc as scratch; mix records RoPE and attention (o from qkv). It computes what
// acBlock.forward computes, keeping nothing:
//
//	u = x + proj(attn(rope(qkv(norm1(x)))))
//	x = u + fc2(gelu(fc1(norm2(u))))
func (b *acBlock) infer(s *vk.Stream, x, u vk.Tensor, sc inferScratch, mix func(s *vk.Stream, o, qkv vk.Tensor)) {
	vk.LayerNorm(s, sc.n, sc.mean, sc.rstd, x, b.norm1.w, b.norm1.b, b.norm1.eps) // [rows, D]
	b.qkv.forward(s, sc.qkv, sc.n, sc.t, dropout{}, post{})                       // [rows, 3D]
	mix(s, sc.n, sc.qkv)                                                          // o [rows, D] in n
	b.proj.forward(s, u, sc.n, sc.t, dropout{}, post{residual: x})                // [rows, D]
	vk.LayerNorm(s, sc.n, sc.mean, sc.rstd, u, b.norm2.w, b.norm2.b, b.norm2.eps)
	b.fc1.forward(s, sc.g, sc.n, sc.t, dropout{}, post{}) // [rows, Hd]
	vk.Gelu(s, sc.g, sc.g)
	b.fc2.forward(s, x, sc.g, sc.t, dropout{}, post{residual: u}) // [rows, D]
}
