package main

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// stalledWriter blocks every Write until release is closed, as a pipe nobody reads.
type stalledWriter struct {
	release chan struct{}
	mu      sync.Mutex
	b       bytes.Buffer
}

func (w *stalledWriter) Write(p []byte) (int, error) {
	<-w.release
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *stalledWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// TestJobOutput: writes return at once while the reader is stalled, arrive whole and in order once it
// reads again, and past the limit are dropped and counted rather than blocking; Close gives up on a
// reader that never comes back.
func TestJobOutput(t *testing.T) {
	w := &stalledWriter{release: make(chan struct{})}
	o := newJobOutput(w, 1000)
	var want strings.Builder
	start := time.Now()
	for i := range 50 {
		line := fmt.Sprintf("step %d\n", i)
		want.WriteString(line)
		if n, err := o.Write([]byte(line)); n != len(line) || err != nil {
			t.Fatalf("Write = %d, %v", n, err)
		}
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("50 writes to a stalled reader took %v", d)
	}
	close(w.release)
	if !o.Close(5 * time.Second) {
		t.Fatal("Close: output not drained")
	}
	if got := w.String(); got != want.String() {
		t.Fatalf("got %q, want %q", got, want.String())
	}
	if _, err := o.Write([]byte("late\n")); err == nil {
		t.Error("Write after Close succeeded")
	}

	// Over the limit: the excess is dropped and reported, never waited for.
	w = &stalledWriter{release: make(chan struct{})}
	o = newJobOutput(w, 100)
	for range 40 {
		o.Write([]byte("0123456789\n")) // 440 bytes
	}
	if o.Close(50 * time.Millisecond) {
		t.Fatal("Close reported a stalled reader drained")
	}
	close(w.release)
	time.Sleep(100 * time.Millisecond)
	// The copier may take the first lines before it stalls, so how many are kept varies; none is lost
	// without being counted.
	got := w.String()
	kept := strings.Count(got, "0123456789\n")
	var dropped int
	if i := strings.Index(got, "("); i < 0 {
		t.Fatalf("no drop report in %q", got)
	} else if _, err := fmt.Sscanf(got[i:], "(%d bytes of output dropped", &dropped); err != nil {
		t.Fatalf("drop report in %q: %v", got, err)
	}
	if kept < 9 || kept+dropped/11 != 40 || dropped%11 != 0 {
		t.Fatalf("%d lines kept and %d bytes dropped of 40 lines:\n%s", kept, dropped, got)
	}
}
