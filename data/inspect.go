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
	Camera  string   `json:"camera"`
	Indices []int    `json:"frame_indices"`
	States  []State  `json:"states"`  // [T][7]
	Actions []Action `json:"actions"` // [T−1][7]
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

// InspectEpisodes walks every shard of the split in file order and reports each record through fn:
// its metadata and the clip MakeClip cuts from it (or why none). Frames are not decoded.
func InspectEpisodes(ctx context.Context, src Source, opts InspectOptions, fn func(*EpisodeReport) error) (InspectSummary, error) {
	if err := opts.Clip.Validate(); err != nil {
		return InspectSummary{}, fmt.Errorf("data: inspect: %w", err)
	}
	shards, err := FindShards(ctx, src, opts.Split)
	if err != nil {
		return InspectSummary{}, err
	}
	sum := InspectSummary{Shards: len(shards)}
	seen := 0
	errStop := errors.New("stop")
	for _, sh := range shards {
		_, err := EachRecord(ctx, src, sh, opts.MaxRecordLen, func(record int, data []byte) error {
			if opts.MaxEpisodes > 0 && seen >= opts.MaxEpisodes {
				return errStop
			}
			seen++
			sum.Records++
			rep := inspectRecord(sh, record, data, opts, &sum.Counts)
			return fn(rep)
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
		if err == errStop {
			break
		}
		if err != nil {
			return sum, err
		}
	}
	return sum, nil
}

func inspectRecord(sh Shard, record int, data []byte, opts InspectOptions, c *Counts) *EpisodeReport {
	rep := &EpisodeReport{Shard: sh.Name, Index: record}
	ex, err := ParseExample(data)
	if err != nil {
		c.BadEpisodes++
		rep.Error = err.Error()
		return rep
	}
	ep, err := NewEpisode(ex)
	if err != nil {
		c.BadEpisodes++
		rep.Error = err.Error()
		return rep
	}
	c.Episodes++
	rep.Steps, rep.Success, rep.FilePath = ep.Steps, ep.Success(), ep.FilePath
	if f, ok := ex.Feature(KeyLanguage1); ok {
		if v, err := f.BytesAt(0); err == nil {
			rep.Instruction = string(v)
		}
	}
	clip, err := MakeClip(ep, opts.Clip, opts.Filter, episodeRNG(opts.Seed, 0, sh.Index, record))
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
		rep.Clip = &ClipReport{Camera: clip.Camera, Indices: clip.Indices, States: clip.States, Actions: clip.Actions}
	}
	return rep
}
