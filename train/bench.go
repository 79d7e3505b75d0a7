package train

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"time"

	"github.com/vjepa-vk/vjepa-vk/dist"
	"github.com/vjepa-vk/vjepa-vk/model"
	"github.com/vjepa-vk/vjepa-vk/vk"
)

// BenchResult is one training-step benchmark at a config's shapes.
type BenchResult struct {
	Device        string      `json:"device"`
	T             int         `json:"T"`
	B             int         `json:"B"`
	Checkpointing bool        `json:"grad_checkpointing"`
	Precision     string      `json:"precision"`
	Optimizer     string      `json:"optimizer"`
	LoRAPath      string      `json:"lora_path"`
	LoRADropout   float64     `json:"lora_dropout"`
	TensorCores   bool        `json:"tensor_cores"` // cooperative-matrix GEMMs on (VJEPA_VK_COOPMAT=1 on a device with them)
	Kernels       string      `json:"kernels"`      // GEMM and attention kernel variant: "gpu" or "cpu" (vk.Device.Kernels)
	Steps         int         `json:"steps"`
	StepMedian    float64     `json:"step_s_median"`
	StepMin       float64     `json:"step_s_min"`
	ClipsPerSec   float64     `json:"clips_per_s"`
	TokensPerSec  float64     `json:"tokens_per_s"` // predictor tokens of the teacher-forcing pass per second
	FlopsPerStep  float64     `json:"flops_per_step"`
	TFLOPs        float64     `json:"tflops"`
	PeakMemGiB    float64     `json:"peak_mem_gib"` // allocator peak: weights, adapters, optimizer, activations
	Dispatches    int         `json:"dispatches"`
	Barriers      int         `json:"barriers"`
	Loss          float64     `json:"loss"`
	Ops           []OpSummary `json:"ops,omitempty"` // GPU time per op kind (timestamps), largest first
	// Data parallel: ranks of the job the bench ran in (mpirun), the bytes of the one gradient all-reduce
	// of a step, and with several ranks the median per step of the all-reduce call alone and of the whole
	// gradient exchange (device copies, download, all-reduce, upload), both included in the step time.
	Ranks           int     `json:"ranks"`
	GradBytes       int64   `json:"grad_bytes"`
	AllReduceMedian float64 `json:"allreduce_s_median,omitempty"`
	GradSyncMedian  float64 `json:"grad_sync_s_median,omitempty"`
}

// OpSummary is the GPU time of every dispatch of one op kind in one step.
type OpSummary struct {
	Op      string  `json:"op"`
	Count   int     `json:"count"`
	Seconds float64 `json:"seconds"`
	Share   float64 `json:"share"`
}

