package dist_test

import (
	"bytes"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vjepa-vk/vjepa-vk/dist"
	"github.com/vjepa-vk/vjepa-vk/dist/disttest"
)

func TestLaunched(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		want dist.Launch
	}{
		{map[string]string{}, dist.Launch{Rank: -1}},
		{map[string]string{"OMPI_COMM_WORLD_SIZE": "4", "OMPI_COMM_WORLD_RANK": "2"}, dist.Launch{Var: "OMPI_COMM_WORLD_SIZE", Size: 4, Rank: 2}},
		{map[string]string{"PMI_SIZE": "8", "PMI_RANK": "7"}, dist.Launch{Var: "PMI_SIZE", Size: 8, Rank: 7}},
		{map[string]string{"PMIX_RANK": "3", "SLURM_STEP_NUM_TASKS": "16"}, dist.Launch{Var: "PMIX_RANK", Size: 16, Rank: 3}},
		{map[string]string{"PMIX_RANK": "3"}, dist.Launch{Var: "PMIX_RANK", Size: 0, Rank: 3}},
		// A Slurm batch script alone is not a launch: only srun's step is.
		{map[string]string{"SLURM_NTASKS": "8", "SLURM_PROCID": "0"}, dist.Launch{Rank: -1}},
	} {
		got := dist.Launched(func(k string) string { return tc.env[k] })
		if got != tc.want {
			t.Errorf("Launched(%v) = %+v, want %+v", tc.env, got, tc.want)
		}
	}
}

