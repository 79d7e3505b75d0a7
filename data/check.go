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
	Source    string `json:"source"`
	Shards    int    `json:"shards"`
	Episodes  int    `json:"episodes"`
	Frames    int    `json:"frames"`
	Clips     int    `json:"clips"`
	StateDim  int    `json:"state_dim"`
	ActionDim int    `json:"action_dim"`
	// StatsOver says what States and Actions summarise: "rows" (episodes with RowVectors: the state of
	// every row of every episode, short ones included, and every action a clip can hold: from each row
	// to the row a clip's stride later) or "clips" (the checked clips' states and actions only).
	StatsOver     string        `json:"stats_over"`
	States        []DimStats    `json:"states"`  // per dimension
	Actions       []DimStats    `json:"actions"` // per dimension
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

// RowVectors is implemented by episodes that give the states and actions the model sees for every row,
// without decoding a frame: fn gets the mapped state of each row i and the action from row i to row
// i + cfg.Stride() (the clip's next frame), or nil where the episode ends first.
type RowVectors interface {
	EachRow(cfg ClipConfig, fn func(state, action []float64)) error
}

// Describer is implemented by formats with metadata worth reporting (fps, cameras, codecs).
type Describer interface {
	Describe() any
}

// Check walks every episode of f: cuts the clip cfg asks for (start cfg.Start, 0 by default), decodes
// its frames with pre (so a video or image that will not decode is found; several clips at a time with
// a BatchDecoder), gathers the states' and actions' statistics (over every row with RowVectors, else over
// the clips), and collects short and malformed episodes and timestamp gaps.
func Check(ctx context.Context, f Format, cfg ClipConfig, pre *Preprocessor, maxEpisodes int) (*CheckReport, error) {
	if err := f.CheckClip(cfg); err != nil {
		return nil, fmt.Errorf("data: check %s: %w", f, err)
	}
	r := &CheckReport{Source: f.String(), Shards: len(f.Shards()), StatsOver: "rows"}
	r.StateDim, r.ActionDim = f.Dims()
	r.States, r.Actions = make([]DimStats, r.StateDim), make([]DimStats, r.ActionDim)
	if d, ok := f.(Describer); ok {
		r.Extra = d.Describe()
	}
	addVectors := func(state, action []float64) {
		for k, v := range state {
			r.States[k].add(v)
		}
		for k, v := range action {
			r.Actions[k].add(v)
		}
	}
	batch, size := BatchDecoder(nil), 1
	if b, ok := f.(BatchDecoder); ok && b.DecodeBatch() > 1 {
		batch, size = b, b.DecodeBatch()
	}
	var names []string
	var jobs []DecodeJob
	var clipStats []bool // per job: add its clip's vectors (the episode has no RowVectors)
	decode := func() error {
		var errs []error
		if batch != nil && len(jobs) > 0 {
			errs = batch.DecodeClips(ctx, pre, jobs)
		} else {
			for _, j := range jobs {
				errs = append(errs, j.Episode.DecodeClip(ctx, pre, j.Dst, j.Clip))
			}
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		for i, j := range jobs {
			if errs[i] != nil {
				r.DecodeErrors = append(r.DecodeErrors, fmt.Sprintf("%s: %v", names[i], errs[i]))
				continue
			}
			r.Clips++
			if clipStats[i] {
				r.StatsOver = "clips"
				for t, s := range j.Clip.States {
					var a []float64
					if t < len(j.Clip.Actions) {
						a = j.Clip.Actions[t]
					}
					addVectors(s, a)
				}
			}
		}
		names, jobs, clipStats = names[:0], jobs[:0], clipStats[:0]
		return nil
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
			} else if err != nil {
				r.BadEpisodes = append(r.BadEpisodes, fmt.Sprintf("%s: %v", name, err))
				return nil
			}
			// A short episode's rows count too: the model sees none of them, but they are the dataset's.
			rows, ok := ep.(RowVectors)
			if ok {
				if err := rows.EachRow(cfg, addVectors); err != nil {
					r.BadEpisodes = append(r.BadEpisodes, fmt.Sprintf("%s: %v", name, err))
					return nil
				}
			}
			if clip == nil {
				return nil
			}
			names = append(names, name)
			jobs = append(jobs, DecodeJob{Episode: ep, Clip: clip, Dst: make([]float32, 3*cfg.Frames*pre.cfg.Height*pre.cfg.Width)})
			clipStats = append(clipStats, !ok)
			if len(jobs) < size {
				return nil
			}
			return decode()
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
	if err := decode(); err != nil {
		return r, err
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
