package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/spf13/pflag"

	"github.com/vjepa-vk/vjepa-vk/data"
)

// dataClipFlags registers the clip and filter flags shared by data inspect and data bench.
func dataClipFlags(fs *pflag.FlagSet, clip *data.ClipConfig, filter *data.FilterConfig) {
	fs.StringVar(&clip.Camera, "camera", clip.Camera, "exterior_image_1_left, exterior_image_2_left, wrist_image_left or random_exterior")
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
	src, err := data.OpenSource(ctx, *source)
	if err != nil {
		return fmt.Errorf("data inspect: %w", err)
	}
	opts.Warn = data.NewWarnings(func(msg string) { fmt.Fprintf(os.Stderr, "warning: %s\n", msg) }).Warn
	return writeDataInspect(ctx, os.Stdout, src, opts, *asJSON)
}

func writeDataInspect(ctx context.Context, w io.Writer, src data.Source, opts data.InspectOptions, asJSON bool) error {
	enc := json.NewEncoder(w)
	if !asJSON {
		fmt.Fprintf(w, "%-44s %5s %5s %-7s %s\n", "shard", "index", "steps", "success", "clip")
	}
	sum, err := data.InspectEpisodes(ctx, src, opts, func(r *data.EpisodeReport) error {
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
