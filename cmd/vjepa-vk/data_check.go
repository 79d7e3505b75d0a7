package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/pflag"

	"github.com/vjepa-vk/vjepa-vk/data"
	"github.com/vjepa-vk/vjepa-vk/data/lerobot"
)

// runDataCheck decodes one clip of every episode of a dataset (RLDS or LeRobot) and reports its size,
// the state and action widths and per-dimension statistics (over every row: each row's state, and the
// action from each row to the next sampled one), and every short or malformed episode, decode failure
// and timestamp gap; it fails when it found a problem:
//
//	vjepa-vk data check --source PATH_OR_GS_URL [--format auto] [--camera C] [--frames 8] [--fps 4] [--json]
func runDataCheck(ctx context.Context, args []string) error {
	clip, filter := data.DefaultClipConfig(), data.DefaultFilterConfig()
	clip.Start = 0
	fs := pflag.NewFlagSet("data check", pflag.ContinueOnError)
	source := fs.String("source", "", "dataset directory or gs://bucket/prefix (required)")
	asJSON := fs.Bool("json", false, "print one JSON object")
	format := fs.String("format", "auto", "rlds, lerobot, or auto (lerobot when meta/info.json exists)")
	split := fs.String("split", "train", "split to read")
	maxEpisodes := fs.Int("max-episodes", 0, "stop after this many episodes (0: all)")
	size := fs.Int("size", 64, "side of the decoded frames (decoding is what is checked; the size barely matters)")
	var mapping lerobot.Mapping
	lerobotFlags(fs, &mapping)
	dataClipFlags(fs, &clip, &filter)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *source == "" || fs.NArg() != 0 {
		return usageErrorf("want --source and no arguments")
	}
	f, err := openFormat(ctx, *source, *format, *split, lerobot.Options{Mapping: mapping})
	if err != nil {
		return fmt.Errorf("data check: %w", err)
	}
	if c, ok := f.(io.Closer); ok {
		defer c.Close()
	}
	if l, ok := f.(*lerobot.Dataset); ok && !fs.Changed("camera") {
		clip.Camera = l.Info.Cameras()[0]
	}
	pre, err := data.NewPreprocessor(data.ImageConfig{Height: *size, Width: *size, MinRatio: 0.75, MaxRatio: 1.35})
	if err != nil {
		return err
	}
	r, err := data.Check(ctx, f, clip, pre, *maxEpisodes)
	if err != nil {
		return fmt.Errorf("data check: %w", err)
	}
	if err := printDataCheck(os.Stdout, r, *asJSON); err != nil {
		return err
	}
	if n := r.Counts.Short + r.Counts.Bad + r.Counts.DecodeFailures + r.Counts.Gaps; n > 0 {
		return fmt.Errorf("data check: %s: %d problems (%d short, %d bad, %d decode failures, %d timestamp gaps)",
			r.Source, n, r.Counts.Short, r.Counts.Bad, r.Counts.DecodeFailures, r.Counts.Gaps)
	}
	return nil
}

func printDataCheck(w io.Writer, r *data.CheckReport, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	fmt.Fprintf(w, "%s: %d shards, %d episodes, %d frames, %d clips decoded\n", r.Source, r.Shards, r.Episodes, r.Frames, r.Clips)
	if r.Extra != nil {
		b, _ := json.Marshal(r.Extra)
		fmt.Fprintf(w, "dataset: %s\n", b)
	}
	for _, part := range []struct {
		name string
		dim  int
		st   []data.DimStats
	}{{"state", r.StateDim, r.States}, {"action", r.ActionDim, r.Actions}} {
		over := "every row"
		switch {
		case r.StatsOver == "clips":
			over = "the checked clips"
		case part.name == "action":
			over = "every row (the action from it to the row a clip's stride later)"
		}
		fmt.Fprintf(w, "%s: %d-D, statistics over %s\n", part.name, part.dim, over)
		for i, s := range part.st {
			fmt.Fprintf(w, "  [%d] mean %10.4g  std %10.4g  min %10.4g  max %10.4g\n", i, s.Mean, s.Std, s.Min, s.Max)
		}
	}
	for _, p := range []struct {
		name string
		list []string
	}{{"short episodes", r.ShortEpisodes}, {"bad episodes", r.BadEpisodes}, {"decode failures", r.DecodeErrors}, {"timestamp gaps", r.Gaps}} {
		fmt.Fprintf(w, "%s: %d\n", p.name, len(p.list))
		if len(p.list) > 0 {
			fmt.Fprintf(w, "  %s\n", strings.Join(p.list, "\n  "))
		}
	}
	return nil
}
