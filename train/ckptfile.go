package train

// Trainer checkpoints: one file per save, in the safetensors layout so that Python's
// safetensors.safe_open can read the LoRA weights and optimizer moments directly:
//
//	[8 bytes little-endian N][N bytes JSON, space-padded to a multiple of 8][tensor bytes, back to back]
//
// The JSON maps each tensor name to {"dtype", "shape", "data_offsets": [begin, end)} (offsets relative to
// the end of the JSON) and carries string metadata under "__metadata__":
//
//	format         "vjepa-vk-checkpoint/1"
//	header         CheckpointHeader as JSON (step, data position, loss scale, RNG states, resolved config)
//	header_crc32c  CRC-32C of the header string, 8 hex digits
//	crc32c         JSON object: tensor name -> CRC-32C (8 hex digits) of dtype "\x00" shape "\x00" data
//
// so every byte that matters is covered by a checksum. Files are written atomically (temp file in the same
// folder, fsync, rename, fsync of the folder): a crash leaves either the old or the new checkpoint, never a
// torn one. CheckpointStore adds the retention policy (last N plus the best validation loss) and a small
// manifest.json.

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/vjepa-vk/vjepa-vk/model"
)

// CheckpointFormat is the metadata "format" value of files written by this package.
const CheckpointFormat = "vjepa-vk-checkpoint/1"

// ErrNoCheckpoint is returned by LatestCheckpoint and BestCheckpoint when the folder holds none.
var ErrNoCheckpoint = errors.New("no checkpoint")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// DType names a tensor element type with the safetensors spelling.
type DType string

const (
	F32  DType = "F32"
	F16  DType = "F16"
	BF16 DType = "BF16"
	F64  DType = "F64"
	U8   DType = "U8"
	I8   DType = "I8"
	I32  DType = "I32"
	I64  DType = "I64"
)

// Size is the element size in bytes, or 0 for an unknown dtype.
func (d DType) Size() int {
	switch d {
	case U8, I8:
		return 1
	case F16, BF16:
		return 2
	case F32, I32:
		return 4
	case F64, I64:
		return 8
	}
	return 0
}

// Tensor is one named blob with a dtype and shape; Data is little-endian, row-major.
type Tensor struct {
	Name  string
	DType DType
	Shape []int
	Data  []byte
}

// NumElements is the product of Shape (1 for a scalar).
func (t Tensor) NumElements() int {
	n := 1
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// F32Tensor copies v into a float32 tensor. len(v) must equal the product of shape.
func F32Tensor(name string, shape []int, v []float32) Tensor {
	t := Tensor{Name: name, DType: F32, Shape: slices.Clone(shape), Data: make([]byte, 4*len(v))}
	if t.NumElements() != len(v) {
		panic(fmt.Sprintf("train: F32Tensor %s: %d values for shape %v", name, len(v), shape))
	}
	for i, x := range v {
		binary.LittleEndian.PutUint32(t.Data[4*i:], math.Float32bits(x))
	}
	return t
}

// U8Tensor copies v into a uint8 tensor (e.g. 8-bit optimizer moments). len(v) must equal the product of shape.
func U8Tensor(name string, shape []int, v []uint8) Tensor {
	t := Tensor{Name: name, DType: U8, Shape: slices.Clone(shape), Data: slices.Clone(v)}
	if t.NumElements() != len(v) {
		panic(fmt.Sprintf("train: U8Tensor %s: %d values for shape %v", name, len(v), shape))
	}
	return t
}

// Float32s decodes an F32 tensor.
func (t Tensor) Float32s() ([]float32, error) {
	if t.DType != F32 {
		return nil, fmt.Errorf("train: tensor %s: dtype %s, want F32", t.Name, t.DType)
	}
	v := make([]float32, len(t.Data)/4)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(t.Data[4*i:]))
	}
	return v, nil
}

