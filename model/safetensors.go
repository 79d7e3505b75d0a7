package model

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"github.com/google/renameio/v2"

	"github.com/vjepa-vk/vjepa-vk/vk"
)

// This file holds the element types and tensor descriptions shared by every weights format, the float
// conversions between them, and the safetensors reader and writer
// (https://github.com/huggingface/safetensors: u64 header length N, N bytes of JSON, then the data).

// DType is a tensor element type. String gives the safetensors spelling ("F32", "BF16", ...).
type DType uint8

const (
	DTypeInvalid DType = iota
	DTypeF64
	DTypeF32
	DTypeF16
	DTypeBF16
	DTypeI64
	DTypeI32
	DTypeI16
	DTypeI8
	DTypeU8
	DTypeBool
)

var dtypeNames = [...]string{"INVALID", "F64", "F32", "F16", "BF16", "I64", "I32", "I16", "I8", "U8", "BOOL"}
var dtypeSizes = [...]int{0, 8, 4, 2, 2, 8, 4, 2, 1, 1, 1}

func (d DType) String() string {
	if int(d) < len(dtypeNames) {
		return dtypeNames[d]
	}
	return fmt.Sprintf("DType(%d)", uint8(d))
}

// Size is the element size in bytes (0 for an invalid type).
func (d DType) Size() int {
	if int(d) < len(dtypeSizes) {
		return dtypeSizes[d]
	}
	return 0
}

// IsFloat reports whether d is a floating-point type, the only types weights may have.
func (d DType) IsFloat() bool {
	return d == DTypeF64 || d == DTypeF32 || d == DTypeF16 || d == DTypeBF16
}

// ParseDType accepts the safetensors names and the lower-case forms the CLI uses ("f32", "bf16"),
// plus "float32", "float16", "half", "bfloat16", "float64".
func ParseDType(s string) (DType, error) {
	u := strings.ToUpper(s)
	switch u {
	case "FLOAT32", "FLOAT":
		return DTypeF32, nil
	case "FLOAT16", "HALF":
		return DTypeF16, nil
	case "BFLOAT16":
		return DTypeBF16, nil
	case "FLOAT64", "DOUBLE":
		return DTypeF64, nil
	}
	for i, n := range dtypeNames {
		if i > 0 && n == u {
			return DType(i), nil
		}
	}
	return DTypeInvalid, fmt.Errorf("model: unknown dtype %q, want one of f32, f16, bf16, f64, i64, i32, i16, i8, u8, bool", s)
}

// TensorInfo describes one stored tensor: its name as stored, its element type and its shape
// (row-major; an empty shape is a 0-dim scalar).
type TensorInfo struct {
	Name  string
	DType DType
	Shape []int
}

// Numel is the number of elements (1 for a 0-dim tensor).
func (i TensorInfo) Numel() int {
	n := 1
	for _, d := range i.Shape {
		n *= d
	}
	return n
}

// Bytes is the size of the tensor's contiguous data.
func (i TensorInfo) Bytes() int64 { return int64(i.Numel()) * int64(i.DType.Size()) }

// TensorRef is one tensor of a checkpoint whose data is read only when asked for, so a loader can stream a
// file far larger than memory. *TorchTensor and *SafetensorsTensor implement it.
type TensorRef interface {
	Info() TensorInfo
	// ReadRaw returns the elements in Info().DType, little-endian, contiguous and row-major.
	ReadRaw() ([]byte, error)
	// ReadFloat32 returns the elements converted to float32, contiguous and row-major.
	ReadFloat32() ([]float32, error)
}

// --- float conversions ---

// Float32ToF16 rounds f to IEEE binary16 with round-to-nearest-even. Finite values beyond the half range
// are clamped to ±65504 instead of becoming ±Inf, so that converting fp32 weights never manufactures
// infinities; ±Inf and NaN (quieted) are kept. It is the device upload's conversion (vk.F32ToF16), so
// a converted file and an uploaded tensor hold the same bits.
func Float32ToF16(f float32) uint16 { return vk.F32ToF16(f) }

// F16ToFloat32 widens an IEEE binary16 value exactly.
func F16ToFloat32(h uint16) float32 { return vk.F16ToF32(h) }

// Float32ToBF16 rounds f to bfloat16 with round-to-nearest-even (as torch's .bfloat16() does); NaN is
// kept and quieted.
func Float32ToBF16(f float32) uint16 { return vk.F32ToBF16(f) }

