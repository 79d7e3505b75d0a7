// Package data reads DROID episodes stored as RLDS (TFRecord shards of tf.train.Example, one episode per
// record) from a local directory or Google Cloud Storage, turns them into V-JEPA 2-AC training clips
// (frames, 7-D states and actions, spec vjepa2-ac §7) and batches them; it also writes such datasets
// (make-demo-data) and the on-disk feature cache of encoder outputs.
//
// One file per layer: tfrecord.go (framing), example.go (proto wire format), dataset.go and gcs.go
// (where shards live), droid.go (episodes to clips), rotation.go (Euler maths), image.go (pixels),
// loader.go (workers and batches), inspect.go (per-episode reports), featcache.go (encoded features),
// demo.go (synthetic episodes for make-demo-data).
package data

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
)

// DefaultMaxRecordLen bounds a record's declared length. DROID episodes are about 20 MB, so a larger
// length is corruption, and the bound keeps a damaged header from asking for an absurd allocation.
const DefaultMaxRecordLen = 1 << 30

// castagnoli is the CRC-32C table TFRecord checksums use (droid-rlds §2).
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// maskedCRC is TFRecord's masked CRC-32C: rotate right by 15 bits and add a constant, so that a CRC of
// data that itself holds CRCs does not degenerate (droid-rlds §2).
func maskedCRC(b []byte) uint32 {
	crc := crc32.Checksum(b, castagnoli)
	return ((crc >> 15) | (crc << 17)) + 0xa282ead8
}

// Errors carried inside a CorruptRecordError; callers branch with errors.Is.
var (
	ErrLengthCRC      = errors.New("length crc mismatch")
	ErrDataCRC        = errors.New("data crc mismatch")
	ErrRecordTooLarge = errors.New("record length over limit")
	ErrTruncated      = errors.New("truncated record")
)

// CorruptRecordError reports a record that failed a framing check, with the shard it sits in and the
// byte offset of its header. The reader skips it (or, when truncated, ends the shard) and goes on.
type CorruptRecordError struct {
	File   string
	Offset int64
	Err    error
}

func (e *CorruptRecordError) Error() string {
	return fmt.Sprintf("data: %s: record at offset %d: %v", e.File, e.Offset, e.Err)
}

func (e *CorruptRecordError) Unwrap() error { return e.Err }

// RecordStats counts what a RecordReader saw.
type RecordStats struct {
	Records   int   // good records returned
	Corrupt   int   // records skipped after a failed check (crc, length)
	Truncated int   // 1 when the shard ended inside a record
	Bytes     int64 // bytes consumed, including skipped ones
}

// RecordReader reads TFRecord framing (droid-rlds §2):
//
//	uint64 length, uint32 masked_crc32c(length), byte data[length], uint32 masked_crc32c(data)
//
// A record whose data CRC fails is skipped. A header whose length CRC fails, or whose length is over
// the limit, cannot be trusted to find the next record, so the reader scans forward byte by byte for
// the next header with a valid length CRC. Each skip is returned as a *CorruptRecordError; calling
// Next again continues with the next record. A file that ends inside a record yields one
// *CorruptRecordError wrapping ErrTruncated and then io.EOF.
type RecordReader struct {
	r      *bufio.Reader
	file   string
	maxLen int64
	off    int64
	stats  RecordStats
	done   bool
}

// NewRecordReader reads records from r; file names the shard in errors. maxLen <= 0 means
// DefaultMaxRecordLen.
func NewRecordReader(r io.Reader, file string, maxLen int64) *RecordReader {
	if maxLen <= 0 {
		maxLen = DefaultMaxRecordLen
	}
	return &RecordReader{r: bufio.NewReaderSize(r, 1<<16), file: file, maxLen: maxLen}
}

// Stats returns the counts so far.
func (rr *RecordReader) Stats() RecordStats { return rr.stats }

// Offset is the byte offset of the next header.
func (rr *RecordReader) Offset() int64 { return rr.off }

const recordHeaderLen = 12

