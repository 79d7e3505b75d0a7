package main

import (
	"context"
	"fmt"
	"os"

	"github.com/spf13/pflag"

	"github.com/vjepa-vk/vjepa-vk/dist"
	"github.com/vjepa-vk/vjepa-vk/train"
	"github.com/vjepa-vk/vjepa-vk/vk"
)

// runEncode fills a feature cache: the frozen encoder over the config's clips, features stored f16.
func runEncode(ctx context.Context, args []string) error {
	fs := pflag.NewFlagSet("encode", pflag.ContinueOnError)
	cf := addConfigFlags(fs, "YAML config (model, data)")
	out := fs.String("out", "", "cache folder to write")
	epochs := fs.Int("epochs", 1, "passes over the episodes (each draws new random clips)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *out == "" {
		return usageErrorf("--out DIR is required")
	}
	if l := dist.Launched(os.Getenv); l.Size > 1 {
		// Every rank would write the same cache: encode once, then train from the cache on N ranks.
		return fmt.Errorf("encode: started as %d ranks (%s): run it as one process; the cache then serves a job of any size", l.Size, l.Var)
	}
	cfg, err := cf.config()
	if err != nil {
		return err
	}
	d, err := vk.Open(vk.Options{})
	if err != nil {
		return err
	}
	defer d.Close()
	n, err := train.Encode(ctx, d, cfg, *out, train.EncodeOptions{Epochs: *epochs, Out: os.Stderr})
	if err != nil {
		return err
	}
	fmt.Printf("wrote %d clips to %s; train from it with --set data.feature_cache=%s\n", n, *out, *out)
	return nil
}
