package train

// Report turns the metrics.jsonl of one run, or of several runs to compare, into PNG plots. It works on a
// run in progress too. For one run:
//
//	loss.png         training loss: total, teacher-forcing (spec §6.2), rollout (spec §6.3)
//	val_loss.png     validation losses (if validation ran), with the training total for comparison
//	lr.png           learning rate per step (the WSD/cosine shape, spec §10)
//	rollout_err.png  validation error of the k-th auto-regressive prediction against the step, one line per k
//	horizon.png      validation error against the horizon k, at the best validation step and at the last
//	grad_norm.png    gradient norm before clipping
//	throughput.png   clips/s per step; the legend gives the run's average (all clips over all step time)
//	loss_scale.png   the dynamic loss scale (log scale); absent when loss scaling is off (scale 1 throughout)
//
// Several runs share each figure, one colour per run: the total training and validation loss, lr, gradient
// norm, throughput, loss scale, and the horizon curves (best solid, last dashed); rollout_err.png, one line
// per k and run, would be unreadable and is left out.
//
// Long runs are reduced to at most maxPlotPoints points per line by averaging consecutive steps (which
// also smooths the noisy per-step loss). Non-finite values (logged as null) leave gaps in the lines.

import (
	"fmt"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"strconv"

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
	name   string
	x, y   []float64
	colour int  // plotutil.Color index
	dashed bool // a secondary line of the same run (last vs best)
	gray   bool // a reference line (training loss under the validation loss)
	marks  bool // draw each point too (few points: validation passes, horizons)
}

// figure is one PNG.
type figure struct {
	file, title, xlabel, ylabel string
	logY                        bool
	legend                      bool        // even for a single line, whose name says something (an average, a step)
	xticks                      []plot.Tick // nil: gonum's default ticks
	lines                       []series
}

// reportRun is one run's metrics under the name its lines carry.
type reportRun struct {
	name string
	log  *MetricsLog
}

// Report reads metrics.jsonl in each of runDirs and writes the PNG plots into outDir ("" means
// RUN_DIR/plots for one run, ./plots for several). It returns the paths written; plots without data
// (e.g. no validation yet) are skipped.
func Report(runDirs []string, outDir string) ([]string, error) {
	if len(runDirs) == 0 {
		return nil, fmt.Errorf("train: report: no run folder")
	}
	names := runNames(runDirs)
	var runs []reportRun
	for i, dir := range runDirs {
		log, err := ReadMetrics(filepath.Join(dir, MetricsFile))
		if err != nil {
			return nil, fmt.Errorf("train: report %s: %w", dir, err)
		}
		if len(log.Train) == 0 && len(log.Val) == 0 {
			return nil, fmt.Errorf("train: report %s: %s has no records", dir, MetricsFile)
		}
		runs = append(runs, reportRun{names[i], log})
	}
	if outDir == "" {
		outDir = "plots"
		if len(runDirs) == 1 {
			outDir = filepath.Join(runDirs[0], "plots")
		}
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return nil, fmt.Errorf("train: report: %w", err)
	}
	figs := singleRunFigures(runs[0])
	if len(runs) > 1 {
		figs = compareFigures(runs)
	}
	var written []string
	for _, f := range figs {
		path := filepath.Join(outDir, f.file)
		ok, err := savePlot(path, f)
		if err != nil {
			return written, fmt.Errorf("train: report %s: %w", path, err)
		}
		if ok {
			written = append(written, path)
		}
	}
	return written, nil
}

// runNames names each run by its folder's base name, or by the path as given where base names repeat
// (runs/a/seed1 and runs/b/seed1).
func runNames(dirs []string) []string {
	count := map[string]int{}
	for _, d := range dirs {
		count[filepath.Base(filepath.Clean(d))]++
	}
	names := make([]string, len(dirs))
	for i, d := range dirs {
		names[i] = filepath.Base(filepath.Clean(d))
		if count[names[i]] > 1 {
			names[i] = filepath.Clean(d)
		}
	}
	return names
}

