package dist

/*
#cgo LDFLAGS: -ldl
#include <stdlib.h>
#include "mpi_shim.h"
*/
import "C"

import (
	"fmt"
	"math"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"
	"unsafe"
)

const mpiThreadFunneled = 1 // MPI_THREAD_FUNNELED in both ABIs (the standard fixes the order 0..3)

// mpiWorld runs every MPI call of the process on one locked OS thread (loop), and owns the C-heap
// buffers that MPI reads and writes.
type mpiWorld struct {
	calls   chan func()
	comm    C.uintptr_t // MPI_COMM_WORLD
	library string      // "Open MPI v4.1.4 (libmpi.so.40)"
	owned   []cbuf      // F32Buffer's, freed by finalize
	send    cbuf        // staging for data that did not come from F32Buffer
	recv    cbuf
}

type cbuf struct {
	p unsafe.Pointer
	n int // bytes
}

// grow makes b hold at least n bytes (its old contents are lost).
func (b *cbuf) grow(n int) {
	if b.n >= n {
		return
	}
	C.free(b.p)
	b.p, b.n = C.malloc(C.size_t(max(n, 1))), n
	if b.p == nil {
		panic(fmt.Sprintf("dist: malloc %d bytes", n))
	}
}

func (b *cbuf) bytes(n int) []byte { return unsafe.Slice((*byte)(b.p), n) }

// initMPI loads libmpi, initializes it on the MPI thread and checks that it sees the launcher's world.
func initMPI(l Launch) (*World, error) {
	m := &mpiWorld{calls: make(chan func())}
	w := &World{m: m}
	ready := make(chan error)
	go m.loop(l, w, ready)
	if err := <-ready; err != nil {
		return nil, err
	}
	return w, nil
}

func (m *mpiWorld) loop(l Launch, w *World, ready chan<- error) {
	// MPI_THREAD_FUNNELED: the thread that initialized MPI makes every call. The goroutine never
	// unlocks, so the thread ends with it after MPI_Finalize.
	runtime.LockOSThread()
	err := m.start(l, w)
	ready <- err
	if err != nil {
		return
	}
	for f := range m.calls {
		f()
	}
}

func (m *mpiWorld) start(l Launch, w *World) error {
	lib, err := openLibrary(libraries(l, os.Getenv("VJEPA_VK_MPI_LIB")))
	if err != nil {
		return fmt.Errorf("dist: started by an MPI launcher (%s is set) but %w", l.Var, err)
	}
	m.library = libraryVersion() + " (" + lib + ")"
	var provided C.int
	if rc := C.vj_mpi_init(mpiThreadFunneled, &provided); rc != 0 {
		return fmt.Errorf("dist: MPI_Init_thread with %s: %s", m.library, errorString(rc))
	}
	if provided < mpiThreadFunneled {
		return fmt.Errorf("dist: %s provides thread level %d, want MPI_THREAD_FUNNELED (1) or more", m.library, provided)
	}
	m.comm = C.vj_mpi_comm_world()
	var rank, size C.int
	if rc := C.vj_mpi_comm_rank(m.comm, &rank); rc != 0 {
		return fmt.Errorf("dist: MPI_Comm_rank: %s", errorString(rc))
	}
	if rc := C.vj_mpi_comm_size(m.comm, &size); rc != 0 {
		return fmt.Errorf("dist: MPI_Comm_size: %s", errorString(rc))
	}
	w.rank, w.size = int(rank), int(size)
	if (l.Size > 0 && l.Size != w.size) || (l.Rank >= 0 && l.Rank != w.rank) {
		return fmt.Errorf("dist: the launcher started rank %d of %d (%s) but %s sees rank %d of %d: "+
			"the launcher and the library are of different MPIs; name the launcher's libmpi in VJEPA_VK_MPI_LIB",
			l.Rank, l.Size, l.Var, m.library, w.rank, w.size)
	}
	var node C.uintptr_t
	if rc := C.vj_mpi_comm_split_shared(m.comm, rank, &node); rc != 0 {
		return fmt.Errorf("dist: MPI_Comm_split_type(MPI_COMM_TYPE_SHARED): %s", errorString(rc))
	}
	if rc := C.vj_mpi_comm_rank(node, &rank); rc != 0 {
		return fmt.Errorf("dist: MPI_Comm_rank(node): %s", errorString(rc))
	}
	if rc := C.vj_mpi_comm_size(node, &size); rc != 0 {
		return fmt.Errorf("dist: MPI_Comm_size(node): %s", errorString(rc))
	}
	w.localRank, w.localSize = int(rank), int(size)
	C.vj_mpi_comm_free(&node)
	return nil
}

