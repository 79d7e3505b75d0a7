package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/spf13/pflag"
)

// helpRequest is what a command returns when asked for --help: dispatch prints the command's help on
// stdout and exits 0.
type helpRequest struct{ flags *pflag.FlagSet }

func (*helpRequest) Error() string { return "help requested" }

// usageError is a command line the command cannot run (unknown flag, missing argument): dispatch prints
// it with the command's usage line on stderr and exits 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

// parseFlags parses a command's flags. pflag's own printing is silenced so that dispatch decides where
// the help goes: --help and -h become a *helpRequest, a bad flag a *usageError.
func parseFlags(fs *pflag.FlagSet, args []string) error {
	fs.Usage = func() {}
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, pflag.ErrHelp):
		return &helpRequest{fs}
	}
	return &usageError{err.Error()}
}

// usageErrorf reports a command line that parsed but cannot run: a missing required flag, a wrong
// number of arguments.
func usageErrorf(format string, args ...any) error {
	return &usageError{fmt.Sprintf(format, args...)}
}

// commandHelp prints a command's usage line, summary and flags.
func commandHelp(w io.Writer, name string, c command, fs *pflag.FlagSet) {
	fmt.Fprintf(w, "usage: vjepa-vk %s %s\n\n%s\n", name, c.synopsis, c.summary)
	if fs != nil && fs.HasFlags() {
		fmt.Fprintf(w, "\nflags:\n%s", fs.FlagUsages())
	}
	if notes := commandNotes(name); notes != "" {
		fmt.Fprintf(w, "\n%s", notes)
	}
}

// commandNotes is what a command's help says after its flags (exit statuses, signals), if anything.
func commandNotes(name string) string {
	switch name {
	case "train":
		return trainNotes
	}
	return ""
}
