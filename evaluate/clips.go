package evaluate

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/vjepa-vk/vjepa-vk/data"
	"github.com/vjepa-vk/vjepa-vk/plan"
)

// Clip is one held-out clip, encoded: T frames with the recorded states and actions between them.
type Clip struct {
	Shard   int         // position of the episode's shard in the split
	Record  int         // the episode's record index in its shard
	Start   int         // the episode step of frame 0
	Frames  []plan.Rep  // [T] representations (after LN₀)
	States  [][]float64 // [T][Z]
	Actions [][]float64 // [T−1][A]
}

// Encoder turns the frames of a clip [3, T, H, W] (normalized by the data pipeline) into one
// representation per frame; plan.WorldModel.EncodeClip is one.
type Encoder interface {
	EncodeClip(frames []float32, T int) ([]plan.Rep, error)
}

// LoadClips reads clips of f with the loader configuration lc (its Clip window, Image, Keep and Seed;
// one clip per batch is read, in order, no shuffling) until max clips or lc.Epochs passes, and encodes
// each with enc. It returns the clips and the loader's counts (skipped and corrupt episodes).
func LoadClips(ctx context.Context, f data.Format, lc data.LoaderConfig, max int, enc Encoder) ([]Clip, data.Counts, error) {
	if max < 1 {
		return nil, data.Counts{}, fmt.Errorf("evaluate: load %d clips: want >= 1", max)
	}
	lc.BatchSize, lc.Workers, lc.ShuffleBuffer, lc.DropLast = 1, 1, 0, false
	if lc.Epochs < 1 {
		lc.Epochs = 1
	}
	l, err := data.NewFormatLoader(ctx, f, lc)
	if err != nil {
		return nil, data.Counts{}, err
	}
	defer l.Close()
	var clips []Clip
	for len(clips) < max {
		b, err := l.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, l.Counts(), fmt.Errorf("evaluate: %s: %w", f, err)
		}
		reps, err := enc.EncodeClip(b.Frames, b.T)
		if err != nil {
			return nil, l.Counts(), err
		}
		c := Clip{Frames: reps, States: rows(b.States, b.S), Actions: rows(b.Actions, b.A)}
		if len(b.Samples) == 1 && b.Samples[0] != nil {
			s := b.Samples[0]
			c.Shard, c.Record = s.ShardIndex, s.Record
			if s.Clip != nil {
				c.Start = s.Clip.Start
			}
		}
		clips = append(clips, c)
	}
	if len(clips) == 0 {
		return nil, l.Counts(), fmt.Errorf("evaluate: %s gave no clip of %d frames (%+v)", f, lc.Clip.Frames, l.Counts())
	}
	return clips, l.Counts(), nil
}

// rows splits v [N·w] into N rows of w, in float64.
func rows(v []float32, w int) [][]float64 {
	if w == 0 {
		return nil
	}
	out := make([][]float64, len(v)/w)
	for i := range out {
		out[i] = make([]float64, w)
		for k := range w {
			out[i][k] = float64(v[i*w+k])
		}
	}
	return out
}
