package main

import (
	"context"
	"fmt"
	"os"

	"github.com/spf13/pflag"

	"github.com/vjepa-vk/vjepa-vk/train"
)

// runReport draws PNG plots (losses, validation, lr, rollout error, gradient norm) from a run folder's
// metrics.jsonl. It works on a run in progress too.
func runReport(ctx context.Context, args []string) error {
	fs := pflag.NewFlagSet("report", pflag.ContinueOnError)
	out := fs.StringP("out", "o", "", "folder for the PNG files (default RUN_DIR/plots)")
	fs.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: vjepa-vk report [flags] RUN_DIR\n\nflags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return fmt.Errorf("report: want exactly one RUN_DIR, got %d arguments", fs.NArg())
	}
	paths, err := train.Report(fs.Arg(0), *out)
	for _, p := range paths {
		fmt.Println(p)
	}
	return err
}
