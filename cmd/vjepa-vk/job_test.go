package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vjepa-vk/vjepa-vk/data"
	"github.com/vjepa-vk/vjepa-vk/dist"
	"github.com/vjepa-vk/vjepa-vk/dist/disttest"
	"github.com/vjepa-vk/vjepa-vk/train"
)

// asMainEnv makes the test binary run as vjepa-vk itself (TestMain), so that the tests can launch the
// real command line as the ranks of an MPI job.
const asMainEnv = "VJEPA_VK_TEST_MAIN"

// jobArgs are `vjepa-vk train` arguments for the demo config shrunk to one clip per rank.
func jobArgs(dir string, steps int, sets ...string) []string {
	args := []string{"train", "--config", "../../configs/demo.yaml"}
	for _, s := range append([]string{"data.source=../../testdata/droid_sample", "logging.dir=" + dir,
		"training.steps=" + strconv.Itoa(steps), "training.schedule.warmup=1", "training.schedule.decay=1",
		"training.val_every=0", "data.val_episodes=0", "checkpoint.every=0", "data.batch_size=1", "data.workers=1",
		"logging.progress=plain", "logging.every=1"}, sets...) {
		args = append(args, "--set", s)
	}
	return args
}

// startJob starts `vjepa-vk args...` as n ranks under Open MPI, its output in out.
func startJob(t *testing.T, ctx context.Context, n int, out *syncBuffer, args ...string) *exec.Cmd {
	t.Helper()
	l := disttest.OpenMPI(t)
	cmd := l.Command(n, []string{asMainEnv + "=1"}, os.Args[0], args...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { // a hang is a failure, not a stuck test
		<-ctx.Done()
		cmd.Process.Kill()
	}()
	return cmd
}

// TestTrainJobFault: when one rank fails, the whole job exits non-zero within seconds with that rank's
// error (MPI_Abort), while the other ranks wait for it in a collective: rank 1 failing at step k > 1 (the
// second of its shards is missing: it fails once its first shard's clips are used up), and rank 0
// failing during start-up (its checkpoint folder lies under a regular file), which every rank learns.
func TestTrainJobFault(t *testing.T) {
	// The sample's 2 shards written twice, as 4 shards: 2 ranks of 1 worker read 2 shards each per epoch.
	src := fourShards(t)
	shards, err := data.FindShards(context.Background(), data.NewDirSource(src), "train")
	if err != nil {
		t.Fatal(err)
	}
	units := data.AssignShards(shards, 0, 0, 1, 2, 0, 1) // rank 1's worker, epoch 0
	gone := units[len(units)-1].Name
	if err := os.Remove(filepath.Join(src, gone)); err != nil {
		t.Fatal(err)
	}
	blocked := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(blocked, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name       string
		sets       []string
		want       string // in the failing rank's message
		afterSteps int    // steps rank 0 finished before the failure
	}{
		{"rank=1,step=k", []string{"data.source=" + src, "data.shuffle_buffer=0"}, "rank 1 of 2: ", 2},
		{"rank=0,startup", []string{"checkpoint.dir=" + filepath.Join(blocked, "ckpt")}, "rank 0 of 2: ", 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			out := &syncBuffer{}
			cmd := startJob(t, ctx, 2, out, jobArgs(t.TempDir(), 50, c.sets...)...)
			failed := make(chan time.Time, 1)
			go func() { // when the failing rank's message appears
				for !strings.Contains(out.String(), c.want) && ctx.Err() == nil {
					time.Sleep(5 * time.Millisecond)
				}
				failed <- time.Now()
			}()
			err := cmd.Wait()
			end := time.Now()
			if ctx.Err() != nil {
				t.Fatalf("the job hung after a rank failed:\n%s", out.String())
			}
			if err == nil {
				t.Fatalf("the job exited 0 after a rank failed:\n%s", out.String())
			}
			if !strings.Contains(out.String(), c.want) {
				t.Fatalf("want the failing rank's message (%q) in the job's output:\n%s", c.want, out.String())
			}
			if c.afterSteps > 0 && !strings.Contains(out.String(), "step "+strconv.Itoa(c.afterSteps)+"/") {
				t.Fatalf("the job failed before step %d:\n%s", c.afterSteps, out.String())
			}
			t.Logf("the job exited (%v) %v after the failing rank's message", err, end.Sub(<-failed).Round(time.Millisecond))
		})
	}
}

