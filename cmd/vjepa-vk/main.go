// Command vjepa-vk fine-tunes the V-JEPA 2-AC action-conditioned world model with LoRA on any Vulkan
// device. main only parses the subcommand name and dispatches; each subcommand lives in its own file as
// run<Name>(ctx, args) and parses its own flags.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"

	"github.com/spf13/pflag"
)

type command struct {
	run     func(ctx context.Context, args []string) error
	summary string
}

// commands is the one table of subcommands. Two-word commands ("data inspect") are keyed by both words.
func commands() map[string]command {
	return map[string]command{
		"devices":        {runDevices, "list Vulkan devices, their limits and the features vjepa-vk uses"},
		"data inspect":   {runDataInspect, "list the episodes of a DROID RLDS dataset, their clips and skip counts"},
		"data bench":     {runDataBench, "measure clip decoding throughput (clips/s, clips/s per core)"},
		"make-demo-data": {runMakeDemoData, "write a small synthetic dataset in the DROID RLDS schema"},
		"train":          {runTrain, "fine-tune the AC predictor with LoRA: vjepa-vk train --config configs/demo.yaml"},
		"plan-memory":    {runPlanMemory, "print the GPU memory breakdown of a config (--allocate: allocated, not run; --measure: after one real step)"},
		"merge":          {runMerge, "fold a PEFT adapter into the predictor weights (W + scaling·B·A) for inference"},
		"bench":          {runBench, "time a whole training step at a config's shapes (step time, TFLOP/s, memory, per-op GPU time)"},
		"encode":         {runEncode, "run the frozen encoder over a dataset's clips into a feature cache (f16)"},
		"verify":         {runVerify, "run a golden fixture folder on the device and report every error as JSON"},
		"report":         {runReport, "draw PNG plots (loss, val loss, lr, rollout error) from RUN_DIR/metrics.jsonl"},
		"convert":        {runConvert, "convert a torch checkpoint to safetensors (--key, --dtype)"},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := dispatch(ctx, os.Args[1:])
	stop()
	if errors.Is(err, pflag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "vjepa-vk: %v\n", err)
		os.Exit(1)
	}
}

func dispatch(ctx context.Context, args []string) error {
	cmds := commands()
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(cmds)
		return nil
	}
	if len(args) >= 2 {
		if c, ok := cmds[args[0]+" "+args[1]]; ok {
			return c.run(ctx, args[2:])
		}
	}
	c, ok := cmds[args[0]]
	if !ok {
		usage(cmds)
		return fmt.Errorf("unknown command %q", strings.Join(args[:1], " "))
	}
	return c.run(ctx, args[1:])
}

func usage(cmds map[string]command) {
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	fmt.Fprintln(os.Stderr, "usage: vjepa-vk <command> [flags]\n\ncommands:")
	for _, n := range names {
		fmt.Fprintf(os.Stderr, "  %-16s %s\n", n, cmds[n].summary)
	}
}
