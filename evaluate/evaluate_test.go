package evaluate_test

import (
	"bytes"
	"context"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vjepa-vk/vjepa-vk/data"
	"github.com/vjepa-vk/vjepa-vk/evaluate"
	"github.com/vjepa-vk/vjepa-vk/plan"
	"github.com/vjepa-vk/vjepa-vk/plan/plantest"
	"github.com/vjepa-vk/vjepa-vk/vk/vktest"
)

// demoLoader is the clip window of configs/demo.yaml on the bundled DROID sample.
func demoLoader(t *testing.T) (data.Format, data.LoaderConfig) {
	t.Helper()
	f, err := data.OpenRLDS(context.Background(), data.NewDirSource("../testdata/droid_sample"), "train", 0)
	if err != nil {
		t.Fatal(err)
	}
	lc := data.DefaultLoaderConfig()
	lc.Clip.Frames, lc.Clip.FPS, lc.Clip.Camera = 4, 4, data.CameraExterior1
	lc.Image.Height, lc.Image.Width = 64, 64
	return f, lc
}

// countingEncoder gives every frame a constant representation and counts the clips it saw.
type countingEncoder struct{ clips, n int }

func (e *countingEncoder) EncodeClip(frames []float32, T int) ([]plan.Rep, error) {
	e.clips++
	reps := make([]plan.Rep, T)
	for t := range reps {
		reps[t] = make(plan.Rep, e.n)
	}
	return reps, nil
}

func TestLoadClips(t *testing.T) {
	f, lc := demoLoader(t)
	enc := &countingEncoder{n: 3}
	all, counts, err := evaluate.LoadClips(context.Background(), f, lc, 1000, enc)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) == 0 || int64(len(all)) != counts.Clips || enc.clips != len(all) {
		t.Fatalf("%d clips, loader counts %+v, %d encoded", len(all), counts, enc.clips)
	}
	for i, c := range all {
		if len(c.Frames) != 4 || len(c.States) != 4 || len(c.Actions) != 3 || len(c.States[0]) != 7 || len(c.Actions[0]) != 7 {
			t.Fatalf("clip %d: %d frames, %d states, %d actions", i, len(c.Frames), len(c.States), len(c.Actions))
		}
	}
	// Only the held-out episode, twice over (two passes), capped.
	lc.Keep = func(shard, record int) bool { return shard == 0 && record == 0 }
	lc.Epochs = 2
	two, _, err := evaluate.LoadClips(context.Background(), f, lc, 5, &countingEncoder{n: 3})
	if err != nil {
		t.Fatal(err)
	}
	if len(two) != 2 || two[0].Shard != 0 || two[0].Record != 0 || two[1].Record != 0 {
		t.Errorf("held-out episode over two passes: %d clips %+v", len(two), two)
	}
	lc.Keep = func(int, int) bool { return false }
	if _, _, err := evaluate.LoadClips(context.Background(), f, lc, 5, enc); err == nil || !strings.Contains(err.Error(), "gave no clip") {
		t.Errorf("LoadClips of no episode: %v", err)
	}
	if _, _, err := evaluate.LoadClips(context.Background(), f, lc, 0, enc); err == nil {
		t.Error("LoadClips of 0 clips")
	}
}

// TestEvaluateDemo runs every metric with a real tiny world model (the demo's sizes, random weights) on
// the DROID sample's clips: teacher forcing and rollout agree on their common first step, batching does
// not change the rollout errors, and the report is written.
func TestEvaluateDemo(t *testing.T) {
	w := plantest.TinyWorld(t, vktest.Device(t), plan.Options{})
	f, lc := demoLoader(t)
	clips, counts, err := evaluate.LoadClips(context.Background(), f, lc, 5, w)
	if err != nil {
		t.Fatal(err)
	}
	cem := plan.PaperSettings()
	cem.Samples, cem.Iterations, cem.TopK = 8, 2, 3
	st := evaluate.Settings{Horizon: 2, Batch: 2, Distractors: 3, Inverse: 2, CEM: cem, Seed: 1}
	r, err := evaluate.Evaluate(w, "base", clips, st)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.TeacherForcing) != 3 || len(r.Rollout) != 2 || r.Sensitivity.Transitions != 3*len(clips) || r.Inverse.DROID == nil {
		t.Fatalf("result %+v", r)
	}
	// Step 0 is the same prediction (frame 1 from frame 0) with and without teacher forcing.
	if math.Abs(r.TeacherForcing[0]-r.Rollout[0]) > 2e-6*r.Rollout[0] {
		t.Errorf("first step: teacher forcing %v, rollout %v", r.TeacherForcing[0], r.Rollout[0])
	}
	one, err := evaluate.Rollouts(w, clips, 2, false, 1)
	if err != nil {
		t.Fatal(err)
	}
	vktest.Close(t, "rollout errors, one clip per run vs two", vktest.F32(one), r.Rollout, 2e-6, 0)
	base, err := evaluate.Baselines(clips, 2)
	if err != nil {
		t.Fatal(err)
	}
	rep := &evaluate.Report{Dataset: f.String(), Clips: len(clips), Frames: 4, Horizon: 2, Data: counts, Baseline: base,
		Models: []evaluate.Result{r, r}}
	rep.Models[1].Name = "again"
	var tab bytes.Buffer
	if err := rep.Table(&tab); err != nil {
		t.Fatal(err)
	}
	if lines := strings.Split(strings.TrimSpace(tab.String()), "\n"); len(lines) != 4 || !strings.HasPrefix(lines[1], "copy last frame") {
		t.Errorf("table:\n%s", tab.String())
	}
	path := filepath.Join(t.TempDir(), "eval.png")
	if err := rep.WritePNG(path); err != nil {
		t.Fatal(err)
	}
	pf, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer pf.Close()
	img, err := png.Decode(pf)
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() != 2*b.Dy()*4/3 {
		t.Errorf("plot %v: want two 6×4.5 in panels", b)
	}
}
