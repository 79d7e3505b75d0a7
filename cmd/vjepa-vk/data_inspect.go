package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/spf13/pflag"

	"github.com/vjepa-vk/vjepa-vk/data"
	"github.com/vjepa-vk/vjepa-vk/data/lerobot"
)

// dataClipFlags registers the clip and filter flags shared by data inspect and data bench.
func dataClipFlags(fs *pflag.FlagSet, clip *data.ClipConfig, filter *data.FilterConfig) {
	fs.StringVar(&clip.Camera, "camera", clip.Camera, "exterior_image_1_left, exterior_image_2_left, wrist_image_left or random_exterior; lerobot: a video or image feature (default: the first)")
	fs.IntVar(&clip.Frames, "frames", clip.Frames, "frames per clip")
	fs.Float64Var(&clip.FPS, "fps", clip.FPS, "clip frame rate; the stride is ceil(source-fps / fps)")
	fs.Float64Var(&clip.SourceFPS, "source-fps", clip.SourceFPS, "recording rate of the episodes")
	fs.BoolVar(&filter.SuccessOnly, "success-only", filter.SuccessOnly, "skip episodes whose file_path lacks \"success\"")
	fs.BoolVar(&filter.Idle.Enabled, "idle-filter", filter.Idle.Enabled, "openpi's idle rule on action_dict/joint_velocity")
	fs.BoolVar(&filter.Motion.Enabled, "motion-filter", filter.Motion.Enabled, "skip clips whose sampled states barely move")
}

// runDataInspect prints, per episode in file order, its length, success and the clip starting at
// --start, then a summary of the skip counters:
//
//	vjepa-vk data inspect --source PATH_OR_GS_URL [--camera C] [--frames 8] [--fps 4] [--start 0] [--json]
func runDataInspect(ctx context.Context, args []string) error {
	opts := data.InspectOptions{Split: "train", Clip: data.DefaultClipConfig(), Filter: data.DefaultFilterConfig()}
	opts.Clip.Start = 0
	fs := pflag.NewFlagSet("data inspect", pflag.ContinueOnError)
	source := fs.String("source", "", "dataset directory or gs://bucket/prefix (required)")
	asJSON := fs.Bool("json", false, "one JSON object per line")
	format := fs.String("format", "auto", "rlds, lerobot, or auto (lerobot when meta/info.json exists)")
	var mapping lerobot.Mapping
	lerobotFlags(fs, &mapping)
	fs.StringVar(&opts.Split, "split", opts.Split, "split to read")
	fs.IntVar(&opts.Clip.Start, "start", opts.Clip.Start, "first step of the clip, or -1 for a random start")
	fs.Uint64Var(&opts.Seed, "seed", 0, "seed for a random start or camera")
	fs.IntVar(&opts.MaxEpisodes, "max-episodes", 0, "stop after this many episodes (0: all)")
	dataClipFlags(fs, &opts.Clip, &opts.Filter)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *source == "" || fs.NArg() != 0 {
		return usageErrorf("want --source and no arguments")
	}
	opts.Warn = data.NewWarnings(func(msg string) { fmt.Fprintf(os.Stderr, "warning: %s\n", msg) }).Warn
	f, err := openFormat(ctx, *source, *format, opts.Split, lerobot.Options{Mapping: mapping})
	if err != nil {
		return fmt.Errorf("data inspect: %w", err)
	}
	if c, ok := f.(io.Closer); ok {
		defer c.Close()
	}
	if l, ok := f.(*lerobot.Dataset); ok && !fs.Changed("camera") {
		opts.Clip.Camera = l.Info.Cameras()[0]
	}
	return writeDataInspect(ctx, os.Stdout, f, opts, *asJSON)
}

// lerobotFlags registers the LeRobot column mapping (train's data.lerobot).
func lerobotFlags(fs *pflag.FlagSet, m *lerobot.Mapping) {
	def := lerobot.DefaultMapping()
	fs.StringVar(&m.State, "state", def.State, "lerobot: state column")
	fs.StringVar(&m.Action, "action", def.Action, "lerobot: action column")
	fs.StringVar(&m.ActionReduce, "action-reduce", def.ActionReduce, "lerobot: first, last, mean or sum of the actions between sampled frames")
	fs.StringVar(&m.Convert, "convert", "", "lerobot: \"\" or ee_pose (absolute end-effector pose -> official 7-D state and delta actions)")
	fs.IntSliceVar(&m.PoseIndices, "pose-indices", def.PoseIndices, "lerobot: positions of x y z roll pitch yaw gripper for --convert ee_pose")
	fs.StringVar(&m.Normalize, "normalize", "", "lerobot: \"\", mean_std or min_max (the state and action columns with meta/stats.json)")
}

// openFormat opens source as RLDS or LeRobot (with opts); auto picks LeRobot when meta/info.json exists.
func openFormat(ctx context.Context, source, format, split string, opts lerobot.Options) (data.Format, error) {
	src, err := data.OpenSource(ctx, source)
	if err != nil {
		return nil, err
	}
	if format == "auto" {
		format = "rlds"
		if rc, err := src.Open(ctx, lerobot.InfoFile); err == nil {
			rc.Close()
			format = "lerobot"
		}
	}
	switch format {
	case "rlds":
		return data.OpenRLDS(ctx, src, split, 0)
	case "lerobot":
		opts.Split = split
		return lerobot.Open(ctx, src, opts)
	}
	return nil, fmt.Errorf("--format %q: want rlds, lerobot or auto", format)
}

func writeDataInspect(ctx context.Context, w io.Writer, src data.Format, opts data.InspectOptions, asJSON bool) error {
	enc := json.NewEncoder(w)
	if !asJSON {
		fmt.Fprintf(w, "%-44s %5s %5s %-7s %s\n", "shard", "index", "steps", "success", "clip")
	}
	sum, err := data.InspectFormat(ctx, src, opts, func(r *data.EpisodeReport) error {
		if asJSON {
			return enc.Encode(r)
		}
		var what string
		switch {
		case r.Error != "":
			what = "error: " + r.Error
		case r.NoClip != nil:
			what = fmt.Sprintf("none (%s: %s)", r.NoClip.Reason, r.NoClip.Detail)
		default:
			what = fmt.Sprintf("%s %v", r.Clip.Camera, r.Clip.Indices)
		}
		_, err := fmt.Fprintf(w, "%-44s %5d %5d %-7v %s\n", r.Shard, r.Index, r.Steps, r.Success, what)
		return err
	})
	if err != nil {
		return fmt.Errorf("data inspect: %w", err)
	}
	if asJSON {
		return enc.Encode(map[string]any{"summary": sum})
	}
	_, err = fmt.Fprintf(w, "summary: %d shards, %d episodes, %d clips; corrupt records %d, truncated shards %d, bad episodes %d, "+
		"short %d, failure-filtered %d, idle-filtered %d, static-filtered %d\n",
		sum.Shards, sum.Episodes, sum.Clips, sum.CorruptRecords, sum.TruncatedShards, sum.BadEpisodes,
		sum.ShortEpisodes, sum.FailureFiltered, sum.IdleFiltered, sum.StaticFiltered)
	return err
}