// CheckpointHeader is everything besides tensors needed to resume a run exactly.
type CheckpointHeader struct {
	Step  int `json:"step"`  // optimizer steps completed; resume continues at Step+1
	Epoch int `json:"epoch"` // passes over the training episodes completed
	// Data is the data loader's position, encoded by package data (opaque here).
	Data json.RawMessage `json:"data,omitempty"`
	// LR and WeightDecay are the values used by step Step. Schedules are functions of the step (spec §10),
	// so these are informational and let a resume check that the schedule did not change.
	LR          float64 `json:"lr"`
	WeightDecay float64 `json:"weight_decay"`
	// LossScale is the dynamic loss-scale state.
	LossScale LossScaler `json:"loss_scale"`
	// RNG holds the MarshalBinary state of each named generator (math/rand/v2 PCG/ChaCha8 implement it).
	RNG map[string][]byte `json:"rng,omitempty"`
	// ValLoss is the validation loss at Step, if validation ran; CheckpointStore keeps the lowest.
	ValLoss *float64 `json:"val_loss,omitempty"`
	// Config is the resolved run configuration as YAML (Print), so a resume can diff it.
	Config string `json:"config"`
	// Created is the wall time of the save.
	Created time.Time `json:"created"`
	// Extra carries anything else a loop wants to keep (e.g. optimizer step counts), by name.
	Extra map[string]json.RawMessage `json:"extra,omitempty"`
}

// Checkpoint is a header plus tensors (LoRA A/B matrices, AdamW moments, ...), in write order.
type Checkpoint struct {
	Header  CheckpointHeader
	Tensors []Tensor
}

// Tensor returns the tensor called name.
func (c *Checkpoint) Tensor(name string) (Tensor, bool) {
	for _, t := range c.Tensors {
		if t.Name == name {
			return t, true
		}
	}
	return Tensor{}, false
}

// CorruptCheckpointError reports a checkpoint file whose bytes do not match its own description:
// truncated, bad header, checksum mismatch.
type CorruptCheckpointError struct {
	Path   string
	Offset int64 // byte offset in the file where the problem was found
	Msg    string
}

func (e *CorruptCheckpointError) Error() string {
	return fmt.Sprintf("train: checkpoint %s: corrupt at byte %d: %s", e.Path, e.Offset, e.Msg)
}

// tensorEntry is the safetensors per-tensor header.
type tensorEntry struct {
	DType   DType    `json:"dtype"`
	Shape   []int    `json:"shape"`
	Offsets [2]int64 `json:"data_offsets"`
}

// tensorCRC covers dtype and shape as well as the data, so a flipped shape digit is caught too.
func tensorCRC(dtype DType, shape []int, data []byte) uint32 {
	var sb strings.Builder
	sb.WriteString(string(dtype))
	sb.WriteByte(0)
	for i, d := range shape {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(strconv.Itoa(d))
	}
	sb.WriteByte(0)
	return crc32.Update(crc32.Checksum([]byte(sb.String()), castagnoli), castagnoli, data)
}

// encodeHeader builds the padded JSON header of ck.
func encodeHeader(ck *Checkpoint) ([]byte, error) {
	hdr, err := json.Marshal(ck.Header)
	if err != nil {
		return nil, fmt.Errorf("encode header: %w", err)
	}
	crcs := map[string]string{}
	top := map[string]any{}
	var off int64
	for _, t := range ck.Tensors {
		switch {
		case t.Name == "" || t.Name == "__metadata__":
			return nil, fmt.Errorf("tensor name %q is reserved", t.Name)
		case t.DType.Size() == 0:
			return nil, fmt.Errorf("tensor %s: unknown dtype %q", t.Name, t.DType)
		case len(t.Data) != t.NumElements()*t.DType.Size():
			return nil, fmt.Errorf("tensor %s: %d bytes, want %d for %s %v", t.Name, len(t.Data), t.NumElements()*t.DType.Size(), t.DType, t.Shape)
		}
		if _, dup := top[t.Name]; dup {
			return nil, fmt.Errorf("tensor %s: name used twice", t.Name)
		}
		shape := t.Shape
		if shape == nil {
			shape = []int{}
		}
		top[t.Name] = tensorEntry{DType: t.DType, Shape: shape, Offsets: [2]int64{off, off + int64(len(t.Data))}}
		crcs[t.Name] = fmt.Sprintf("%08x", tensorCRC(t.DType, shape, t.Data))
		off += int64(len(t.Data))
	}
	crcJSON, err := json.Marshal(crcs)
	if err != nil {
		return nil, err
	}
	top["__metadata__"] = map[string]string{
		"format":        CheckpointFormat,
		"header":        string(hdr),
		"header_crc32c": fmt.Sprintf("%08x", crc32.Checksum(hdr, castagnoli)),
		"crc32c":        string(crcJSON),
	}
	js, err := json.Marshal(top)
	if err != nil {
		return nil, err
	}
	for len(js)%8 != 0 {
		js = append(js, ' ')
	}
	return js, nil
}

