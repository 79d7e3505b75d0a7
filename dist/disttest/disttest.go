// Package disttest runs the ranks of a data-parallel job as goroutines of one process, for tests of
// code that takes a dist.Comm (loaders, reductions) without MPI. Reductions add the ranks' values in
// rank order, so results are deterministic.
package disttest

import (
	"fmt"
	"sync"

	"github.com/vjepa-vk/vjepa-vk/dist"
)

// Rank is one rank of an in-process world; it implements dist.Comm.
type Rank struct {
	rank int
	h    *hub
}

var _ dist.Comm = (*Rank)(nil)

// New returns the n ranks of one in-process world. Each must be used by its own goroutine, and every
// rank must call the same collectives in the same order (a mismatch panics, as MPI would hang).
func New(n int) []*Rank {
	h := &hub{n: n, vals: make([]any, n), ops: make([]string, n)}
	h.cond = sync.NewCond(&h.mu)
	ranks := make([]*Rank, n)
	for i := range ranks {
		ranks[i] = &Rank{rank: i, h: h}
	}
	return ranks
}

// hub is a reusable rendezvous: gather returns every rank's value once all have arrived.
type hub struct {
	n       int
	mu      sync.Mutex
	cond    *sync.Cond
	gen     int
	arrived int
	vals    []any
	ops     []string
	result  []any
	failed  error // set by Abort: every collective returns it from then on
}

func (h *hub) gather(rank int, op string, v any) ([]any, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.failed != nil {
		return nil, h.failed
	}
	gen := h.gen
	h.vals[rank], h.ops[rank] = v, op
	h.arrived++
	if h.arrived < h.n {
		for gen == h.gen && h.failed == nil {
			h.cond.Wait()
		}
		if gen == h.gen {
			return nil, h.failed
		}
		return h.result, nil
	}
	for r, o := range h.ops {
		if o != op {
			panic(fmt.Sprintf("disttest: rank %d called %s while rank %d called %s", r, o, rank, op))
		}
	}
	h.result, h.vals = h.vals, make([]any, h.n)
	h.arrived = 0
	h.gen++
	h.cond.Broadcast()
	return h.result, nil
}

// Abort is MPI_Abort for the in-process world: every rank's pending and later collectives return an
// error naming this rank and err, instead of waiting for it forever.
func (r *Rank) Abort(err error) {
	r.h.mu.Lock()
	defer r.h.mu.Unlock()
	if r.h.failed == nil {
		r.h.failed = fmt.Errorf("disttest: rank %d aborted the job: %w", r.rank, err)
	}
	r.h.cond.Broadcast()
}

func (r *Rank) Rank() int { return r.rank }
func (r *Rank) Size() int { return r.h.n }

func (r *Rank) AllReduceF32(buf []float32) error {
	all, err := r.h.gather(r.rank, "AllReduceF32", append([]float32(nil), buf...))
	if err != nil {
		return err
	}
	clear(buf)
	for _, v := range all {
		for i, x := range v.([]float32) {
			buf[i] += x
		}
	}
	return nil
}

func (r *Rank) AllReduceF64(buf []float64) error {
	all, err := r.h.gather(r.rank, "AllReduceF64", append([]float64(nil), buf...))
	if err != nil {
		return err
	}
	clear(buf)
	for _, v := range all {
		for i, x := range v.([]float64) {
			buf[i] += x
		}
	}
	return nil
}

func (r *Rank) Broadcast(p []byte, root int) ([]byte, error) {
	all, err := r.h.gather(r.rank, "Broadcast", append([]byte(nil), p...))
	if err != nil {
		return nil, err
	}
	return append([]byte(nil), all[root].([]byte)...), nil
}

func (r *Rank) Exchange(send [][]byte) ([][]byte, error) {
	if len(send) != r.h.n {
		panic(fmt.Sprintf("disttest: Exchange of %d messages in a world of %d", len(send), r.h.n))
	}
	all, err := r.h.gather(r.rank, "Exchange", send)
	if err != nil {
		return nil, err
	}
	recv := make([][]byte, r.h.n)
	for from, v := range all {
		recv[from] = append([]byte(nil), v.([][]byte)[r.rank]...)
	}
	return recv, nil
}

func (r *Rank) Barrier() error {
	_, err := r.h.gather(r.rank, "Barrier", nil)
	return err
}
