package data_test

import (
	"context"
	"strings"
	"testing"

	"github.com/vjepa-vk/vjepa-vk/data"
)

func TestNthEpisode(t *testing.T) {
	src := data.NewDirSource("../testdata/droid_sample")
	ctx := context.Background()
	first, err := data.NthEpisode(ctx, src, "train", 0)
	if err != nil {
		t.Fatal(err)
	}
	second, err := data.NthEpisode(ctx, src, "train", 1)
	if err != nil {
		t.Fatal(err)
	}
	if first.FilePath == second.FilePath || first.Steps < 2 {
		t.Errorf("episodes 0 and 1: %q (%d steps) and %q", first.FilePath, first.Steps, second.FilePath)
	}
	if _, err := first.Frame(data.CameraExterior1, first.Steps-1); err != nil {
		t.Errorf("last frame of episode 0: %v", err)
	}
	for _, n := range []int{-1, 1000} {
		if _, err := data.NthEpisode(ctx, src, "train", n); err == nil || !strings.Contains(err.Error(), "episode") {
			t.Errorf("NthEpisode(%d): %v, want an error naming the episode", n, err)
		}
	}
}
