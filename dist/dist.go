// Package dist is the data-parallel world of a training job: its processes (ranks), the collectives
// they run together and how one rank's failure ends the job.
//
// A job launched by mpirun, mpiexec or srun is an MPI world (MPI-3, one process per GPU). libmpi is
// loaded at run time with dlopen, as package vk loads the Vulkan loader, so building vjepa-vk and running
// it alone need no MPI installed; both C ABIs in use are handled (mpi_shim.c): Open MPI's, whose handles
// are pointers, and the MPICH ABI (MPICH, Intel MPI, MVAPICH, Cray MPICH), whose handles are ints. A
// process not started by an MPI launcher is a world of one: its collectives return their input.
//
// Every collective (AllReduce*, Broadcast, Exchange, Barrier) must be called by all ranks in the same
// order. All MPI calls of a process run on one OS thread, so MPI_THREAD_FUNNELED is all the library
// needs to provide, and all MPI traffic is staged through C-heap buffers: Go's heap pages can be
// returned to the OS (madvise) behind the back of an RDMA registration cache.
//
// dist does not import vk: it knows nothing of devices or tensors.
package dist

import (
	"fmt"
	"os"
	"time"
)

// Comm is what one rank of a data-parallel job does with the others. *World implements it over MPI
// (or alone); disttest implements it in one process for tests.
type Comm interface {
	Rank() int // 0 ≤ Rank < Size; rank 0 writes the job's files
	Size() int
	// AllReduceF32 replaces buf on every rank with the element-wise sum over the ranks (float32).
	AllReduceF32(buf []float32) error
	// AllReduceF64 is AllReduceF32 in float64.
	AllReduceF64(buf []float64) error
	// Broadcast returns root's p on every rank (p is ignored elsewhere; lengths may differ).
	Broadcast(p []byte, root int) ([]byte, error)
	// Exchange sends send[r] to rank r (len(send) == Size) and returns recv, recv[r] being what rank
	// r sent to this one.
	Exchange(send [][]byte) ([][]byte, error)
	Barrier() error
}

// World is this process's place in the job: a world of one, or a rank of an MPI job.
type World struct {
	rank, size           int
	localRank, localSize int
	m                    *mpiWorld // nil: a world of one
}

// Single is a world of one process.
func Single() *World { return &World{size: 1, localSize: 1} }

// Init joins the job this process was launched into: an MPI world when an MPI launcher started it
// (Launched), otherwise a world of one. A launcher whose library cannot be loaded, or whose world
// MPI does not see (mpirun of one MPI with the libmpi of another), is an error, never N independent
// runs.
func Init() (*World, error) {
	l := Launched(os.Getenv)
	if l.Var == "" {
		return Single(), nil
	}
	return initMPI(l)
}

func (w *World) Rank() int { return w.rank }
func (w *World) Size() int { return w.size }

// LocalRank is the rank among the processes of this node (MPI's shared-memory communicator): the
// index of the GPU this process uses.
func (w *World) LocalRank() int { return w.localRank }

// LocalSize is the number of ranks on this node.
func (w *World) LocalSize() int { return w.localSize }

// IsRoot reports whether this is rank 0.
func (w *World) IsRoot() bool { return w.rank == 0 }

// MPI reports whether collectives go through MPI (false: a world of one without MPI).
func (w *World) MPI() bool { return w.m != nil }

// Library names the MPI library this world runs on ("" for a world of one without MPI).
func (w *World) Library() string {
	if w.m == nil {
		return ""
	}
	return w.m.library
}

func (w *World) AllReduceF32(buf []float32) error {
	if w.m == nil || len(buf) == 0 {
		return nil
	}
	return w.m.allReduceF32(buf)
}

func (w *World) AllReduceF64(buf []float64) error {
	if w.m == nil || len(buf) == 0 {
		return nil
	}
	return w.m.allReduceF64(buf)
}

func (w *World) Broadcast(p []byte, root int) ([]byte, error) {
	if root < 0 || root >= w.size {
		panic(fmt.Sprintf("dist: Broadcast from root %d in a world of %d", root, w.size))
	}
	if w.m == nil {
		return p, nil
	}
	return w.m.broadcast(p, root, w.rank)
}

func (w *World) Exchange(send [][]byte) ([][]byte, error) {
	if len(send) != w.size {
		panic(fmt.Sprintf("dist: Exchange of %d messages in a world of %d", len(send), w.size))
	}
	if w.m == nil {
		return [][]byte{send[0]}, nil
	}
	return w.m.exchange(send)
}

func (w *World) Barrier() error {
	if w.m == nil {
		return nil
	}
	return w.m.barrier()
}

// abortGrace is how long Abort waits, before MPI_Abort, for the launcher to forward the rank's output.
const abortGrace = 300 * time.Millisecond

// F32Buffer returns n floats that AllReduceF32 reduces without a copy: C-heap memory under MPI, a Go
// slice in a world of one. It stays valid until Close.
func (w *World) F32Buffer(n int) []float32 {
	if w.m == nil {
		return make([]float32, n)
	}
	return w.m.f32Buffer(n)
}

// Abort ends the whole job with exit status code: MPI_Abort, which makes the launcher kill every rank,
// so that one rank's failure never leaves the others waiting in a collective. In a world of one it
// is os.Exit. It does not return.
//
// The launcher forwards each rank's output through a pipe that it reads on its own schedule, and kills
// the job as soon as MPI_Abort reaches it: the failing rank's last message, written just before, could
// be lost on a loaded machine (seen once in the 2-rank abort test). Abort leaves it abortGrace to be
// forwarded first, which still ends the job within a second or two.
func (w *World) Abort(code int) {
	if w.m != nil {
		time.Sleep(abortGrace)
		w.m.abort(code)
	}
	os.Exit(code)
}

// Close leaves the job (MPI_Finalize, a collective: every rank must reach it). A world of one has
// nothing to close.
func (w *World) Close() error {
	if w.m == nil {
		return nil
	}
	return w.m.finalize()
}