// TestSingle: a world of one returns every collective's input.
func TestSingle(t *testing.T) {
	w := dist.Single()
	if w.Rank() != 0 || w.Size() != 1 || w.LocalRank() != 0 || w.LocalSize() != 1 || !w.IsRoot() || w.MPI() {
		t.Fatalf("single world: rank %d size %d local %d/%d root %v mpi %v", w.Rank(), w.Size(), w.LocalRank(), w.LocalSize(), w.IsRoot(), w.MPI())
	}
	f := []float32{1, 2}
	if err := w.AllReduceF32(f); err != nil || !slices.Equal(f, []float32{1, 2}) {
		t.Fatalf("AllReduceF32: %v %v", f, err)
	}
	p, err := w.Broadcast([]byte("x"), 0)
	if err != nil || string(p) != "x" {
		t.Fatalf("Broadcast: %q %v", p, err)
	}
	r, err := w.Exchange([][]byte{[]byte("y")})
	if err != nil || len(r) != 1 || string(r[0]) != "y" {
		t.Fatalf("Exchange: %q %v", r, err)
	}
	if err := w.Barrier(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestMPI runs TestMPIRank as 3 ranks under every MPI launcher installed (Open MPI and MPICH: the two
// C ABIs the shim handles).
func TestMPI(t *testing.T) {
	for _, l := range disttest.Launchers(t) {
		t.Run("mpi="+l.Name, func(t *testing.T) {
			out, err := l.RunTest(3, []string{"DIST_TEST_RANK=1"}, "TestMPIRank")
			if err != nil {
				t.Fatalf("%s: %v\n%s", l.Path, err, out)
			}
			for r := range 3 {
				if !strings.Contains(out, fmt.Sprintf("rank %d of 3 ok", r)) {
					t.Fatalf("rank %d did not finish:\n%s", r, out)
				}
			}
		})
	}
}

// TestMPIRank is one rank of TestMPI (skipped when run directly).
func TestMPIRank(t *testing.T) {
	if os.Getenv("DIST_TEST_RANK") == "" {
		t.Skip("a rank of TestMPI")
	}
	w, err := dist.Init()
	if err != nil {
		t.Fatal(err)
	}
	if !w.MPI() || w.Size() != 3 || w.LocalSize() != 3 || w.LocalRank() != w.Rank() {
		t.Fatalf("rank %d of %d, local %d of %d, MPI %v (%s): want 3 ranks on one node", w.Rank(), w.Size(), w.LocalRank(), w.LocalSize(), w.MPI(), w.Library())
	}
	r := w.Rank()
	// AllReduce sums in place, from a Go slice and from an F32Buffer.
	g := []float32{float32(r), 1, -0.5}
	if err := w.AllReduceF32(g); err != nil || !slices.Equal(g, []float32{3, 3, -1.5}) {
		t.Fatalf("AllReduceF32: %v %v", g, err)
	}
	b := w.F32Buffer(1 << 20)
	for i := range b {
		b[i] = float32(r*i) / 7
	}
	if err := w.AllReduceF32(b); err != nil {
		t.Fatal(err)
	}
	for i, v := range b {
		if want := float32(0*i)/7 + float32(1*i)/7 + float32(2*i)/7; v != want {
			t.Fatalf("F32Buffer all-reduce [%d] = %v, want %v", i, v, want)
		}
	}
	d := []float64{1e-300 * float64(r+1)}
	if err := w.AllReduceF64(d); err != nil || d[0] != 6e-300 {
		t.Fatalf("AllReduceF64: %v %v", d, err)
	}
	// Broadcast of a length only the root knows.
	p, err := w.Broadcast(bytes.Repeat([]byte{byte(r + 1)}, 100*(r+1)), 1)
	if err != nil || !bytes.Equal(p, bytes.Repeat([]byte{2}, 200)) {
		t.Fatalf("Broadcast from rank 1: %d bytes %v", len(p), err)
	}
	// Exchange of messages of different sizes, empty ones included.
	send := make([][]byte, 3)
	for to := range send {
		send[to] = bytes.Repeat([]byte{byte(10*r + to)}, (r+to)%3*1000)
	}
	recv, err := w.Exchange(send)
	if err != nil {
		t.Fatal(err)
	}
	for from, m := range recv {
		if want := bytes.Repeat([]byte{byte(10*from + r)}, (from+r)%3*1000); !bytes.Equal(m, want) {
			t.Fatalf("Exchange: %d bytes from rank %d, want %d", len(m), from, len(want))
		}
	}
	if err := w.Barrier(); err != nil {
		t.Fatal(err)
	}
	fmt.Printf("rank %d of 3 ok (%s)\n", r, w.Library())
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestMPIAbort: a rank that aborts brings down the ranks waiting for it in a collective, within seconds,
// with a non-zero exit status.
func TestMPIAbort(t *testing.T) {
	for _, l := range disttest.Launchers(t) {
		t.Run("mpi="+l.Name, func(t *testing.T) {
			start := time.Now()
			out, err := l.RunTest(2, []string{"DIST_TEST_ABORT=1"}, "TestMPIAbortRank")
			if err == nil {
				t.Fatalf("the job exited 0 after a rank aborted:\n%s", out)
			}
			if !strings.Contains(out, "rank 1 gives up") {
				t.Fatalf("the aborting rank's message is missing:\n%s", out)
			}
			t.Logf("job ended in %v: %v", time.Since(start).Round(time.Millisecond), err)
		})
	}
}

// TestMPIAbortRank is one rank of TestMPIAbort: rank 0 waits in a barrier that rank 1 never joins.
func TestMPIAbortRank(t *testing.T) {
	if os.Getenv("DIST_TEST_ABORT") == "" {
		t.Skip("a rank of TestMPIAbort")
	}
	w, err := dist.Init()
	if err != nil {
		t.Fatal(err)
	}
	if w.Rank() == 1 {
		fmt.Fprintln(os.Stderr, "rank 1 gives up")
		w.Abort(3)
	}
	w.Barrier()
	t.Fatal("rank 0 left a barrier that rank 1 never entered")
}

// TestProbe: every library Probe reports names itself.
func TestProbe(t *testing.T) {
	for _, l := range dist.Probe() {
		if l.Soname == "" || l.Version == "" {
			t.Errorf("Probe: %+v", l)
		}
		t.Logf("%s: %s", l.Soname, l.Version)
	}
}

// BenchmarkAllReduce times AllReduceF32 of the gradients of a training step (size=24MiB: LoRA r=16 on
// every linear of the official predictor, 6.29 M floats; size=64KiB: the demo config) between 2 ranks
// of one machine, from an F32Buffer as the trainer does: the median over b.N calls after a barrier each,
// and the bus bandwidth 2·(N−1)/N·bytes/time of a ring all-reduce.
func BenchmarkAllReduce(b *testing.B) {
	l := disttest.OpenMPI(b)
	for _, size := range []int{64 << 10, 24 << 20} {
		b.Run(fmt.Sprintf("ranks=2,size=%dKiB", size>>10), func(b *testing.B) {
			out, err := l.RunTest(2, []string{"DIST_BENCH_FLOATS=" + strconv.Itoa(size/4), "DIST_BENCH_N=" + strconv.Itoa(b.N)}, "TestMPIAllReduceTiming")
			if err != nil {
				b.Fatalf("%v\n%s", err, out)
			}
			m := regexp.MustCompile(`allreduce median ([0-9.e+-]+) s`).FindStringSubmatch(out)
			if m == nil {
				b.Fatalf("no timing in\n%s", out)
			}
			sec, _ := strconv.ParseFloat(m[1], 64)
			b.ReportMetric(sec*1e3, "ms/allreduce")
			b.ReportMetric(float64(size)/sec/1e9, "GB/s-bus") // 2·(N−1)/N = 1 for N = 2
			b.ReportMetric(0, "ns/op")
		})
	}
}

// TestMPIAllReduceTiming is the rank side of BenchmarkAllReduce (skipped when run directly).
func TestMPIAllReduceTiming(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("DIST_BENCH_FLOATS"))
	iters, _ := strconv.Atoi(os.Getenv("DIST_BENCH_N"))
	if n == 0 {
		t.Skip("a rank of BenchmarkAllReduce")
	}
	w, err := dist.Init()
	if err != nil {
		t.Fatal(err)
	}
	buf := w.F32Buffer(n)
	times := make([]float64, max(iters, 1))
	for i := range times {
		if err := w.Barrier(); err != nil {
			t.Fatal(err)
		}
		t0 := time.Now()
		if err := w.AllReduceF32(buf); err != nil {
			t.Fatal(err)
		}
		times[i] = time.Since(t0).Seconds()
	}
	slices.Sort(times)
	if w.IsRoot() {
		fmt.Printf("allreduce median %g s\n", times[len(times)/2])
	}
	w.Close()
}

// TestKillGraceWarning: only Open MPI's launcher with a grace shorter than MinKillGrace is warned about.
func TestKillGraceWarning(t *testing.T) {
	for _, c := range []struct {
		env  map[string]string
		warn bool
	}{
		{map[string]string{}, false},
		{map[string]string{"PMI_SIZE": "2"}, false},
		{map[string]string{"OMPI_COMM_WORLD_SIZE": "2"}, true},
		{map[string]string{"OMPI_COMM_WORLD_SIZE": "2", "OMPI_MCA_odls_base_sigkill_timeout": "5"}, true},
		{map[string]string{"OMPI_COMM_WORLD_SIZE": "2", "OMPI_MCA_odls_base_sigkill_timeout": "junk"}, true},
		{map[string]string{"OMPI_COMM_WORLD_SIZE": "2", "OMPI_MCA_odls_base_sigkill_timeout": "120"}, false},
	} {
		got := dist.KillGraceWarning(func(k string) string { return c.env[k] })
		if (got != "") != c.warn {
			t.Errorf("KillGraceWarning(%v) = %q, want a warning: %v", c.env, got, c.warn)
		}
		if c.warn && !strings.Contains(got, "--mca odls_base_sigkill_timeout") {
			t.Errorf("KillGraceWarning(%v) = %q: does not say how to fix it", c.env, got)
		}
	}
}
