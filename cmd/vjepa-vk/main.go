// Command vjepa-vk fine-tunes the V-JEPA 2-AC action-conditioned world model with LoRA on any Vulkan
// device. main only parses the subcommand name and dispatches; each subcommand lives in its own file as
// run<Name>(ctx, args) and parses its own flags with parseFlags (usage.go).
//
// Exit status: 0 done, 1 failed, 2 the command line was wrong (usage on stderr), 75 interrupted with the
// work so far saved (train: run it again with --resume auto). Help that was asked for (--help, -h,
// help [command]) goes to stdout with status 0.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"

	"github.com/vjepa-vk/vjepa-vk/train"
)

type command struct {
	run      func(ctx context.Context, args []string) error
	synopsis string // arguments after the command name, for usage lines
	summary  string
}

// commands is the one table of subcommands. Two-word commands ("data inspect") are keyed by both words.
func commands() map[string]command {
	return map[string]command{
		"eval":           {runEval, "[--config FILE] [--adapter PATH]... [--source SRC] [--episodes N] [--out PREFIX] [flags]", "score the base model and adapters side by side on held-out episodes: teacher-forcing and rollout error, action sensitivity, inverse dynamics (JSON, PNG)"},
		"energy":         {runEnergy, "(--image FILE | --episode SRC --step N) (--goal FILE | --goal-step M) [--axes x,y[,z]] [--out PREFIX] [flags]", "energy landscape over 2 or 3 action axes: JSON and a PNG heat map with the minimum and the true action"},
		"devices":        {runDevices, "[--json]", "list Vulkan devices, their limits and the features vjepa-vk uses"},
		"data inspect":   {runDataInspect, "--source PATH|gs://BUCKET/PREFIX [flags]", "list the episodes of a dataset (DROID RLDS or LeRobot), their clips and skip counts"},
		"data check":     {runDataCheck, "--source PATH|gs://BUCKET/PREFIX [--json] [flags]", "decode a clip of every episode; report sizes, state/action statistics, short/bad episodes, decode failures, gaps"},
		"data bench":     {runDataBench, "--source PATH|gs://BUCKET/PREFIX [flags]", "measure clip decoding throughput (clips/s, clips/s per core)"},
		"make-demo-data": {runMakeDemoData, "OUT [--format rlds|lerobot] [flags]", "write a small synthetic dataset: DROID RLDS, or LeRobot (parquet + mp4)"},
		"train":          {runTrain, "--config FILE [--set section.key=value]... [--resume auto|gs://BUCKET/PREFIX|PATH | --overwrite]", "fine-tune the AC predictor with LoRA: vjepa-vk train --config configs/demo.yaml"},
		"plan-memory":    {runPlanMemory, "--config FILE [--detail] [--allocate] [--measure]", "print the GPU memory breakdown of a config (--allocate: allocated, not run; --measure: after one real step)"},
		"merge":          {runMerge, "--base CKPT --adapter DIR --out FILE [--dtype f32|f16|bf16]", "fold a PEFT adapter into the predictor weights (W + scaling·B·A) for inference"},
		"bench":          {runBench, "--config FILE [flags]", "time a whole training step at a config's shapes (step time, TFLOP/s, memory, per-op GPU time)"},
		"encode":         {runEncode, "--config FILE --out DIR [--epochs N]", "run the frozen encoder over a dataset's clips into a feature cache (f16)"},
		"verify":         {runVerify, "--fixture DIR [--validate]", "run a golden fixture folder on the device and report every error as JSON"},
		"report":         {runReport, "RUN_DIR... [--out DIR]", "draw PNG plots of one run's metrics, or of several runs in the same figures"},
		"export":         {runExport, "--checkpoint best|latest|PATH [--run RUN_DIR | --config FILE] --out DIR", "write a PEFT adapter (adapter_model.safetensors, adapter_config.json) from any trainer checkpoint"},
		"convert":        {runConvert, "IN.pt|IN.safetensors OUT.safetensors [--key K] [--dtype f32|f16|bf16]", "convert a torch.save checkpoint (zip format, PyTorch >= 1.6) to safetensors"},
		"serve":          {runServe, "[--config FILE] [--adapter PATH] [--listen HOST:PORT] [flags]", "keep the world model on the device behind an HTTP JSON API: POST /plan (image, goals, state → action), GET /healthz, GET /info"},
		"plan":           {runPlan, "(--image FILE | --episode SRC --step N) (--goal FILE... | --goal-step M) [--state X,Y,Z,R,P,Y,G] [flags]", "plan the next action with CEM towards goal image(s) (--preset paper|wrapper, --json, --plan-memory)"},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := dispatch(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// Exit statuses.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2 // the command line was wrong, as for flag.ExitOnError and the go tool
	// exitInterrupted: SIGINT/SIGTERM stopped the command after saving its work (train: the last finished
	// step is checkpointed). It is EX_TEMPFAIL of sysexits.h, "a temporary failure; the user is invited to
	// retry later": a known convention meaning exactly "run again", distinct from 1 and 2 and outside the
	// 128+N range shells report for killed processes, so a Slurm job can requeue on it (RequeueExit=75 in
	// slurm.conf, or a script testing $?).
	exitInterrupted = 75
)

// dispatch runs the command named by args and returns the exit status. Help and version go to stdout,
// errors and usage to stderr; commands print their own results to os.Stdout.
func dispatch(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cmds := commands()
	if len(args) == 0 {
		topUsage(stderr, cmds)
		return exitUsage
	}
	switch args[0] {
	case "-h", "--help", "help":
		return help(stdout, stderr, cmds, args[1:])
	case "--version", "version":
		writeVersion(stdout)
		return exitOK
	}
	name, rest, err := lookup(cmds, args)
	if err != nil {
		fmt.Fprintf(stderr, "vjepa-vk: %v\n", err)
		return exitUsage
	}
	return exitCode(stdout, stderr, name, cmds[name], cmds[name].run(ctx, rest))
}

// lookup finds the command args start with, one or two words, and returns its arguments.
func lookup(cmds map[string]command, args []string) (string, []string, error) {
	if len(args) >= 2 {
		if _, ok := cmds[args[0]+" "+args[1]]; ok {
			return args[0] + " " + args[1], args[2:], nil
		}
	}
	if _, ok := cmds[args[0]]; ok {
		return args[0], args[1:], nil
	}
	if group := groupCommands(cmds, args[0]); len(group) > 0 {
		if len(args) == 1 {
			return "", nil, fmt.Errorf("%s needs a subcommand: %s", args[0], strings.Join(group, ", "))
		}
		return "", nil, fmt.Errorf("unknown command %q (%s has %s); run 'vjepa-vk help'", args[0]+" "+args[1], args[0], strings.Join(group, ", "))
	}
	return "", nil, fmt.Errorf("unknown command %q; run 'vjepa-vk help' for the list", args[0])
}

// exitCode prints what a command returned and maps it to the exit status.
func exitCode(stdout, stderr io.Writer, name string, c command, err error) int {
	var help *helpRequest
	var usage *usageError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &help):
		commandHelp(stdout, name, c, help.flags)
		return exitOK
	case errors.As(err, &usage):
		fmt.Fprintf(stderr, "vjepa-vk: %s: %s\nusage: vjepa-vk %s %s\nrun 'vjepa-vk help %s' for the flags\n",
			name, usage.msg, name, c.synopsis, name)
		return exitUsage
	}
	var quiet *quietError
	if !errors.As(err, &quiet) {
		fmt.Fprintf(stderr, "vjepa-vk: %v\n", err)
	}
	if errors.Is(err, train.ErrInterrupted) {
		return exitInterrupted
	}
	return exitError
}

