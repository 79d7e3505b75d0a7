// Package plantest builds small world models for the tests of the planner and of the packages that plan
// with it (evaluate, serve), as modeltest does for predictor passes.
package plantest

import (
	"testing"

	"github.com/vjepa-vk/vjepa-vk/model"
	"github.com/vjepa-vk/vjepa-vk/plan"
	"github.com/vjepa-vk/vjepa-vk/vk"
)

// TinyWorld is a world model of the demo's shapes (configs/demo.yaml): a 2-block predictor of width 96 on
// a 4×4 grid and a 2-block encoder of 64×64 images, seeded random weights; everything is freed when the
// test ends.
func TinyWorld(t testing.TB, d *vk.Device, opts plan.Options) *plan.WorldModel {
	t.Helper()
	pcfg := model.PredictorConfig{EmbedDim: 64, Dim: 96, Depth: 2, Heads: 2, Grid: 4, MLPRatio: 4}
	ecfg := model.NewEncoderConfig(64, 2, 2)
	p, err := model.LoadPredictor(d, pcfg, model.InitPredictor(pcfg, 3), model.FP32)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Free)
	e, err := model.LoadEncoder(d, ecfg, model.InitEncoder(ecfg, 4), model.FP32)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Free)
	w, err := plan.NewWorldModel(p, e, 64, 2, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Close)
	return w
}
