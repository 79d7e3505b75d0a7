package train

import (
	"fmt"
	"math"
	"testing"
)

// official is the spec §10 recipe, built from the default config so the defaults are checked too.
func official(t *testing.T) LRSchedule {
	c := Default()
	l := NewLRSchedule(c.Training)
	want := LRSchedule{Kind: "wsd", Steps: 94500, Warmup: 4500, Decay: 4500, StartLR: 7.5e-5, PeakLR: 4.25e-4, FinalLR: 0}
	if l != want {
		t.Fatalf("NewLRSchedule(defaults) = %+v, want the official %+v", l, want)
	}
	return l
}

// TestLRScheduleOfficial checks the WSD schedule against spec §10's piecewise formula, written out here
// exactly as the spec states it, at the phase boundaries and inside each phase.
func TestLRScheduleOfficial(t *testing.T) {
	l := official(t)
	spec := func(s int) float64 {
		switch {
		case s < 4500:
			return 7.5e-5 + (float64(s)/4500)*(4.25e-4-7.5e-5)
		case s < 90000:
			return 4.25e-4
		}
		return 4.25e-4 * (1 - float64(s-90000)/4500)
	}
	tests := []struct {
		s      int
		approx float64 // the value in decimal, to catch a formula that is wrong in the same way as spec()
	}{
		{1, 7.5e-5 + 3.5e-4/4500},
		{2, 7.5e-5 + 2*3.5e-4/4500},
		{2250, 2.5e-4},
		{4499, 4.25e-4 - 3.5e-4/4500},
		{4500, 4.25e-4},
		{4501, 4.25e-4},
		{50000, 4.25e-4},
		{89999, 4.25e-4},
		{90000, 4.25e-4},
		{90001, 4.25e-4 * (1 - 1.0/4500)},
		{92250, 2.125e-4},
		{94499, 4.25e-4 / 4500},
		{94500, 0},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("s=%d", tt.s), func(t *testing.T) {
			got := l.At(tt.s)
			if want := spec(tt.s); got != want {
				t.Errorf("LRSchedule.At(s=%d) = %.17g, want %.17g (spec §10 formula, bit-exact)", tt.s, got, want)
			}
			if math.Abs(got-tt.approx) > 1e-18 {
				t.Errorf("LRSchedule.At(s=%d) = %.17g, want %.17g (abs tol 1e-18)", tt.s, got, tt.approx)
			}
		})
	}
	// Past the end the rate stays at final_lr rather than going negative.
	if got := l.At(100000); got != 0 {
		t.Errorf("LRSchedule.At(s=100000) = %g, want 0 (clamped past the end)", got)
	}
}

func TestLRScheduleKinds(t *testing.T) {
	cosine := LRSchedule{Kind: "cosine", Steps: 100, Warmup: 10, StartLR: 0, PeakLR: 1, FinalLR: 0.1}
	constant := LRSchedule{Kind: "constant", Steps: 100, Warmup: 4, StartLR: 0, PeakLR: 1}
	wsdFinal := LRSchedule{Kind: "wsd", Steps: 100, Warmup: 0, Decay: 20, PeakLR: 1, FinalLR: 0.2}
	tests := []struct {
		name string
		l    LRSchedule
		s    int
		want float64
	}{
		{"cosine", cosine, 0, 0},
		{"cosine", cosine, 5, 0.5},
		{"cosine", cosine, 10, 1},                                     // progress 0: cos 0 = 1
		{"cosine", cosine, 55, 0.1 + 0.9*0.5*(1+math.Cos(math.Pi/2))}, // halfway
		{"cosine", cosine, 100, 0.1},
		{"cosine", cosine, 150, 0.1},
		{"constant", constant, 2, 0.5},
		{"constant", constant, 4, 1},
		{"constant", constant, 100, 1},
		{"wsd_final", wsdFinal, 1, 1}, // no warmup
		{"wsd_final", wsdFinal, 80, 1},
		{"wsd_final", wsdFinal, 90, 0.2 + 0.8*0.5},
		{"wsd_final", wsdFinal, 100, 0.2},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("kind=%s,s=%d", tt.name, tt.s), func(t *testing.T) {
			if got := tt.l.At(tt.s); math.Abs(got-tt.want) > 1e-15 {
				t.Errorf("%+v.At(%d) = %.17g, want %.17g (abs tol 1e-15)", tt.l, tt.s, got, tt.want)
			}
		})
	}
}

func TestWeightDecaySchedule(t *testing.T) {
	c := Default()
	c.Resolve()
	officialWD := NewWeightDecaySchedule(c.Training)
	rising := WeightDecaySchedule{Start: 0.04, Final: 0.4, Steps: 100}
	falling := WeightDecaySchedule{Start: 0.4, Final: 0.04, Steps: 100}
	tests := []struct {
		name string
		w    WeightDecaySchedule
		s    int
		want float64
	}{
		{"official", officialWD, 1, 0.04}, // cosine from 0.04 to 0.04: constant, exactly (spec §10)
		{"official", officialWD, 47250, 0.04},
		{"official", officialWD, 94500, 0.04},
		{"rising", rising, 0, 0.04},
		{"rising", rising, 50, 0.22},
		{"rising", rising, 100, 0.4},
		{"rising", rising, 200, 0.4},
		{"falling", falling, 50, 0.22},
		{"falling", falling, 100, 0.04},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("wd=%s,s=%d", tt.name, tt.s), func(t *testing.T) {
			got := tt.w.At(tt.s)
			tol := 1e-15
			if tt.name == "official" {
				tol = 0
			}
			if math.Abs(got-tt.want) > tol {
				t.Errorf("%+v.At(%d) = %.17g, want %.17g (abs tol %g)", tt.w, tt.s, got, tt.want, tol)
			}
		})
	}
}

// TestLossScaler walks GradScaler's rules: halve and skip on overflow, double after growth_interval clean
// steps, counting restarts after every change.
func TestLossScaler(t *testing.T) {
	l := NewLossScaler(LossScaleConfig{Enabled: true, Init: 1024, GrowthInterval: 3})
	steps := []struct {
		finite    bool
		wantApply bool
		wantScale float64
	}{
		{true, true, 1024},
		{true, true, 1024},
		{true, true, 2048}, // third clean step: grow
		{false, false, 1024},
		{true, true, 1024},
		{false, false, 512}, // overflow resets the count
		{true, true, 512},
		{true, true, 512},
		{true, true, 1024},
	}
	for i, st := range steps {
		apply := l.Update(st.finite)
		if apply != st.wantApply || l.Scale != st.wantScale || l.Factor() != st.wantScale {
			t.Fatalf("step %d: Update(finite=%v) = %v, scale %g (factor %g); want %v, scale %g",
				i+1, st.finite, apply, l.Scale, l.Factor(), st.wantApply, st.wantScale)
		}
	}

	off := NewLossScaler(LossScaleConfig{Enabled: false, Init: 1024, GrowthInterval: 3})
	if off.Factor() != 1 || !off.Update(true) || off.Update(false) || off.Scale != 1024 {
		t.Errorf("disabled scaler: factor %g, scale %g; want factor 1, finite steps applied, non-finite skipped, scale untouched", off.Factor(), off.Scale)
	}
}
