package lerobot

import (
	"context"
	"slices"
	"sync"
	"testing"

	"github.com/vjepa-vk/vjepa-vk/data"
	"github.com/vjepa-vk/vjepa-vk/dist/disttest"
)

// TestLoaderRanks: 2 ranks of a distributed loader over a video dataset, whose clips travel decoded
// (they have no encoded frames), draw exactly the batches of one loader with both ranks' clips and
// workers: the same episodes, clip starts, states, actions and pixels.
func TestLoaderRanks(t *testing.T) {
	needFFmpeg(t)
	const steps = 5 // past the 4 episodes of the first epoch
	cfg := data.DefaultLoaderConfig()
	cfg.Clip = clipConfig(DemoVideoKey, 4)
	cfg.Clip.Start = -1
	cfg.Image = data.ImageConfig{Height: 16, Width: 16, MinRatio: 0.75, MaxRatio: 1.35}
	cfg.ShuffleBuffer, cfg.Epochs = 3, 0
	take := func(cfg data.LoaderConfig) ([]*data.Batch, error) {
		l, err := data.NewFormatLoader(context.Background(), open(t, fixtures[1].dir, Mapping{ActionReduce: "sum"}), cfg)
		if err != nil {
			return nil, err
		}
		defer l.Close()
		var out []*data.Batch
		for range steps {
			b, err := l.Next(context.Background())
			if err != nil {
				return nil, err
			}
			out = append(out, b)
		}
		return out, nil
	}
	one := cfg
	one.BatchSize, one.Workers = 2, 2
	want, err := take(one)
	if err != nil {
		t.Fatal(err)
	}
	got := make([][]*data.Batch, 2)
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for r, comm := range disttest.New(2) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := cfg
			c.BatchSize, c.Workers, c.Exchange = 1, 1, comm
			if got[r], errs[r] = take(c); errs[r] != nil {
				comm.Abort(errs[r])
			}
		}()
	}
	wg.Wait()
	for r, err := range errs {
		if err != nil {
			t.Fatalf("rank %d: %v", r, err)
		}
	}
	for i, w := range want {
		for r := range 2 {
			g := got[r][i]
			s, ws := g.Samples[0], w.Samples[r]
			per := len(g.Frames)
			if s.ShardIndex != ws.ShardIndex || s.Record != ws.Record || s.Clip.Start != ws.Clip.Start ||
				!slices.Equal(g.States, w.States[r*len(g.States):(r+1)*len(g.States)]) ||
				!slices.Equal(g.Actions, w.Actions[r*len(g.Actions):(r+1)*len(g.Actions)]) ||
				!slices.Equal(g.Frames, w.Frames[r*per:(r+1)*per]) {
				t.Fatalf("batch %d, rank %d: shard %d record %d start %d, want the single loader's clip %d (shard %d record %d start %d) bit for bit",
					i, r, s.ShardIndex, s.Record, s.Clip.Start, r, ws.ShardIndex, ws.Record, ws.Clip.Start)
			}
		}
	}
}