// help prints the command list, or one command's (or command group's) help, to stdout.
func help(stdout, stderr io.Writer, cmds map[string]command, args []string) int {
	if len(args) == 0 {
		topUsage(stdout, cmds)
		return exitOK
	}
	name, rest, err := lookup(cmds, args)
	if err == nil && len(rest) > 0 {
		err = fmt.Errorf("help takes one command, got %q", strings.Join(args, " "))
	}
	if err != nil {
		if group := groupCommands(cmds, args[0]); len(args) == 1 && len(group) > 0 {
			fmt.Fprintf(stdout, "%s commands:\n", args[0])
			for _, n := range group {
				fmt.Fprintf(stdout, "  %-16s %s\n", n, cmds[n].summary)
			}
			return exitOK
		}
		fmt.Fprintf(stderr, "vjepa-vk: help: %v\n", err)
		return exitUsage
	}
	// The command's own flag set knows its flags: ask it, as `vjepa-vk NAME --help` would.
	return exitCode(stdout, stderr, name, cmds[name], cmds[name].run(context.Background(), []string{"--help"}))
}

// groupCommands lists the two-word commands whose first word is first ("data" → data bench, data inspect).
func groupCommands(cmds map[string]command, first string) []string {
	var out []string
	for n := range cmds {
		if strings.HasPrefix(n, first+" ") {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

func topUsage(w io.Writer, cmds map[string]command) {
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	fmt.Fprintln(w, "vjepa-vk fine-tunes the V-JEPA 2-AC world model with LoRA on any Vulkan device.\n\nusage: vjepa-vk <command> [flags] [arguments]\n\ncommands:")
	for _, n := range names {
		fmt.Fprintf(w, "  %-16s %s\n", n, cmds[n].summary)
	}
	fmt.Fprintln(w, "\n'vjepa-vk help <command>' shows a command's flags; 'vjepa-vk --version' the build.\n"+
		"Exit status: 0 done, 1 failed, 2 wrong command line.")
}