// BF16ToFloat32 widens a bfloat16 value exactly.
func BF16ToFloat32(h uint16) float32 { return math.Float32frombits(uint32(h) << 16) }

// DecodeFloat32 converts little-endian elements of type dt to float32. Integer and bool types convert by
// value (I64 beyond 2^24 loses precision, as in torch's .float()).
func DecodeFloat32(dt DType, raw []byte) ([]float32, error) {
	size := dt.Size()
	if size == 0 {
		return nil, fmt.Errorf("model: decode %v: unsupported dtype", dt)
	}
	if len(raw)%size != 0 {
		return nil, fmt.Errorf("model: decode %v: %d bytes is not a multiple of %d", dt, len(raw), size)
	}
	out := make([]float32, len(raw)/size)
	le := binary.LittleEndian
	// One loop per type: a switch inside the loop costs 3-4x on the 12 GB load.
	switch dt {
	case DTypeF32:
		for i := range out {
			out[i] = math.Float32frombits(le.Uint32(raw[4*i:]))
		}
	case DTypeF64:
		for i := range out {
			out[i] = float32(math.Float64frombits(le.Uint64(raw[8*i:])))
		}
	case DTypeF16:
		for i := range out {
			out[i] = F16ToFloat32(le.Uint16(raw[2*i:]))
		}
	case DTypeBF16:
		for i := range out {
			out[i] = BF16ToFloat32(le.Uint16(raw[2*i:]))
		}
	case DTypeI64:
		for i := range out {
			out[i] = float32(int64(le.Uint64(raw[8*i:])))
		}
	case DTypeI32:
		for i := range out {
			out[i] = float32(int32(le.Uint32(raw[4*i:])))
		}
	case DTypeI16:
		for i := range out {
			out[i] = float32(int16(le.Uint16(raw[2*i:])))
		}
	case DTypeI8:
		for i := range out {
			out[i] = float32(int8(raw[i]))
		}
	case DTypeU8:
		for i := range out {
			out[i] = float32(raw[i])
		}
	case DTypeBool:
		for i := range out {
			if raw[i] != 0 {
				out[i] = 1
			}
		}
	}
	return out, nil
}

// EncodeFloat32 converts float32 values to little-endian elements of the floating-point type dt
// (F16 and BF16 with round-to-nearest-even, F16 clamped as in Float32ToF16).
func EncodeFloat32(dt DType, src []float32) ([]byte, error) {
	if !dt.IsFloat() {
		return nil, fmt.Errorf("model: encode float32 as %v: want a floating-point dtype", dt)
	}
	out := make([]byte, len(src)*dt.Size())
	le := binary.LittleEndian
	switch dt {
	case DTypeF32:
		for i, v := range src {
			le.PutUint32(out[4*i:], math.Float32bits(v))
		}
	case DTypeF64:
		for i, v := range src {
			le.PutUint64(out[8*i:], math.Float64bits(float64(v)))
		}
	case DTypeF16:
		for i, v := range src {
			le.PutUint16(out[2*i:], Float32ToF16(v))
		}
	case DTypeBF16:
		for i, v := range src {
			le.PutUint16(out[2*i:], Float32ToBF16(v))
		}
	}
	return out, nil
}

// --- safetensors reader ---

// maxSafetensorsHeader is the header cap of the reference implementation (100 MB); it bounds what a
// hostile length field can make us allocate.
const maxSafetensorsHeader = 100 << 20

// Safetensors is an open safetensors file. Tensor data are slices of the memory-mapped file (or of the
// caller's buffer for ParseSafetensors) and stay valid until Close.
type Safetensors struct {
	Source   string            // file path, or a caller-chosen name, for errors
	Metadata map[string]string // the "__metadata__" object; nil when absent
	tensors  []*SafetensorsTensor
	byName   map[string]*SafetensorsTensor
	mapped   []byte // the whole mapping, for Munmap; nil for ParseSafetensors
	closed   bool
}

// SafetensorsTensor is one tensor of a Safetensors file.
type SafetensorsTensor struct {
	info TensorInfo
	data []byte
	off  int // position in the data section
	file *Safetensors
}

