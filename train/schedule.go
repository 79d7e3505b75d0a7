package train

// Schedules are pure functions of the 1-based optimizer step s, so resuming needs only the step number;
// LossScaler is the one piece of schedule state that depends on history and is saved in checkpoints.

import (
	"fmt"
	"math"
)

// LRSchedule gives the learning rate of optimizer step s (spec §10).
//
// The official trainer steps its scheduler once BEFORE each iteration with s = 1, 2, ..., Steps, so the
// first update already uses start + (1/warmup)·(peak − start), and the last wsd update uses FinalLR
// exactly (0 officially: the last step changes nothing). Call At(s) with the same s.
//
//	every kind, s < Warmup:  lr = StartLR + (s/Warmup)·(PeakLR − StartLR)
//	wsd:       s < Steps−Decay: PeakLR
//	           else:            FinalLR + (PeakLR − FinalLR)·(1 − (s − (Steps−Decay))/Decay)
//	cosine:    FinalLR + (PeakLR − FinalLR)·½(1 + cos(π·(s − Warmup)/(Steps − Warmup)))
//	constant:  PeakLR
//
// With the official numbers (Steps 94500, Warmup = Decay = 4500, StartLR 7.5e-5, PeakLR 4.25e-4,
// FinalLR 0): s < 4500 ramps from 7.5e-5, 4500 ≤ s < 90000 holds 4.25e-4, and s ≥ 90000 decays as
// 4.25e-4·(1 − (s − 90000)/4500), reaching 0 at s = 94500. Past Steps the rate stays at its last value.
type LRSchedule struct {
	Kind    string // "wsd", "cosine" or "constant"
	Steps   int    // total optimizer steps (training.steps)
	Warmup  int
	Decay   int // wsd only
	StartLR float64
	PeakLR  float64
	FinalLR float64
}

// NewLRSchedule builds the schedule of a validated TrainingConfig.
func NewLRSchedule(t TrainingConfig) LRSchedule {
	return LRSchedule{
		Kind: t.Schedule.Kind, Steps: t.Steps, Warmup: t.Schedule.Warmup, Decay: t.Schedule.Decay,
		StartLR: t.Schedule.StartLR, PeakLR: t.LR, FinalLR: t.Schedule.FinalLR,
	}
}

// At returns the learning rate of step s (1-based; s ≤ 0 is treated as 0).
func (l LRSchedule) At(s int) float64 {
	s = max(s, 0)
	if s < l.Warmup {
		// Same operation order as the official WSDSchedule/WarmupCosineSchedule, so values match bit for bit.
		progress := float64(s) / float64(max(1, l.Warmup))
		return l.StartLR + progress*(l.PeakLR-l.StartLR)
	}
	switch l.Kind {
	case "constant":
		return l.PeakLR
	case "wsd":
		decayStart := l.Steps - l.Decay
		if s < decayStart {
			return l.PeakLR
		}
		progress := math.Min(1, float64(s-decayStart)/float64(max(1, l.Decay)))
		return l.FinalLR + (l.PeakLR-l.FinalLR)*(1-progress)
	case "cosine":
		progress := math.Min(1, float64(s-l.Warmup)/float64(max(1, l.Steps-l.Warmup)))
		return math.Max(l.FinalLR, l.FinalLR+(l.PeakLR-l.FinalLR)*0.5*(1+math.Cos(math.Pi*progress)))
	}
	panic(fmt.Sprintf("train: LRSchedule.At: unknown kind %q (want wsd, cosine or constant)", l.Kind))
}

// WeightDecaySchedule is the official CosineWDSchedule (spec §10): stepped like LRSchedule with
// s = 1, 2, ..., it moves from Start to Final along a half cosine over Steps steps, clamped at Final.
// The official recipe uses Start = Final = 0.04, i.e. a constant.
//
//	wd = Final + (Start − Final)·½(1 + cos(π·s/Steps))
type WeightDecaySchedule struct {
	Start, Final float64
	Steps        int
}

// NewWeightDecaySchedule builds the schedule of a validated, resolved TrainingConfig.
func NewWeightDecaySchedule(t TrainingConfig) WeightDecaySchedule {
	final := t.WeightDecay
	if t.FinalWeightDecay != nil {
		final = *t.FinalWeightDecay
	}
	return WeightDecaySchedule{Start: t.WeightDecay, Final: final, Steps: t.Steps}
}

// At returns the weight decay of step s (1-based).
func (w WeightDecaySchedule) At(s int) float64 {
	progress := math.Min(1, float64(max(s, 0))/float64(max(1, w.Steps)))
	wd := w.Final + (w.Start-w.Final)*0.5*(1+math.Cos(math.Pi*progress))
	if w.Final <= w.Start {
		return math.Max(w.Final, wd)
	}
	return math.Min(w.Final, wd)
}

// LossScaler is dynamic loss scaling with torch.amp.GradScaler's rules (spec §10 uses a GradScaler even
// under bf16): the loss is multiplied by Scale before backward; a step whose gradients contain Inf/NaN is
// skipped and halves Scale; GrowthInterval consecutive finite steps double it. Its fields are the state a
// checkpoint saves.
type LossScaler struct {
	Enabled        bool    `json:"enabled"`
	Scale          float64 `json:"scale"`
	GrowthInterval int     `json:"growth_interval"`
	GoodSteps      int     `json:"good_steps"` // finite steps since the last change of Scale
}

// Backoff and growth factors of GradScaler's defaults.
const (
	lossScaleBackoff = 0.5
	lossScaleGrowth  = 2.0
)

// NewLossScaler starts a scaler from the config.
func NewLossScaler(c LossScaleConfig) *LossScaler {
	return &LossScaler{Enabled: c.Enabled, Scale: c.Init, GrowthInterval: c.GrowthInterval}
}

// Factor is the multiplier for the loss before backward: Scale when enabled, else 1. Gradients must be
// divided by the same factor before clipping and the optimizer update.
func (l *LossScaler) Factor() float64 {
	if !l.Enabled {
		return 1
	}
	return l.Scale
}

// Update records whether all gradients of this step were finite and reports whether the optimizer step
// should be applied. A non-finite step is skipped even with scaling disabled: applying it would turn the
// LoRA weights into NaN for the rest of the run.
func (l *LossScaler) Update(finite bool) (apply bool) {
	if !l.Enabled {
		return finite
	}
	if !finite {
		l.Scale *= lossScaleBackoff
		l.GoodSteps = 0
		return false
	}
	l.GoodSteps++
	if l.GoodSteps >= l.GrowthInterval {
		l.Scale *= lossScaleGrowth
		l.GoodSteps = 0
	}
	return true
}
