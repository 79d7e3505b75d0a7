package main

import (
	"github.com/spf13/pflag"

	"github.com/vjepa-vk/vjepa-vk/train"
)

// configFlags are the --config and --set flags of every command that runs a config.
type configFlags struct {
	path *string
	sets *[]string
}

func addConfigFlags(fs *pflag.FlagSet, usage string) configFlags {
	return configFlags{
		path: fs.String("config", "", usage),
		sets: fs.StringArray("set", nil, "override a config value: section.key=value (repeatable)"),
	}
}

// config reads the config with the --set overrides, then extra ones. A missing --config is a usage
// error (exit status 2); dispatch names the command.
func (c configFlags) config(extra ...string) (*train.Config, error) {
	if *c.path == "" {
		return nil, usageErrorf("--config FILE is required")
	}
	return train.Load(*c.path, append(append([]string(nil), *c.sets...), extra...))
}