// fourShards returns a copy of testdata/droid_sample with its 2 shards written twice, as 4 shards.
func fourShards(t *testing.T) string {
	t.Helper()
	const sample = "../../testdata/droid_sample"
	raw, err := os.ReadFile(filepath.Join(sample, data.DatasetInfoFile))
	if err != nil {
		t.Fatal(err)
	}
	info, err := data.ParseDatasetInfo(raw)
	if err != nil {
		t.Fatal(err)
	}
	two, err := info.Shards("train")
	if err != nil {
		t.Fatal(err)
	}
	sp := &info.Splits[0]
	sp.ShardLengths = append(sp.ShardLengths, sp.ShardLengths...)
	four, err := info.Shards("train")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	copyFile := func(from, to string) {
		b, err := os.ReadFile(from)
		if err == nil {
			err = os.WriteFile(to, b, 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	for i, s := range four {
		copyFile(filepath.Join(sample, two[i%2].Name), filepath.Join(dir, s.Name))
	}
	copyFile(filepath.Join(sample, data.FeaturesFile), filepath.Join(dir, data.FeaturesFile))
	if raw, err = data.MarshalDatasetInfo(info); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, data.DatasetInfoFile), raw, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestTrainJobSignal: SIGTERM to mpirun (which forwards it to every rank) stops the job after the step
// in progress on all ranks: rank 0 writes one checkpoint of that step and every rank exits.
func TestTrainJobSignal(t *testing.T) {
	// As the README says to launch: Open MPI's default of 1 s between its SIGTERM and SIGKILL kills a
	// rank of a loaded machine before it has checkpointed.
	t.Setenv("OMPI_MCA_odls_base_sigkill_timeout", strconv.Itoa(dist.RecommendedKillGrace))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	out := &syncBuffer{}
	// A progress line every step (~9 per second on an idle 2-core machine): mpirun sleeps
	// odls_base_sigkill_timeout before it forwards the signal, reading none of the ranks' output
	// meanwhile, and before jobOutput rank 0 blocked on its full output pipe after step 161 and was
	// killed there with its checkpoint unwritten.
	cmd := startJob(t, ctx, 2, out, jobArgs(dir, 10000)...)
	for !strings.Contains(out.String(), "step 2/") {
		if ctx.Err() != nil {
			t.Fatalf("no second step:\n%s", out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	cmd.Wait() // mpirun's own status after a signal is not the ranks'
	if ctx.Err() != nil {
		t.Fatalf("the job did not stop:\n%s", out.String())
	}
	// The files are the guarantee. mpirun reads the ranks' output again only when it wakes to kill them,
	// and then not all of it (rank 0's summary and its last progress lines are often lost), so a report
	// is checked when it came.
	got := out.String()
	files, err := filepath.Glob(filepath.Join(dir, "checkpoints", "ckpt-*.safetensors"))
	if err != nil || len(files) != 1 {
		t.Fatalf("checkpoints %v, want one:\n%s", files, got)
	}
	var step int
	if _, err := fmt.Sscanf(filepath.Base(files[0]), "ckpt-%d.safetensors", &step); err != nil || filepath.Base(files[0]) != train.CheckpointName(step) {
		t.Fatalf("checkpoint %s: want %s", files[0], train.CheckpointName(step))
	}
	for _, re := range []string{`interrupted: checkpoint written at step (\d+)`, `train: interrupted after step (\d+)`} {
		if m := regexp.MustCompile(re).FindStringSubmatch(got); m != nil && m[1] != strconv.Itoa(step) {
			t.Fatalf("%q reports step %s, the checkpoint is of step %d:\n%s", re, m[1], step, got)
		}
	}
	// Rank 0 alone reports the interruption (the others, which write nothing, once said "checkpoint ;").
	for _, msg := range []string{"interrupt: finishing the current step", "train: interrupted after step"} {
		if n := strings.Count(got, msg); n > 1 {
			t.Errorf("%q printed %d times, want once (rank 0):\n%s", msg, n, got)
		}
	}
	mt, err := train.ReadMetrics(filepath.Join(dir, train.MetricsFile))
	if err != nil {
		t.Fatal(err)
	}
	if len(mt.Train) != step || step >= 10000 {
		t.Fatalf("%d steps logged, checkpoint of step %d", len(mt.Train), step)
	}
}

// syncBuffer is a bytes.Buffer safe for the job's output goroutines and the test's reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
