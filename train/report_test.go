package train

import (
	"fmt"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// writeRun logs a synthetic run: decaying losses with noise-free shape, the WSD lr of the schedule,
// a NaN loss at one step (where the loss scale halves), and validation every 50 steps when withVal.
func writeRun(t *testing.T, dir string, steps int, withVal bool) {
	writeRunScaled(t, dir, steps, withVal, 65536)
}

// writeRunScaled is writeRun starting from loss scale scale0; with scale0 = 1 the scale never changes
// (loss scaling off).
func writeRunScaled(t *testing.T, dir string, steps int, withVal bool, scale0 float64) {
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
			GradNorm: 3 * math.Exp(-float64(s)/100), LossScale: scale0, StepTime: 0.4, ClipsPerSec: 20}
		if s%7 == 0 { // a slow step (data wait): 8 clips in 1.6 s
			sm.StepTime, sm.ClipsPerSec = 1.6, 5
		}
		if s == steps/3 {
			sm.Loss, sm.Skipped = math.NaN(), true
		}
		if s >= steps/3 && scale0 != 1 {
			sm.LossScale = scale0 / 2
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
		{300, true, []string{"loss.png", "val_loss.png", "lr.png", "rollout_err.png", "horizon.png", "grad_norm.png", "throughput.png", "loss_scale.png"}},
		{40, false, []string{"loss.png", "lr.png", "grad_norm.png", "throughput.png", "loss_scale.png"}},
		{5000, true, []string{"loss.png", "val_loss.png", "lr.png", "rollout_err.png", "horizon.png", "grad_norm.png", "throughput.png", "loss_scale.png"}}, // downsampled
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("steps=%d,val=%v", tt.steps, tt.withVal), func(t *testing.T) {
			if testing.Short() && tt.steps > 1000 {
				t.Skip("big run in -short")
			}
			dir := t.TempDir()
			writeRun(t, dir, tt.steps, tt.withVal)
			paths, err := Report([]string{dir}, "")
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
	if _, err := Report([]string{dir}, ""); err == nil || !strings.Contains(err.Error(), dir) {
		t.Errorf("Report on a folder without metrics.jsonl: %v, want an error naming the folder", err)
	}
	os.WriteFile(filepath.Join(dir, MetricsFile), nil, 0o644)
	if _, err := Report([]string{dir}, ""); err == nil {
		t.Error("Report on an empty metrics.jsonl succeeded")
	}
	if _, err := Report(nil, ""); err == nil {
		t.Error("Report of no runs succeeded")
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

// TestReportCompare draws three runs into one set of figures: one line per run in each, named by the
// run folder (by the path where folder names repeat), and loss_scale.png even though one run has
// loss scaling off.
func TestReportCompare(t *testing.T) {
	root := t.TempDir()
	dirs := []string{filepath.Join(root, "a", "seed1"), filepath.Join(root, "b", "seed1"), filepath.Join(root, "lr3e-4")}
	writeRun(t, dirs[0], 200, true)
	writeRun(t, dirs[1], 150, true)
	writeRunScaled(t, dirs[2], 100, false, 1)
	out := filepath.Join(root, "cmp")
	paths, err := Report(dirs, out)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range paths {
		names = append(names, filepath.Base(p))
		checkPNG(t, p)
	}
	want := []string{"loss.png", "val_loss.png", "lr.png", "horizon.png", "grad_norm.png", "throughput.png", "loss_scale.png"}
	if !slices.Equal(names, want) {
		t.Fatalf("Report of 3 runs wrote %v, want %v", names, want)
	}
	runs := make([]reportRun, len(dirs))
	for i, d := range dirs {
		log, err := ReadMetrics(filepath.Join(d, MetricsFile))
		if err != nil {
			t.Fatal(err)
		}
		runs[i] = reportRun{runNames(dirs)[i], log}
	}
	if got := []string{runs[0].name, runs[1].name, runs[2].name}; !slices.Equal(got, []string{filepath.Clean(dirs[0]), filepath.Clean(dirs[1]), "lr3e-4"}) {
		t.Errorf("run names %v: want the paths of the two seed1 runs and lr3e-4", got)
	}
	for _, f := range compareFigures(runs) {
		if f.file == "val_loss.png" || f.file == "horizon.png" {
			continue // the third run has no validation
		}
		if len(f.lines) != 3 {
			t.Errorf("%s has %d lines, want one per run", f.file, len(f.lines))
		}
		for i, l := range f.lines {
			if l.colour != i || !strings.Contains(l.name, runs[i].name) {
				t.Errorf("%s line %d: colour %d name %q, want colour %d and the run name %q", f.file, i, l.colour, l.name, i, runs[i].name)
			}
		}
	}
}

// TestHorizonFigure checks the error-against-horizon curves: the step with the lowest validation loss and
// the last validation, each as RolloutErr against k = 1..H; a single curve when they are the same pass.
func TestHorizonFigure(t *testing.T) {
	log := &MetricsLog{Val: []ValMetrics{
		{Step: 50, Loss: 0.9, RolloutErr: []float64{0.3, 0.5, 0.8}},
		{Step: 100, Loss: 0.5, RolloutErr: []float64{0.2, 0.3, 0.4}},
		{Step: 150, Loss: math.NaN(), RolloutErr: []float64{math.NaN(), math.NaN(), math.NaN()}},
		{Step: 200, Loss: 0.6, RolloutErr: []float64{0.25, 0.35, 0.5}},
	}}
	f := horizonFigure([]reportRun{{"run", log}})
	if len(f.lines) != 2 {
		t.Fatalf("%d curves, want best and last", len(f.lines))
	}
	best, last := f.lines[0], f.lines[1]
	if !strings.Contains(best.name, "best, step 100") || !slices.Equal(best.y, []float64{0.2, 0.3, 0.4}) || !slices.Equal(best.x, []float64{1, 2, 3}) {
		t.Errorf("best curve %q x=%v y=%v, want step 100's errors at k=1..3", best.name, best.x, best.y)
	}
	if !strings.Contains(last.name, "last, step 200") || !slices.Equal(last.y, []float64{0.25, 0.35, 0.5}) || !last.dashed {
		t.Errorf("last curve %q y=%v dashed=%v, want step 200's errors, dashed", last.name, last.y, last.dashed)
	}
	if len(f.xticks) != 3 || f.xticks[2].Label != "3" {
		t.Errorf("x ticks %v, want k = 1, 2, 3", f.xticks)
	}
	log.Val = log.Val[:2] // the best is the last
	if f := horizonFigure([]reportRun{{"run", log}}); len(f.lines) != 1 || !strings.Contains(f.lines[0].name, "best = last, step 100") {
		t.Errorf("best = last: curves %v, want one named so", f.lines)
	}
}

// TestThroughputAverage checks the average in the throughput legend: all clips over all step time (as
// it/s is averaged on the progress line), not the mean of the per-step rates.
func TestThroughputAverage(t *testing.T) {
	log := &MetricsLog{Train: []StepMetrics{
		{Step: 1, StepTime: 0.5, ClipsPerSec: 16}, // 8 clips
		{Step: 2, StepTime: 0.5, ClipsPerSec: 16},
		{Step: 3, StepTime: 3.0, ClipsPerSec: 8.0 / 3}, // a slow step
	}}
	// 24 clips in 4 s = 6 clips/s and 3 steps in 4 s = 0.75 it/s; the mean of the rates would be 11.6.
	s := throughputSeries(log)
	if s.name != "6 clips/s, 0.75 it/s on average" {
		t.Errorf("throughput legend %q, want 6 clips/s, 0.75 it/s on average", s.name)
	}
	if !slices.Equal(s.y, []float64{16, 16, 8.0 / 3}) {
		t.Errorf("throughput line %v, want the per-step rates (a window of 1 step for 3 steps)", s.y)
	}
	// 100 steps: a window of 5, so one slow step in five gives a flat line at 40 clips in 5 s.
	log.Train = nil
	for i := 1; i <= 100; i++ {
		m := StepMetrics{Step: i, StepTime: 0.5, ClipsPerSec: 16}
		if i%5 == 0 {
			m.StepTime, m.ClipsPerSec = 3, 8.0/3
		}
		log.Train = append(log.Train, m)
	}
	s = throughputSeries(log)
	for i, v := range s.y[4:] {
		if math.Abs(v-8) > 1e-9 {
			t.Fatalf("throughput line at step %d = %g, want 8 clips/s over every 5-step window", i+5, v)
		}
	}
}

// TestLossScaleFigure: no figure when the scale stayed 1 (loss scaling off), a log axis otherwise.
func TestLossScaleFigure(t *testing.T) {
	off := &MetricsLog{Train: []StepMetrics{{Step: 1, LossScale: 1}, {Step: 2, LossScale: 1}}}
	if f := lossScaleFigure([]reportRun{{"off", off}}); len(f.lines) != 0 {
		t.Errorf("loss scaling off: %d lines, want none", len(f.lines))
	}
	on := &MetricsLog{Train: []StepMetrics{{Step: 1, LossScale: 65536}, {Step: 2, LossScale: 32768}}}
	if f := lossScaleFigure([]reportRun{{"off", off}, {"on", on}}); len(f.lines) != 2 || !f.logY {
		t.Errorf("one run scaled: %d lines, log %v; want both runs on a log axis", len(f.lines), f.logY)
	}
	ticks := powerOfTwoTicks{}.Ticks(16384, 131072)
	var labels []string
	for _, tk := range ticks {
		labels = append(labels, tk.Label)
	}
	if !slices.Equal(labels, []string{"2^14", "2^15", "2^16", "2^17"}) {
		t.Errorf("ticks %v, want 2^14..2^17", labels)
	}
}
