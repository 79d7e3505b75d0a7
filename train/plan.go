package train

import (
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/vjepa-vk/vjepa-vk/model"
	"github.com/vjepa-vk/vjepa-vk/vk"
)

// MemoryPlan is the device memory of one training run, by kind, in bytes.
type MemoryPlan struct {
	PredictorWeights int64 `json:"predictor_weights"` // frozen, base precision (+ f32 vectors)
	EncoderWeights   int64 `json:"encoder_weights"`
	LoRA             int64 `json:"lora"`        // adapter weights and gradients, f32
	Optimizer        int64 `json:"optimizer"`   // AdamW moments (f32, or 8-bit codes + block scales)
	Activations      int64 `json:"activations"` // loss graph: passes, saved activations, scratch
	EncoderPass      int64 `json:"encoder_pass"`
	Total            int64 `json:"total"`
}

func precisionBytes(p string) int64 {
	if p == "fp32" {
		return 4
	}
	return 2
}

// PlanMemory computes the device memory a run of cfg allocates, by running the allocation code of the
// predictor passes and the loss graph in planning mode (nothing is allocated).
func PlanMemory(cfg *Config) (MemoryPlan, error) {
	pcfg, ecfg := modelConfigs(cfg)
	p, plan, err := model.NewPlanPredictor(pcfg, cfg.LoRA.Model())
	if err != nil {
		return MemoryPlan{}, err
	}
	B, T := cfg.Data.BatchSize, cfg.Data.Frames
	if _, err := NewLossGraph(p, B, T, cfg.Training.AutoSteps, cfg.Model.GradCheckpointing); err != nil {
		return MemoryPlan{}, err
	}
	var mp MemoryPlan
	wb := precisionBytes(cfg.Model.Precision)
	pp := model.PredictorParams(pcfg, p.LoRAs)
	mp.PredictorWeights = pp.Matrices*wb + pp.Vectors*4 + 2*4*int64(pcfg.Dim) // + frozen-norm grad sinks
	ep := model.EncoderParams(ecfg)
	mp.EncoderWeights = ep.Matrices*wb + ep.Vectors*4
	mp.LoRA = 2 * 4 * pp.LoRA
	for _, a := range p.LoRAs {
		for _, n := range []int64{int64(a.R * a.In), int64(a.Out * a.R)} {
			if cfg.Training.Optimizer == "adamw8bit" {
				blocks := (n + vk.Adam8BitBlock - 1) / vk.Adam8BitBlock
				mp.Optimizer += 2*n + 2*4*blocks
			} else {
				mp.Optimizer += 2 * 4 * n
			}
		}
	}
	mp.Activations = plan.Bytes
	if mp.EncoderPass, err = model.NewPlanEncoderPass(ecfg, B*T, cfg.Model.Tubelet, cfg.Model.Img, cfg.Model.Img); err != nil {
		return MemoryPlan{}, err
	}
	mp.Total = mp.PredictorWeights + mp.EncoderWeights + mp.LoRA + mp.Optimizer + mp.Activations + mp.EncoderPass
	return mp, nil
}

// Print writes the plan as a table in GiB.
func (mp MemoryPlan) Print(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	gib := func(b int64) string { return fmt.Sprintf("%.3f GiB", float64(b)/(1<<30)) }
	for _, r := range []struct {
		k string
		v int64
	}{{"predictor weights", mp.PredictorWeights}, {"encoder weights", mp.EncoderWeights}, {"LoRA weights + grads", mp.LoRA},
		{"optimizer states", mp.Optimizer}, {"predictor activations + scratch", mp.Activations},
		{"encoder activations", mp.EncoderPass}, {"total", mp.Total}} {
		fmt.Fprintf(tw, "%s\t%s\t\n", r.k, gib(r.v))
	}
	tw.Flush()
}

// StepMemory allocates on d everything one predictor training step of cfg uses, as Bench does (frozen
// weights in the configured precision, random values; adapters with the config's dropout; optimizer; the
// loss graph), records the step and returns the allocator's figures without running it. Recording
// allocates nothing, so the peak is the step's; the encoder is not included (Bench feeds features). It
// measures shapes a device is too slow to execute (lavapipe). It also returns the recorded step's
// dispatch and barrier counts.
func StepMemory(d *vk.Device, cfg *Config) (m vk.MemoryStats, dispatches, barriers int, err error) {
	pcfg, _ := modelConfigs(cfg)
	p, err := model.LoadPredictor(d, pcfg, model.InitPredictor(pcfg, uint64(cfg.Training.Seed)), model.Precision(cfg.Model.Precision))
	if err != nil {
		return vk.MemoryStats{}, 0, 0, err
	}
	defer p.Free()
	if err := p.AddLoRA(cfg.LoRA.Model()); err != nil {
		return vk.MemoryStats{}, 0, 0, err
	}
	g, err := NewLossGraph(p, cfg.Data.BatchSize, cfg.Data.Frames, cfg.Training.AutoSteps, cfg.Model.GradCheckpointing)
	if err != nil {
		return vk.MemoryStats{}, 0, 0, err
	}
	defer g.Free()
	opt, err := newOptimizer(d, p, cfg.Training.Optimizer == "adamw8bit")
	if err != nil {
		return vk.MemoryStats{}, 0, 0, err
	}
	defer opt.free()
	s, err := d.NewStream(false)
	if err != nil {
		return vk.MemoryStats{}, 0, 0, err
	}
	defer s.Destroy()
	p.SetTraining(true)
	ZeroGrads(s, p)
	g.Forward(s)
	g.Backward(s)
	opt.recordNorm(s)
	opt.recordUpdate(s)
	if err := s.Err(); err != nil {
		return vk.MemoryStats{}, 0, 0, fmt.Errorf("train: record the step of %s: %w", cfg.Source(), err)
	}
	dispatches, barriers = s.Stats()
	return d.Memory(), dispatches, barriers, nil
}

// ActivationReport writes where the planned activations of cfg's predictor step go: the arena's size,
// the phase with the most live bytes and the tensors live in it (model.Arena.Report).
func ActivationReport(w io.Writer, cfg *Config) error {
	pcfg, _ := modelConfigs(cfg)
	p, _, err := model.NewPlanPredictor(pcfg, cfg.LoRA.Model())
	if err != nil {
		return err
	}
	g, err := NewLossGraph(p, cfg.Data.BatchSize, cfg.Data.Frames, cfg.Training.AutoSteps, cfg.Model.GradCheckpointing)
	if err != nil {
		return err
	}
	g.Arena().Report(w)
	return nil
}
