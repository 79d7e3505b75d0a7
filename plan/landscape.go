package plan

import (
	"fmt"
	"image/color"
	"math"
	"os"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/palette/moreland"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"github.com/vjepa-vk/vjepa-vk/model"
)

// The energy landscape of the energy notebook and the paper's Fig. 9: one-step energies of actions on a
// grid over two or three of (Δx, Δy, Δz, gripper), the other components 0, with the minimum expected near
// the action that was really taken. Actions of another width sweep components by index.

// LandscapeAxis is one swept action component.
type LandscapeAxis struct {
	Name   string    `json:"name"`   // x, y, z or gripper (7-D actions), or the component's index
	Index  int       `json:"index"`  // component of the action
	Values []float64 `json:"values"` // grid coordinates
}

// landscapeAxes names the components of DROID's 7-D action a landscape can sweep by name.
var landscapeAxes = map[string]int{"x": 0, "y": 1, "z": 2, "gripper": gripperAxis}

// NewLandscapeAxes parses "x,y" (two or three of x, y, z, gripper for 7-D actions, or component indices
// "0,3" of a width-wide action) into axes of points values evenly spaced over [−extent, extent].
func NewLandscapeAxes(names string, points, width int, extent float64) ([]LandscapeAxis, error) {
	parts := strings.Split(names, ",")
	if len(parts) < 2 || len(parts) > 3 {
		return nil, fmt.Errorf("plan: landscape axes %q: want two or three of x, y, z, gripper or component indices", names)
	}
	if points < 2 || !(extent > 0) || math.IsInf(extent, 0) {
		return nil, fmt.Errorf("plan: landscape of %d points over ±%g: want >= 2 points and a positive extent", points, extent)
	}
	var axes []LandscapeAxis
	seen := map[int]bool{}
	for _, p := range parts {
		n := strings.TrimSpace(p)
		idx, ok := landscapeAxes[n]
		if ok && width != model.ActionDim {
			return nil, fmt.Errorf("plan: landscape axes %q: %q names a component of DROID's 7-D action, the predictor's actions are %d-D (give component indices)", names, n, width)
		}
		if !ok {
			var err error
			if idx, err = strconv.Atoi(n); err != nil || idx < 0 || idx >= width {
				return nil, fmt.Errorf("plan: landscape axes %q: %q is not one of x, y, z, gripper nor a component index in 0..%d", names, n, width-1)
			}
		}
		if seen[idx] {
			return nil, fmt.Errorf("plan: landscape axes %q: component %d is repeated", names, idx)
		}
		seen[idx] = true
		a := LandscapeAxis{Name: n, Index: idx, Values: make([]float64, points)}
		for i := range a.Values {
			a.Values[i] = -extent + 2*extent*float64(i)/float64(points-1)
		}
		axes = append(axes, a)
	}
	return axes, nil
}

// Landscape is the energy over a grid of actions.
type Landscape struct {
	Axes      []LandscapeAxis `json:"axes"`
	Energies  []float64       `json:"energies"` // row-major over Axes (the first axis slowest)
	Min       []float64       `json:"min_action"`
	MinEnergy float64         `json:"min_energy"`
	Truth     []float64       `json:"true_action,omitempty"`
}

// ComputeLandscape scores every grid action (width components, the unswept ones 0) as a one-step
// candidate with energy (one call).
func ComputeLandscape(axes []LandscapeAxis, width int, energy Energy) (*Landscape, error) {
	n := 1
	for _, a := range axes {
		n *= len(a.Values)
	}
	cands := make([][][]float64, n)
	for g := range cands {
		cands[g] = [][]float64{landscapeAction(axes, width, g)}
	}
	e, err := energy(cands)
	if err != nil {
		return nil, err
	}
	if len(e) != n {
		return nil, fmt.Errorf("plan: landscape: %d energies for %d grid actions", len(e), n)
	}
	l := &Landscape{Axes: axes, Energies: e, MinEnergy: math.Inf(1)}
	for g, v := range e {
		if v < l.MinEnergy {
			l.MinEnergy, l.Min = v, cands[g][0]
		}
	}
	return l, nil
}

// landscapeAction is grid point g's action.
func landscapeAction(axes []LandscapeAxis, width, g int) []float64 {
	a := make([]float64, width)
	for i := len(axes) - 1; i >= 0; i-- {
		n := len(axes[i].Values)
		a[axes[i].Index] = axes[i].Values[g%n]
		g /= n
	}
	return a
}