// WriteCheckpoint writes ck to w in the checkpoint layout (not atomic; see WriteCheckpointFile).
func WriteCheckpoint(w io.Writer, ck *Checkpoint) error {
	js, err := encodeHeader(ck)
	if err != nil {
		return err
	}
	var n [8]byte
	binary.LittleEndian.PutUint64(n[:], uint64(len(js)))
	if _, err := w.Write(n[:]); err != nil {
		return err
	}
	if _, err := w.Write(js); err != nil {
		return err
	}
	for _, t := range ck.Tensors {
		if _, err := w.Write(t.Data); err != nil {
			return err
		}
	}
	return nil
}

// WriteCheckpointFile writes ck to path atomically: temp file in the same folder, fsync, rename, fsync of
// the folder. On any error the temp file is removed and an existing file at path is untouched.
func WriteCheckpointFile(path string, ck *Checkpoint) error {
	return writeCheckpointFile(path, ck, nil)
}

func writeCheckpointFile(path string, ck *Checkpoint, wrap func(io.Writer) io.Writer) error {
	err := writeFileAtomic(path, func(w io.Writer) error {
		if wrap != nil {
			w = wrap(w)
		}
		return WriteCheckpoint(w, ck)
	})
	if err != nil {
		return fmt.Errorf("train: save checkpoint %s: %w", path, err)
	}
	return nil
}

// writeFileAtomic is the temp-fsync-rename-fsync dance, through model.NewPendingFile: the temp file is a
// dot-name (skipped by directory scans and the GCS syncer, removed at the next start if a kill left it
// behind) and the result has the permissions of any tool's output, 0666 less the umask.
func writeFileAtomic(path string, write func(io.Writer) error) error {
	f, err := model.NewPendingFile(path)
	if err != nil {
		return err
	}
	defer f.Cleanup()
	bw := bufio.NewWriterSize(f, 1<<20)
	if err := write(bw); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	if err := f.CloseAtomicallyReplace(); err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}

// syncDir makes a rename durable. Some filesystems refuse fsync on folders; that is not an error worth
// failing a checkpoint for, since the rename itself already happened.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, os.ErrInvalid) && !errors.Is(err, errors.ErrUnsupported) {
		return fmt.Errorf("fsync folder %s: %w", dir, err)
	}
	return nil
}

// maxHeaderBytes bounds the JSON header so a corrupt length cannot make us allocate gigabytes.
const maxHeaderBytes = 256 << 20

// ReadCheckpoint reads and verifies a checkpoint file: structure, header CRC, and every tensor's CRC.
func ReadCheckpoint(path string) (*Checkpoint, error) {
	buf, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("train: read checkpoint: %w", err)
	}
	return parseCheckpoint(path, buf)
}

// ReadCheckpointHeader reads and verifies only the JSON header (cheap; used to rebuild a manifest).
func ReadCheckpointHeader(path string) (*CheckpointHeader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("train: read checkpoint header: %w", err)
	}
	defer f.Close()
	var n [8]byte
	if _, err := io.ReadFull(f, n[:]); err != nil {
		return nil, &CorruptCheckpointError{Path: path, Msg: fmt.Sprintf("reading header length: %v", err)}
	}
	size := binary.LittleEndian.Uint64(n[:])
	if size > maxHeaderBytes {
		return nil, &CorruptCheckpointError{Path: path, Msg: fmt.Sprintf("header length %d exceeds %d", size, maxHeaderBytes)}
	}
	js := make([]byte, size)
	if _, err := io.ReadFull(f, js); err != nil {
		return nil, &CorruptCheckpointError{Path: path, Offset: 8, Msg: fmt.Sprintf("header of %d bytes: %v", size, err)}
	}
	h, _, err := parseHeader(path, js)
	return h, err
}

type parsedEntry struct {
	name string
	crc  string // 8 hex digits from the crc32c table
	tensorEntry
}

