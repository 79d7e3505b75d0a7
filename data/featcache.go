package data

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"os"
	"path/filepath"
	"slices"

	"github.com/x448/float16"
)

// The feature cache stores frozen-encoder outputs so training can skip the encoder. A cache is a
// directory holding index.json and shard files of fixed-size records; record i of shard s sits at
// byte offset i·RecordBytes. One record, all little-endian (version 2):
//
//	header   10 × uint32: magic "VJFC", version, T, HW, D, S, A, source shard, source record, clip start
//	states   float32 [T, S]
//	actions  float32 [T−1, A]
//	features float16 [T, HW, D]   (IEEE half bits)
//	crc      uint32 CRC-32C (Castagnoli) of everything above
//
// Version 1 caches (written before states and actions could have other widths than DROID's 7) have an
// 8-word header without S and A, and S = A = 7; they are still read.
//
// index.json names the shards, the shape, and a hash of the configuration that produced the features
// (encoder checkpoint, image transform, clip settings) so a stale cache is refused, not silently used.

const (
	featCacheMagic   = 0x4346_4a56 // "VJFC" read as little-endian uint32
	featCacheVersion = 2
	// FeatureCacheIndex is the index file name inside a cache directory.
	FeatureCacheIndex = "index.json"
)

// featHeaderLen is the record header's size in a cache of version v.
func featHeaderLen(v int) int64 {
	if v == 1 {
		return 32
	}
	return 40
}

// ErrFeatureCacheMismatch is returned when a cache was built with another configuration or shape.
var ErrFeatureCacheMismatch = errors.New("feature cache mismatch")

// FeatureCacheError reports a bad record or shard with its place in the cache.
type FeatureCacheError struct {
	File   string
	Record int   // index within the shard; −1 for the whole shard
	Offset int64 // byte offset in the shard
	Err    error
}

func (e *FeatureCacheError) Error() string {
	if e.Record < 0 {
		return fmt.Sprintf("data: feature cache %s: %v", e.File, e.Err)
	}
	return fmt.Sprintf("data: feature cache %s: record %d (offset %d): %v", e.File, e.Record, e.Offset, e.Err)
}

func (e *FeatureCacheError) Unwrap() error { return e.Err }

// FeatureCacheConfig is the shape and identity of a cache.
type FeatureCacheConfig struct {
	Frames int `json:"frames"` // T
	Tokens int `json:"tokens"` // HW, tokens per frame (256)
	Dim    int `json:"dim"`    // D, encoder width (1408 for ViT-g)
	// StateDim S and ActionDim A are the widths of the states and actions; 0 means 7 (DROID's, and
	// every version 1 cache's).
	StateDim        int    `json:"state_dim,omitempty"`
	ActionDim       int    `json:"action_dim,omitempty"`
	ConfigHash      string `json:"config_hash"` // from ConfigHash
	RecordsPerShard int    `json:"records_per_shard"`
}

// Dims are S and A, 7 where unset.
func (c FeatureCacheConfig) Dims() (state, action int) {
	state, action = c.StateDim, c.ActionDim
	if state == 0 {
		state = 7
	}
	if action == 0 {
		action = 7
	}
	return state, action
}

// RecordBytes is the size of one record in a cache of the current version.
func (c FeatureCacheConfig) RecordBytes() int64 { return c.recordBytes(featCacheVersion) }

func (c FeatureCacheConfig) recordBytes(version int) int64 {
	T, HW, D := int64(c.Frames), int64(c.Tokens), int64(c.Dim)
	S, A := c.Dims()
	return featHeaderLen(version) + 4*T*int64(S) + 4*(T-1)*int64(A) + 2*T*HW*D + 4
}

func (c FeatureCacheConfig) validate() error {
	if c.Frames < 2 || c.Tokens < 1 || c.Dim < 1 {
		return fmt.Errorf("shape T=%d HW=%d D=%d: want T >= 2, HW >= 1, D >= 1", c.Frames, c.Tokens, c.Dim)
	}
	if c.StateDim < 0 || c.ActionDim < 0 {
		return fmt.Errorf("state_dim %d, action_dim %d: want >= 1 (or 0 for 7)", c.StateDim, c.ActionDim)
	}
	if c.RecordsPerShard < 1 {
		return fmt.Errorf("records_per_shard: must be >= 1, got %d", c.RecordsPerShard)
	}
	return nil
}