// Bench measures one whole training step (teacher forcing + rollout forward and backward, gradient norm,
// AdamW) of cfg's predictor, recorded once and replayed, on random encoder features (the PyTorch peer,
// shared/baseline/bench_torch.py, measures the same step). Weights are random unless cfg names a checkpoint.
// As a rank of a job (comm of several ranks, launched by mpirun) each step also all-reduces the
// gradients between backward and AdamW, as training does, and the result times it.
func Bench(d *vk.Device, cfg *Config, steps, warmup int, timings bool, comm dist.Comm) (*BenchResult, error) {
	pcfg, _ := modelConfigs(cfg)
	var src model.WeightSource = model.InitPredictor(pcfg, uint64(cfg.Training.Seed))
	if cfg.Model.Checkpoint != "" {
		sd, err := model.OpenStateDict(cfg.Model.Checkpoint, "predictor")
		if err != nil {
			return nil, err
		}
		defer sd.Close()
		if err := model.CheckPredictor(sd.Source, pcfg, sd.Infos()); err != nil {
			return nil, err
		}
		src = sd
	}
	p, err := model.LoadPredictor(d, pcfg, src, model.Precision(cfg.Model.Precision))
	if err != nil {
		return nil, err
	}
	defer p.Free()
	// With the config's dropout, as the training step (and PEFT in train mode) runs it.
	if err := p.AddLoRA(cfg.LoRA.Model()); err != nil {
		return nil, err
	}
	B, T := cfg.Data.BatchSize, cfg.Data.Frames
	g, err := NewLossGraph(p, B, T, cfg.Training.AutoSteps, cfg.Model.GradCheckpointing)
	if err != nil {
		return nil, err
	}
	defer g.Free()
	opt, err := newOptimizer(d, p, cfg.Training.Optimizer == "adamw8bit")
	if err != nil {
		return nil, err
	}
	defer opt.free()
	var dp *dataParallel
	if comm != nil && comm.Size() > 1 {
		if dp, err = newDataParallel(comm, d, opt); err != nil {
			return nil, err
		}
		defer dp.free()
	}
	HW := pcfg.Grid * pcfg.Grid
	inputs := []struct {
		t vk.Tensor
		v []float32
	}{
		{g.Features, randn(1, B*T*HW*pcfg.EmbedDim)}, {g.Actions, randn(2, B*(T-1)*7)},
		{g.States, randn(3, B*T*7)}, {g.DLoss, []float32{1}},
		{opt.hyper, vk.AdamHyper{LR: 1e-4, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.04, BC1: 0.1, BC2: 0.001, GradScale: 1}.Floats()},
	}
	if g.Extrinsics.Valid() {
		inputs = append(inputs, struct {
			t vk.Tensor
			v []float32
		}{g.Extrinsics, randn(4, B*T*6)})
	}
	for _, in := range inputs {
		if err := d.Upload(in.t, in.v); err != nil {
			return nil, err
		}
	}
	p.SetTraining(true) // a training step: adapter dropout on, as PEFT in train mode
	record := func(s *vk.Stream) {
		ZeroGrads(s, p)
		g.Forward(s)
		g.Backward(s)
		opt.recordNorm(s)
		opt.recordUpdate(s)
	}
	s, err := d.NewStream(false)
	if err != nil {
		return nil, err
	}
	defer s.Destroy()
	// With ranks, the step is two streams with the all-reduce between them.
	var optS *vk.Stream
	if dp != nil {
		if optS, err = d.NewStream(false); err != nil {
			return nil, err
		}
		defer optS.Destroy()
		ZeroGrads(s, p)
		g.Forward(s)
		g.Backward(s)
		opt.recordNorm(optS)
		opt.recordUpdate(optS)
		if err := optS.Err(); err != nil {
			return nil, err
		}
	} else {
		record(s)
	}
	var reduceTimes, syncTimes []float64
	step := func() error {
		if err := s.Run(); err != nil || dp == nil {
			return err
		}
		if _, _, err := dp.reduce(0, 0, false); err != nil {
			return err
		}
		reduceTimes, syncTimes = append(reduceTimes, dp.mpiTime.Seconds()), append(syncTimes, dp.syncTime.Seconds())
		return optS.Run()
	}
	for i := 0; i < warmup; i++ {
		if err := step(); err != nil {
			return nil, err
		}
	}
	reduceTimes, syncTimes = nil, nil
	times := make([]float64, steps)
	for i := range times {
		t0 := time.Now()
		if err := step(); err != nil {
			return nil, err
		}
		times[i] = time.Since(t0).Seconds()
	}
	med := median(times)
	sort.Float64s(times)
	loss := 0.0
	for _, t := range []vk.Tensor{g.LossTF, g.LossAR} {
		v, err := d.Download(t)
		if err != nil {
			return nil, err
		}
		loss += float64(v[0])
	}
	disp, bar := s.Stats()
	K := 2
	if pcfg.Extrinsics {
		K = 3
	}
	flops := StepFlops(pcfg, p.LoRAs, B, T, cfg.Training.AutoSteps, cfg.Model.GradCheckpointing)
	r := &BenchResult{Device: d.Info.Name, T: T, B: B, Checkpointing: cfg.Model.GradCheckpointing,
		Precision: cfg.Model.Precision, Optimizer: cfg.Training.Optimizer, LoRAPath: cfg.LoRA.Path,
		LoRADropout: cfg.LoRA.Dropout, TensorCores: d.CoopMat(), Kernels: d.Kernels(), Steps: steps,
		StepMedian: med, StepMin: times[0], ClipsPerSec: float64(B) / med,
		TokensPerSec: float64(B*(T-1)*(K+HW)) / med, FlopsPerStep: flops, TFLOPs: flops / med / 1e12,
		PeakMemGiB: float64(d.Memory().Peak) / (1 << 30), Dispatches: disp, Barriers: bar, Loss: loss, Ranks: 1}
	for _, pr := range opt.params {
		r.GradBytes += int64(4 * pr.g.Numel())
	}
	if dp != nil {
		r.Ranks, r.AllReduceMedian, r.GradSyncMedian = comm.Size(), median(reduceTimes), median(syncTimes)
		r.ClipsPerSec *= float64(r.Ranks)
		r.TokensPerSec *= float64(r.Ranks)
	}
	if timings {
		ts, err := d.NewStream(true)
		if err != nil {
			return nil, err
		}
		defer ts.Destroy()
		record(ts)
		if err := ts.Run(); err != nil {
			return nil, err
		}
		r.Ops = summarize(ts.Timings())
	}
	return r, nil
}

