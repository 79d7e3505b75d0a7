package data

import (
	"context"
	"image"
	"math/rand/v2"
)

// A Format is one on-disk dataset layout the Loader and the inspection commands read: DROID's RLDS
// TFRecords (RLDS, this package) or LeRobot's parquet + mp4 (package data/lerobot). It lists the shards,
// the units of work the Loader deals out to its workers (AssignShards), and reads the episodes of one
// shard in order. An episode's index within its shard is its record index: with the shard index it
// identifies the episode everywhere (the per-clip random seed, the validation split, the feature cache).
type Format interface {
	// Shards lists the shards of the split in a fixed order; Shard.Episodes is −1 where unknown.
	Shards() []Shard
	// EachEpisode calls fn for each episode of shard in order whose record index keep accepts (nil keeps
	// all); episodes it skips are not parsed. A malformed episode goes to bad (it is skipped and counted,
	// not fatal); a corrupt record of the container goes to corrupt. Only I/O failures and fn's own
	// errors stop it.
	EachEpisode(ctx context.Context, shard Shard, keep func(record int) bool, fn func(record int, ep ClipEpisode) error,
		bad func(record int, err error), corrupt func(*CorruptRecordError)) error
	// Dims are the widths of a clip's state and action vectors.
	Dims() (state, action int)
	// CheckClip rejects a clip configuration the dataset cannot serve (a camera it does not have).
	CheckClip(cfg ClipConfig) error
	// String names the dataset in messages.
	String() string
}

// ClipEpisode is one episode as the Loader uses it, whatever its format.
type ClipEpisode interface {
	// Info describes the episode for reports.
	Info() EpisodeInfo
	// MakeClip cuts one clip (spec §7.3–7.5); an episode that gives none returns a *SkipError.
	MakeClip(cfg ClipConfig, filters FilterConfig, rng *rand.Rand) (*Clip, error)
	// DecodeClip writes the clip's frames into dst [3, T, H, W], normalized by pre (spec §7.7).
	DecodeClip(ctx context.Context, pre *Preprocessor, dst []float32, clip *Clip) error
}

// DecodeJob is one clip for a BatchDecoder: Episode's Clip, decoded into Dst [3, T, H, W].
type DecodeJob struct {
	Episode ClipEpisode
	Clip    *Clip
	Dst     []float32
}

// A BatchDecoder is a Format whose clips cost less decoded several at a time (LeRobot: one FFmpeg
// process for many clips, since starting FFmpeg costs more than decoding a clip). The Loader's workers
// cut DecodeBatch clips, then decode them with one DecodeClips call; a clip's random choices and the
// order of the samples are the same as decoding them one by one.
type BatchDecoder interface {
	// DecodeBatch is how many clips to pass DecodeClips at once (<= 1: one at a time).
	DecodeBatch() int
	// DecodeClips does what jobs[i].Episode.DecodeClip(ctx, pre, jobs[i].Dst, jobs[i].Clip) does, for
	// every i; errs[i] is job i's error.
	DecodeClips(ctx context.Context, pre *Preprocessor, jobs []DecodeJob) (errs []error)
}

// EpisodeInfo is what a report says about an episode before any clip is cut.
type EpisodeInfo struct {
	Steps       int    `json:"steps"`
	Success     bool   `json:"success"`
	FilePath    string `json:"file_path"`
	Instruction string `json:"language_instruction,omitempty"`
}

// RLDS is the DROID RLDS format (droid-rlds §1): TFRecord shards of tf.train.Example episodes.
type RLDS struct {
	src          Source
	shards       []Shard
	maxRecordLen int64
	// frameSizes are the frame sizes features.json declares, by feature key; frames of another size are
	// refused before decoding (nil: none declared).
	frameSizes map[string]image.Point
}

// OpenRLDS finds the shards of split in src.
func OpenRLDS(ctx context.Context, src Source, split string, maxRecordLen int64) (*RLDS, error) {
	shards, err := FindShards(ctx, src, split)
	if err != nil {
		return nil, err
	}
	if maxRecordLen <= 0 {
		maxRecordLen = DefaultMaxRecordLen
	}
	sizes, err := FrameSizes(ctx, src)
	if err != nil {
		return nil, err
	}
	return &RLDS{src: src, shards: shards, maxRecordLen: maxRecordLen, frameSizes: sizes}, nil
}

func (r *RLDS) Shards() []Shard { return r.shards }

// Dims are 7 and 7: spec §7.4–7.5.
func (r *RLDS) Dims() (int, int) { return 7, 7 }

func (r *RLDS) String() string { return r.src.String() }

// CheckClip checks the window and the DROID camera name.
func (r *RLDS) CheckClip(cfg ClipConfig) error { return cfg.Validate() }

func (r *RLDS) EachEpisode(ctx context.Context, shard Shard, keep func(int) bool, fn func(int, ClipEpisode) error,
	bad func(int, error), corrupt func(*CorruptRecordError)) error {
	_, err := EachRecord(ctx, r.src, shard, r.maxRecordLen, func(record int, data []byte) error {
		if keep != nil && !keep(record) {
			return nil
		}
		ex, err := ParseExample(data)
		if err == nil {
			var ep *Episode
			if ep, err = NewEpisode(ex); err == nil {
				return fn(record, rldsEpisode{ep, r.frameSizes})
			}
		}
		if bad != nil {
			bad(record, err)
		}
		return nil
	}, corrupt)
	return err
}

// Info describes a DROID episode: its steps, success flag, file path and first instruction.
func (ep *Episode) Info() EpisodeInfo {
	in := EpisodeInfo{Steps: ep.Steps, Success: ep.Success(), FilePath: ep.FilePath}
	if f, ok := ep.Example.Feature(KeyLanguage1); ok {
		if v, err := f.BytesAt(0); err == nil {
			in.Instruction = string(v)
		}
	}
	return in
}

// MakeClip is MakeClip(ep, …).
func (ep *Episode) MakeClip(cfg ClipConfig, filters FilterConfig, rng *rand.Rand) (*Clip, error) {
	return MakeClip(ep, cfg, filters, rng)
}

// EachRow gives every step's 7-D state and the pose delta from it to the step a stride later (spec
// §7.4–7.5): every state and action a clip of cfg can hold.
func (ep *Episode) EachRow(cfg ClipConfig, fn func(state, action []float64)) error {
	all, err := ep.States()
	if err != nil {
		return err
	}
	stride := cfg.Stride()
	for i := range all {
		var action []float64
		if i+stride < len(all) {
			a := StatesToActions([]State{all[i], all[i+stride]})[0]
			action = a[:]
		}
		fn(all[i][:], action)
	}
	return nil
}

// rldsEpisode is an episode of an RLDS dataset that declares its frame sizes.
type rldsEpisode struct {
	*Episode
	sizes map[string]image.Point
}

// DecodeClip decodes the clip's JPEG frames, refusing any of another size than features.json declares.
func (ep rldsEpisode) DecodeClip(ctx context.Context, pre *Preprocessor, dst []float32, clip *Clip) error {
	key := "steps/observation/" + clip.Camera
	pre.Expect(ep.sizes[key], FeaturesFile+" ("+key+")")
	defer pre.Expect(image.Point{}, "")
	return ep.Episode.DecodeClip(ctx, pre, dst, clip)
}

// DecodeClip decodes the clip's JPEG frames.
func (ep *Episode) DecodeClip(ctx context.Context, pre *Preprocessor, dst []float32, clip *Clip) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return pre.Clip(dst, clip.Frames)
}
