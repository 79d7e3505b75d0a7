package plan_test

import (
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vjepa-vk/vjepa-vk/plan"
)

// TestLandscape sweeps the synthetic world: the minimum is the grid point at the true action, and the
// heat maps are written for two and three axes.
func TestLandscape(t *testing.T) {
	truth := []float64{0.025, -0.05, 0.0125, 0, 0, 0, 0}
	lw := newLinearWorld(32, truth)
	for _, names := range []string{"x,y", "x,y,z"} {
		axes, err := plan.NewLandscapeAxes(names, 9, 7, 0.05) // spacing 0.0125: the truth is a grid point
		if err != nil {
			t.Fatal(err)
		}
		l, err := plan.ComputeLandscape(axes, 7, lw.energy)
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
		l.Truth = truth
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
		names         string
		points, width int
		extent        float64
		want          string
	}{{"x", 5, 7, 0.1, "two or three"}, {"x,y,z,gripper", 5, 7, 0.1, "two or three"}, {"x,x", 5, 7, 0.1, "repeated"},
		{"x,0", 5, 7, 0.1, "repeated"}, {"x,roll", 5, 7, 0.1, "\"roll\""}, {"x,y", 1, 7, 0.1, "1 points"},
		{"x,y", 5, 7, -1, "positive extent"}, {"x,y", 5, 4, 0.1, "actions are 4-D"}, {"0,4", 5, 4, 0.1, "\"4\""}} {
		if _, err := plan.NewLandscapeAxes(c.names, c.points, c.width, c.extent); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("NewLandscapeAxes(%q, %d, %d, %g): %v, want %q", c.names, c.points, c.width, c.extent, err, c.want)
		}
	}
	// A 4-D robot's actions sweep components by index.
	axes, err := plan.NewLandscapeAxes("1,3", 5, 4, 0.1)
	if err != nil || axes[0].Index != 1 || axes[1].Index != 3 {
		t.Fatalf("NewLandscapeAxes(1,3 of 4): %v, %v", axes, err)
	}
	l, err := plan.ComputeLandscape(axes, 4, newLinearWorld(8, []float64{0, 0.05, 0, -0.1}).energy)
	if err != nil || len(l.Min) != 4 || math.Abs(l.Min[1]-0.05) > 1e-12 || math.Abs(l.Min[3]+0.1) > 1e-12 || l.Min[0] != 0 {
		t.Errorf("4-D landscape minimum %v (%v), want [0 0.05 0 -0.1]", l.Min, err)
	}
}