// median of v (sorted in place).
func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	sort.Float64s(v)
	return v[len(v)/2]
}

func summarize(ts []vk.OpTime) []OpSummary {
	by := map[string]*OpSummary{}
	var total float64
	for _, t := range ts {
		o := by[t.Op]
		if o == nil {
			o = &OpSummary{Op: t.Op}
			by[t.Op] = o
		}
		o.Count++
		o.Seconds += t.Duration.Seconds()
		total += t.Duration.Seconds()
	}
	var out []OpSummary
	for _, o := range by {
		o.Share = o.Seconds / total
		out = append(out, *o)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Seconds > out[j].Seconds })
	return out
}

// StepFlops counts the model FLOPs of one training step: every GEMM's 2·M·N·K (frozen weights get only
// their input gradient, adapters both), attention's 4·pairs·dh forward and 10·pairs·dh backward over the
// allowed (block-causal) pairs only, and the block recompute of gradient checkpointing. Elementwise work
// is not counted.
func StepFlops(c model.PredictorConfig, loras []*model.LoRA, B, T, autoSteps int, checkpoint bool) float64 {
	K := 2
	if c.Extrinsics {
		K = 3
	}
	HW := c.Grid * c.Grid
	D, E, Hd := float64(c.Dim), float64(c.EmbedDim), float64(c.MLPHidden())
	perBlockLoRA := map[int]float64{}
	for _, a := range loras {
		var blk int
		fmt.Sscanf(a.Module, "predictor_blocks.%d.", &blk)
		perBlockLoRA[blk] += float64(a.R * (a.In + a.Out))
	}
	pass := func(frames int, wantDZ bool) float64 {
		N := float64(frames * (K + HW))
		R := float64(B) * N
		P := float64(B * frames * HW)
		ft := float64(K + HW)
		pairs := ft * ft * float64(frames*(frames+1)/2) * float64(B*c.Heads)
		dh := D / float64(c.Heads)
		blockFwd := 2*R*(D*3*D+D*D+D*Hd+Hd*D) + 4*pairs*dh
		blockBwd := 2*R*(D*3*D+D*D+D*Hd+Hd*D) + 10*pairs*dh
		f := 2*P*E*D + 2*P*D*E // embed, proj forward
		f += 2 * P * D * E     // proj input gradient
		if wantDZ {
			f += 2 * P * E * D
		}
		for i := 0; i < c.Depth; i++ {
			lf := 2 * R * perBlockLoRA[i]
			f += blockFwd + lf + blockBwd + 2*lf
			if checkpoint {
				f += blockFwd + lf
			}
		}
		return f
	}
	total := pass(T-1, false)
	for n := 1; n < autoSteps; n++ {
		total += pass(n+1, true)
	}
	return total
}

// randn returns n seeded standard-normal values: benchmark inputs only need to be reproducible.
func randn(seed uint64, n int) []float32 {
	r := rand.New(rand.NewPCG(seed, 0xbe4c))
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(r.NormFloat64())
	}
	return v
}
