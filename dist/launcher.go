package dist

import (
	"strconv"
	"strings"
)

// Launch is what the environment says about the launcher that started this process.
type Launch struct {
	Var  string // the variable that identified it ("" when no MPI launcher started the process)
	Size int    // ranks it started, or 0 when it does not say (PMIx without Slurm)
	Rank int    // this process's rank, or -1 when it does not say
}

// launcherVars are checked in order: the first that is set names the launcher; sizeVar and rankVar
// (when set) say how many ranks it started and which one this is.
var launcherVars = []struct{ id, sizeVar, rankVar string }{
	{"OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK"}, // Open MPI's mpirun/prterun
	{"PMI_SIZE", "PMI_SIZE", "PMI_RANK"},                                     // MPICH's hydra, Intel MPI, srun --mpi=pmi2
	{"PMIX_RANK", "SLURM_STEP_NUM_TASKS", "PMIX_RANK"},                       // PMIx: srun --mpi=pmix, Open MPI 5
	{"MV2_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE", "MV2_COMM_WORLD_RANK"},    // MVAPICH's mpirun_rsh
}

// Launched reads the launcher's variables through getenv (os.Getenv).
func Launched(getenv func(string) string) Launch {
	for _, v := range launcherVars {
		if getenv(v.id) == "" {
			continue
		}
		l := Launch{Var: v.id, Rank: -1}
		if n, err := strconv.Atoi(strings.TrimSpace(getenv(v.sizeVar))); err == nil && n > 0 {
			l.Size = n
		}
		if r, err := strconv.Atoi(strings.TrimSpace(getenv(v.rankVar))); err == nil && r >= 0 {
			l.Rank = r
		}
		return l
	}
	return Launch{Rank: -1}
}

// libraries lists the libmpi sonames to try, most likely first: VJEPA_VK_MPI_LIB alone when set;
// Open MPI's (3.x to 5.x) first under its own launcher; the MPICH ABI's first otherwise.
func libraries(l Launch, override string) []string {
	if override != "" {
		return []string{override}
	}
	ompi := []string{"libmpi.so.40"}
	mpich := []string{"libmpi.so.12", "libmpich.so.12"}
	if l.Var == "OMPI_COMM_WORLD_SIZE" {
		return append(append(ompi, mpich...), "libmpi.so")
	}
	return append(append(mpich, ompi...), "libmpi.so")
}

// MinKillGrace is the least time, in seconds, a rank should get between the SIGTERM that stops a job
// and the SIGKILL after it: enough to finish the step in progress (a few seconds at the official size on
// a GPU) and write a checkpoint. RecommendedKillGrace is what the README recommends: Slurm's default
// KillWait.
const (
	MinKillGrace         = 10
	RecommendedKillGrace = 30
)

// KillGraceWarning returns a warning when Open MPI's launcher started this process with a grace between
// SIGTERM and SIGKILL shorter than MinKillGrace. Open MPI 4's mpirun, on SIGINT/SIGTERM, forwards it to
// the ranks and kills them odls_base_sigkill_timeout seconds later (1 by default): a rank then dies in
// the middle of the step it was finishing, and the job loses every step since its last checkpoint.
// (The same timeout delays the end of a job whose rank called MPI_Abort: mpirun sleeps it before it
// sends the ranks SIGTERM, and again before SIGKILL.) MPICH's hydra waits for the ranks, and Slurm's
// srun gives them KillWait (30 s by default). mpirun hands its MCA parameters to the ranks as OMPI_MCA_*
// variables, so a rank can tell. "" when there is nothing to say.
func KillGraceWarning(getenv func(string) string) string {
	if getenv("OMPI_COMM_WORLD_SIZE") == "" {
		return ""
	}
	const param = "odls_base_sigkill_timeout"
	v := strings.TrimSpace(getenv("OMPI_MCA_" + param))
	if n, err := strconv.Atoi(v); err == nil && n >= MinKillGrace {
		return ""
	}
	have := "its default of 1 s"
	if v != "" {
		have = v + " s"
	}
	rec := strconv.Itoa(RecommendedKillGrace)
	return "Open MPI's mpirun kills the ranks " + have + " after forwarding SIGINT/SIGTERM, too soon to " +
		"finish the step and checkpoint: start the job with `mpirun --mca " + param + " " + rec +
		" …` (or export OMPI_MCA_" + param + "=" + rec + ")"
}
