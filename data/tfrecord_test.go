package data

import (
	"bytes"
	"errors"
	"hash/crc32"
	"io"
	"runtime"
	"testing"
	"testing/iotest"
)

// TestMaskedCRC checks CRC-32C against its published check value and the TFRecord mask against the
// formula written out by hand.
func TestMaskedCRC(t *testing.T) {
	const check = 0xe3069283 // CRC-32C("123456789"), RFC 3720 appendix B.4
	if got := crc32.Checksum([]byte("123456789"), castagnoli); got != check {
		t.Fatalf("crc32c(123456789) = %08x, want %08x", got, check)
	}
	// rotr(0xe3069283, 15) = 0x2507c60d; + 0xa282ead8 = 0xc78ab0e5.
	if got, want := maskedCRC([]byte("123456789")), uint32(0xc78ab0e5); got != want {
		t.Fatalf("maskedCRC(123456789) = %08x, want %08x", got, want)
	}
}

func makeRecords(sizes ...int) [][]byte {
	recs := make([][]byte, len(sizes))
	for i, n := range sizes {
		recs[i] = make([]byte, n)
		for j := range recs[i] {
			recs[i][j] = byte(i*31 + j*7)
		}
	}
	return recs
}

func frame(recs [][]byte) (file []byte, offsets []int64) {
	for _, r := range recs {
		offsets = append(offsets, int64(len(file)))
		file = AppendRecord(file, r)
	}
	return file, offsets
}

