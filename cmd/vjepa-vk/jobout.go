package main

import (
	"fmt"
	"io"
	"sync"
	"time"
)

// jobOutput is rank 0's standard output in a job: writes go to memory and a goroutine copies them to w,
// so that training never waits on the launcher. Open MPI's mpirun reads none of the ranks' output while
// it sleeps odls_base_sigkill_timeout (before it forwards SIGTERM, and again before SIGKILL), and a rank
// blocked writing a full pipe then cannot finish its step and checkpoint before it is killed: rank 0 of
// the demo, printing every step, blocked after 161 steps. Beyond max bytes waiting, output is dropped
// and counted; Close reports the count.
type jobOutput struct {
	w    io.Writer
	max  int
	mu   sync.Mutex
	cond *sync.Cond
	buf  []byte
	// dropped counts the bytes not kept since the last report; closed stops the copier once buf is out.
	dropped int
	closed  bool
	done    chan struct{}
}

func newJobOutput(w io.Writer, max int) *jobOutput {
	o := &jobOutput{w: w, max: max, done: make(chan struct{})}
	o.cond = sync.NewCond(&o.mu)
	go o.copy()
	return o
}

// Write never blocks on w: p is kept whole or, when max bytes are already waiting, dropped whole.
func (o *jobOutput) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return 0, io.ErrClosedPipe
	}
	if len(o.buf)+len(p) > o.max {
		o.dropped += len(p)
		return len(p), nil
	}
	if o.dropped > 0 {
		o.buf = fmt.Appendf(o.buf, "(%d bytes of output dropped: nothing read them)\n", o.dropped)
		o.dropped = 0
	}
	o.buf = append(o.buf, p...)
	o.cond.Signal()
	return len(p), nil
}

func (o *jobOutput) copy() {
	defer close(o.done)
	for {
		o.mu.Lock()
		for len(o.buf) == 0 && !o.closed {
			o.cond.Wait()
		}
		chunk := o.buf
		o.buf = nil
		closed := o.closed
		o.mu.Unlock()
		if len(chunk) > 0 {
			if _, err := o.w.Write(chunk); err != nil {
				return
			}
		}
		if closed && len(chunk) == 0 {
			return
		}
	}
}

// Close stops taking output and waits up to wait for what is held to reach w (a launcher that never
// reads again must not keep the rank from exiting). It reports whether everything was written.
func (o *jobOutput) Close(wait time.Duration) bool {
	o.mu.Lock()
	if o.dropped > 0 {
		o.buf = fmt.Appendf(o.buf, "(%d bytes of output dropped: nothing read them)\n", o.dropped)
		o.dropped = 0
	}
	o.closed = true
	o.cond.Signal()
	o.mu.Unlock()
	select {
	case <-o.done:
		return true
	case <-time.After(wait):
		return false
	}
}
