package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/vjepa-vk/vjepa-vk/data"
	"github.com/vjepa-vk/vjepa-vk/data/lerobot"
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
	format := fs.String("format", "auto", "rlds, lerobot, or auto (lerobot when meta/info.json exists)")
	var lr lerobot.Options
	lerobotFlags(fs, &lr.Mapping)
	fs.IntVar(&lr.DecodeBatch, "decode-batch", lerobot.DefaultDecodeBatch, "lerobot: clips decoded per FFmpeg process")
	fs.IntVar(&cfg.Workers, "workers", runtime.GOMAXPROCS(0), "decode workers")
	fs.IntVar(&cfg.Image.Height, "height", cfg.Image.Height, "output height")
	fs.IntVar(&cfg.Image.Width, "width", cfg.Image.Width, "output width")
	dataClipFlags(fs, &cfg.Clip, &cfg.Filter)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *source == "" || fs.NArg() != 0 || *clips < 1 {
		return usageErrorf("want --source, --clips >= 1 and no arguments")
	}
	src, err := openFormat(ctx, *source, *format, cfg.Split, lr)
	if err != nil {
		return fmt.Errorf("data bench: %w", err)
	}
	if c, ok := src.(io.Closer); ok {
		defer c.Close()
	}
	if l, ok := src.(*lerobot.Dataset); ok && !fs.Changed("camera") {
		cfg.Clip.Camera = l.Info.Cameras()[0]
	}
	res, err := benchData(ctx, src, cfg, *clips)
	if err != nil {
		return err
	}
	return printDataBench(os.Stdout, res, *asJSON)
}

type dataBenchResult struct {
	Workers        int         `json:"workers"`
	Cores          int         `json:"cores"`
	Clips          int         `json:"clips"`
	Seconds        float64     `json:"seconds"`
	ClipsPerSecond float64     `json:"clips_per_second"`
	ClipsPerCore   float64     `json:"clips_per_second_per_core"`
	FramesPerSec   float64     `json:"frames_per_second"`
	CPUSeconds     float64     `json:"cpu_seconds"`          // user+system time of the process and its children (FFmpeg)
	ChildSeconds   float64     `json:"child_cpu_seconds"`    // of that, the children's
	ClipsPerCPUSec float64     `json:"clips_per_cpu_second"` // less affected by other load on the machine
	Counts         data.Counts `json:"counts"`
}

// benchData pulls n clips through a loader with batch size 1 and no shuffling, repeating the shards.
func benchData(ctx context.Context, src data.Format, cfg data.LoaderConfig, n int) (dataBenchResult, error) {
	cfg.BatchSize, cfg.ShuffleBuffer, cfg.Epochs, cfg.DropLast = 1, 0, 0, false
	cfg.Clip.Start = -1
	cfg.Prefetch = 2 * cfg.Workers
	cfg.Warn = data.NewWarnings(func(msg string) { fmt.Fprintf(os.Stderr, "warning: %s\n", msg) }).Warn
	start, self0, child0 := time.Now(), cpuSeconds(syscall.RUSAGE_SELF), cpuSeconds(syscall.RUSAGE_CHILDREN)
	l, err := data.NewFormatLoader(ctx, src, cfg)
	if err != nil {
		return dataBenchResult{}, fmt.Errorf("data bench: %w", err)
	}
	defer l.Close()
	got := 0
	for got < n {
		b, err := l.Next(ctx)
		if err == io.EOF {
			break
		}
		if err != nil {
			return dataBenchResult{}, fmt.Errorf("data bench: %w", err)
		}
		got += b.B
	}
	secs, self, child := time.Since(start).Seconds(), cpuSeconds(syscall.RUSAGE_SELF)-self0, cpuSeconds(syscall.RUSAGE_CHILDREN)-child0
	cpu := self + child
	if got == 0 {
		return dataBenchResult{}, fmt.Errorf("data bench: %s gave no clips (counts %+v)", src, l.Counts())
	}
	cores := min(cfg.Workers, runtime.GOMAXPROCS(0))
	return dataBenchResult{
		Workers: cfg.Workers, Cores: cores, Clips: got, Seconds: secs,
		ClipsPerSecond: float64(got) / secs, ClipsPerCore: float64(got) / secs / float64(cores),
		FramesPerSec: float64(got*cfg.Clip.Frames) / secs, Counts: l.Counts(),
		CPUSeconds: cpu, ChildSeconds: child, ClipsPerCPUSec: float64(got) / cpu,
	}, nil
}

// cpuSeconds is the user and system CPU time this process (RUSAGE_SELF) or its finished children
// (RUSAGE_CHILDREN: the FFmpeg processes, each waited for) have used.
func cpuSeconds(who int) float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(who, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

func printDataBench(w io.Writer, r dataBenchResult, asJSON bool) error {
	if asJSON {
		return json.NewEncoder(w).Encode(r)
	}
	_, err := fmt.Fprintf(w, "%d clips in %.2fs with %d workers on %d cores: %.2f clips/s, %.2f clips/s per core, %.1f frames/s; "+
		"%.2fs CPU (%.2fs of it in child processes), %.2f clips per CPU-second\n",
		r.Clips, r.Seconds, r.Workers, r.Cores, r.ClipsPerSecond, r.ClipsPerCore, r.FramesPerSec, r.CPUSeconds, r.ChildSeconds, r.ClipsPerCPUSec)
	return err
}
