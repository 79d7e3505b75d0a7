package data

import (
	"context"
	"fmt"
	"math"
	"testing"
)

// plainEpisode hides everything of an episode but ClipEpisode (no RowVectors).
type plainEpisode struct{ ClipEpisode }

// plainFormat gives plainEpisodes.
type plainFormat struct{ *RLDS }

func (p plainFormat) EachEpisode(ctx context.Context, shard Shard, keep func(int) bool, fn func(int, ClipEpisode) error,
	bad func(int, error), corrupt func(*CorruptRecordError)) error {
	return p.RLDS.EachEpisode(ctx, shard, keep, func(r int, ep ClipEpisode) error { return fn(r, plainEpisode{ep}) }, bad, corrupt)
}

// wantStats summarises vals [n][dim] per dimension, two-pass.
func wantStats(vals [][]float64, dim int) []DimStats {
	out := make([]DimStats, dim)
	for k := range out {
		var sum float64
		out[k].Min, out[k].Max = math.Inf(1), math.Inf(-1)
		for _, v := range vals {
			sum += v[k]
			out[k].Min, out[k].Max = min(out[k].Min, v[k]), max(out[k].Max, v[k])
		}
		out[k].Mean = sum / float64(len(vals))
		var sq float64
		for _, v := range vals {
			sq += (v[k] - out[k].Mean) * (v[k] - out[k].Mean)
		}
		out[k].Std = math.Sqrt(sq / float64(len(vals)))
	}
	return out
}

func compareStats(t *testing.T, what string, got, want []DimStats) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d dimensions, want %d", what, len(got), len(want))
	}
	for k := range want {
		g, w := got[k], want[k]
		// One-pass sums against two-pass: the variance differs by rounding only.
		if g.Min != w.Min || g.Max != w.Max || math.Abs(g.Mean-w.Mean) > 1e-12*(1+math.Abs(w.Mean)) || math.Abs(g.Std-w.Std) > 1e-6*(1+w.Std) {
			t.Errorf("%s[%d]: mean %v std %v min %v max %v, want %v %v %v %v", what, k, g.Mean, g.Std, g.Min, g.Max, w.Mean, w.Std, w.Min, w.Max)
		}
	}
}

// TestCheckRows: data check's statistics cover every step of every episode (states) and every action a
// clip can hold (the pose delta from each step to the step a stride later), not only the checked clips.
func TestCheckRows(t *testing.T) {
	f, err := OpenRLDS(context.Background(), NewDirSource(sampleDir), "train", 0)
	if err != nil {
		t.Fatal(err)
	}
	pre, err := NewPreprocessor(ImageConfig{Height: 16, Width: 16, MinRatio: 0.75, MaxRatio: 1.35})
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultClipConfig()
	cfg.Start = 0
	r, err := Check(context.Background(), f, cfg, pre, 0)
	if err != nil {
		t.Fatal(err)
	}
	var states, actions [][]float64
	steps := 0
	for _, sh := range f.Shards() {
		f.EachEpisode(context.Background(), sh, nil, func(_ int, ep ClipEpisode) error {
			all, err := ep.(rldsEpisode).States()
			if err != nil {
				t.Fatal(err)
			}
			steps += len(all)
			for i := range all {
				states = append(states, all[i][:])
				if i+4 < len(all) {
					a := StatesToActions([]State{all[i], all[i+4]})[0]
					actions = append(actions, a[:])
				}
			}
			return nil
		}, nil, nil)
	}
	// The sample's sixth episode is short: its rows count, it gives no clip.
	if r.StatsOver != "rows" || r.Episodes != 6 || r.Frames != steps || r.Clips != 5 || r.Counts != (CheckCounters{Short: 1}) {
		t.Fatalf("report: stats over %q, %d episodes, %d frames, %d clips, counts %+v; want rows, 6, %d, 5, one short",
			r.StatsOver, r.Episodes, r.Frames, r.Clips, r.Counts, steps)
	}
	compareStats(t, "states", r.States, wantStats(states, 7))
	compareStats(t, "actions", r.Actions, wantStats(actions, 7))

	// Without RowVectors: the clips' states and actions.
	p, err := Check(context.Background(), plainFormat{f}, cfg, pre, 0)
	if err != nil {
		t.Fatal(err)
	}
	var clipStates, clipActions [][]float64
	for _, sh := range f.Shards() {
		f.EachEpisode(context.Background(), sh, nil, func(_ int, ep ClipEpisode) error {
			clip, err := ep.MakeClip(cfg, FilterConfig{}, nil)
			if SkipReasonOf(err) == SkipShort {
				return nil
			}
			if err != nil {
				t.Fatal(err)
			}
			clipStates, clipActions = append(clipStates, clip.States...), append(clipActions, clip.Actions...)
			return nil
		}, nil, nil)
	}
	if p.StatsOver != "clips" || p.Clips != 5 {
		t.Fatalf("without RowVectors: stats over %q with %d clips, want clips and 5", p.StatsOver, p.Clips)
	}
	compareStats(t, "clip states", p.States, wantStats(clipStates, 7))
	compareStats(t, "clip actions", p.Actions, wantStats(clipActions, 7))
}

// TestCheckBatchDecoder: a BatchDecoder format is checked with calls of at most DecodeBatch clips and
// gives the same report; a clip that fails to decode is reported under its own episode.
func TestCheckBatchDecoder(t *testing.T) {
	open := func() *RLDS {
		f, err := OpenRLDS(context.Background(), NewDirSource(sampleDir), "train", 0)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	pre, _ := NewPreprocessor(ImageConfig{Height: 16, Width: 16, MinRatio: 0.75, MaxRatio: 1.35})
	cfg := DefaultClipConfig()
	cfg.Start = 0
	want, err := Check(context.Background(), open(), cfg, pre, 0)
	if err != nil {
		t.Fatal(err)
	}
	bf := &batchRLDS{RLDS: open(), size: 4}
	got, err := Check(context.Background(), bf, cfg, pre, 0)
	if err != nil {
		t.Fatal(err)
	}
	got.Source = want.Source
	if fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", want) || fmt.Sprint(bf.calls) != "[4 1]" {
		t.Fatalf("batched report %+v (calls %v)\nwant %+v (calls [4 1])", got, bf.calls, want)
	}
	var path string
	bf.EachEpisode(context.Background(), bf.Shards()[1], func(r int) bool { return r == 0 }, func(_ int, ep ClipEpisode) error {
		path = ep.Info().FilePath
		return nil
	}, nil, nil)
	bf.failPath = path
	failed, err := Check(context.Background(), bf, cfg, pre, 0)
	if err != nil {
		t.Fatal(err)
	}
	shard1 := bf.Shards()[1].Name
	if failed.Clips != 4 || len(failed.DecodeErrors) != 1 || failed.DecodeErrors[0] != fmt.Sprintf("%s record 0 (%s): injected decode failure", shard1, path) {
		t.Fatalf("%d clips, decode failures %q; want 4 and one naming %s record 0", failed.Clips, failed.DecodeErrors, shard1)
	}
}