// openLibrary dlopens the first of libs that loads and has the MPI functions used here.
func openLibrary(libs []string) (string, error) {
	var errs []string
	for _, lib := range libs {
		cs := C.CString(lib)
		var msg [512]C.char
		flavor := C.vj_mpi_open(cs, &msg[0], C.int(len(msg)))
		C.free(unsafe.Pointer(cs))
		if flavor != C.VJ_MPI_NONE {
			return lib, nil
		}
		errs = append(errs, C.GoString(&msg[0]))
	}
	return "", fmt.Errorf("no MPI library could be loaded (install Open MPI or MPICH, or name the library in VJEPA_VK_MPI_LIB): %s",
		strings.Join(errs, "; "))
}

// libraryVersion is the first line of MPI_Get_library_version (callable before MPI_Init).
func libraryVersion() string {
	var buf [1024]C.char
	C.vj_mpi_library_version(&buf[0], C.int(len(buf)))
	v, _, _ := strings.Cut(C.GoString(&buf[0]), "\n")
	v, _, _ = strings.Cut(v, ", package")
	v = strings.Join(strings.Fields(v), " ")
	return strings.TrimSpace(v)
}

func errorString(rc C.int) string {
	var buf [512]C.char
	C.vj_mpi_error_string(rc, &buf[0], C.int(len(buf)))
	return C.GoString(&buf[0])
}

// do runs f on the MPI thread and turns a non-zero MPI return code into an error naming op.
func (m *mpiWorld) do(op string, f func() C.int) error {
	var rc C.int
	done := make(chan struct{})
	m.calls <- func() {
		rc = f()
		close(done)
	}
	<-done
	if rc != 0 {
		return fmt.Errorf("dist: %s: %s", op, errorString(rc))
	}
	return nil
}

// maxCount is the largest element count of one MPI call (its counts are C ints).
const maxCount = math.MaxInt32

func (m *mpiWorld) f32Buffer(n int) []float32 {
	b := cbuf{}
	b.grow(4 * n)
	m.owned = append(m.owned, b)
	return unsafe.Slice((*float32)(b.p), n)
}

// inOwned reports whether p (n bytes) lies in a buffer of f32Buffer.
func (m *mpiWorld) inOwned(p unsafe.Pointer, n int) bool {
	for _, b := range m.owned {
		if uintptr(p) >= uintptr(b.p) && uintptr(p)+uintptr(n) <= uintptr(b.p)+uintptr(b.n) {
			return true
		}
	}
	return false
}

// allReduce sums n elements of type t at p in place, in chunks of at most maxCount elements.
func (m *mpiWorld) allReduce(p unsafe.Pointer, n, size int, t C.int) error {
	for off := 0; off < n; off += maxCount {
		c := min(n-off, maxCount)
		q := unsafe.Add(p, off*size)
		if err := m.do("MPI_Allreduce", func() C.int { return C.vj_mpi_allreduce(q, C.int(c), t, C.VJ_SUM, m.comm) }); err != nil {
			return err
		}
	}
	return nil
}

func (m *mpiWorld) allReduceF32(buf []float32) error {
	p, n := unsafe.Pointer(&buf[0]), 4*len(buf)
	if m.inOwned(p, n) {
		return m.allReduce(p, len(buf), 4, C.VJ_FLOAT)
	}
	m.send.grow(n)
	copy(unsafe.Slice((*float32)(m.send.p), len(buf)), buf)
	if err := m.allReduce(m.send.p, len(buf), 4, C.VJ_FLOAT); err != nil {
		return err
	}
	copy(buf, unsafe.Slice((*float32)(m.send.p), len(buf)))
	return nil
}

func (m *mpiWorld) allReduceF64(buf []float64) error {
	n := 8 * len(buf)
	m.send.grow(n)
	copy(unsafe.Slice((*float64)(m.send.p), len(buf)), buf)
	if err := m.allReduce(m.send.p, len(buf), 8, C.VJ_DOUBLE); err != nil {
		return err
	}
	copy(buf, unsafe.Slice((*float64)(m.send.p), len(buf)))
	return nil
}

func (m *mpiWorld) broadcast(p []byte, root, rank int) ([]byte, error) {
	m.send.grow(8)
	hdr := unsafe.Slice((*int64)(m.send.p), 1)
	hdr[0] = int64(len(p))
	if err := m.do("MPI_Bcast", func() C.int { return C.vj_mpi_bcast(m.send.p, 8, C.VJ_BYTE, C.int(root), m.comm) }); err != nil {
		return nil, err
	}
	n := int(hdr[0])
	m.send.grow(n)
	if rank == root {
		copy(m.send.bytes(n), p)
	}
	for off := 0; off < n; off += maxCount {
		c := min(n-off, maxCount)
		q := unsafe.Add(m.send.p, off)
		if err := m.do("MPI_Bcast", func() C.int { return C.vj_mpi_bcast(q, C.int(c), C.VJ_BYTE, C.int(root), m.comm) }); err != nil {
			return nil, err
		}
	}
	return append([]byte(nil), m.send.bytes(n)...), nil
}

