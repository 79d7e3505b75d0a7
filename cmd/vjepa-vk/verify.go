package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"

	"github.com/spf13/pflag"

	"github.com/vjepa-vk/vjepa-vk/train"
	"github.com/vjepa-vk/vjepa-vk/vk"
)

// runVerify runs a golden fixture folder (case.json, case.safetensors, checkpoint.pt) on the Vulkan device
// in fp32 and prints one JSON object with the error of every output, loss and gradient; it fails when any
// is out of tolerance.
func runVerify(ctx context.Context, args []string) error {
	fs := pflag.NewFlagSet("verify", pflag.ContinueOnError)
	dir := fs.String("fixture", "", "fixture folder (case.json, case.safetensors, checkpoint.pt)")
	validate := fs.Bool("validate", false, "enable the Khronos validation layer")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *dir == "" {
		return usageErrorf("--fixture DIR is required")
	}
	d, err := vk.Open(vk.Options{Validate: *validate})
	if err != nil {
		return err
	}
	defer d.Close()
	rep, err := train.VerifyFixture(d, *dir)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(os.Stdout)
	if err := enc.Encode(rep); err != nil {
		return err
	}
	if msgs := d.TakeMessages(); len(msgs) > 0 { // printed to stderr as they arrived
		return fmt.Errorf("verify %s: validation messages (printed above)", *dir)
	}
	if !rep.OK {
		return fmt.Errorf("verify %s: outputs out of tolerance", *dir)
	}
	return nil
}
