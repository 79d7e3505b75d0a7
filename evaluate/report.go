package evaluate

import (
	"fmt"
	"image/color"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"github.com/vjepa-vk/vjepa-vk/data"
)

// Report is an evaluation of several world models (the base and adapters) on the same clips.
type Report struct {
	Dataset  string      `json:"dataset"`
	Clips    int         `json:"clips"`
	Frames   int         `json:"frames"`  // T per clip
	Horizon  int         `json:"horizon"` // K rollout steps
	Data     data.Counts `json:"data"`    // the loader's counts: episodes read, skipped, corrupt
	Baseline Baseline    `json:"copy_last_frame"`
	Models   []Result    `json:"models"`
}

// Table writes the report as a table: one row per model and the copy-last-frame baseline.
func (r *Report) Table(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	head := []string{"model", "tf L1"}
	for k := 1; k <= r.Horizon; k++ {
		head = append(head, fmt.Sprintf("k=%d", k))
	}
	head = append(head, "rank", "R@1", "R@5", "inverse", "cos", "gripper")
	fmt.Fprintln(tw, strings.Join(head, "\t"))
	row := func(name string, tf float64, roll []float64, rest []string) {
		cells := []string{name, fmt.Sprintf("%.4f", tf)}
		for _, v := range roll {
			cells = append(cells, fmt.Sprintf("%.4f", v))
		}
		fmt.Fprintln(tw, strings.Join(append(cells, rest...), "\t"))
	}
	row("copy last frame", r.Baseline.TeacherForcingMean, r.Baseline.Rollout, []string{"-", "-", "-", "-", "-", "-"})
	for _, m := range r.Models {
		rest := []string{"-", "-", "-", "-", "-", "-"}
		if s := m.Sensitivity; s != nil {
			rest[0], rest[1], rest[2] = fmt.Sprintf("%.2f/%d", s.MeanRank, s.Distractors), fmt.Sprintf("%.2f", s.Recall1), fmt.Sprintf("%.2f", s.Recall5)
		}
		if inv := m.Inverse; inv != nil {
			rest[3] = fmt.Sprintf("%.4g", mean(inv.ErrorAbs))
			if inv.DROID != nil {
				rest[3] = fmt.Sprintf("%.2f cm (step %.2f)", inv.DROID.ErrorCM, inv.DROID.StepCM)
				rest[5] = fmt.Sprintf("%.2f", inv.DROID.GripperAccuracy)
			}
			rest[4] = fmt.Sprintf("%.2f", inv.Cosine)
		}
		row(m.Name, m.TeacherForcingMean, m.Rollout, rest)
	}
	return tw.Flush()
}

// WritePNG draws the errors against the horizon (rollout L1 at k = 1..K) and against the frame (teacher
// forcing), one line per model, the copy-last-frame baseline dashed in grey.
func (r *Report) WritePNG(path string) error {
	curve := func(title, xlabel string, base []float64, of func(Result) []float64) (*plot.Plot, error) {
		p := plot.New()
		p.Title.Text, p.X.Label.Text, p.Y.Label.Text = title, xlabel, "mean L1 to the true frame"
		add := func(name string, y []float64, style draw.LineStyle, i int) error {
			pts := make(plotter.XYs, len(y))
			for k, v := range y {
				pts[k] = plotter.XY{X: float64(k + 1), Y: v}
			}
			l, s, err := plotter.NewLinePoints(pts)
			if err != nil {
				return err
			}
			l.LineStyle = style
			s.GlyphStyle = draw.GlyphStyle{Color: style.Color, Radius: vg.Points(2.5), Shape: plotutil.Shape(i)}
			p.Add(l, s)
			p.Legend.Add(name, l, s)
			return nil
		}
		if err := add("copy last frame", base, draw.LineStyle{Color: color.Gray{Y: 140}, Width: vg.Points(1.5),
			Dashes: []vg.Length{vg.Points(5), vg.Points(3)}}, 0); err != nil {
			return nil, err
		}
		for i, m := range r.Models {
			if err := add(m.Name, of(m), draw.LineStyle{Color: plotutil.Color(i), Width: vg.Points(1.5)}, i+1); err != nil {
				return nil, err
			}
		}
		var ticks []plot.Tick
		for k := range base {
			ticks = append(ticks, plot.Tick{Value: float64(k + 1), Label: fmt.Sprint(k + 1)})
		}
		p.X.Tick.Marker = plot.ConstantTicks(ticks)
		p.X.Min, p.X.Max = 0.8, float64(len(base))+0.2
		top := 0.0
		for _, v := range base {
			top = max(top, v)
		}
		for _, m := range r.Models {
			for _, v := range of(m) {
				top = max(top, v)
			}
		}
		p.Y.Min, p.Y.Max = 0, top*(1.15+0.07*float64(len(r.Models)+1)) // room for the legend above the lines
		p.Legend.Top = true
		p.Legend.Left = true
		return p, nil
	}
	roll, err := curve(fmt.Sprintf("rollout error against the horizon (%d clips)", r.Clips), "horizon k (steps from frame 0)",
		r.Baseline.Rollout, func(m Result) []float64 { return m.Rollout })
	if err != nil {
		return err
	}
	tf, err := curve("teacher-forcing error per frame", "frame t (true frames 0..t−1 given)",
		r.Baseline.TeacherForcing, func(m Result) []float64 { return m.TeacherForcing })
	if err != nil {
		return err
	}
	const w, h = 6 * vg.Inch, 4.5 * vg.Inch
	img := vgimg.New(2*w, h)
	dc := draw.New(img)
	cells := plot.Align([][]*plot.Plot{{roll, tf}}, draw.Tiles{Rows: 1, Cols: 2, PadX: vg.Millimeter * 6}, dc)
	roll.Draw(cells[0][0])
	tf.Draw(cells[0][1])
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("evaluate: %w", err)
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return fmt.Errorf("evaluate: %s: %w", path, err)
	}
	return f.Close()
}