func (m *mpiWorld) exchange(send [][]byte) ([][]byte, error) {
	size := len(send)
	counts := make([]C.int, 2*size) // send counts, then receive counts
	var total int
	for r, p := range send {
		counts[r] = C.int(len(p))
		total += len(p)
	}
	if total > maxCount {
		return nil, fmt.Errorf("dist: exchange: %d bytes to send, more than MPI's int counts allow (%d)", total, maxCount)
	}
	m.send.grow(4 * 2 * size)
	sc := unsafe.Slice((*C.int)(m.send.p), 2*size)
	copy(sc, counts[:size])
	if err := m.do("MPI_Alltoall", func() C.int {
		return C.vj_mpi_alltoall(m.send.p, 1, C.VJ_INT, unsafe.Pointer(&sc[size]), m.comm)
	}); err != nil {
		return nil, err
	}
	copy(counts[size:], sc[size:])
	sdispl, rdispl := make([]C.int, size), make([]C.int, size)
	var rtotal int
	for r := 0; r < size; r++ {
		if r > 0 {
			sdispl[r] = sdispl[r-1] + counts[r-1]
			rdispl[r] = rdispl[r-1] + counts[size+r-1]
		}
		rtotal += int(counts[size+r])
	}
	if rtotal > maxCount {
		return nil, fmt.Errorf("dist: exchange: %d bytes to receive, more than MPI's int counts allow (%d)", rtotal, maxCount)
	}
	m.send.grow(total)
	m.recv.grow(rtotal)
	sb := m.send.bytes(total)
	for r, p := range send {
		copy(sb[sdispl[r]:], p)
	}
	if err := m.do("MPI_Alltoallv", func() C.int {
		return C.vj_mpi_alltoallv(m.send.p, &counts[0], &sdispl[0], m.recv.p, &counts[size], &rdispl[0], m.comm)
	}); err != nil {
		return nil, err
	}
	rb := m.recv.bytes(rtotal)
	recv := make([][]byte, size)
	for r := range recv {
		recv[r] = append([]byte(nil), rb[rdispl[r]:rdispl[r]+counts[size+r]]...)
	}
	return recv, nil
}

func (m *mpiWorld) barrier() error {
	return m.do("MPI_Barrier", func() C.int { return C.vj_mpi_barrier(m.comm) })
}

func (m *mpiWorld) abort(code int) {
	done := make(chan struct{})
	select {
	case m.calls <- func() { C.vj_mpi_abort(m.comm, C.int(code)); close(done) }:
		select {
		case <-done:
		case <-time.After(30 * time.Second):
		}
	case <-time.After(2 * time.Second):
		// The MPI thread is inside a collective that will not finish: abort from this thread, which
		// every implementation honours in practice.
		C.vj_mpi_abort(m.comm, C.int(code))
	}
}

func (m *mpiWorld) finalize() error {
	err := m.do("MPI_Finalize", func() C.int { return C.vj_mpi_finalize() })
	close(m.calls)
	for _, b := range append(m.owned, m.send, m.recv) {
		C.free(b.p)
	}
	m.owned, m.send, m.recv = nil, cbuf{}, cbuf{}
	return err
}

// Library is an MPI library this machine has.
type Library struct {
	Soname  string `json:"soname"`  // "libmpi.so.40"
	Version string `json:"version"` // first line of MPI_Get_library_version: "Open MPI v4.1.4"
}

// Probe lists the MPI libraries that load here (VJEPA_VK_MPI_LIB's, or the usual sonames), without
// initializing them: what `vjepa-vk devices` reports.
func Probe() []Library {
	var out []Library
	for _, lib := range libraries(Launch{}, os.Getenv("VJEPA_VK_MPI_LIB")) {
		cs := C.CString(lib)
		var buf [1024]C.char
		ok := C.vj_mpi_probe(cs, &buf[0], C.int(len(buf)))
		C.free(unsafe.Pointer(cs))
		if ok == 0 {
			continue
		}
		v, _, _ := strings.Cut(C.GoString(&buf[0]), "\n")
		v, _, _ = strings.Cut(v, ", package")
		v = strings.Join(strings.Fields(v), " ")
		if v = strings.TrimSpace(v); !slices.ContainsFunc(out, func(l Library) bool { return l.Version == v }) {
			out = append(out, Library{Soname: lib, Version: v}) // libmpi.so is often one of the others
		}
	}
	return out
}
