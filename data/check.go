package data

import (
	"context"
	"errors"
	"fmt"
	"math"
)

// CheckReport is what `vjepa-vk data check` says about a dataset: its size, the widths and statistics
// of the states and actions the model would see, and every problem found.
type CheckReport struct {
	Source        string        `json:"source"`
	Shards        int           `json:"shards"`
	Episodes      int           `json:"episodes"`
	Frames        int           `json:"frames"`
	Clips         int           `json:"clips"`
	StateDim      int           `json:"state_dim"`
	ActionDim     int           `json:"action_dim"`
	States        []DimStats    `json:"states"`  // per dimension, over every checked clip's states
	Actions       []DimStats    `json:"actions"` // per dimension, over every checked clip's actions
	ShortEpisodes []string      `json:"short_episodes,omitempty"`
	BadEpisodes   []string      `json:"bad_episodes,omitempty"`    // malformed records or rows
	DecodeErrors  []string      `json:"decode_failures,omitempty"` // frames that would not decode
	Gaps          []string      `json:"timestamp_gaps,omitempty"`  // from formats with timestamps
	Extra         any           `json:"dataset,omitempty"`         // the format's own description (fps, cameras, …)
	Counts        CheckCounters `json:"counts"`
}

// CheckCounters are the report's problem counts.
type CheckCounters struct {
	Short, Bad, DecodeFailures, Gaps int
}

// DimStats summarises one dimension.
type DimStats struct {
	Mean, Std, Min, Max float64
	n                   int
	sum, sq             float64
}

func (s *DimStats) add(v float64) {
	if s.n == 0 || v < s.Min {
		s.Min = v
	}
	if s.n == 0 || v > s.Max {
		s.Max = v
	}
	s.n++
	s.sum += v
	s.sq += v * v
}

func (s *DimStats) finish() {
	if s.n == 0 {
		return
	}
	s.Mean = s.sum / float64(s.n)
	s.Std = math.Sqrt(max(s.sq/float64(s.n)-s.Mean*s.Mean, 0))
}

// GapChecker is implemented by episodes with timestamps: it lists rows whose spacing is not 1/fps.
type GapChecker interface {
	TimestampGaps() []string
}

// Describer is implemented by formats with metadata worth reporting (fps, cameras, codecs).
type Describer interface {
	Describe() any
}

// Check walks every episode of f: cuts the clip cfg asks for (start cfg.Start, 0 by default), decodes
// its frames with pre (so a video or image that will not decode is found), gathers the states' and
// actions' statistics, and collects short and malformed episodes and timestamp gaps.
func Check(ctx context.Context, f Format, cfg ClipConfig, pre *Preprocessor, maxEpisodes int) (*CheckReport, error) {
	if err := f.CheckClip(cfg); err != nil {
		return nil, fmt.Errorf("data: check %s: %w", f, err)
	}
	r := &CheckReport{Source: f.String(), Shards: len(f.Shards())}
	r.StateDim, r.ActionDim = f.Dims()
	r.States, r.Actions = make([]DimStats, r.StateDim), make([]DimStats, r.ActionDim)
	if d, ok := f.(Describer); ok {
		r.Extra = d.Describe()
	}
	errStop := errors.New("stop")
	for _, sh := range f.Shards() {
		err := f.EachEpisode(ctx, sh, nil, func(record int, ep ClipEpisode) error {
			if maxEpisodes > 0 && r.Episodes >= maxEpisodes {
				return errStop
			}
			r.Episodes++
			in := ep.Info()
			r.Frames += in.Steps
			name := fmt.Sprintf("%s record %d (%s)", sh.Name, record, in.FilePath)
			if g, ok := ep.(GapChecker); ok {
				for _, gap := range g.TimestampGaps() {
					r.Gaps = append(r.Gaps, name+": "+gap)
				}
			}
			clip, err := ep.MakeClip(cfg, FilterConfig{}, episodeRNG(0, 0, sh.Index, record))
			if SkipReasonOf(err) == SkipShort {
				r.ShortEpisodes = append(r.ShortEpisodes, fmt.Sprintf("%s: %v", name, err))
				return nil
			}
			if err != nil {
				r.BadEpisodes = append(r.BadEpisodes, fmt.Sprintf("%s: %v", name, err))
				return nil
			}
			dst := make([]float32, 3*cfg.Frames*pre.cfg.Height*pre.cfg.Width)
			if err := ep.DecodeClip(ctx, pre, dst, clip); err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				r.DecodeErrors = append(r.DecodeErrors, fmt.Sprintf("%s: %v", name, err))
				return nil
			}
			r.Clips++
			for _, s := range clip.States {
				for k, v := range s {
					r.States[k].add(v)
				}
			}
			for _, a := range clip.Actions {
				for k, v := range a {
					r.Actions[k].add(v)
				}
			}
			return nil
		}, func(record int, err error) {
			r.BadEpisodes = append(r.BadEpisodes, fmt.Sprintf("%s record %d: %v", sh.Name, record, err))
		}, func(c *CorruptRecordError) {
			r.BadEpisodes = append(r.BadEpisodes, c.Error())
		})
		if err == errStop {
			break
		}
		if err != nil {
			return r, err
		}
	}
	for i := range r.States {
		r.States[i].finish()
	}
	for i := range r.Actions {
		r.Actions[i].finish()
	}
	r.Counts = CheckCounters{Short: len(r.ShortEpisodes), Bad: len(r.BadEpisodes), DecodeFailures: len(r.DecodeErrors), Gaps: len(r.Gaps)}
	return r, nil
}
