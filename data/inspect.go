package data

import (
	"context"
	"errors"
	"fmt"
)

// InspectOptions configures InspectEpisodes.
type InspectOptions struct {
	Split        string
	Clip         ClipConfig
	Filter       FilterConfig
	Seed         uint64 // for a random start or camera
	MaxRecordLen int64
	MaxEpisodes  int         // stop after this many records; 0 reads everything
	Warn         func(error) // corrupt records and truncated shards; nil discards them
}

// EpisodeReport describes one record of a shard for `vjepa-vk data inspect`.
type EpisodeReport struct {
	Shard       string        `json:"shard"`
	Index       int           `json:"index"` // record index within the shard
	Steps       int           `json:"steps"`
	Success     bool          `json:"success"`
	FilePath    string        `json:"file_path"`
	Instruction string        `json:"language_instruction,omitempty"`
	Clip        *ClipReport   `json:"clip,omitempty"`
	NoClip      *NoClipReport `json:"no_clip,omitempty"`
	Error       string        `json:"error,omitempty"` // malformed record: the rest is unknown
}

// ClipReport is the clip an episode gives.
type ClipReport struct {
	Camera  string      `json:"camera"`
	Indices []int       `json:"frame_indices"`
	Times   []float64   `json:"timestamps,omitempty"` // seconds, where the format has timestamps
	States  [][]float64 `json:"states"`               // [T][S]
	Actions [][]float64 `json:"actions"`              // [T−1][A]
}

// NoClipReport says why an episode gives no clip.
type NoClipReport struct {
	Reason SkipReason `json:"reason"`
	Detail string     `json:"detail"`
}

// InspectSummary are the totals of an inspection.
type InspectSummary struct {
	Shards int `json:"shards"`
	Counts
}

// InspectEpisodes walks every RLDS shard of the split in file order; see InspectFormat.
func InspectEpisodes(ctx context.Context, src Source, opts InspectOptions, fn func(*EpisodeReport) error) (InspectSummary, error) {
	if err := opts.Clip.Validate(); err != nil {
		return InspectSummary{}, fmt.Errorf("data: inspect: %w", err)
	}
	f, err := OpenRLDS(ctx, src, opts.Split, opts.MaxRecordLen)
	if err != nil {
		return InspectSummary{}, err
	}
	return InspectFormat(ctx, f, opts, fn)
}

// InspectFormat walks every shard of f in order and reports each episode through fn: its metadata and
// the clip MakeClip cuts from it (or why none). Frames are not decoded. opts.Split and
// opts.MaxRecordLen are the format's business.
func InspectFormat(ctx context.Context, f Format, opts InspectOptions, fn func(*EpisodeReport) error) (InspectSummary, error) {
	if err := opts.Clip.ValidateWindow(); err != nil {
		return InspectSummary{}, fmt.Errorf("data: inspect: %w", err)
	}
	if err := f.CheckClip(opts.Clip); err != nil {
		return InspectSummary{}, fmt.Errorf("data: inspect %s: %w", f, err)
	}
	shards := f.Shards()
	sum := InspectSummary{Shards: len(shards)}
	seen := 0
	errStop := errors.New("stop")
	for _, sh := range shards {
		more := func() bool { return opts.MaxEpisodes <= 0 || seen < opts.MaxEpisodes }
		err := f.EachEpisode(ctx, sh, func(int) bool { return more() }, func(record int, ep ClipEpisode) error {
			seen++
			sum.Records++
			if err := fn(inspectEpisode(sh, record, ep, opts, &sum.Counts)); err != nil {
				return err
			}
			if !more() {
				return errStop // stop reading the shard too
			}
			return nil
		}, func(record int, err error) {
			seen++
			sum.Records++
			sum.BadEpisodes++
			if ferr := fn(&EpisodeReport{Shard: sh.Name, Index: record, Error: err.Error()}); ferr != nil && opts.Warn != nil {
				opts.Warn(ferr)
			}
		}, func(c *CorruptRecordError) {
			if errors.Is(c, ErrTruncated) {
				sum.TruncatedShards++
			} else {
				sum.CorruptRecords++
			}
			if opts.Warn != nil {
				opts.Warn(c)
			}
		})
		if err == errStop || !more() {
			break
		}
		if err != nil {
			return sum, err
		}
	}
	return sum, nil
}

func inspectEpisode(sh Shard, record int, ep ClipEpisode, opts InspectOptions, c *Counts) *EpisodeReport {
	in := ep.Info()
	rep := &EpisodeReport{Shard: sh.Name, Index: record, Steps: in.Steps, Success: in.Success, FilePath: in.FilePath,
		Instruction: in.Instruction}
	c.Episodes++
	clip, err := ep.MakeClip(opts.Clip, opts.Filter, episodeRNG(opts.Seed, 0, sh.Index, record))
	var skip *SkipError
	switch {
	case errors.As(err, &skip):
		switch skip.Reason {
		case SkipShort:
			c.ShortEpisodes++
		case SkipFailure:
			c.FailureFiltered++
		case SkipIdle:
			c.IdleFiltered++
		case SkipStatic:
			c.StaticFiltered++
		}
		rep.NoClip = &NoClipReport{Reason: skip.Reason, Detail: skip.Detail}
	case err != nil:
		c.BadEpisodes++
		rep.Error = err.Error()
	default:
		c.Clips++
		rep.Clip = &ClipReport{Camera: clip.Camera, Indices: clip.Indices, Times: clip.Times, States: clip.States, Actions: clip.Actions}
	}
	return rep
}
