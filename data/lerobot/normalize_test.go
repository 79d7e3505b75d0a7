package lerobot

import (
	"context"
	"encoding/json"
	"math"
	"strings"
	"testing"

	"github.com/vjepa-vk/vjepa-vk/data"
)

// TestNormalizeRaw: what inference does to a raw vector (NormalizeState, NormalizeAction) is what
// training's loader did to the rows: the state row's normalized value exactly, and a clip's action, even
// one that sums the normalized rows of a stride (action_reduce sum, ActionRows), from the raw action
// the same rows give; the JSON round trip (NormalizationFile) keeps every field.
func TestNormalizeRaw(t *testing.T) {
	dir := fixtures[0].dir
	cfg := clipConfig(DemoVideoKey, 2)
	cfg.SourceFPS = 15
	stride := cfg.Stride()
	for _, mode := range []string{"mean_std", "min_max"} {
		for _, reduce := range ActionReductions {
			t.Run("mode="+mode+",reduce="+reduce, func(t *testing.T) {
				raw := eachEpisode(t, open(t, dir, Mapping{ActionReduce: reduce}))
				normed := open(t, dir, Mapping{ActionReduce: reduce, Normalize: mode})
				n := normed.Normalization().ForActions(reduce, stride)
				if (n.ActionRows == stride) != (reduce == "sum") || (reduce != "sum" && n != normed.Normalization()) {
					t.Fatalf("ForActions(%s, %d): action_rows %d", reduce, stride, n.ActionRows)
				}
				b, err := json.Marshal(n)
				if err != nil {
					t.Fatal(err)
				}
				back, err := ParseNormalization(NormalizationFile, b)
				if err != nil {
					t.Fatal(err)
				}
				if b2, _ := json.Marshal(back); string(b2) != string(b) {
					t.Fatalf("round trip: %s, want %s", b2, b)
				}
				for e, ep := range eachEpisode(t, normed) {
					var wantS, wantA [][]float64
					ep.(*episode).EachRow(cfg, func(s, a []float64) { wantS, wantA = append(wantS, s), append(wantA, a) })
					i := 0
					raw[e].(*episode).EachRow(cfg, func(s, a []float64) {
						z := make([]float64, len(s))
						back.NormalizeState(z, s)
						for k := range z {
							if z[k] != wantS[i][k] {
								t.Fatalf("episode %d row %d: state[%d] normalized %v, training's %v", e, i, k, z[k], wantS[i][k])
							}
						}
						if a != nil {
							v := make([]float64, len(a))
							back.NormalizeAction(v, a)
							for k := range v {
								// first and last are the same arithmetic; mean and sum reassociate.
								if d := math.Abs(v[k] - wantA[i][k]); d > 1e-12*(1+math.Abs(wantA[i][k])) || (reduce == "first" && d != 0) {
									t.Fatalf("episode %d row %d: action[%d] normalized %v, training's %v", e, i, k, v[k], wantA[i][k])
								}
							}
						}
						i++
					})
				}
			})
		}
	}
}

// TestParseNormalization: a damaged normalization.json is refused naming the file and the field.
func TestParseNormalization(t *testing.T) {
	good := `{"mode": "mean_std", "source": "meta/stats.json", "state": {"column": "observation.state", "mean": [0, 1], "std": [1, 2], "min": null, "max": null, "count": 5},
		"action": {"column": "action", "mean": [0], "std": [0.5], "min": null, "max": null, "count": 5}}`
	n, err := ParseNormalization("a/normalization.json", []byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if z, a := n.Widths(); z != 2 || a != 1 || n.ActionRows != 0 {
		t.Fatalf("widths %d, %d, action rows %d; want 2, 1, 0", z, a, n.ActionRows)
	}
	for _, c := range []struct{ old, new, want string }{
		{`"mode": "mean_std"`, `"mode": "zscore"`, `a/normalization.json: mode "zscore": want mean_std or min_max`},
		{`"mode": "mean_std"`, `"mode": "min_max"`, "a/normalization.json: state.min has 0 values, state.max 0: want one per dimension"},
		{`"std": [1, 2]`, `"std": [1]`, "a/normalization.json: state.mean has 2 values, state.std 1"},
		{`"std": [0.5]`, `"std": [-0.5]`, "a/normalization.json: action.std[0] = -0.5, want a finite number (>= 0 for std)"},
		{`"count": 5}}`, `"count": 5}, "scale": 2}`, `a/normalization.json: json: unknown field "scale"`},
		{`"source"`, `"action_rows": -1, "source"`, "a/normalization.json: action_rows -1: want >= 0"},
		{`{"mode"`, `{{"mode"`, "a/normalization.json: invalid character"},
	} {
		_, err := ParseNormalization("a/normalization.json", []byte(strings.Replace(good, c.old, c.new, 1)))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s → %s: %v, want an error containing %q", c.old, c.new, err, c.want)
		}
	}
}

