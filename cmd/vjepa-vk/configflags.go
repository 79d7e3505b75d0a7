package main

import (
	"fmt"

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

// load reads the config with the --set overrides, then extra ones; cmd names the command in the error
// for a missing --config.
func (c configFlags) load(cmd string, extra ...string) (*train.Config, error) {
	if *c.path == "" {
		return nil, fmt.Errorf("%s: --config FILE is required", cmd)
	}
	return train.Load(*c.path, append(append([]string(nil), *c.sets...), extra...))
}
