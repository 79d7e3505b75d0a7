package data

import (
	"fmt"
	"sync"
)

// Warnings reports data problems (LoaderConfig.Warn, InspectOptions.Warn) once each: a loader meets the
// same corrupt record or bad episode on every pass over the data, and validation makes a new loader
// each time, so without it one bad file repeats its warning for the whole run. Its Warn method is safe
// for concurrent use.
type Warnings struct {
	mu    sync.Mutex
	print func(msg string)
	seen  map[string]int // message → times reported
}

// NewWarnings passes each distinct warning, the first time it comes, to print.
func NewWarnings(print func(msg string)) *Warnings {
	return &Warnings{print: print, seen: map[string]int{}}
}

// Warn reports err unless an identical warning was reported before; either way it is counted.
func (w *Warnings) Warn(err error) {
	msg := err.Error()
	w.mu.Lock()
	w.seen[msg]++
	first := w.seen[msg] == 1
	w.mu.Unlock()
	if first {
		w.print(msg)
	}
}

// Counts returns the number of distinct warnings and of warnings in all, repeats included.
func (w *Warnings) Counts() (distinct, total int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, n := range w.seen {
		total += n
	}
	return len(w.seen), total
}

// Summary says how many problems were skipped and how often, or "" when there were none:
// "3 data problems skipped (each warned once; met 9 times in all)".
func (w *Warnings) Summary() string {
	distinct, total := w.Counts()
	switch {
	case distinct == 0:
		return ""
	case distinct == total:
		return fmt.Sprintf("%d data %s skipped (warned above)", distinct, plural(distinct, "problem", "problems"))
	}
	return fmt.Sprintf("%d data %s skipped (each warned once above; met %d times in all, once per pass over the data)",
		distinct, plural(distinct, "problem", "problems"), total)
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