// OpenSafetensors memory-maps path read-only and checks its header: every offset inside the file, the
// data exactly covered by non-overlapping tensors, each tensor's byte size equal to its shape × dtype.
func OpenSafetensors(path string) (*Safetensors, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("model: open safetensors: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("model: open safetensors: %w", err)
	}
	size := st.Size()
	if size < 8 {
		return nil, fmt.Errorf("model: open safetensors %s: %d bytes, want at least the 8-byte header length", path, size)
	}
	if size > math.MaxInt {
		return nil, fmt.Errorf("model: open safetensors %s: %d bytes does not fit in memory addresses", path, size)
	}
	mapped, err := syscall.Mmap(int(f.Fd()), 0, int(size), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("model: mmap safetensors %s: %w", path, err)
	}
	s, err := parseSafetensors(path, mapped)
	if err != nil {
		syscall.Munmap(mapped)
		return nil, err
	}
	s.mapped = mapped
	return s, nil
}

// ParseSafetensors reads a safetensors image already in memory; the tensors alias b.
func ParseSafetensors(source string, b []byte) (*Safetensors, error) {
	return parseSafetensors(source, b)
}

type safetensorsEntry struct {
	DType       string   `json:"dtype"`
	Shape       []int64  `json:"shape"`
	DataOffsets []uint64 `json:"data_offsets"`
}

func parseSafetensors(source string, b []byte) (*Safetensors, error) {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("model: read safetensors %s: %s", source, fmt.Sprintf(format, args...))
	}
	if len(b) < 8 {
		return nil, fail("%d bytes, want at least the 8-byte header length", len(b))
	}
	n := binary.LittleEndian.Uint64(b)
	if n > maxSafetensorsHeader || n > uint64(len(b)-8) {
		return nil, fail("header length %d, want at most min(100 MB, file size %d - 8)", n, len(b))
	}
	header := b[8 : 8+n]
	data := b[8+n:]
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(header, &raw); err != nil {
		return nil, fail("header json: %v", err)
	}
	s := &Safetensors{Source: source, byName: make(map[string]*SafetensorsTensor, len(raw))}
	for name, msg := range raw {
		if name == "__metadata__" {
			if err := json.Unmarshal(msg, &s.Metadata); err != nil {
				return nil, fail("__metadata__: %v, want an object of strings", err)
			}
			continue
		}
		var e safetensorsEntry
		dec := json.NewDecoder(bytes.NewReader(msg))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&e); err != nil {
			return nil, fail("tensor %q: %v", name, err)
		}
		dt, err := ParseDType(e.DType)
		if err != nil || e.DType != dt.String() {
			return nil, fail("tensor %q: dtype %q is not supported", name, e.DType)
		}
		if len(e.DataOffsets) != 2 || e.DataOffsets[0] > e.DataOffsets[1] || e.DataOffsets[1] > uint64(len(data)) {
			return nil, fail("tensor %q: data_offsets %v, want [begin, end] with begin <= end <= %d", name, e.DataOffsets, len(data))
		}
		begin, end := int(e.DataOffsets[0]), int(e.DataOffsets[1])
		shape, numel, ok := checkedShape(e.Shape, uint64(len(data))/uint64(dt.Size()))
		if !ok || numel*dt.Size() != end-begin {
			return nil, fail("tensor %q: shape %v of %v needs %s bytes, data_offsets give %d", name, e.Shape, dt, shapeBytes(e.Shape, dt), end-begin)
		}
		t := &SafetensorsTensor{info: TensorInfo{Name: name, DType: dt, Shape: shape}, data: data[begin:end:end], off: begin, file: s}
		s.tensors = append(s.tensors, t)
		s.byName[name] = t
	}
	// The reference reader demands the tensors tile the data section exactly; so do we, which also rules
	// out aliasing tensors.
	sort.Slice(s.tensors, func(i, j int) bool {
		a, b := s.tensors[i], s.tensors[j]
		if a.off != b.off {
			return a.off < b.off
		}
		return a.info.Name < b.info.Name
	})
	pos := 0
	for _, t := range s.tensors {
		if t.off != pos {
			return nil, fail("tensor %q: data starts at %d, want %d (tensors must tile the data without gaps or overlap)", t.info.Name, t.off, pos)
		}
		pos += len(t.data)
	}
	if pos != len(data) {
		return nil, fail("tensors cover %d of %d data bytes", pos, len(data))
	}
	return s, nil
}

// checkedShape converts a declared shape to ints, rejecting negative dimensions and element counts above
// limit (which also rules out overflow).
func checkedShape(dims []int64, limit uint64) ([]int, int, bool) {
	shape := make([]int, len(dims))
	zero := false
	for i, d := range dims {
		if d < 0 || uint64(d) > math.MaxInt32*uint64(math.MaxInt32) {
			return nil, 0, false
		}
		shape[i] = int(d)
		zero = zero || d == 0
	}
	if zero {
		return shape, 0, true
	}
	numel := uint64(1)
	for _, d := range dims {
		if numel > limit/uint64(d) {
			return nil, 0, false
		}
		numel *= uint64(d)
	}
	return shape, int(numel), true
}