// Next returns the next record's data in a freshly allocated slice (callers may keep views into it).
// It returns io.EOF at a clean end of file, a *CorruptRecordError for a skipped or truncated record,
// and any other error from the underlying reader as is.
func (rr *RecordReader) Next() ([]byte, error) {
	if rr.done {
		return nil, io.EOF
	}
	start := rr.off
	hdr, err := rr.r.Peek(recordHeaderLen)
	if len(hdr) == 0 && err == io.EOF {
		rr.done = true
		return nil, io.EOF
	}
	if err != nil {
		return nil, rr.endOfData(start, err)
	}
	length := binary.LittleEndian.Uint64(hdr[:8])
	if maskedCRC(hdr[:8]) != binary.LittleEndian.Uint32(hdr[8:12]) {
		return nil, rr.resync(start, ErrLengthCRC)
	}
	if length > uint64(rr.maxLen) {
		return nil, rr.resync(start, fmt.Errorf("%w: %d > %d", ErrRecordTooLarge, length, rr.maxLen))
	}
	rr.discard(recordHeaderLen)
	data, err := rr.readFull(int64(length))
	if err != nil {
		return nil, rr.endOfData(start, err)
	}
	var tail [4]byte
	n, err := io.ReadFull(rr.r, tail[:])
	rr.off += int64(n)
	rr.stats.Bytes += int64(n)
	if err != nil {
		return nil, rr.endOfData(start, err)
	}
	if maskedCRC(data) != binary.LittleEndian.Uint32(tail[:]) {
		rr.stats.Corrupt++
		return nil, &CorruptRecordError{File: rr.file, Offset: start, Err: ErrDataCRC}
	}
	rr.stats.Records++
	return data, nil
}

// readFull reads n bytes, growing the buffer as data arrives so that a header claiming a huge length
// on a short file costs at most about twice the bytes that exist.
func (rr *RecordReader) readFull(n int64) ([]byte, error) {
	const step = 1 << 20
	buf := make([]byte, 0, min(n, step))
	for int64(len(buf)) < n {
		if len(buf) == cap(buf) {
			grown := make([]byte, len(buf), min(n, int64(cap(buf))*2))
			copy(grown, buf)
			buf = grown
		}
		m, err := io.ReadFull(rr.r, buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+m]
		rr.off += int64(m)
		rr.stats.Bytes += int64(m)
		if err != nil {
			return buf, err
		}
	}
	return buf, nil
}

func (rr *RecordReader) discard(n int) {
	m, _ := rr.r.Discard(n)
	rr.off += int64(m)
	rr.stats.Bytes += int64(m)
}

// endOfData turns an unexpected end of input into the truncation report; other errors pass through.
func (rr *RecordReader) endOfData(start int64, err error) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		rr.done = true
		rr.stats.Truncated++
		return &CorruptRecordError{File: rr.file, Offset: start, Err: ErrTruncated}
	}
	return fmt.Errorf("data: %s: read record at offset %d: %w", rr.file, start, err)
}

// resync skips the untrustworthy header at start and advances to the next offset whose 12 bytes form a
// header with a valid length CRC and an acceptable length (or to the end of the file).
func (rr *RecordReader) resync(start int64, cause error) error {
	rr.stats.Corrupt++
	rr.discard(1)
	for {
		hdr, err := rr.r.Peek(recordHeaderLen)
		if len(hdr) < recordHeaderLen || err != nil {
			if err != nil && err != io.EOF {
				return fmt.Errorf("data: %s: read record at offset %d: %w", rr.file, rr.off, err)
			}
			// Whatever is left cannot hold a record: the file ends here.
			rr.discard(len(hdr))
			rr.done = true
			break
		}
		if maskedCRC(hdr[:8]) == binary.LittleEndian.Uint32(hdr[8:12]) &&
			binary.LittleEndian.Uint64(hdr[:8]) <= uint64(rr.maxLen) {
			break
		}
		rr.discard(1)
	}
	return &CorruptRecordError{File: rr.file, Offset: start, Err: cause}
}

// RecordWriter writes TFRecord framing; it is the inverse of RecordReader.
type RecordWriter struct {
	w   io.Writer
	hdr [recordHeaderLen]byte
}

// NewRecordWriter writes records to w.
func NewRecordWriter(w io.Writer) *RecordWriter { return &RecordWriter{w: w} }

// Write appends one record holding data.
func (rw *RecordWriter) Write(data []byte) error {
	binary.LittleEndian.PutUint64(rw.hdr[:8], uint64(len(data)))
	binary.LittleEndian.PutUint32(rw.hdr[8:12], maskedCRC(rw.hdr[:8]))
	if _, err := rw.w.Write(rw.hdr[:]); err != nil {
		return fmt.Errorf("data: write record header: %w", err)
	}
	if _, err := rw.w.Write(data); err != nil {
		return fmt.Errorf("data: write record data: %w", err)
	}
	var tail [4]byte
	binary.LittleEndian.PutUint32(tail[:], maskedCRC(data))
	if _, err := rw.w.Write(tail[:]); err != nil {
		return fmt.Errorf("data: write record crc: %w", err)
	}
	return nil
}

// AppendRecord appends data with TFRecord framing to b.
func AppendRecord(b, data []byte) []byte {
	var hdr [recordHeaderLen]byte
	binary.LittleEndian.PutUint64(hdr[:8], uint64(len(data)))
	binary.LittleEndian.PutUint32(hdr[8:12], maskedCRC(hdr[:8]))
	b = append(b, hdr[:]...)
	b = append(b, data...)
	return binary.LittleEndian.AppendUint32(b, maskedCRC(data))
}
