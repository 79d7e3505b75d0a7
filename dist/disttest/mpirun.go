package disttest

import (
	"bytes"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// Launcher is an MPI launcher installed on this machine.
type Launcher struct {
	Name  string   // "openmpi" or "mpich"
	Path  string   // the mpirun executable
	Flags []string // before -np: what a test on one small machine needs
	Env   []string // added to the environment
}

// Launchers returns the MPI launchers installed here: Open MPI's mpirun and MPICH's (hydra). With none,
// the test is skipped, or fails when VJEPA_VK_REQUIRE_MPI=1 (CI installs them).
func Launchers(t testing.TB) []Launcher {
	t.Helper()
	var out []Launcher
	if p := find("Open MPI", "mpirun.openmpi", "mpirun"); p != "" {
		out = append(out, Launcher{Name: "openmpi", Path: p,
			// Tests run more ranks than cores, on one machine, maybe in a container without CMA (ptrace).
			Flags: []string{"--oversubscribe", "--bind-to", "none", "--mca", "btl", "self,vader"},
			Env: []string{"OMPI_ALLOW_RUN_AS_ROOT=1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1",
				"OMPI_MCA_btl_vader_single_copy_mechanism=none"}})
	}
	if p := find("HYDRA", "mpirun.mpich", "mpiexec.hydra", "mpirun"); p != "" {
		out = append(out, Launcher{Name: "mpich", Path: p})
	}
	if len(out) == 0 {
		if os.Getenv("VJEPA_VK_REQUIRE_MPI") == "1" {
			t.Fatal("no MPI launcher found (VJEPA_VK_REQUIRE_MPI=1): install openmpi-bin")
		}
		t.Skip("no MPI launcher installed (openmpi-bin or mpich)")
	}
	return out
}

// OpenMPI returns Open MPI's launcher (the one CI installs), skipping or failing as Launchers does.
func OpenMPI(t testing.TB) Launcher {
	t.Helper()
	for _, l := range Launchers(t) {
		if l.Name == "openmpi" {
			return l
		}
	}
	if os.Getenv("VJEPA_VK_REQUIRE_MPI") == "1" {
		t.Fatal("Open MPI's mpirun not found (VJEPA_VK_REQUIRE_MPI=1): install openmpi-bin")
	}
	t.Skip("Open MPI's mpirun not installed")
	return Launcher{}
}

// find returns the first of names on PATH whose --version output contains banner.
func find(banner string, names ...string) string {
	for _, n := range names {
		p, err := exec.LookPath(n)
		if err != nil {
			continue
		}
		out, _ := exec.Command(p, "--version").CombinedOutput()
		if strings.Contains(string(out), banner) {
			return p
		}
	}
	return ""
}

// Command returns the command that runs prog with args as n ranks, with env added to the environment.
func (l Launcher) Command(n int, env []string, prog string, args ...string) *exec.Cmd {
	argv := append(append([]string(nil), l.Flags...), "-np", strconv.Itoa(n), prog)
	cmd := exec.Command(l.Path, append(argv, args...)...)
	cmd.Env = append(append(os.Environ(), l.Env...), env...)
	return cmd
}

// RunTest runs the test binary's test named test as n ranks, with env added to their environment, and
// returns their combined output.
func (l Launcher) RunTest(n int, env []string, test string) (string, error) {
	var out bytes.Buffer
	cmd := l.Command(n, env, os.Args[0], "-test.run=^"+test+"$", "-test.v")
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}
