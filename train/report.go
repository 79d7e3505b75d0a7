package train

// Report turns a run folder's metrics.jsonl into PNG plots, for a run in progress or finished:
//
//	loss.png         training loss: total, teacher-forcing (spec §6.2), rollout (spec §6.3)
//	val_loss.png     validation losses (if validation ran), with the training total for comparison
//	lr.png           learning rate per step (the WSD/cosine shape, spec §10)
//	rollout_err.png  validation error of the k-th auto-regressive prediction, one line per k
//	grad_norm.png    gradient norm before clipping
//
// Long runs are reduced to at most maxPlotPoints points per line by averaging consecutive steps (which
// also smooths the noisy per-step loss). Non-finite values (logged as null) leave gaps in the lines.

import (
	"fmt"
	"image/color"
	"math"
	"os"
	"path/filepath"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// maxPlotPoints bounds the points per line; a 1600-pixel-wide image cannot show more.
const maxPlotPoints = 1500

// series is one named line of a plot.
type series struct {
	name string
	x, y []float64
}

// Report reads runDir/metrics.jsonl and writes the PNG plots into outDir ("" means runDir/plots). It
// returns the paths written; plots without data (e.g. no validation yet) are skipped.
func Report(runDir, outDir string) ([]string, error) {
	log, err := ReadMetrics(filepath.Join(runDir, MetricsFile))
	if err != nil {
		return nil, err
	}
	if len(log.Train) == 0 && len(log.Val) == 0 {
		return nil, fmt.Errorf("train: report %s: %s has no records", runDir, MetricsFile)
	}
	if outDir == "" {
		outDir = filepath.Join(runDir, "plots")
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return nil, fmt.Errorf("train: report: %w", err)
	}

	trainSeries := func(name string, get func(StepMetrics) float64) series {
		s := series{name: name}
		for _, m := range log.Train {
			s.x = append(s.x, float64(m.Step))
			s.y = append(s.y, get(m))
		}
		return s
	}
	valSeries := func(name string, get func(ValMetrics) float64) series {
		s := series{name: name}
		for _, m := range log.Val {
			s.x = append(s.x, float64(m.Step))
			s.y = append(s.y, get(m))
		}
		return s
	}

	type figure struct {
		file, title, ylabel string
		lines               []series
	}
	figs := []figure{
		{"loss.png", "training loss", "loss", []series{
			trainSeries("total", func(m StepMetrics) float64 { return m.Loss }),
			trainSeries("teacher forcing", func(m StepMetrics) float64 { return m.LossTF }),
			trainSeries("rollout", func(m StepMetrics) float64 { return m.LossRollout }),
		}},
		{"val_loss.png", "validation loss", "loss", []series{
			valSeries("val total", func(m ValMetrics) float64 { return m.Loss }),
			valSeries("val teacher forcing", func(m ValMetrics) float64 { return m.LossTF }),
			valSeries("val rollout", func(m ValMetrics) float64 { return m.LossRollout }),
			trainSeries("train total", func(m StepMetrics) float64 { return m.Loss }),
		}},
		{"lr.png", "learning rate", "lr", []series{
			trainSeries("lr", func(m StepMetrics) float64 { return m.LR }),
		}},
		{"rollout_err.png", "validation rollout error per predicted frame", "mean |ẑ_k − z_k|", nil},
		{"grad_norm.png", "gradient norm (before clipping)", "‖g‖₂", []series{
			trainSeries("grad norm", func(m StepMetrics) float64 { return m.GradNorm }),
		}},
	}
	horizon := 0
	for _, v := range log.Val {
		horizon = max(horizon, len(v.RolloutErr))
	}
	for k := 1; k <= horizon; k++ {
		figs[3].lines = append(figs[3].lines, valSeries(fmt.Sprintf("k=%d", k), func(m ValMetrics) float64 {
			if k <= len(m.RolloutErr) {
				return m.RolloutErr[k-1]
			}
			return math.NaN()
		}))
	}
	if len(log.Val) == 0 {
		figs[1].lines = nil
	}

	var written []string
	for _, f := range figs {
		path := filepath.Join(outDir, f.file)
		ok, err := savePlot(path, f.title, f.ylabel, f.lines)
		if err != nil {
			return written, fmt.Errorf("train: report %s: %w", path, err)
		}
		if ok {
			written = append(written, path)
		}
	}
	return written, nil
}

// savePlot draws the lines into a PNG; it reports false (and writes nothing) when no line has a finite point.
func savePlot(path, title, ylabel string, lines []series) (bool, error) {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "step"
	p.Y.Label.Text = ylabel
	p.Add(plotter.NewGrid())
	p.Legend.Top = true
	drawn := false
	for i, s := range lines {
		x, y := downsample(s.x, s.y, maxPlotPoints)
		segs := finiteSegments(x, y)
		style := draw.LineStyle{Color: plotutil.Color(i), Width: vg.Points(1.5)}
		if s.name == "train total" {
			style.Color, style.Dashes = color.Gray{Y: 150}, []vg.Length{vg.Points(4), vg.Points(3)}
		}
		for j, seg := range segs {
			var l plot.Plotter
			var thumb plot.Thumbnailer
			if len(seg) == 1 {
				sc, err := plotter.NewScatter(seg) // a lone point (e.g. one validation pass)
				if err != nil {
					return false, err
				}
				sc.GlyphStyle.Color, sc.GlyphStyle.Shape, sc.GlyphStyle.Radius = style.Color, draw.CircleGlyph{}, vg.Points(3)
				l, thumb = sc, sc
			} else {
				ln, err := plotter.NewLine(seg)
				if err != nil {
					return false, err
				}
				ln.LineStyle = style
				l, thumb = ln, ln
			}
			p.Add(l)
			if j == 0 && len(lines) > 1 {
				p.Legend.Add(s.name, thumb)
			}
			drawn = true
		}
	}
	if !drawn {
		return false, nil
	}
	return true, p.Save(8*vg.Inch, 4.5*vg.Inch, path)
}

// downsample averages consecutive points into at most n buckets, ignoring NaNs (a bucket of only NaNs
// stays NaN, keeping the gap).
func downsample(x, y []float64, n int) ([]float64, []float64) {
	if len(x) <= n {
		return x, y
	}
	bx, by := make([]float64, n), make([]float64, n)
	for b := 0; b < n; b++ {
		lo, hi := b*len(x)/n, (b+1)*len(x)/n
		var sx, sy float64
		var cnt int
		for i := lo; i < hi; i++ {
			if !math.IsNaN(y[i]) && !math.IsInf(y[i], 0) {
				sx += x[i]
				sy += y[i]
				cnt++
			}
		}
		if cnt == 0 {
			bx[b], by[b] = x[(lo+hi)/2], math.NaN()
			continue
		}
		bx[b], by[b] = sx/float64(cnt), sy/float64(cnt)
	}
	return bx, by
}

// finiteSegments splits a line at non-finite values.
func finiteSegments(x, y []float64) []plotter.XYs {
	var segs []plotter.XYs
	var cur plotter.XYs
	for i := range x {
		if math.IsNaN(y[i]) || math.IsInf(y[i], 0) {
			if len(cur) > 0 {
				segs = append(segs, cur)
				cur = nil
			}
			continue
		}
		cur = append(cur, plotter.XY{X: x[i], Y: y[i]})
	}
	if len(cur) > 0 {
		segs = append(segs, cur)
	}
	return segs
}
