package train

import (
	"fmt"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// writeRun logs a synthetic run: decaying losses with noise-free shape, the WSD lr of the schedule,
// a NaN loss at one step, and validation every 50 steps when withVal.
func writeRun(t *testing.T, dir string, steps int, withVal bool) {
	t.Helper()
	m, err := NewMetricsWriter(dir, MetricsOptions{JSONL: true, Now: fakeClock(t0, time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	lr := LRSchedule{Kind: "wsd", Steps: steps, Warmup: steps / 10, Decay: steps / 5, StartLR: 1e-5, PeakLR: 1e-3}
	for s := 1; s <= steps; s++ {
		tf := 0.2 + 0.8*math.Exp(-float64(s)/60) + 0.02*math.Sin(float64(s))
		ro := 1.3*tf + 0.05
		sm := StepMetrics{Step: s, LossTF: tf, LossRollout: ro, Loss: tf + ro, LR: lr.At(s), WeightDecay: 0.04,
			GradNorm: 3 * math.Exp(-float64(s)/100), LossScale: 65536, StepTime: 0.4, ClipsPerSec: 20}
		if s == steps/3 {
			sm.Loss, sm.Skipped = math.NaN(), true
		}
		if err := m.LogStep(sm); err != nil {
			t.Fatal(err)
		}
		if withVal && s%50 == 0 {
			base := 0.25 + 0.8*math.Exp(-float64(s)/60)
			v := ValMetrics{Step: s, LossTF: base, LossRollout: 1.4 * base, Loss: 2.4 * base,
				RolloutErr: []float64{base, 1.5 * base, 2.1 * base}, Clips: 32}
			if err := m.LogVal(v); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestReport draws the plots of a synthetic run and checks each PNG decodes to a picture with content
// (many colours, not a blank canvas).
func TestReport(t *testing.T) {
	tests := []struct {
		steps   int
		withVal bool
		want    []string
	}{
		{300, true, []string{"loss.png", "val_loss.png", "lr.png", "rollout_err.png", "grad_norm.png"}},
		{40, false, []string{"loss.png", "lr.png", "grad_norm.png"}},
		{5000, true, []string{"loss.png", "val_loss.png", "lr.png", "rollout_err.png", "grad_norm.png"}}, // downsampled
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("steps=%d,val=%v", tt.steps, tt.withVal), func(t *testing.T) {
			if testing.Short() && tt.steps > 1000 {
				t.Skip("big run in -short")
			}
			dir := t.TempDir()
			writeRun(t, dir, tt.steps, tt.withVal)
			paths, err := Report(dir, "")
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, p := range paths {
				names = append(names, filepath.Base(p))
				if filepath.Dir(p) != filepath.Join(dir, "plots") {
					t.Errorf("%s is not in %s", p, filepath.Join(dir, "plots"))
				}
			}
			if !slices.Equal(names, tt.want) {
				t.Fatalf("Report wrote %v, want %v", names, tt.want)
			}
			for _, p := range paths {
				checkPNG(t, p)
			}
		})
	}
}

func checkPNG(t *testing.T, path string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("%s: png.Decode: %v", path, err)
	}
	b := img.Bounds()
	if b.Dx() < 400 || b.Dy() < 200 {
		t.Errorf("%s is %dx%d, want at least 400x200", path, b.Dx(), b.Dy())
	}
	colours := map[[4]uint32]bool{}
	for y := b.Min.Y; y < b.Max.Y; y += 3 {
		for x := b.Min.X; x < b.Max.X; x += 3 {
			r, g, bl, a := img.At(x, y).RGBA()
			colours[[4]uint32{r, g, bl, a}] = true
		}
	}
	// White background, black axes and text, antialiased coloured lines: a real plot has dozens of shades.
	if len(colours) < 10 {
		t.Errorf("%s has only %d colours; looks blank", path, len(colours))
	}
}

func TestReportErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := Report(dir, ""); err == nil {
		t.Error("Report on a folder without metrics.jsonl succeeded")
	}
	os.WriteFile(filepath.Join(dir, MetricsFile), nil, 0o644)
	if _, err := Report(dir, ""); err == nil {
		t.Error("Report on an empty metrics.jsonl succeeded")
	}
}

func TestDownsample(t *testing.T) {
	x := []float64{1, 2, 3, 4, 5, 6}
	y := []float64{10, 20, math.NaN(), math.NaN(), 50, 70}
	bx, by := downsample(x, y, 3)
	wantX := []float64{1.5, 4, 5.5} // an all-NaN bucket keeps its middle x
	wantY := []float64{15, math.NaN(), 60}
	for i := range wantX {
		if bx[i] != wantX[i] || (by[i] != wantY[i] && !(math.IsNaN(by[i]) && math.IsNaN(wantY[i]))) {
			t.Errorf("downsample bucket %d = (%v, %v), want (%v, %v)", i, bx[i], by[i], wantX[i], wantY[i])
		}
	}
	segs := finiteSegments(bx, by)
	if len(segs) != 2 || len(segs[0]) != 1 || len(segs[1]) != 1 {
		t.Errorf("finiteSegments = %v, want two one-point segments around the NaN gap", segs)
	}
}
