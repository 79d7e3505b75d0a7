package data

import (
	"errors"
	"sync"
	"testing"
)

// TestWarnings reports three distinct problems met on five passes by four goroutines: each is printed
// once, all are counted, and the summary says both.
func TestWarnings(t *testing.T) {
	var mu sync.Mutex
	var printed []string
	w := NewWarnings(func(msg string) { mu.Lock(); printed = append(printed, msg); mu.Unlock() })
	if s := w.Summary(); s != "" {
		t.Errorf("Summary with no warnings = %q, want empty", s)
	}
	problems := []error{
		&CorruptRecordError{File: "a-train.tfrecord-00000", Offset: 1234, Err: ErrDataCRC},
		&BadEpisodeError{Shard: "a-train.tfrecord-00001", Record: 3, Err: errors.New("data: frame 0: decode jpeg (9 bytes): unexpected EOF")},
		&CorruptRecordError{File: "a-train.tfrecord-00002", Offset: 99, Err: ErrTruncated},
	}
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for pass := 0; pass < 5; pass++ {
				for _, p := range problems {
					w.Warn(p)
				}
			}
		}()
	}
	wg.Wait()
	if len(printed) != 3 {
		t.Errorf("printed %q, want each of the 3 problems once", printed)
	}
	if d, n := w.Counts(); d != 3 || n != 60 {
		t.Errorf("Counts() = %d, %d; want 3 distinct, 60 in all", d, n)
	}
	if s, want := w.Summary(), "3 data problems skipped (each warned once above; met 60 times in all, once per pass over the data)"; s != want {
		t.Errorf("Summary() = %q, want %q", s, want)
	}
	once := NewWarnings(func(string) {})
	once.Warn(problems[0])
	if s, want := once.Summary(), "1 data problem skipped (warned above)"; s != want {
		t.Errorf("Summary() = %q, want %q", s, want)
	}
}