// ConfigHash returns a hex SHA-256 of v's JSON encoding (maps encode with sorted keys), for
// FeatureCacheConfig.ConfigHash.
func ConfigHash(v any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("data: config hash: %w", err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

// FeatureRecord is one cached clip. Slices have the lengths implied by the cache's shape.
type FeatureRecord struct {
	SourceShard  int
	SourceRecord int
	Start        int
	States       []float32 // [T, S]
	Actions      []float32 // [T−1, A]
	Features     []uint16  // [T, HW, D] float16 bits
}

// featIndex is index.json.
type featIndex struct {
	Format string `json:"format"`
	FeatureCacheConfig
	Version     int         `json:"version"`
	RecordBytes int64       `json:"record_bytes"`
	Shards      []featShard `json:"shards"`
	Config      any         `json:"config,omitempty"`
}

type featShard struct {
	File    string `json:"file"`
	Records int    `json:"records"`
}

const featFormat = "vjepa-vk feature cache"

// FeatureCacheWriter appends records to a new cache.
type FeatureCacheWriter struct {
	dir   string
	cfg   FeatureCacheConfig
	index featIndex
	f     *os.File
	bw    *bufio.Writer
	n     int // records in the current shard
	buf   []byte
}

// CreateFeatureCache starts a cache in dir (created if needed). describe is stored in index.json for
// people; only cfg.ConfigHash is compared on open.
func CreateFeatureCache(dir string, cfg FeatureCacheConfig, describe any) (*FeatureCacheWriter, error) {
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("data: create feature cache %s: %w", dir, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("data: create feature cache: %w", err)
	}
	cfg.StateDim, cfg.ActionDim = cfg.Dims() // written out, so the index says them
	return &FeatureCacheWriter{dir: dir, cfg: cfg, index: featIndex{
		Format: featFormat, Version: featCacheVersion, FeatureCacheConfig: cfg,
		RecordBytes: cfg.RecordBytes(), Config: describe,
	}}, nil
}

// Append writes one record; its slices must have the cache's shape (a wrong length is a caller bug
// and panics).
func (w *FeatureCacheWriter) Append(rec *FeatureRecord) error {
	T, HW, D := w.cfg.Frames, w.cfg.Tokens, w.cfg.Dim
	S, A := w.cfg.Dims()
	if len(rec.States) != T*S || len(rec.Actions) != (T-1)*A || len(rec.Features) != T*HW*D {
		panic(fmt.Sprintf("data: FeatureCacheWriter.Append: states %d actions %d features %d, want %d %d %d",
			len(rec.States), len(rec.Actions), len(rec.Features), T*S, (T-1)*A, T*HW*D))
	}
	if w.f == nil || w.n == w.cfg.RecordsPerShard {
		if err := w.closeShard(); err != nil {
			return err
		}
		name := fmt.Sprintf("features-%05d.bin", len(w.index.Shards))
		f, err := os.Create(filepath.Join(w.dir, name))
		if err != nil {
			return fmt.Errorf("data: feature cache: %w", err)
		}
		w.f, w.bw, w.n = f, bufio.NewWriterSize(f, 1<<20), 0
		w.index.Shards = append(w.index.Shards, featShard{File: name})
	}
	w.buf = encodeFeatureRecord(w.buf[:0], w.cfg, rec)
	if _, err := w.bw.Write(w.buf); err != nil {
		return fmt.Errorf("data: feature cache %s: write record %d: %w", w.f.Name(), w.n, err)
	}
	w.n++
	w.index.Shards[len(w.index.Shards)-1].Records = w.n
	return nil
}

func encodeFeatureRecord(b []byte, cfg FeatureCacheConfig, rec *FeatureRecord) []byte {
	S, A := cfg.Dims()
	for _, v := range []uint32{featCacheMagic, featCacheVersion, uint32(cfg.Frames), uint32(cfg.Tokens), uint32(cfg.Dim),
		uint32(S), uint32(A), uint32(rec.SourceShard), uint32(rec.SourceRecord), uint32(rec.Start)} {
		b = binary.LittleEndian.AppendUint32(b, v)
	}
	for _, v := range rec.States {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
	}
	for _, v := range rec.Actions {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
	}
	for _, v := range rec.Features {
		b = binary.LittleEndian.AppendUint16(b, v)
	}
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

func (w *FeatureCacheWriter) closeShard() error {
	if w.f == nil {
		return nil
	}
	name := w.f.Name()
	err := w.bw.Flush()
	if err == nil {
		err = w.f.Sync()
	}
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	w.f = nil
	if err != nil {
		return fmt.Errorf("data: feature cache %s: %w", name, err)
	}
	return nil
}

// Close finishes the last shard and writes index.json (to a temporary file, then renamed, so a crash
// never leaves an index naming unwritten records).
func (w *FeatureCacheWriter) Close() error {
	if err := w.closeShard(); err != nil {
		return err
	}
	b, err := json.MarshalIndent(&w.index, "", "  ")
	if err != nil {
		return fmt.Errorf("data: feature cache index: %w", err)
	}
	tmp := filepath.Join(w.dir, FeatureCacheIndex+".tmp")
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return fmt.Errorf("data: feature cache index: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(w.dir, FeatureCacheIndex)); err != nil {
		return fmt.Errorf("data: feature cache index: %w", err)
	}
	return nil
}

// FeatureCache reads a finished cache with random access.
type FeatureCache struct {
	dir    string
	cfg    FeatureCacheConfig
	index  featIndex
	files  []*os.File
	starts []int // first global record of each shard
	total  int
	buf    []byte
}

// OpenFeatureCache opens the cache in dir and checks it against want: same config hash and shape
// (state and action widths included), and every shard exactly records × record_bytes long.
// want.RecordsPerShard is not compared. Caches of version 1 (7-D states and actions) and 2 are read.
func OpenFeatureCache(dir string, want FeatureCacheConfig) (*FeatureCache, error) {
	path := filepath.Join(dir, FeatureCacheIndex)
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("data: open feature cache: %w", err)
	}
	var idx featIndex
	if err := json.Unmarshal(b, &idx); err != nil {
		return nil, fmt.Errorf("data: open feature cache %s: %w", path, err)
	}
	if idx.Version == 1 {
		idx.StateDim, idx.ActionDim = 7, 7 // before the widths were recorded
	}
	S, A := idx.Dims()
	wantS, wantA := want.Dims()
	switch {
	case idx.Format != featFormat || idx.Version < 1 || idx.Version > featCacheVersion:
		return nil, fmt.Errorf("data: open feature cache %s: format %q version %d, want %q version 1 to %d (rebuild it with vjepa-vk encode)",
			path, idx.Format, idx.Version, featFormat, featCacheVersion)
	case idx.ConfigHash != want.ConfigHash:
		return nil, fmt.Errorf("data: open feature cache %s: %w: config hash %s, want %s (rebuild the cache)", path, ErrFeatureCacheMismatch, idx.ConfigHash, want.ConfigHash)
	case idx.Frames != want.Frames || idx.Tokens != want.Tokens || idx.Dim != want.Dim:
		return nil, fmt.Errorf("data: open feature cache %s: %w: shape T=%d HW=%d D=%d, want T=%d HW=%d D=%d", path, ErrFeatureCacheMismatch,
			idx.Frames, idx.Tokens, idx.Dim, want.Frames, want.Tokens, want.Dim)
	case S != wantS || A != wantA:
		return nil, fmt.Errorf("data: open feature cache %s: %w: %d-D states and %d-D actions (version %d), want %d and %d (model.state_dim, model.action_dim; rebuild the cache)",
			path, ErrFeatureCacheMismatch, S, A, idx.Version, wantS, wantA)
	case idx.StateDim < 0 || idx.ActionDim < 0 || idx.RecordBytes != idx.FeatureCacheConfig.recordBytes(idx.Version):
		return nil, fmt.Errorf("data: open feature cache %s: record_bytes %d, want %d for its shape", path, idx.RecordBytes, idx.FeatureCacheConfig.recordBytes(idx.Version))
	}
	c := &FeatureCache{dir: dir, cfg: idx.FeatureCacheConfig, index: idx}
	for _, s := range idx.Shards {
		if s.File != filepath.Base(s.File) || s.Records < 0 {
			c.Close()
			return nil, fmt.Errorf("data: open feature cache %s: bad shard entry %+v", path, s)
		}
		f, err := os.Open(filepath.Join(dir, s.File))
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("data: open feature cache: %w", err)
		}
		c.files = append(c.files, f)
		st, err := f.Stat()
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("data: open feature cache: %w", err)
		}
		if want := int64(s.Records) * idx.RecordBytes; st.Size() != want {
			c.Close()
			return nil, &FeatureCacheError{File: f.Name(), Record: -1,
				Err: fmt.Errorf("size %d bytes, want %d records × %d = %d", st.Size(), s.Records, idx.RecordBytes, want)}
		}
		c.starts = append(c.starts, c.total)
		c.total += s.Records
	}
	return c, nil
}