// shapeBytes is the byte size a declared shape needs, as text; float64 so hostile sizes cannot overflow.
func shapeBytes(dims []int64, dt DType) string {
	p := float64(dt.Size())
	for _, d := range dims {
		p *= float64(d)
	}
	if math.Abs(p) < 1<<53 {
		return fmt.Sprintf("%d", int64(p))
	}
	return fmt.Sprintf("%.4g", p)
}

// Tensors lists the tensors in data order.
func (s *Safetensors) Tensors() []*SafetensorsTensor { return s.tensors }

// Tensor looks a tensor up by its stored name.
func (s *Safetensors) Tensor(name string) (*SafetensorsTensor, bool) {
	t, ok := s.byName[name]
	return t, ok
}

// Refs lists the tensors as TensorRefs, in data order.
func (s *Safetensors) Refs() []TensorRef {
	refs := make([]TensorRef, len(s.tensors))
	for i, t := range s.tensors {
		refs[i] = t
	}
	return refs
}

// Close unmaps the file; the tensors' data must not be used afterwards.
func (s *Safetensors) Close() error {
	if s.closed {
		return nil
	}
	s.closed = true
	if s.mapped != nil {
		m := s.mapped
		s.mapped = nil
		if err := syscall.Munmap(m); err != nil {
			return fmt.Errorf("model: close safetensors %s: %w", s.Source, err)
		}
	}
	return nil
}

func (t *SafetensorsTensor) Info() TensorInfo { return t.info }

// Bytes returns the stored little-endian data without copying; it aliases the mapping and is valid only
// until the file is closed.
func (t *SafetensorsTensor) Bytes() []byte { return t.data }

func (t *SafetensorsTensor) ReadRaw() ([]byte, error) {
	if t.file.closed {
		return nil, fmt.Errorf("model: read %s from %s: file is closed", t.info.Name, t.file.Source)
	}
	return bytes.Clone(t.data), nil
}

func (t *SafetensorsTensor) ReadFloat32() ([]float32, error) {
	if t.file.closed {
		return nil, fmt.Errorf("model: read %s from %s: file is closed", t.info.Name, t.file.Source)
	}
	return DecodeFloat32(t.info.DType, t.data)
}

// --- safetensors writer ---

// SafetensorsWriter streams tensors into a safetensors file whose header is fixed up front, so only one
// tensor needs to be in memory at a time. It writes to a temporary file next to the target (a dot-name,
// see NewPendingFile) and renames it into place on Close, so a crash never leaves a truncated file under
// the final name. The file gets the permissions of any tool's output, 0666 less the umask.
type SafetensorsWriter struct {
	path  string
	f     *renameio.PendingFile
	w     *bufio.Writer
	infos []TensorInfo
	next  int
	err   error
}

// CreateSafetensors writes the header for infos (in that order, which is also the data order) and
// metadata, and returns a writer expecting the tensors' data in the same order.
func CreateSafetensors(path string, infos []TensorInfo, metadata map[string]string) (*SafetensorsWriter, error) {
	header, err := safetensorsHeader(infos, metadata)
	if err != nil {
		return nil, fmt.Errorf("model: create safetensors %s: %w", path, err)
	}
	f, err := NewPendingFile(path)
	if err != nil {
		return nil, fmt.Errorf("model: create safetensors: %w", err)
	}
	w := &SafetensorsWriter{path: path, f: f, w: bufio.NewWriterSize(f, 1<<20), infos: infos}
	var n [8]byte
	binary.LittleEndian.PutUint64(n[:], uint64(len(header)))
	w.w.Write(n[:])
	if _, err := w.w.Write(header); err != nil {
		w.Abort()
		return nil, fmt.Errorf("model: create safetensors %s: %w", path, err)
	}
	return w, nil
}

