package data

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func TestClipConfigStride(t *testing.T) {
	for _, tc := range []struct {
		fps, src           float64
		frames, stride, nf int
	}{
		{4, 15, 8, 4, 32}, // official: ceil(15/4) = 4, nframes 32
		{5, 15, 8, 3, 24}, // 15/5 is exactly 3
		{15, 15, 8, 1, 8},
		{4, 30, 8, 8, 64},
		{3.75, 15, 4, 4, 16},
		{2, 15, 16, 8, 128},
	} {
		c := ClipConfig{Frames: tc.frames, FPS: tc.fps, SourceFPS: tc.src, Camera: CameraExterior1, Start: -1}
		if c.Stride() != tc.stride || c.Window() != tc.nf {
			t.Fatalf("fps=%v,source=%v: stride %d window %d, want %d %d", tc.fps, tc.src, c.Stride(), c.Window(), tc.stride, tc.nf)
		}
	}
	c := DefaultClipConfig()
	for _, tc := range []struct{ steps, max int }{{32, -1}, {33, 0}, {40, 7}, {300, 267}} {
		if got := c.MaxStart(tc.steps); got != tc.max {
			t.Fatalf("MaxStart(%d) = %d, want %d (V-JEPA needs T > nframes = 32, sf ≤ T−1−32)", tc.steps, got, tc.max)
		}
	}
	if got := c.Indices(5); !reflect.DeepEqual(got, []int{5, 9, 13, 17, 21, 25, 29, 33}) {
		t.Fatalf("Indices(5) = %v", got)
	}
	for _, bad := range []ClipConfig{
		{Frames: 1, FPS: 4, SourceFPS: 15, Camera: CameraExterior1},
		{Frames: 8, FPS: 0, SourceFPS: 15, Camera: CameraExterior1},
		{Frames: 8, FPS: 4, SourceFPS: 15, Camera: "left_mp4_path"},
		{Frames: 8, FPS: 4, SourceFPS: 15, Camera: CameraWrist, Start: -2},
	} {
		if err := bad.Validate(); err == nil {
			t.Fatalf("Validate(%+v) gave no error", bad)
		}
	}
}

// TestNonIdleRanges checks openpi's rule on hand-made joint velocity sequences: each step's velocity
// is (v, 0, …, 0), so a step is idle exactly when v repeats within 1e-3.
func TestNonIdleRanges(t *testing.T) {
	cfg := DefaultFilterConfig().Idle
	seq := func(parts ...string) [][7]float64 {
		var out [][7]float64
		v := 0.0
		for _, p := range parts {
			var n int
			var kind string
			fmt.Sscanf(p, "%d%s", &n, &kind)
			for range n {
				if kind == "move" {
					v += 0.01
				}
				out = append(out, [7]float64{v})
			}
		}
		return out
	}
	cases := []struct {
		name string
		jv   [][7]float64
		want [][2]int
	}{
		// 40 moving steps: one range [0, 40), trimmed by 10.
		{"moving=40", seq("40move"), [][2]int{{0, 30}}},
		// An idle run of 6 (< 7) is kept.
		{"idle=6", seq("20move", "6hold", "20move"), [][2]int{{0, 36}}},
		// A held velocity repeats the last moving one, so all 8 held steps are idle: [20, 28) is
		// removed, leaving [0, 20) and [28, 48), each trimmed by 10.
		{"idle=8", seq("20move", "8hold", "20move"), [][2]int{{0, 10}, {28, 38}}},
		// Non-idle runs shorter than 16 are dropped; a kept run of 16 trims to 6.
		{"short-runs", seq("10move", "10hold", "16move"), [][2]int{{20, 26}}},
		// step 0 is never idle.
		{"all-idle", seq("30hold"), nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := NonIdleRanges(tc.jv, cfg); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("NonIdleRanges = %v, want %v", got, tc.want)
			}
		})
	}
	// Thresholds are strict: a change of exactly 1e-3 on one joint is not idle.
	jv := make([][7]float64, 30)
	for i := range jv {
		jv[i][3] = float64(i) * 0.5e-3
	}
	if got := NonIdleRanges(jv, IdleFilterConfig{Delta: 1e-3, MinIdleLen: 7, MinNonIdleLen: 16}); len(got) != 0 {
		t.Fatalf("0.5e-3 steps: %v, want all idle", got)
	}
}

// sampleEpisodes loads the committed sample's episodes in file order.
func sampleEpisodes(t *testing.T) []*Episode {
	t.Helper()
	src := NewDirSource(sampleDir)
	shards, err := FindShards(context.Background(), src, "train")
	if err != nil {
		t.Fatal(err)
	}
	var eps []*Episode
	for _, sh := range shards {
		_, err := EachRecord(context.Background(), src, sh, 0, func(_ int, data []byte) error {
			ex, err := ParseExample(data)
			if err != nil {
				return err
			}
			ep, err := NewEpisode(ex)
			if err != nil {
				return err
			}
			eps = append(eps, ep)
			return nil
		}, nil)
		if err != nil {
			t.Fatal(err)
		}
	}
	return eps
}