// parseHeader decodes and checks the JSON header; offsets in errors are file offsets.
func parseHeader(path string, js []byte) (*CheckpointHeader, []parsedEntry, error) {
	corrupt := func(format string, args ...any) error {
		return &CorruptCheckpointError{Path: path, Offset: 8, Msg: fmt.Sprintf(format, args...)}
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(js, &top); err != nil {
		return nil, nil, corrupt("header JSON: %v", err)
	}
	var meta map[string]string
	if err := json.Unmarshal(top["__metadata__"], &meta); err != nil || meta == nil {
		return nil, nil, corrupt("missing __metadata__ (not a vjepa-vk checkpoint?)")
	}
	if meta["format"] != CheckpointFormat {
		return nil, nil, corrupt("format %q, want %q", meta["format"], CheckpointFormat)
	}
	hdr := meta["header"]
	if got, want := fmt.Sprintf("%08x", crc32.Checksum([]byte(hdr), castagnoli)), meta["header_crc32c"]; got != want {
		return nil, nil, corrupt("header crc32c mismatch: stored %s, computed %s", want, got)
	}
	var h CheckpointHeader
	if err := json.Unmarshal([]byte(hdr), &h); err != nil {
		return nil, nil, corrupt("header: %v", err)
	}
	var crcs map[string]string
	if err := json.Unmarshal([]byte(meta["crc32c"]), &crcs); err != nil {
		return nil, nil, corrupt("crc32c table: %v", err)
	}
	var entries []parsedEntry
	for name, raw := range top {
		if name == "__metadata__" {
			continue
		}
		var e tensorEntry
		if err := json.Unmarshal(raw, &e); err != nil {
			return nil, nil, corrupt("tensor %s: %v", name, err)
		}
		crc, ok := crcs[name]
		if !ok {
			return nil, nil, corrupt("tensor %s has no crc32c", name)
		}
		entries = append(entries, parsedEntry{name, crc, e})
	}
	if len(entries) != len(crcs) {
		return nil, nil, corrupt("crc32c table lists %d tensors, header has %d", len(crcs), len(entries))
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].Offsets[0] < entries[j].Offsets[0] })
	return &h, entries, nil
}

func parseCheckpoint(path string, buf []byte) (*Checkpoint, error) {
	if len(buf) < 8 {
		return nil, &CorruptCheckpointError{Path: path, Msg: fmt.Sprintf("file is %d bytes, shorter than the 8-byte header length", len(buf))}
	}
	size := binary.LittleEndian.Uint64(buf)
	if size > uint64(len(buf)-8) || size > maxHeaderBytes {
		return nil, &CorruptCheckpointError{Path: path, Msg: fmt.Sprintf("header length %d exceeds file size %d (truncated?)", size, len(buf))}
	}
	h, entries, err := parseHeader(path, buf[8:8+size])
	if err != nil {
		return nil, err
	}
	data := buf[8+size:]
	base := int64(8 + size)
	ck := &Checkpoint{Header: *h}
	var end int64
	for _, e := range entries {
		b, en := e.Offsets[0], e.Offsets[1]
		dt := DType(e.DType)
		n := 1
		for _, d := range e.Shape {
			if d < 0 {
				return nil, &CorruptCheckpointError{Path: path, Offset: 8, Msg: fmt.Sprintf("tensor %s: negative dimension in shape %v", e.name, e.Shape)}
			}
			n *= d
		}
		switch {
		case dt.Size() == 0:
			return nil, &CorruptCheckpointError{Path: path, Offset: 8, Msg: fmt.Sprintf("tensor %s: unknown dtype %q", e.name, e.DType)}
		case b != end:
			return nil, &CorruptCheckpointError{Path: path, Offset: base + b, Msg: fmt.Sprintf("tensor %s starts at data offset %d, want %d (tensors must be contiguous)", e.name, b, end)}
		case en-b != int64(n*dt.Size()):
			return nil, &CorruptCheckpointError{Path: path, Offset: base + b, Msg: fmt.Sprintf("tensor %s: %d bytes for %s %v, want %d", e.name, en-b, dt, e.Shape, n*dt.Size())}
		case en > int64(len(data)):
			return nil, &CorruptCheckpointError{Path: path, Offset: int64(len(buf)), Msg: fmt.Sprintf("tensor %s ends at byte %d, past the end of the file (truncated?)", e.name, base+en)}
		}
		blob := data[b:en:en]
		if got, want := fmt.Sprintf("%08x", tensorCRC(dt, e.Shape, blob)), e.crc; got != want {
			return nil, &CorruptCheckpointError{Path: path, Offset: base + b, Msg: fmt.Sprintf("tensor %s: crc32c mismatch: stored %s, computed %s", e.name, want, got)}
		}
		ck.Tensors = append(ck.Tensors, Tensor{Name: e.name, DType: dt, Shape: e.Shape, Data: blob})
		end = en
	}
	if end != int64(len(data)) {
		return nil, &CorruptCheckpointError{Path: path, Offset: base + end, Msg: fmt.Sprintf("%d trailing bytes after the last tensor", int64(len(data))-end)}
	}
	return ck, nil
}