func trainSeries(name string, log *MetricsLog, get func(StepMetrics) float64) series {
	s := series{name: name}
	for _, m := range log.Train {
		s.x = append(s.x, float64(m.Step))
		s.y = append(s.y, get(m))
	}
	return s
}

func valSeries(name string, log *MetricsLog, get func(ValMetrics) float64) series {
	s := series{name: name, marks: len(log.Val) < 30}
	for _, m := range log.Val {
		s.x = append(s.x, float64(m.Step))
		s.y = append(s.y, get(m))
	}
	return s
}

func withColour(s series, c int) series { s.colour = c; return s }

func singleRunFigures(r reportRun) []figure {
	log := r.log
	tput := throughputSeries(r.log)
	figs := []figure{
		{file: "loss.png", title: "training loss", ylabel: "loss", lines: []series{
			withColour(trainSeries("total", log, func(m StepMetrics) float64 { return m.Loss }), 0),
			withColour(trainSeries("teacher forcing", log, func(m StepMetrics) float64 { return m.LossTF }), 1),
			withColour(trainSeries("rollout", log, func(m StepMetrics) float64 { return m.LossRollout }), 2),
		}},
		{file: "val_loss.png", title: "validation loss", ylabel: "loss"},
		{file: "lr.png", title: "learning rate", ylabel: "lr", lines: []series{
			trainSeries("lr", log, func(m StepMetrics) float64 { return m.LR }),
		}},
		{file: "rollout_err.png", title: "validation rollout error per predicted frame", ylabel: "mean |ẑ_k − z_k|"},
		horizonFigure([]reportRun{r}),
		{file: "grad_norm.png", title: "gradient norm (before clipping)", ylabel: "‖g‖₂", lines: []series{
			trainSeries("grad norm", log, func(m StepMetrics) float64 { return m.GradNorm }),
		}},
		{file: "throughput.png", title: "throughput", ylabel: "clips/s", legend: true, lines: []series{tput}},
		lossScaleFigure([]reportRun{r}),
	}
	if len(log.Val) > 0 {
		total := trainSeries("train total", log, func(m StepMetrics) float64 { return m.Loss })
		total.gray = true
		figs[1].lines = []series{
			withColour(valSeries("val total", log, func(m ValMetrics) float64 { return m.Loss }), 0),
			withColour(valSeries("val teacher forcing", log, func(m ValMetrics) float64 { return m.LossTF }), 1),
			withColour(valSeries("val rollout", log, func(m ValMetrics) float64 { return m.LossRollout }), 2),
			total,
		}
	}
	for k := 1; k <= horizonOf(log); k++ {
		figs[3].lines = append(figs[3].lines, withColour(valSeries(fmt.Sprintf("k=%d", k), log, func(m ValMetrics) float64 {
			if k <= len(m.RolloutErr) {
				return m.RolloutErr[k-1]
			}
			return math.NaN()
		}), k-1))
	}
	return figs
}

func compareFigures(runs []reportRun) []figure {
	perRun := func(get func(reportRun) series) []series {
		var out []series
		for i, r := range runs {
			s := get(r)
			s.colour = i
			if s.name == "" {
				s.name = r.name
			}
			out = append(out, s)
		}
		return out
	}
	return []figure{
		{file: "loss.png", title: "training loss (total)", ylabel: "loss", lines: perRun(func(r reportRun) series {
			return trainSeries("", r.log, func(m StepMetrics) float64 { return m.Loss })
		})},
		{file: "val_loss.png", title: "validation loss (total)", ylabel: "loss", lines: perRun(func(r reportRun) series {
			return valSeries("", r.log, func(m ValMetrics) float64 { return m.Loss })
		})},
		{file: "lr.png", title: "learning rate", ylabel: "lr", lines: perRun(func(r reportRun) series {
			return trainSeries("", r.log, func(m StepMetrics) float64 { return m.LR })
		})},
		horizonFigure(runs),
		{file: "grad_norm.png", title: "gradient norm (before clipping)", ylabel: "‖g‖₂", lines: perRun(func(r reportRun) series {
			return trainSeries("", r.log, func(m StepMetrics) float64 { return m.GradNorm })
		})},
		{file: "throughput.png", title: "throughput (average in the legend)", ylabel: "clips/s", lines: perRun(func(r reportRun) series {
			s := throughputSeries(r.log)
			s.name = r.name + ": " + s.name
			return s
		})},
		lossScaleFigure(runs),
	}
}