// Config returns the cache's shape and hash.
func (c *FeatureCache) Config() FeatureCacheConfig { return c.cfg }

// Len is the number of records.
func (c *FeatureCache) Len() int { return c.total }

// Read reads record i (global index) into rec, reusing rec's slices when they have capacity, and
// verifies its checksum and header. Not safe for concurrent use (it shares a read buffer).
func (c *FeatureCache) Read(i int, rec *FeatureRecord) error {
	if i < 0 || i >= c.total {
		return fmt.Errorf("data: feature cache %s: record %d out of range [0, %d)", c.dir, i, c.total)
	}
	s := len(c.starts) - 1
	for c.starts[s] > i {
		s--
	}
	local := i - c.starts[s]
	off := int64(local) * c.index.RecordBytes
	f := c.files[s]
	if int64(cap(c.buf)) < c.index.RecordBytes {
		c.buf = make([]byte, c.index.RecordBytes)
	}
	buf := c.buf[:c.index.RecordBytes]
	bad := func(err error) error { return &FeatureCacheError{File: f.Name(), Record: local, Offset: off, Err: err} }
	if _, err := f.ReadAt(buf, off); err != nil {
		return bad(err)
	}
	body, sum := buf[:len(buf)-4], binary.LittleEndian.Uint32(buf[len(buf)-4:])
	if got := crc32.Checksum(body, castagnoli); got != sum {
		return bad(fmt.Errorf("crc32c %08x, stored %08x", got, sum))
	}
	T, HW, D := c.cfg.Frames, c.cfg.Tokens, c.cfg.Dim
	S, A := c.cfg.Dims()
	version := c.index.Version
	h := make([]uint32, featHeaderLen(version)/4)
	for k := range h {
		h[k] = binary.LittleEndian.Uint32(body[4*k:])
	}
	want := []uint32{featCacheMagic, uint32(version), uint32(T), uint32(HW), uint32(D), uint32(S), uint32(A)}
	if version == 1 {
		want = want[:5]
	}
	if !slices.Equal(h[:len(want)], want) {
		return bad(fmt.Errorf("header %v, want magic, version, shape %v (T, HW, D, S, A)", h[:len(want)], want))
	}
	rec.SourceShard, rec.SourceRecord, rec.Start = int(h[len(want)]), int(h[len(want)+1]), int(h[len(want)+2])
	p := body[featHeaderLen(version):]
	rec.States = readF32(rec.States, p, T*S)
	p = p[4*T*S:]
	rec.Actions = readF32(rec.Actions, p, (T-1)*A)
	p = p[4*(T-1)*A:]
	n := T * HW * D
	if cap(rec.Features) < n {
		rec.Features = make([]uint16, n)
	}
	rec.Features = rec.Features[:n]
	for k := range rec.Features {
		rec.Features[k] = binary.LittleEndian.Uint16(p[2*k:])
	}
	return nil
}