// TestMakeClipSample runs MakeClip on the six demo roles (demo.go) with every filter on and off.
func TestMakeClipSample(t *testing.T) {
	eps := sampleEpisodes(t)
	if len(eps) != 6 {
		t.Fatalf("%d episodes in the sample, want 6", len(eps))
	}
	on := DefaultFilterConfig()
	on.SuccessOnly, on.Idle.Enabled, on.Motion.Enabled = true, true, true
	wantOn := []SkipReason{"", SkipIdle, SkipFailure, "", SkipStatic, SkipShort}
	wantOff := []SkipReason{"", "", "", "", "", SkipShort}
	cfg := DefaultClipConfig()
	for i, ep := range eps {
		for _, tc := range []struct {
			name    string
			filters FilterConfig
			want    SkipReason
		}{{"filters=on", on, wantOn[i]}, {"filters=off", DefaultFilterConfig(), wantOff[i]}} {
			clip, err := MakeClip(ep, cfg, tc.filters, rand.New(rand.NewPCG(1, uint64(i))))
			if got := SkipReasonOf(err); got != tc.want {
				t.Fatalf("episode %d (%s) %s: skip %q (%v), want %q", i, ep.FilePath, tc.name, got, err, tc.want)
			}
			if err != nil && tc.want == "" {
				t.Fatalf("episode %d: %v", i, err)
			}
			if clip == nil {
				continue
			}
			if len(clip.States) != 8 || len(clip.Actions) != 7 || len(clip.Frames) != 8 || len(clip.Extrinsics) != 8 {
				t.Fatalf("episode %d: clip sizes %d %d %d %d", i, len(clip.States), len(clip.Actions), len(clip.Frames), len(clip.Extrinsics))
			}
			all, err := ep.States()
			if err != nil {
				t.Fatal(err)
			}
			for k, idx := range clip.Indices {
				if !slices.Equal(clip.States[k], all[idx][:]) {
					t.Fatalf("episode %d: state %d is not step %d", i, k, idx)
				}
				want, _ := ep.Frame(cfg.Camera, idx)
				if &clip.Frames[k][0] != &want[0] {
					t.Fatalf("episode %d: frame %d is not a view of step %d", i, k, idx)
				}
			}
		}
	}
}

// TestMakeClipStartsAndCameras: random starts cover exactly [0, T−1−nframes] uniformly enough, a
// fixed start is honoured, and random_exterior picks both exterior cameras.
func TestMakeClipStartsAndCameras(t *testing.T) {
	ep := sampleEpisodes(t)[0]
	cfg := DefaultClipConfig()
	cfg.Camera = CameraRandomExterior
	starts := map[int]int{}
	cams := map[string]int{}
	rng := rand.New(rand.NewPCG(9, 9))
	for range 800 {
		clip, err := MakeClip(ep, cfg, DefaultFilterConfig(), rng)
		if err != nil {
			t.Fatal(err)
		}
		starts[clip.Indices[0]]++
		cams[clip.Camera]++
	}
	if len(starts) != 8 {
		t.Fatalf("starts %v, want all of 0..7 for T=40", starts)
	}
	for s, n := range starts {
		if s < 0 || s > 7 || n < 50 {
			t.Fatalf("start %d drawn %d times of 800 (starts %v)", s, n, starts)
		}
	}
	if cams[CameraExterior1] < 300 || cams[CameraExterior2] < 300 {
		t.Fatalf("cameras %v", cams)
	}
	cfg.Camera, cfg.Start = CameraWrist, 7
	clip, err := MakeClip(ep, cfg, DefaultFilterConfig(), rng)
	if err != nil || clip.Indices[0] != 7 || clip.Camera != CameraWrist {
		t.Fatalf("fixed start 7: %v, %v", clip, err)
	}
	cfg.Start = 8
	if _, err := MakeClip(ep, cfg, DefaultFilterConfig(), rng); SkipReasonOf(err) != SkipShort {
		t.Fatalf("start 8 of T=40: %v, want short", err)
	}
}

func TestEpisodeErrors(t *testing.T) {
	good := map[string]FeatureValue{
		KeyIsFirst:         Int64Feature(1, 0),
		KeyObsCartesianPos: FloatFeature(make([]float32, 12)...),
		KeyObsGripperPos:   FloatFeature(0, 0),
		KeyFilePath:        StringFeature("/a/success/b"),
	}
	with := func(key string, v *FeatureValue) map[string]FeatureValue {
		m := map[string]FeatureValue{}
		for k, x := range good {
			m[k] = x
		}
		if v == nil {
			delete(m, key)
		} else {
			m[key] = *v
		}
		return m
	}
	parse := func(m map[string]FeatureValue) (*Episode, error) {
		ex, err := ParseExample(MarshalExample(m))
		if err != nil {
			t.Fatal(err)
		}
		return NewEpisode(ex)
	}
	ep, err := parse(good)
	if err != nil || ep.Steps != 2 || !ep.Success() {
		t.Fatalf("good episode: %+v, %v", ep, err)
	}
	if _, err := ep.States(); err != nil {
		t.Fatal(err)
	}
	short := FloatFeature(1, 2, 3)
	wrongKind := Int64Feature(1, 2)
	for _, tc := range []struct {
		name, key string
		v         *FeatureValue
		where     string // "new" or "states"
		msg       string
	}{
		{"err=no-steps", KeyIsFirst, nil, "", ""},
		{"err=pose-length", KeyObsCartesianPos, &short, "states", "has 3 values, want 2×6"},
		{"err=gripper-kind", KeyObsGripperPos, &wrongKind, "states", "wrong feature kind"},
		{"err=no-gripper", KeyObsGripperPos, nil, "states", "missing steps/observation/gripper_position"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := with(tc.key, tc.v)
			if tc.name == "err=no-steps" {
				delete(m, KeyObsCartesianPos)
			}
			ep, err := parse(m)
			if tc.where == "states" && err == nil {
				_, err = ep.States()
			}
			if err == nil || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("error %v, want one containing %q", err, tc.msg)
			}
		})
	}
	// Without is_first, T comes from cartesian_position.
	ep, err = parse(with(KeyIsFirst, nil))
	if err != nil || ep.Steps != 2 {
		t.Fatalf("no is_first: %+v, %v", ep, err)
	}
}