// CheckpointStore saves checkpoints into Dir as ckpt-<step>.safetensors and keeps the KeepLast most
// recent ones plus, with KeepBest, the one with the lowest validation loss. manifest.json lists what is
// kept; it is rebuilt from the files themselves if it is missing or damaged, so it is never the only copy
// of anything.
type CheckpointStore struct {
	Dir      string
	KeepLast int // 0 keeps every checkpoint
	KeepBest bool

	wrap func(io.Writer) io.Writer // tests inject write failures here
}

// NewCheckpointStore returns the store described by a resolved CheckpointConfig.
func NewCheckpointStore(c CheckpointConfig) CheckpointStore {
	return CheckpointStore{Dir: c.Dir, KeepLast: c.KeepLast, KeepBest: c.KeepBest}
}

// ManifestFile is the name of the manifest inside a checkpoint folder.
const ManifestFile = "manifest.json"

// Manifest lists the checkpoints a CheckpointStore keeps.
type Manifest struct {
	Format      string          `json:"format"`
	Checkpoints []ManifestEntry `json:"checkpoints"` // ascending step
	Latest      string          `json:"latest"`
	Best        string          `json:"best,omitempty"` // lowest val_loss, if any checkpoint has one
}

// ManifestEntry is one kept checkpoint.
type ManifestEntry struct {
	File    string    `json:"file"` // base name inside the folder
	Step    int       `json:"step"`
	ValLoss *float64  `json:"val_loss,omitempty"`
	Created time.Time `json:"created"`
}

const manifestFormat = "vjepa-vk-checkpoints/1"

// CheckpointName is the file name of the checkpoint after step (zero-padded so names sort by step).
func CheckpointName(step int) string { return fmt.Sprintf("ckpt-%09d.safetensors", step) }

// checkpointStep parses a CheckpointName; ok is false for any other file.
func checkpointStep(name string) (step int, ok bool) {
	digits, found := strings.CutPrefix(name, "ckpt-")
	digits, found2 := strings.CutSuffix(digits, ".safetensors")
	if !found || !found2 || digits == "" {
		return 0, false
	}
	for _, c := range digits {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	step, err := strconv.Atoi(digits)
	return step, err == nil
}

// Save writes ck atomically as CheckpointName(ck.Header.Step), updates the manifest and deletes the
// checkpoints the retention policy no longer keeps. It returns the new file's path. Saving the same step
// twice replaces the earlier file.
func (cs CheckpointStore) Save(ck *Checkpoint) (string, error) {
	if err := os.MkdirAll(cs.Dir, 0o755); err != nil {
		return "", fmt.Errorf("train: save checkpoint: %w", err)
	}
	removeLeftoverTemps(cs.Dir) // a save killed earlier; a failure here only leaves them for later
	if ck.Header.Created.IsZero() {
		ck.Header.Created = time.Now().UTC()
	}
	name := CheckpointName(ck.Header.Step)
	path := filepath.Join(cs.Dir, name)
	if err := writeCheckpointFile(path, ck, cs.wrap); err != nil {
		return "", err
	}

	entries, err := currentEntries(cs.Dir)
	if err != nil {
		return "", fmt.Errorf("train: save checkpoint %s: %w", path, err)
	}
	entries = slices.DeleteFunc(entries, func(e ManifestEntry) bool { return e.Step == ck.Header.Step })
	entries = append(entries, ManifestEntry{File: name, Step: ck.Header.Step, ValLoss: ck.Header.ValLoss, Created: ck.Header.Created})
	sort.Slice(entries, func(i, j int) bool { return entries[i].Step < entries[j].Step })

	m := cs.retain(entries)
	js, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return "", err
	}
	mpath := filepath.Join(cs.Dir, ManifestFile)
	if err := writeFileAtomic(mpath, func(w io.Writer) error { _, err := w.Write(append(js, '\n')); return err }); err != nil {
		return "", fmt.Errorf("train: save checkpoint manifest %s: %w", mpath, err)
	}
	// Delete after the manifest is durable: a crash in between leaves extra files, which the next Save
	// removes, never a manifest naming a deleted file.
	keep := map[string]bool{}
	for _, e := range m.Checkpoints {
		keep[e.File] = true
	}
	names, err := checkpointFiles(cs.Dir)
	if err != nil {
		return "", fmt.Errorf("train: prune checkpoints in %s: %w", cs.Dir, err)
	}
	for _, n := range names {
		if !keep[n] {
			if err := os.Remove(filepath.Join(cs.Dir, n)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return "", fmt.Errorf("train: prune checkpoints: %w", err)
			}
		}
	}
	return path, nil
}