// TestEpisodeImages: an episode's frames as images (plan --episode) are the frames a clip decodes, of a
// video (FFmpeg) and of an image feature, in the order asked for.
func TestEpisodeImages(t *testing.T) {
	needFFmpeg(t)
	ds := open(t, fixtures[0].dir, Mapping{})
	ep := eachEpisode(t, ds)[1]
	for _, camera := range []string{DemoVideoKey, DemoImageKey} {
		rows := []int{6, 2, 6}
		imgs, err := ep.(*episode).Images(context.Background(), camera, rows)
		if err != nil {
			t.Fatal(err)
		}
		cfg := clipConfig(camera, 2)
		cfg.SourceFPS, cfg.FPS, cfg.Start = 15, 3.75, 2 // frames 2 and 6
		clip, err := ep.MakeClip(cfg, data.FilterConfig{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		ic := data.ImageConfig{Height: 32, Width: 32, MinRatio: 1, MaxRatio: 1}
		pre, _ := data.NewPreprocessor(ic)
		want := make([]float32, 3*2*32*32)
		if err := ep.DecodeClip(context.Background(), pre, want, clip); err != nil {
			t.Fatal(err)
		}
		for k, at := range map[int]int{0: 1, 1: 0, 2: 1} { // rows 6, 2, 6 are the clip's frames 1, 0, 1
			got := make([]float32, 3*2*32*32)
			pre, _ := data.NewPreprocessor(ic)
			pre.FrameImage(got, 2, at, imgs[k])
			for c := range 3 {
				for p := range 32 * 32 {
					if i := (c*2+at)*32*32 + p; got[i] != want[i] {
						t.Fatalf("%s row %d: value %d = %v, the clip's frame %d has %v", camera, rows[k], i, got[i], at, want[i])
					}
				}
			}
		}
	}
	if _, err := ep.(*episode).Images(context.Background(), DemoVideoKey, []int{24}); err == nil || !strings.Contains(err.Error(), "row 24 of 24") {
		t.Errorf("row past the end: %v", err)
	}
	if _, err := ep.(*episode).Images(context.Background(), "observation.state", []int{0}); err == nil || !strings.Contains(err.Error(), "is not a camera") {
		t.Errorf("a vector as camera: %v", err)
	}
}

// TestNthFormatEpisode counts episodes across the data files of both layouts (v3.0 holds several per
// file) in shard order, as eachEpisode lists them.
func TestNthFormatEpisode(t *testing.T) {
	for _, fx := range fixtures {
		ds := open(t, fx.dir, Mapping{})
		all := eachEpisode(t, ds)
		for i, want := range all {
			got, err := data.NthFormatEpisode(context.Background(), ds, i)
			if err != nil {
				t.Fatal(err)
			}
			if got.Info() != want.Info() {
				t.Errorf("%s: episode %d is %+v, want %+v", fx.version, i, got.Info(), want.Info())
			}
		}
		if _, err := data.NthFormatEpisode(context.Background(), ds, len(all)); err == nil || !strings.Contains(err.Error(), "episodes") {
			t.Errorf("%s: episode %d of %d: %v", fx.version, len(all), len(all), err)
		}
	}
}
