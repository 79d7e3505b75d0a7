package train

import (
	"bytes"
	"testing"

	"github.com/vjepa-vk/vjepa-vk/data"
)

// TestLoaderWarningsOnce gives the trainer's loader warning sink the same corrupt record on three passes
// and once more through a second loader (validation makes a new one each time): one line, prefixed
// once.
func TestLoaderWarningsOnce(t *testing.T) {
	var out bytes.Buffer
	tr := &trainer{cfg: Default(), progress: NewProgress(&out, "plain", 10, 1)}
	corrupt := &data.CorruptRecordError{File: "droid-train.tfrecord-00003", Offset: 5, Err: data.ErrDataCRC}
	lc := tr.loaderConfig()
	for pass := 0; pass < 3; pass++ {
		lc.Warn(corrupt)
	}
	tr.loaderConfig().Warn(corrupt)
	want := "warning: data: droid-train.tfrecord-00003: record at offset 5: data crc mismatch\n"
	if out.String() != want {
		t.Errorf("printed %q, want %q", out.String(), want)
	}
	if s, want := tr.warnings.Summary(), "1 data problem skipped (each warned once above; met 4 times in all, once per pass over the data)"; s != want {
		t.Errorf("summary %q, want %q", s, want)
	}
}