// throughputSeries is clips/s over a trailing window of steps (1/20 of the run, at most 50 steps: a
// single step's rate jumps with every data wait), named by the run's average. Both are clips over step
// time, the way the progress line averages it/s: a mean of per-step rates would overweight fast steps.
func throughputSeries(log *MetricsLog) series {
	w := min(max(len(log.Train)/20, 1), 50)
	s := series{}
	var clips, secs []float64 // running sums over steps 0..i
	var c, t float64
	for _, m := range log.Train {
		if m.StepTime > 0 && m.ClipsPerSec > 0 && !math.IsInf(m.ClipsPerSec, 0) {
			c += m.ClipsPerSec * m.StepTime
			t += m.StepTime
		}
		clips, secs = append(clips, c), append(secs, t)
	}
	for i, m := range log.Train {
		dc, dt := clips[i], secs[i]
		if i >= w {
			dc, dt = dc-clips[i-w], dt-secs[i-w]
		}
		s.x = append(s.x, float64(m.Step))
		s.y = append(s.y, dc/dt) // NaN (a gap) where the window has no timed step
	}
	s.name = "clips/s"
	if t > 0 {
		s.name = fmt.Sprintf("%.3g clips/s, %.3g it/s on average", c/t, float64(len(log.Train))/t)
	}
	if w > 1 {
		s.name += fmt.Sprintf(" (line: last %d steps)", w)
	}
	return s
}

// lossScaleFigure plots the dynamic loss scale on a log axis; it has no lines when every run kept the
// scale at 1 (loss scaling off: fp32, bf16).
func lossScaleFigure(runs []reportRun) figure {
	f := figure{file: "loss_scale.png", title: "dynamic loss scale (halved on overflow, doubled after good steps)",
		ylabel: "loss scale", logY: true}
	lo, hi := math.Inf(1), math.Inf(-1)
	for i, r := range runs {
		s := trainSeries(r.name, r.log, func(m StepMetrics) float64 { return m.LossScale })
		s.colour = i
		for _, v := range s.y {
			if v > 0 && !math.IsInf(v, 0) {
				lo, hi = min(lo, v), max(hi, v)
			}
		}
		f.lines = append(f.lines, s)
	}
	if lo > hi || (lo == 1 && hi == 1) {
		f.lines = nil
	}
	return f
}

// horizonOf is the longest rollout (auto_steps) any validation pass logged.
func horizonOf(log *MetricsLog) int {
	h := 0
	for _, v := range log.Val {
		h = max(h, len(v.RolloutErr))
	}
	return h
}

// horizonFigure plots the validation error of the k-th auto-regressive prediction against k: how errors
// compound along the rollout, at the step with the lowest validation loss and at the last validation.
func horizonFigure(runs []reportRun) figure {
	f := figure{file: "horizon.png", title: "validation error against the rollout horizon", xlabel: "predicted frame k",
		ylabel: "mean |ẑ_k − z_k|", legend: true}
	H := 0
	for i, r := range runs {
		best, last := -1, -1
		for j, v := range r.log.Val {
			if len(v.RolloutErr) == 0 {
				continue
			}
			if best < 0 || v.Loss < r.log.Val[best].Loss || math.IsNaN(r.log.Val[best].Loss) {
				best = j
			}
			last = j
		}
		if best < 0 {
			continue
		}
		curve := func(name string, v ValMetrics) series {
			s := series{name: name, colour: i, marks: true}
			for k, e := range v.RolloutErr {
				s.x = append(s.x, float64(k+1))
				s.y = append(s.y, e)
			}
			H = max(H, len(v.RolloutErr))
			return s
		}
		prefix := ""
		if len(runs) > 1 {
			prefix = r.name + ": "
		}
		b, l := r.log.Val[best], r.log.Val[last]
		if best == last {
			f.lines = append(f.lines, curve(fmt.Sprintf("%sbest = last, step %d (val loss %.4g)", prefix, b.Step, b.Loss), b))
			continue
		}
		f.lines = append(f.lines, curve(fmt.Sprintf("%sbest, step %d (val loss %.4g)", prefix, b.Step, b.Loss), b))
		ls := curve(fmt.Sprintf("%slast, step %d (val loss %.4g)", prefix, l.Step, l.Loss), l)
		ls.dashed = true
		f.lines = append(f.lines, ls)
	}
	for k := 1; k <= H; k++ {
		f.xticks = append(f.xticks, plot.Tick{Value: float64(k), Label: strconv.Itoa(k)})
	}
	return f
}

