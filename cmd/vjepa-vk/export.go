package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/spf13/pflag"

	"github.com/vjepa-vk/vjepa-vk/train"
)

// runExport writes a PEFT adapter (adapter_model.safetensors + adapter_config.json) from any trainer
// checkpoint, configured as the checkpoint's saved config says. It needs no device.
func runExport(ctx context.Context, args []string) error {
	fs := pflag.NewFlagSet("export", pflag.ContinueOnError)
	which := fs.String("checkpoint", "latest", `"best" (lowest validation loss), "latest", a checkpoint file or a checkpoint folder`)
	run := fs.String("run", "", "run folder (logging.dir) whose checkpoints best and latest choose from")
	config := fs.String("config", "", "or: the run's config, whose checkpoint.dir best and latest choose from")
	out := fs.String("out", "", "output folder for the adapter (required)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *out == "" {
		return usageErrorf("--out DIR is required")
	}
	dir := ""
	if *which == "best" || *which == "latest" {
		if (*run == "") == (*config == "") {
			return usageErrorf("--checkpoint %s needs the run: give --run RUN_DIR or --config FILE (one of them)", *which)
		}
		var err error
		if dir, err = checkpointDir(*run, *config); err != nil {
			return fmt.Errorf("export: %w", err)
		}
	}
	path, err := train.FindCheckpoint(*which, dir)
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	step, err := train.ExportCheckpoint(path, *out)
	if err != nil {
		return err
	}
	fmt.Printf("exported the adapter of step %d (%s) to %s\n", step, path, *out)
	return nil
}

// checkpointDir is the checkpoint folder of --config (checkpoint.dir) or of --run (RUN_DIR/checkpoints,
// or RUN_DIR itself when it holds the checkpoints).
func checkpointDir(run, config string) (string, error) {
	if config != "" {
		cfg, err := train.Load(config, nil)
		if err != nil {
			return "", err
		}
		return cfg.Checkpoint.Dir, nil
	}
	sub := filepath.Join(run, "checkpoints")
	if _, err := os.Stat(sub); errors.Is(err, fs.ErrNotExist) {
		return run, nil
	}
	return sub, nil
}
