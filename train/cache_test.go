package train

import (
	"testing"

	"github.com/vjepa-vk/vjepa-vk/data"
	"github.com/vjepa-vk/vjepa-vk/data/lerobot"
	"github.com/vjepa-vk/vjepa-vk/model"
)

// TestCacheIdentityRLDS: an RLDS run's cache identity hashes as it did before LeRobot datasets (and
// their mapping) joined it, so caches built then still open; a LeRobot run's hash covers its mapping
// and its normalization statistics.
func TestCacheIdentityRLDS(t *testing.T) {
	cfg := runConfig(t, t.TempDir(), 2)
	got, _, err := cacheConfig(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	// The identity as it was: the fields before Format, in the same order.
	_, ecfg := modelConfigs(cfg)
	old, err := data.ConfigHash(struct {
		Encoder    model.EncoderConfig
		Checkpoint string
		Precision  string
		Img        int
		Camera     string
		Frames     int
		FPS        float64
		Seed       int64
	}{ecfg, cfg.Model.Checkpoint, cfg.Model.Precision, cfg.Model.Img, cfg.Data.Camera, cfg.Data.Frames, cfg.Data.FPS, cfg.Training.Seed})
	if err != nil {
		t.Fatal(err)
	}
	if got.ConfigHash != old {
		t.Errorf("RLDS cache hash %s, was %s: caches built before would be refused", got.ConfigHash, old)
	}
	if s, a := got.Dims(); s != 7 || a != 7 {
		t.Errorf("RLDS cache widths %d, %d, want 7, 7", s, a)
	}
	lr, err := Load("../configs/lerobot-demo.yaml", []string{"data.source=../testdata/lerobot_demo"})
	if err != nil {
		t.Fatal(err)
	}
	a, _, err := cacheConfig(lr, nil)
	if err != nil {
		t.Fatal(err)
	}
	lr.Data.LeRobot.ActionReduce = "last"
	b, _, err := cacheConfig(lr, nil)
	if err != nil {
		t.Fatal(err)
	}
	if a.ConfigHash == b.ConfigHash {
		t.Error("a LeRobot cache's hash does not depend on data.lerobot.action_reduce")
	}
	lr.Data.LeRobot.Normalize = "mean_std"
	stats := func(mean float64) *lerobot.Normalization {
		return &lerobot.Normalization{Mode: "mean_std", Source: lerobot.StatsFile,
			State: lerobot.NormalizedFeature{Column: "observation.state", FeatureStats: lerobot.FeatureStats{Mean: []float64{mean}, Std: []float64{1}}}}
	}
	n1, _, _ := cacheConfig(lr, stats(0))
	n2, _, _ := cacheConfig(lr, stats(0.5))
	if n1.ConfigHash == n2.ConfigHash {
		t.Error("a LeRobot cache's hash does not depend on the statistics data.lerobot.normalize uses")
	}
	if s, a := a.Dims(); s != 6 || a != 4 {
		t.Errorf("LeRobot demo cache widths %d, %d, want 6, 4", s, a)
	}
}
