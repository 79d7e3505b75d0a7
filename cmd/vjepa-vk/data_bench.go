package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"time"

	"github.com/spf13/pflag"

	"github.com/vjepa-vk/vjepa-vk/data"
)

// runDataBench measures how fast the loader turns episodes into decoded clips:
//
//	vjepa-vk data bench --source PATH_OR_GS_URL [--workers N] [--clips N]
func runDataBench(ctx context.Context, args []string) error {
	cfg := data.DefaultLoaderConfig()
	fs := pflag.NewFlagSet("data bench", pflag.ContinueOnError)
	source := fs.String("source", "", "dataset directory or gs://bucket/prefix (required)")
	clips := fs.Int("clips", 64, "clips to decode (the shards repeat as needed)")
	asJSON := fs.Bool("json", false, "print one JSON object")
	fs.IntVar(&cfg.Workers, "workers", runtime.GOMAXPROCS(0), "decode workers")
	fs.IntVar(&cfg.Image.Height, "height", cfg.Image.Height, "output height")
	fs.IntVar(&cfg.Image.Width, "width", cfg.Image.Width, "output width")
	clipFlags(fs, &cfg.Clip, &cfg.Filter)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *source == "" || fs.NArg() != 0 || *clips < 1 {
		fs.PrintDefaults()
		return fmt.Errorf("data bench: want --source, --clips >= 1 and no arguments")
	}
	src, err := data.OpenSource(ctx, *source)
	if err != nil {
		return fmt.Errorf("data bench: %w", err)
	}
	res, err := bench(ctx, src, cfg, *clips)
	if err != nil {
		return err
	}
	return printBench(os.Stdout, res, *asJSON)
}

type benchResult struct {
	Workers        int         `json:"workers"`
	Cores          int         `json:"cores"`
	Clips          int         `json:"clips"`
	Seconds        float64     `json:"seconds"`
	ClipsPerSecond float64     `json:"clips_per_second"`
	ClipsPerCore   float64     `json:"clips_per_second_per_core"`
	FramesPerSec   float64     `json:"frames_per_second"`
	Counts         data.Counts `json:"counts"`
}

// bench pulls n clips through a loader with batch size 1 and no shuffling, repeating the shards.
func bench(ctx context.Context, src data.Source, cfg data.LoaderConfig, n int) (benchResult, error) {
	cfg.BatchSize, cfg.ShuffleBuffer, cfg.Epochs, cfg.DropLast = 1, 0, 0, false
	cfg.Clip.Start = -1
	cfg.Prefetch = 2 * cfg.Workers
	cfg.Warn = func(err error) { fmt.Fprintf(os.Stderr, "warning: %v\n", err) }
	start := time.Now()
	l, err := data.NewLoader(ctx, src, cfg)
	if err != nil {
		return benchResult{}, fmt.Errorf("data bench: %w", err)
	}
	defer l.Close()
	got := 0
	for got < n {
		b, err := l.Next(ctx)
		if err == io.EOF {
			break
		}
		if err != nil {
			return benchResult{}, fmt.Errorf("data bench: %w", err)
		}
		got += b.B
	}
	secs := time.Since(start).Seconds()
	if got == 0 {
		return benchResult{}, fmt.Errorf("data bench: %s gave no clips (counts %+v)", src, l.Counts())
	}
	cores := min(cfg.Workers, runtime.GOMAXPROCS(0))
	return benchResult{
		Workers: cfg.Workers, Cores: cores, Clips: got, Seconds: secs,
		ClipsPerSecond: float64(got) / secs, ClipsPerCore: float64(got) / secs / float64(cores),
		FramesPerSec: float64(got*cfg.Clip.Frames) / secs, Counts: l.Counts(),
	}, nil
}

func printBench(w io.Writer, r benchResult, asJSON bool) error {
	if asJSON {
		return json.NewEncoder(w).Encode(r)
	}
	_, err := fmt.Fprintf(w, "%d clips in %.2fs with %d workers on %d cores: %.2f clips/s, %.2f clips/s per core, %.1f frames/s\n",
		r.Clips, r.Seconds, r.Workers, r.Cores, r.ClipsPerSecond, r.ClipsPerCore, r.FramesPerSec)
	return err
}