// retain applies the keep-last/keep-best policy to entries sorted by step.
func (cs CheckpointStore) retain(entries []ManifestEntry) *Manifest {
	m := &Manifest{Format: manifestFormat}
	if len(entries) == 0 {
		return m
	}
	best := -1
	for i, e := range entries {
		if e.ValLoss != nil && !math.IsNaN(*e.ValLoss) && (best < 0 || *e.ValLoss <= *entries[best].ValLoss) {
			best = i
		}
	}
	first := 0
	if cs.KeepLast > 0 {
		first = max(0, len(entries)-cs.KeepLast)
	}
	for i, e := range entries {
		if i >= first || (cs.KeepBest && i == best) {
			m.Checkpoints = append(m.Checkpoints, e)
		}
	}
	m.Latest = entries[len(entries)-1].File
	if best >= 0 && (cs.KeepBest || best >= first) {
		m.Best = entries[best].File
	}
	return m
}

// ReadManifest returns the manifest of dir, rebuilt from the checkpoint files' headers when manifest.json
// is missing, damaged or out of date. It returns ErrNoCheckpoint when dir holds no checkpoint.
func ReadManifest(dir string) (*Manifest, error) {
	entries, err := currentEntries(dir)
	if err != nil {
		return nil, fmt.Errorf("train: read manifest of %s: %w", dir, err)
	}
	if len(entries) == 0 {
		return nil, fmt.Errorf("train: read manifest of %s: %w", dir, ErrNoCheckpoint)
	}
	return CheckpointStore{KeepBest: true}.retain(entries), nil
}

// currentEntries lists the checkpoints on disk, taking val_loss from manifest.json where it names the file
// and from the file's own header otherwise. Files whose header cannot be read are left out.
func currentEntries(dir string) ([]ManifestEntry, error) {
	names, err := checkpointFiles(dir)
	if err != nil {
		return nil, err
	}
	known := map[string]ManifestEntry{}
	if js, err := os.ReadFile(filepath.Join(dir, ManifestFile)); err == nil {
		var m Manifest
		if json.Unmarshal(js, &m) == nil && m.Format == manifestFormat {
			for _, e := range m.Checkpoints {
				known[e.File] = e
			}
		}
	}
	var entries []ManifestEntry
	for _, n := range names {
		if e, ok := known[n]; ok {
			entries = append(entries, e)
			continue
		}
		h, err := ReadCheckpointHeader(filepath.Join(dir, n))
		if err != nil {
			continue
		}
		step, _ := checkpointStep(n)
		entries = append(entries, ManifestEntry{File: n, Step: step, ValLoss: h.ValLoss, Created: h.Created})
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].Step < entries[j].Step })
	return entries, nil
}

// checkpointFiles lists the CheckpointName files in dir, ascending by step. A missing dir has none.
func checkpointFiles(dir string) ([]string, error) {
	des, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var names []string
	for _, de := range des {
		if _, ok := checkpointStep(de.Name()); ok && de.Type().IsRegular() {
			names = append(names, de.Name())
		}
	}
	sort.Strings(names) // zero-padded steps sort numerically
	return names, nil
}

// LatestCheckpoint returns the path of the highest-step checkpoint in dir (resume: auto). It looks only at
// file names, so a torn write (which never gets a final name) is never returned; it does not verify the
// file: ReadCheckpoint does. It returns an error wrapping ErrNoCheckpoint when there is none.
func LatestCheckpoint(dir string) (string, error) {
	names, err := checkpointFiles(dir)
	if err != nil {
		return "", fmt.Errorf("train: latest checkpoint in %s: %w", dir, err)
	}
	if len(names) == 0 {
		return "", fmt.Errorf("train: latest checkpoint in %s: %w", dir, ErrNoCheckpoint)
	}
	return filepath.Join(dir, names[len(names)-1]), nil
}

// BestCheckpoint returns the path of the kept checkpoint with the lowest validation loss, or an error
// wrapping ErrNoCheckpoint when no checkpoint has one.
func BestCheckpoint(dir string) (string, error) {
	m, err := ReadManifest(dir)
	if err != nil {
		return "", err
	}
	if m.Best == "" {
		return "", fmt.Errorf("train: best checkpoint in %s: no checkpoint has a validation loss: %w", dir, ErrNoCheckpoint)
	}
	return filepath.Join(dir, m.Best), nil
}