// slice is a 2-D cut of the landscape: axes u (columns) and v (rows) with the others fixed at the index
// of the minimum.
type slice struct {
	l      *Landscape
	u, v   int
	fixed  []int // grid index per axis
	lo, hi float64
}

func (s slice) Dims() (c, r int)   { return len(s.l.Axes[s.u].Values), len(s.l.Axes[s.v].Values) }
func (s slice) X(c int) float64    { return s.l.Axes[s.u].Values[c] }
func (s slice) Y(r int) float64    { return s.l.Axes[s.v].Values[r] }
func (s slice) Min() float64       { return s.lo }
func (s slice) Max() float64       { return s.hi }
func (s slice) Z(c, r int) float64 { return s.l.Energies[s.flat(c, r)] }

func (s slice) flat(c, r int) int {
	idx := append([]int(nil), s.fixed...)
	idx[s.u], idx[s.v] = c, r
	g := 0
	for i, a := range s.l.Axes {
		g = g*len(a.Values) + idx[i]
	}
	return g
}

// minIndex is the grid index of the minimum per axis.
func (l *Landscape) minIndex() []int {
	idx := make([]int, len(l.Axes))
	for i, a := range l.Axes {
		best := math.Inf(1)
		for j, v := range a.Values {
			if d := math.Abs(v - l.Min[a.Index]); d < best {
				best, idx[i] = d, j
			}
		}
	}
	return idx
}

// WritePNG draws the landscape as heat maps: one for two axes, the three cuts through the minimum for
// three. The minimum is a white cross, the true action (when known) a black circle.
func (l *Landscape) WritePNG(path string) error {
	pairs := [][2]int{{0, 1}}
	if len(l.Axes) == 3 {
		pairs = [][2]int{{0, 1}, {0, 2}, {1, 2}}
	}
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, v := range l.Energies {
		lo, hi = math.Min(lo, v), math.Max(hi, v)
	}
	if hi == lo {
		hi = lo + 1e-12
	}
	cm := moreland.ExtendedKindlmann()
	pal := cm.Palette(255)
	var plots []*plot.Plot
	for _, pr := range pairs {
		s := slice{l: l, u: pr[0], v: pr[1], fixed: l.minIndex(), lo: lo, hi: hi}
		p := plot.New()
		p.Title.Text = fmt.Sprintf("energy over (Δ%s, Δ%s)", l.Axes[pr[0]].Name, l.Axes[pr[1]].Name)
		if len(l.Axes) == 3 {
			other := 3 - pr[0] - pr[1]
			p.Title.Text += fmt.Sprintf(", Δ%s = %.3g", l.Axes[other].Name, l.Axes[other].Values[s.fixed[other]])
		}
		p.X.Label.Text, p.Y.Label.Text = "Δ"+l.Axes[pr[0]].Name, "Δ"+l.Axes[pr[1]].Name
		p.Add(plotter.NewHeatMap(s, pal))
		mark := func(a []float64, shape draw.GlyphDrawer, c color.Color, name string) error {
			sc, err := plotter.NewScatter(plotter.XYs{{X: a[l.Axes[pr[0]].Index], Y: a[l.Axes[pr[1]].Index]}})
			if err != nil {
				return err
			}
			sc.GlyphStyle = draw.GlyphStyle{Color: c, Radius: vg.Points(6), Shape: shape}
			p.Add(sc)
			p.Legend.Add(name, sc)
			return nil
		}
		if err := mark(l.Min, draw.CrossGlyph{}, color.White, fmt.Sprintf("minimum %.4g", l.MinEnergy)); err != nil {
			return err
		}
		if l.Truth != nil {
			if err := mark(l.Truth, draw.RingGlyph{}, color.Black, "true action"); err != nil {
				return err
			}
		}
		plots = append(plots, p)
	}
	const side = 5 * vg.Inch
	img := vgimg.New(side*vg.Length(len(plots)), side)
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: 1, Cols: len(plots), PadX: vg.Millimeter * 4}
	cells := plot.Align([][]*plot.Plot{plots}, tiles, dc)
	for i, p := range plots {
		p.Draw(cells[0][i])
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("plan: landscape: %w", err)
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return fmt.Errorf("plan: landscape %s: %w", path, err)
	}
	return f.Close()
}