// savePlot draws the figure into a PNG; it reports false (and writes nothing) when no line has a finite
// point.
func savePlot(path string, f figure) (bool, error) {
	p := plot.New()
	p.Title.Text = f.title
	p.X.Label.Text = f.xlabel
	if p.X.Label.Text == "" {
		p.X.Label.Text = "step"
	}
	p.Y.Label.Text = f.ylabel
	if f.xticks != nil {
		p.X.Tick.Marker = plot.ConstantTicks(f.xticks)
	}
	p.Add(plotter.NewGrid())
	p.Legend.Top = true
	drawn := false
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, s := range f.lines {
		x, y := downsample(s.x, s.y, maxPlotPoints)
		if f.logY { // a log axis cannot show zero or negative values
			y = append([]float64(nil), y...)
			for i, v := range y {
				if v <= 0 {
					y[i] = math.NaN()
				}
			}
		}
		segs := finiteSegments(x, y)
		style := draw.LineStyle{Color: plotutil.Color(s.colour), Width: vg.Points(1.5)}
		if s.dashed {
			style.Dashes = []vg.Length{vg.Points(6), vg.Points(3)}
		}
		if s.gray {
			style.Color, style.Dashes = color.Gray{Y: 150}, []vg.Length{vg.Points(4), vg.Points(3)}
		}
		for j, seg := range segs {
			for _, pt := range seg {
				lo, hi = min(lo, pt.Y), max(hi, pt.Y)
			}
			var thumb plot.Thumbnailer
			if len(seg) > 1 {
				ln, err := plotter.NewLine(seg)
				if err != nil {
					return false, err
				}
				ln.LineStyle = style
				p.Add(ln)
				thumb = ln
			}
			if s.marks || len(seg) == 1 { // a lone point (e.g. one validation pass) has no line to draw
				sc, err := plotter.NewScatter(seg)
				if err != nil {
					return false, err
				}
				sc.GlyphStyle.Color, sc.GlyphStyle.Shape, sc.GlyphStyle.Radius = style.Color, draw.CircleGlyph{}, vg.Points(2.5)
				p.Add(sc)
				if thumb == nil {
					thumb = sc
				}
			}
			if j == 0 && (len(f.lines) > 1 || f.legend) {
				p.Legend.Add(s.name, thumb)
			}
			drawn = true
		}
	}
	if !drawn {
		return false, nil
	}
	if f.logY {
		p.Y.Scale = plot.LogScale{}
		p.Y.Min, p.Y.Max = lo/2, hi*2 // room around a constant scale, which would give an empty range
		p.Y.Tick.Marker = powerOfTwoTicks{}
	}
	return true, p.Save(8*vg.Inch, 4.5*vg.Inch, path)
}

// powerOfTwoTicks labels a log axis at the powers of two, the values a dynamic loss scale takes.
type powerOfTwoTicks struct{}

func (powerOfTwoTicks) Ticks(lo, hi float64) []plot.Tick {
	var ticks []plot.Tick
	step := max(1, math.Ceil((math.Log2(hi)-math.Log2(lo))/8)) // at most about 8 labels
	for e := math.Ceil(math.Log2(lo)); e <= math.Floor(math.Log2(hi)); e++ {
		t := plot.Tick{Value: math.Exp2(e)}
		if math.Mod(e, step) == 0 {
			t.Label = fmt.Sprintf("2^%d", int(e))
		}
		ticks = append(ticks, t)
	}
	return ticks
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
