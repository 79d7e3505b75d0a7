package main

import (
	"context"
	"fmt"

	"github.com/spf13/pflag"

	"github.com/vjepa-vk/vjepa-vk/train"
)

// runReport draws PNG plots (losses, validation, lr, rollout error against step and horizon, gradient
// norm, throughput, loss scale) from the metrics.jsonl of one run folder, or of several in the same
// figures. It works on runs in progress too.
func runReport(ctx context.Context, args []string) error {
	fs := pflag.NewFlagSet("report", pflag.ContinueOnError)
	out := fs.StringP("out", "o", "", "folder for the PNG files (default RUN_DIR/plots for one run, ./plots for several)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return usageErrorf("want at least one RUN_DIR")
	}
	paths, err := train.Report(fs.Args(), *out)
	for _, p := range paths {
		fmt.Println(p)
	}
	return err
}
