package train

import (
	"sort"
	"time"

	"github.com/vjepa-vk/vjepa-vk/model"
	"github.com/vjepa-vk/vjepa-vk/plan"
	"github.com/vjepa-vk/vjepa-vk/vk"
	"github.com/vjepa-vk/vjepa-vk/vk/ref"
)

// PlanBenchResult is one planning benchmark: the time to plan one action (all CEM iterations) at a config's
// sizes, as shared/baseline/bench_plan_torch.py measures it.
type PlanBenchResult struct {
	Device         string      `json:"device"`
	Samples        int         `json:"samples"`
	Iterations     int         `json:"iters"`
	TopK           int         `json:"topk"`
	Horizon        int         `json:"horizon"`
	Chunk          int         `json:"chunk"`
	KVCache        bool        `json:"kv_cache"`
	Precision      string      `json:"precision"`
	TensorCores    bool        `json:"tensor_cores"`
	Repeats        int         `json:"repeats"`
	ActionMedian   float64     `json:"s_per_action_median"`
	ActionMin      float64     `json:"s_per_action_min"`
	CandidatesPerS float64     `json:"candidates_per_s"` // candidate rollouts (H steps each) per second
	FlopsPerAction float64     `json:"flops_per_action"`
	TFLOPs         float64     `json:"tflops"`
	PeakMemGiB     float64     `json:"peak_mem_gib"`
	Dispatches     int         `json:"dispatches_per_iteration"`
	Action         []float64   `json:"action"`
	Ops            []OpSummary `json:"ops,omitempty"` // GPU time per op kind over one iteration's rollouts
}

// BenchPlan plans repeats actions (after warmup untimed ones) with cfg's predictor (random weights unless
// the config names a checkpoint), on random layer-normed context and goal representations: the encoder is
// not run, as in the PyTorch peer. With timings it also runs one iteration's rollouts with GPU timestamps.
func BenchPlan(d *vk.Device, cfg *Config, st plan.Settings, o WorldModelOptions, repeats, warmup int, timings bool) (*PlanBenchResult, error) {
	o.NoEncoder = true
	w, closeW, err := OpenWorldModel(d, cfg, o)
	if err != nil {
		return nil, err
	}
	defer closeW()
	pc := w.Pred.Cfg
	n := w.RepSize()
	rep := func(seed uint64) plan.Rep {
		v := randn(seed, n)
		layerNorm0(v, pc.EmbedDim)
		return v
	}
	ctx, goal := rep(11), rep(12)
	if st, err = st.ForWidth(w.ActionWidth()); err != nil {
		return nil, err
	}
	start := make([]float64, w.StateWidth()) // zeros for a robot of its own widths
	if w.StateRule() == plan.StatePose {
		start = []float64{0.45, -0.05, 0.32, 3.0, 0.1, -0.3, 0.2} // the peer's pose
	}
	var res *plan.Result
	run := func(seed uint64) (float64, error) {
		t0 := time.Now()
		var err error
		res, err = plan.CEM(st, w.Energy(ctx, goal, start), plan.NewSeededNoise(seed))
		return time.Since(t0).Seconds(), err
	}
	for i := range warmup {
		if _, err := run(uint64(100 + i)); err != nil {
			return nil, err
		}
	}
	times := make([]float64, repeats)
	for i := range times {
		if times[i], err = run(uint64(i)); err != nil {
			return nil, err
		}
	}
	sort.Float64s(times)
	med := times[len(times)/2]
	chunk, err := w.Chunk(st.Samples, st.Horizon)
	if err != nil {
		return nil, err
	}
	prec := cfg.Model.Precision
	if o.Precision != "" {
		prec = o.Precision
	}
	flops := PlanFlops(pc, w.Pred.LoRAs, st.Samples, st.Horizon, !o.Plan.NoKVCache) * float64(st.Iterations)
	r := &PlanBenchResult{Device: d.Info.Name, Samples: st.Samples, Iterations: st.Iterations, TopK: st.TopK, Horizon: st.Horizon,
		Chunk: chunk, KVCache: !o.Plan.NoKVCache, Precision: prec, TensorCores: d.CoopMat(), Repeats: repeats,
		ActionMedian: med, ActionMin: times[0], CandidatesPerS: float64(st.Samples*st.Iterations) / med,
		FlopsPerAction: flops, TFLOPs: flops / med / 1e12, PeakMemGiB: float64(d.Memory().Peak) / (1 << 30),
		Action: res.Plan[0]}
	// One iteration's rollouts again, on a stream of their own: dispatch count and GPU time per op.
	ro, err := w.Pred.NewRollout(model.RolloutConfig{Samples: st.Samples, Horizon: st.Horizon, Chunk: chunk, KVCache: !o.Plan.NoKVCache})
	if err != nil {
		return nil, err
	}
	defer ro.Free()
	for _, u := range []struct {
		t vk.Tensor
		v []float32
	}{{ro.Context, ctx}, {ro.Goals, randn(13, ro.Goals.Numel())}, {ro.Actions, randn(14, ro.Actions.Numel())},
		{ro.States, randn(15, ro.States.Numel())}} {
		if err := d.Upload(u.t, u.v); err != nil {
			return nil, err
		}
	}
	ts, err := d.NewStream(timings)
	if err != nil {
		return nil, err
	}
	defer ts.Destroy()
	ro.Record(ts)
	if err := ts.Run(); err != nil {
		return nil, err
	}
	r.Dispatches, _ = ts.Stats()
	if timings {
		r.Ops = summarize(ts.Timings())
	}
	return r, nil
}

// layerNorm0 normalizes rows of width w in place: the parameter-free LN₀ (eps 1e-5) of vk/ref, in float64.
func layerNorm0(v []float32, w int) {
	rows := len(v) / w
	x, y := make([]float64, rows*w), make([]float64, rows*w)
	for i := range x {
		x[i] = float64(v[i])
	}
	ref.LayerNorm(y, make([]float64, rows), make([]float64, rows), x, nil, nil, rows, w, 1e-5)
	for i, yv := range y {
		v[i] = float32(yv)
	}
}

// PlanFlops counts the model FLOPs of scoring samples candidates over horizon steps once (one CEM
// iteration): every GEMM's 2·M·N·K over the tokens each step runs through the blocks (the newest frame
// with the K/V cache, all frames so far without), attention's 4·pairs·dh over the allowed pairs, and the
// embedding and output projection of the newest frame. Elementwise work is not counted.
func PlanFlops(c model.PredictorConfig, loras []*model.LoRA, samples, horizon int, kvCache bool) float64 {
	K := 2
	if c.Extrinsics {
		K = 3
	}
	HW := c.Grid * c.Grid
	F := float64(K + HW)
	D, E, Hd := float64(c.Dim), float64(c.EmbedDim), float64(c.MLPHidden())
	var lora float64
	for _, a := range loras {
		lora += float64(a.R * (a.In + a.Out))
	}
	var total float64
	for h := range horizon {
		frames := float64(h + 1)
		tokens, pairs := F, F*F*frames // new frame's queries over all keys so far
		if !kvCache {
			tokens, pairs = F*frames, F*F*frames*(frames+1)/2
		}
		blocks := float64(c.Depth)*2*tokens*(D*3*D+D*D+2*D*Hd) + 2*tokens*lora + float64(c.Depth)*4*pairs*D
		total += blocks + 2*float64(HW)*E*D*2 // embed the newest frame, project its output
	}
	return total * float64(samples)
}
