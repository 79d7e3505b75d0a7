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
	l := cfg.LoRA
	p, plan, err := model.NewPlanPredictor(pcfg, model.LoRAConfig{R: l.R, Alpha: l.Alpha, Targets: l.Targets})
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