// readAll collects the good records and the errors of a RecordReader until io.EOF.
func readAll(t *testing.T, rr *RecordReader) (recs [][]byte, errs []error) {
	t.Helper()
	for range 10000 {
		data, err := rr.Next()
		if err == io.EOF {
			return recs, errs
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		recs = append(recs, data)
	}
	t.Fatal("reader did not reach io.EOF")
	return nil, nil
}

func TestRecordRoundTrip(t *testing.T) {
	recs := makeRecords(0, 1, 12, 4095, 1<<16+3, 3<<20)
	file, _ := frame(recs)
	var buf bytes.Buffer
	w := NewRecordWriter(&buf)
	for _, r := range recs {
		if err := w.Write(r); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(buf.Bytes(), file) {
		t.Fatalf("RecordWriter and AppendRecord disagree")
	}
	readers := []struct {
		name string
		r    func() io.Reader
	}{
		{"plain", func() io.Reader { return bytes.NewReader(file) }},
		{"half", func() io.Reader { return iotest.HalfReader(bytes.NewReader(file)) }},
		{"onebyte", func() io.Reader { return iotest.OneByteReader(bytes.NewReader(file)) }},
		{"dataerr", func() io.Reader { return iotest.DataErrReader(bytes.NewReader(file)) }},
	}
	for _, rd := range readers {
		t.Run("reader="+rd.name, func(t *testing.T) {
			rr := NewRecordReader(rd.r(), "mem", 0)
			got, errs := readAll(t, rr)
			if len(errs) != 0 {
				t.Fatalf("errors: %v", errs)
			}
			if len(got) != len(recs) {
				t.Fatalf("got %d records, want %d", len(got), len(recs))
			}
			for i := range recs {
				if !bytes.Equal(got[i], recs[i]) {
					t.Fatalf("record %d differs (len %d, want %d)", i, len(got[i]), len(recs[i]))
				}
			}
			if s := rr.Stats(); s.Records != len(recs) || s.Corrupt != 0 || s.Truncated != 0 || s.Bytes != int64(len(file)) {
				t.Fatalf("stats %+v, want %d records, %d bytes", s, len(recs), len(file))
			}
		})
	}
}

func TestRecordCorrupt(t *testing.T) {
	recs := makeRecords(100, 200, 300)
	clean, off := frame(recs)
	cases := []struct {
		name     string
		flip     int64 // byte to flip
		want     error
		wantOff  int64
		wantRecs []int // indices of records still read
	}{
		{"field=data,record=1", off[1] + 12 + 50, ErrDataCRC, off[1], []int{0, 2}},
		{"field=datacrc,record=2", off[2] + 12 + 300 + 1, ErrDataCRC, off[2], []int{0, 1}},
		{"field=length,record=1", off[1] + 2, ErrLengthCRC, off[1], []int{0, 2}},
		{"field=lengthcrc,record=0", off[0] + 9, ErrLengthCRC, off[0], []int{1, 2}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			file := bytes.Clone(clean)
			file[tc.flip] ^= 0x40
			rr := NewRecordReader(bytes.NewReader(file), "shard-7", 0)
			got, errs := readAll(t, rr)
			if len(errs) != 1 {
				t.Fatalf("errors %v, want one", errs)
			}
			var ce *CorruptRecordError
			if !errors.As(errs[0], &ce) || !errors.Is(errs[0], tc.want) || ce.Offset != tc.wantOff || ce.File != "shard-7" {
				t.Fatalf("error %#v (%v), want %v at offset %d in shard-7", errs[0], errs[0], tc.want, tc.wantOff)
			}
			if len(got) != len(tc.wantRecs) {
				t.Fatalf("read %d records, want %d", len(got), len(tc.wantRecs))
			}
			for i, k := range tc.wantRecs {
				if !bytes.Equal(got[i], recs[k]) {
					t.Fatalf("record %d is not original record %d", i, k)
				}
			}
			if s := rr.Stats(); s.Corrupt != 1 || s.Records != len(tc.wantRecs) {
				t.Fatalf("stats %+v", s)
			}
		})
	}
}

func TestRecordTooLarge(t *testing.T) {
	recs := makeRecords(64, 2000, 64)
	file, off := frame(recs)
	rr := NewRecordReader(bytes.NewReader(file), "f", 1000)
	got, errs := readAll(t, rr)
	if len(errs) != 1 || !errors.Is(errs[0], ErrRecordTooLarge) {
		t.Fatalf("errors %v, want one ErrRecordTooLarge", errs)
	}
	if ce := errs[0].(*CorruptRecordError); ce.Offset != off[1] {
		t.Fatalf("offset %d, want %d", ce.Offset, off[1])
	}
	// The oversized record's payload is scanned over; the records around it survive.
	if len(got) != 2 || !bytes.Equal(got[0], recs[0]) || !bytes.Equal(got[1], recs[2]) {
		t.Fatalf("got %d records, want records 0 and 2", len(got))
	}
}

// TestRecordTruncated cuts the file at every byte of its last record: the earlier records survive,
// and the reader reports exactly one truncation and then io.EOF.
func TestRecordTruncated(t *testing.T) {
	recs := makeRecords(10, 33)
	file, off := frame(recs)
	for cut := off[1] + 1; cut < int64(len(file)); cut++ {
		rr := NewRecordReader(bytes.NewReader(file[:cut]), "f", 0)
		got, errs := readAll(t, rr)
		if len(got) != 1 || !bytes.Equal(got[0], recs[0]) {
			t.Fatalf("cut=%d: got %d records, want the first", cut, len(got))
		}
		if len(errs) != 1 || !errors.Is(errs[0], ErrTruncated) || errs[0].(*CorruptRecordError).Offset != off[1] {
			t.Fatalf("cut=%d: errors %v, want one truncation at %d", cut, errs, off[1])
		}
		if s := rr.Stats(); s.Truncated != 1 {
			t.Fatalf("cut=%d: stats %+v", cut, s)
		}
	}
}

// TestRecordHugeLengthSmallFile checks that a valid header claiming 900 MB on a tiny file does not
// allocate 900 MB.
func TestRecordHugeLengthSmallFile(t *testing.T) {
	file := AppendRecord(nil, make([]byte, 16))
	var hdr []byte
	hdr = AppendRecord(hdr, nil)[:12]
	// Rewrite the header for 900e6 bytes with a correct length CRC.
	n := uint64(900_000_000)
	for i := range 8 {
		hdr[i] = byte(n >> (8 * i))
	}
	c := maskedCRC(hdr[:8])
	for i := range 4 {
		hdr[8+i] = byte(c >> (8 * i))
	}
	file = append(file, hdr...)
	file = append(file, make([]byte, 100)...)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	rr := NewRecordReader(bytes.NewReader(file), "f", 0)
	if _, err := rr.Next(); err != nil {
		t.Fatal(err)
	}
	if _, err := rr.Next(); !errors.Is(err, ErrTruncated) {
		t.Fatalf("err %v, want truncation", err)
	}
	runtime.ReadMemStats(&after)
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 8<<20 {
		t.Fatalf("allocated %d bytes for a %d-byte file", grew, len(file))
	}
}

func TestRecordReaderError(t *testing.T) {
	boom := errors.New("boom")
	rr := NewRecordReader(iotest.ErrReader(boom), "f", 0)
	if _, err := rr.Next(); !errors.Is(err, boom) {
		t.Fatalf("err %v, want boom", err)
	}
}

func BenchmarkRecordReader(b *testing.B) {
	recs := makeRecords(20 << 20)
	file, _ := frame(recs)
	b.SetBytes(int64(len(file)))
	for b.Loop() {
		rr := NewRecordReader(bytes.NewReader(file), "f", 0)
		if _, err := rr.Next(); err != nil {
			b.Fatal(err)
		}
	}
}
