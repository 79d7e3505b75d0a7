package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/vjepa-vk/vjepa-vk/dist"
	"github.com/vjepa-vk/vjepa-vk/train"
)

// trainNotes end `vjepa-vk train --help` (commandNotes).
const trainNotes = `exit status:
  0   training finished (and the final GCS sync, if any, succeeded)
  1   error (bad config or data, device failure, failed final GCS sync, ...)
  2   the command line was wrong
  75  interrupted by SIGINT/SIGTERM: the last finished step is checkpointed;
      run it again with --resume auto (EX_TEMPFAIL, for requeue scripts)

SIGINT or SIGTERM finishes the current step (or stops validation or start-up), writes a checkpoint and
exports the adapter; a second one abandons the final GCS sync, a third kills the process.

Started by mpirun or srun, each process is one rank of a data-parallel job (README "Several GPUs and
nodes"): a rank that fails aborts the whole job (MPI_Abort, status 1); SIGINT/SIGTERM to the job stops
every rank after the same step.
`

// Rank 0's output in a job (jobOutput): up to 8 MiB held while the launcher reads nothing (about an hour
// of progress lines at one per second), and 5 s at exit for it to drain.
const (
	jobOutputMax  = 8 << 20
	jobOutputWait = 5 * time.Second
)

// runTrain is the product's main job: LoRA fine-tuning of the AC predictor as the config describes.
// Started by mpirun or srun, it is one rank of a data-parallel job (package dist).
func runTrain(ctx context.Context, args []string) error {
	fs := pflag.NewFlagSet("train", pflag.ContinueOnError)
	cf := addConfigFlags(fs, "YAML config (see configs/)")
	printCfg := fs.Bool("print-config", false, "print the resolved config and exit")
	resume := fs.String("resume", "", `continue a run: "auto" (newest valid checkpoint in checkpoint.dir, restored from checkpoint.gcs_sync.url when there is none), gs://bucket/prefix (restore that mirror first), a checkpoint folder or file`)
	overwrite := fs.Bool("overwrite", false, "start a new run in a run folder (and GCS mirror) that holds an earlier one, deleting that run's outputs")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	var extra []string
	if *resume != "" {
		extra = append(extra, "checkpoint.resume="+*resume)
	}
	cfg, err := cf.config(extra...)
	if err != nil {
		return err
	}
	if *printCfg {
		return train.Print(os.Stdout, cfg)
	}
	w, err := dist.Init()
	if err != nil {
		return err
	}
	if msg := dist.KillGraceWarning(os.Getenv); msg != "" && w.IsRoot() {
		fmt.Fprintf(os.Stderr, "vjepa-vk: warning: %s\n", msg)
	}
	abort, stop := abortOnSecondSignal(w.IsRoot())
	defer stop()
	var out io.Writer = os.Stdout
	var jo *jobOutput
	if w.Size() > 1 && w.IsRoot() {
		jo = newJobOutput(os.Stdout, jobOutputMax)
		out = jo
	}
	err = train.Train(ctx, cfg, train.Options{Out: out, Overwrite: *overwrite, Abort: abort, Comm: w, LocalRank: w.LocalRank()})
	if jo != nil {
		jo.Close(jobOutputWait)
	}
	return endJob(w, err)
}

// endJob leaves the job. A rank that failed prints its error and aborts the whole job (MPI_Abort), so
// the others never wait for it in a collective; otherwise (done, or interrupted: every rank stopped
// after the same step) every rank finalizes MPI.
func endJob(w *dist.World, err error) error {
	if err != nil && w.Size() > 1 && !errors.Is(err, train.ErrInterrupted) {
		fmt.Fprintf(os.Stderr, "vjepa-vk: rank %d of %d: %v\n", w.Rank(), w.Size(), err)
		w.Abort(1)
	}
	if cerr := w.Close(); err == nil {
		return cerr
	}
	if errors.Is(err, train.ErrInterrupted) && !w.IsRoot() {
		// Every rank stopped after the same step; rank 0, which wrote the checkpoint, says where.
		return &quietError{err}
	}
	return err
}

// quietError is an error already reported by another process of the job: the exit status follows it,
// but nothing is printed.
type quietError struct{ err error }

func (e *quietError) Error() string { return e.err.Error() }
func (e *quietError) Unwrap() error { return e.err }

// abortOnSecondSignal returns a context cancelled by the second SIGINT/SIGTERM (the first one cancels
// main's context, which stops training); after it the default handling is restored, so a third one
// kills the process. Only an announcing process (rank 0 of a job) prints what it does.
func abortOnSecondSignal(announce bool) (context.Context, func()) {
	abort, cancel := context.WithCancel(context.Background())
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		n := 0
		for {
			select {
			case <-done:
				return
			case <-sigs:
				n++
				if n == 1 {
					if announce {
						fmt.Fprintln(os.Stderr, "vjepa-vk: interrupt: finishing the current step, then checkpointing (interrupt again to skip the final GCS sync)")
					}
					continue
				}
				if announce {
					fmt.Fprintln(os.Stderr, "vjepa-vk: second interrupt: abandoning the final GCS sync (a third one kills the process)")
				}
				signal.Reset(os.Interrupt, syscall.SIGTERM)
				cancel()
				return
			}
		}
	}()
	return abort, func() {
		signal.Stop(sigs)
		close(done)
		cancel()
	}
}
