package plan_test

import (
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vjepa-vk/vjepa-vk/data"
	"github.com/vjepa-vk/vjepa-vk/plan"
)

// TestLandscape sweeps the synthetic world: the minimum is the grid point at the true action, and the
// heat maps are written for two and three axes.
func TestLandscape(t *testing.T) {
	truth := data.Action{0.025, -0.05, 0.0125}
	lw := newLinearWorld(32, truth)
	for _, names := range []string{"x,y", "x,y,z"} {
		axes, err := plan.NewLandscapeAxes(names, 9, 0.05) // spacing 0.0125: the truth is a grid point
		if err != nil {
			t.Fatal(err)
		}
		l, err := plan.ComputeLandscape(axes, lw.energy)
		if err != nil {
			t.Fatal(err)
		}
		if want := int(math.Pow(9, float64(len(axes)))); len(l.Energies) != want {
			t.Fatalf("%s: %d energies, want %d", names, len(l.Energies), want)
		}
		for _, a := range axes {
			if d := math.Abs(l.Min[a.Index] - truth[a.Index]); d > 1e-12 && (names != "x,y" || a.Index < 2) {
				t.Errorf("%s: minimum at %v, true action %v", names, l.Min, truth)
			}
		}
		l.Truth = &truth
		path := filepath.Join(t.TempDir(), "landscape.png")
		if err := l.WritePNG(path); err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		panels := map[int]int{2: 1, 3: 3}[len(axes)] // one heat map, or the three cuts through the minimum
		if w, h := img.Bounds().Dx(), img.Bounds().Dy(); w != h*panels {
			t.Errorf("%s: %dx%d image, want %d square panels", names, w, h, panels)
		}
	}
	for _, c := range []struct {
		names  string
		points int
		extent float64
		want   string
	}{{"x", 5, 0.1, "two or three"}, {"x,y,z,gripper", 5, 0.1, "two or three"}, {"x,x", 5, 0.1, "repeated"},
		{"x,roll", 5, 0.1, "\"roll\""}, {"x,y", 1, 0.1, "1 points"}, {"x,y", 5, -1, "positive extent"}} {
		if _, err := plan.NewLandscapeAxes(c.names, c.points, c.extent); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("NewLandscapeAxes(%q, %d, %g): %v, want %q", c.names, c.points, c.extent, err, c.want)
		}
	}
}