// safetensorsHeader builds the JSON header, padded with spaces so the data start 8-byte aligned (as the
// reference writer does).
func safetensorsHeader(infos []TensorInfo, metadata map[string]string) ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	if len(metadata) > 0 {
		m, err := json.Marshal(metadata)
		if err != nil {
			return nil, err
		}
		b.WriteString(`"__metadata__":`)
		b.Write(m)
	}
	seen := make(map[string]bool, len(infos))
	var off int64
	for i, info := range infos {
		if info.Name == "__metadata__" || info.Name == "" {
			return nil, fmt.Errorf("tensor %d: name %q is reserved or empty", i, info.Name)
		}
		if seen[info.Name] {
			return nil, fmt.Errorf("tensor %q: duplicate name", info.Name)
		}
		seen[info.Name] = true
		if info.DType.Size() == 0 {
			return nil, fmt.Errorf("tensor %q: invalid dtype %v", info.Name, info.DType)
		}
		for _, d := range info.Shape {
			if d < 0 {
				return nil, fmt.Errorf("tensor %q: negative dimension in shape %v", info.Name, info.Shape)
			}
		}
		if len(metadata) > 0 || i > 0 {
			b.WriteByte(',')
		}
		name, _ := json.Marshal(info.Name)
		shape := info.Shape
		if shape == nil {
			shape = []int{}
		}
		sh, _ := json.Marshal(shape)
		end := off + info.Bytes()
		fmt.Fprintf(&b, `%s:{"dtype":"%s","shape":%s,"data_offsets":[%d,%d]}`, name, info.DType, sh, off, end)
		off = end
	}
	b.WriteByte('}')
	for b.Len()%8 != 0 {
		b.WriteByte(' ')
	}
	return b.Bytes(), nil
}

// WriteTensor appends the next tensor's data; name must match the header order and data its byte size.
func (w *SafetensorsWriter) WriteTensor(name string, data []byte) error {
	if w.err != nil {
		return w.err
	}
	if w.next >= len(w.infos) {
		return w.fail(fmt.Errorf("tensor %q: all %d tensors already written", name, len(w.infos)))
	}
	info := w.infos[w.next]
	if name != info.Name {
		return w.fail(fmt.Errorf("tensor %q: out of order, want %q next", name, info.Name))
	}
	if int64(len(data)) != info.Bytes() {
		return w.fail(fmt.Errorf("tensor %q: %d bytes, want %d for %v %v", name, len(data), info.Bytes(), info.DType, info.Shape))
	}
	if _, err := w.w.Write(data); err != nil {
		return w.fail(err)
	}
	w.next++
	return nil
}

func (w *SafetensorsWriter) fail(err error) error {
	w.err = fmt.Errorf("model: write safetensors %s: %w", w.path, err)
	return w.err
}

// Close checks that every tensor was written, flushes, syncs and renames the file into place. On any
// error the temporary file is removed.
func (w *SafetensorsWriter) Close() error {
	if w.f == nil {
		return w.err
	}
	if w.err == nil && w.next != len(w.infos) {
		w.fail(fmt.Errorf("closed after %d of %d tensors", w.next, len(w.infos)))
	}
	if w.err == nil {
		if err := w.w.Flush(); err != nil {
			w.fail(err)
		} else if err := w.f.CloseAtomicallyReplace(); err != nil { // fsync, close, rename
			w.fail(err)
		}
	}
	w.f.Cleanup() // removes the temporary file unless it was renamed
	w.f = nil
	return w.err
}

// Abort discards the partial file.
func (w *SafetensorsWriter) Abort() {
	if w.f != nil {
		w.f.Cleanup()
		w.f = nil
	}
	if w.err == nil {
		w.err = errors.New("model: write safetensors " + w.path + ": aborted")
	}
}

// NewPendingFile starts an atomic write of path: a temporary file ".<name><digits>" in the same folder,
// created 0666 less the umask like any tool's output, renamed onto path by CloseAtomicallyReplace after
// an fsync. A process killed meanwhile leaves only the dot-file, which package train removes at the next
// start.
func NewPendingFile(path string) (*renameio.PendingFile, error) {
	return renameio.NewPendingFile(path, renameio.WithTempDir(filepath.Dir(path)), renameio.WithPermissions(0o666))
}

// RawTensor is a tensor held in memory, for small files such as LoRA adapters.
type RawTensor struct {
	TensorInfo
	Data []byte // little-endian, contiguous, row-major
}

// WriteSafetensors writes in-memory tensors in the given order.
func WriteSafetensors(path string, tensors []RawTensor, metadata map[string]string) error {
	infos := make([]TensorInfo, len(tensors))
	for i, t := range tensors {
		infos[i] = t.TensorInfo
	}
	w, err := CreateSafetensors(path, infos, metadata)
	if err != nil {
		return err
	}
	for _, t := range tensors {
		if err := w.WriteTensor(t.Name, t.Data); err != nil {
			w.Abort()
			return err
		}
	}
	return w.Close()
}
