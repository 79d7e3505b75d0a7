package main

import (
	"bufio"
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vjepa-vk/vjepa-vk/train"
)

// TestMain lets a test run the command itself: with VJEPA_VK_TEST_MAIN=1 the test binary is vjepa-vk.
func TestMain(m *testing.M) {
	if os.Getenv("VJEPA_VK_TEST_MAIN") == "1" {
		// A rank of an MPI job (job_test.go) gets a Mesa shader cache of its own: lavapipe has aborted
		// when processes shared one.
		if dir, rank := os.Getenv("MESA_SHADER_CACHE_DIR"), os.Getenv("OMPI_COMM_WORLD_RANK"); dir != "" && rank != "" {
			os.Setenv("MESA_SHADER_CACHE_DIR", filepath.Join(dir, "rank-"+rank))
		}
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// vjepaVK runs the command in a child process; stdout is streamed to onLine, which may signal it.
func vjepaVK(t *testing.T, onLine func(line string, p *os.Process), args ...string) (code int, stderr string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "VJEPA_VK_TEST_MAIN=1")
	var errBuf bytes.Buffer
	cmd.Stderr = &errBuf
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	timer := time.AfterFunc(3*time.Minute, func() { cmd.Process.Kill() })
	defer timer.Stop()
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if onLine != nil {
			onLine(sc.Text(), cmd.Process)
		}
	}
	err = cmd.Wait()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), errBuf.String()
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0, errBuf.String()
}

// TestTrainExitStatus runs `vjepa-vk train` as a process: SIGINT during training exits 75 (interrupted,
// resumable) with a plain message and a checkpoint, --resume auto then finishes with 0, and a new run
// into the same folder exits 1 naming --resume and --overwrite.
func TestTrainExitStatus(t *testing.T) {
	if testing.Short() {
		t.Skip("trains in child processes")
	}
	dir := t.TempDir()
	args := func(steps string, extra ...string) []string {
		return append([]string{"train", "--config", "../../configs/demo.yaml", "--set", "data.source=../../testdata/droid_sample",
			"--set", "logging.dir=" + dir, "--set", "logging.progress=plain", "--set", "logging.every=1",
			"--set", "training.steps=" + steps, "--set", "training.schedule.warmup=1", "--set", "training.schedule.decay=1",
			"--set", "checkpoint.every=0"}, extra...)
	}
	signalled := false
	code, stderr := vjepaVK(t, func(line string, p *os.Process) {
		if strings.HasPrefix(line, "step 2/") && !signalled {
			signalled = true
			p.Signal(syscall.SIGINT)
		}
	}, args("100")...)
	if code != exitInterrupted || !strings.Contains(stderr, "vjepa-vk: train: interrupted after step ") || strings.Contains(stderr, "context canceled") {
		t.Fatalf("SIGINT during training: exit %d, stderr:\n%s\nwant exit %d and a plain message", code, stderr, exitInterrupted)
	}
	if _, err := train.LatestCheckpoint(filepath.Join(dir, "checkpoints")); err != nil {
		t.Fatalf("no checkpoint after the interrupt: %v", err)
	}
	if code, stderr := vjepaVK(t, nil, args("4", "--resume", "auto")...); code != 0 {
		t.Fatalf("--resume auto: exit %d, stderr:\n%s", code, stderr)
	}
	code, stderr = vjepaVK(t, nil, args("4")...)
	if code != 1 || !strings.Contains(stderr, "--resume auto") || !strings.Contains(stderr, "--overwrite") {
		t.Fatalf("new run into %s: exit %d, stderr:\n%s\nwant exit 1 naming --resume and --overwrite", dir, code, stderr)
	}
}