func readF32(dst []float32, p []byte, n int) []float32 {
	if cap(dst) < n {
		dst = make([]float32, n)
	}
	dst = dst[:n]
	for k := range dst {
		dst[k] = math.Float32frombits(binary.LittleEndian.Uint32(p[4*k:]))
	}
	return dst
}

// Close closes the shard files.
func (c *FeatureCache) Close() error {
	var first error
	for _, f := range c.files {
		if err := f.Close(); err != nil && first == nil {
			first = err
		}
	}
	c.files = nil
	return first
}

// Float32ToF16 converts src to IEEE half bits in dst (round to nearest even).
func Float32ToF16(dst []uint16, src []float32) {
	if len(dst) != len(src) {
		panic(fmt.Sprintf("data: Float32ToF16: dst %d, src %d", len(dst), len(src)))
	}
	for i, v := range src {
		dst[i] = float16.Fromfloat32(v).Bits()
	}
}

// F16ToFloat32 converts IEEE half bits to float32.
func F16ToFloat32(dst []float32, src []uint16) {
	if len(dst) != len(src) {
		panic(fmt.Sprintf("data: F16ToFloat32: dst %d, src %d", len(dst), len(src)))
	}
	for i, v := range src {
		dst[i] = float16.Frombits(v).Float32()
	}
}
