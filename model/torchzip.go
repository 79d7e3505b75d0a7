package model

import (
	"archive/zip"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// Reader for torch.save zip archives (spec §9.4): one pickle record "<prefix>/data.pkl" whose tensors refer
// by key to raw little-endian storages "<prefix>/data/<key>". Archives are ZIP_STORED, so each storage is a
// contiguous byte range of the file; a tensor is read straight from that range when asked for, and opening
// a 12 GB checkpoint costs only its pickle (a few hundred KB).

const (
	maxPickleBytes = 64 << 20 // ~200 bytes per tensor: the ViT-g AC checkpoint's (~2,200 tensors) should be ~0.5 MB
	// maxBroadcastBytes bounds tensors whose strides repeat elements (stride 0), the only way a tensor's
	// data can exceed its storage's bytes in the file.
	maxBroadcastBytes = 1 << 30
	maxWalkDepth      = 32
	maxWalkNodes      = 1 << 20
)

// TorchFile is an open torch.save archive. Its methods are safe for concurrent use.
type TorchFile struct {
	Source   string // path, for errors
	prefix   string // record prefix, e.g. "checkpoint/"
	root     any
	storages map[string]storageRecord
	r        io.ReaderAt
	closer   io.Closer
}

type storageRecord struct {
	name         string
	offset, size int64
	method       uint16
}

// TorchTensor is one tensor of a TorchFile: where its storage lies in the archive and how the tensor views
// it. Data are read only by ReadRaw / ReadFloat32.
type TorchTensor struct {
	Name       string // path inside the file as stored, e.g. "module.predictor_embed.weight"
	DType      DType
	Shape      []int
	Strides    []int // in elements
	Offset     int64 // storage_offset, in elements
	StorageKey string
	Location   string // device at save time, e.g. "cpu" or "cuda:0"
	numel      int
	span       int64 // elements of the storage the view touches, from Offset
	rec        storageRecord
	file       *TorchFile
}

// OpenTorch opens a torch.save zip archive and unpickles its data.pkl; no tensor data are read.
func OpenTorch(path string) (*TorchFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("model: open torch checkpoint: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("model: open torch checkpoint: %w", err)
	}
	t, err := NewTorchReader(path, f, st.Size())
	if err != nil {
		f.Close()
		return nil, err
	}
	t.closer = f
	return t, nil
}

// NewTorchReader reads an archive from r (size bytes); source names it in errors.
func NewTorchReader(source string, r io.ReaderAt, size int64) (*TorchFile, error) {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("model: open torch checkpoint %s: %w", source, fmt.Errorf(format, args...))
	}
	zr, err := zip.NewReader(r, size)
	if err != nil && !errors.Is(err, zip.ErrInsecurePath) { // record names are never used as file paths
		if legacy := legacyTorchFormat(r, size); legacy != "" {
			return nil, fail("%s", legacy)
		}
		return nil, fail("%w", err)
	}
	var pkl *zip.File
	for _, f := range zr.File {
		if f.Name == "data.pkl" || strings.HasSuffix(f.Name, "/data.pkl") {
			if pkl != nil {
				return nil, fail("two pickle records %q and %q, want one <prefix>/data.pkl", pkl.Name, f.Name)
			}
			pkl = f
		}
	}
	if pkl == nil {
		return nil, fail("no <prefix>/data.pkl record (not a torch.save zip archive?)")
	}
	t := &TorchFile{Source: source, prefix: strings.TrimSuffix(pkl.Name, "data.pkl"), r: r, storages: map[string]storageRecord{}}
	dataDir := t.prefix + "data/"
	for _, f := range zr.File {
		switch {
		case f.Name == t.prefix+"byteorder":
			b, err := readRecord(f, 16)
			if err != nil {
				return nil, fail("%s: %w", f.Name, err)
			}
			if string(b) != "little" {
				return nil, fail("%s is %q: big-endian archives are not supported", f.Name, b)
			}
		case strings.HasPrefix(f.Name, dataDir):
			off, err := f.DataOffset()
			if err != nil {
				return nil, fail("%s: %w", f.Name, err)
			}
			n := int64(f.UncompressedSize64)
			if f.UncompressedSize64 > uint64(size) || off < 0 || off > size-n {
				return nil, fail("%s: %d bytes at offset %d run past the end of the %d-byte file", f.Name, n, off, size)
			}
			if f.Method == zip.Store && f.CompressedSize64 != f.UncompressedSize64 {
				return nil, fail("%s: stored record with compressed size %d != size %d", f.Name, f.CompressedSize64, n)
			}
			t.storages[strings.TrimPrefix(f.Name, dataDir)] = storageRecord{name: f.Name, offset: off, size: n, method: f.Method}
		}
	}
	b, err := readRecord(pkl, maxPickleBytes)
	if err != nil {
		return nil, fail("%s: %w", pkl.Name, err)
	}
	t.root, err = unpickle(b)
	if err != nil {
		return nil, fail("%s: %w", pkl.Name, err)
	}
	return t, nil
}

func readRecord(f *zip.File, limit int64) ([]byte, error) {
	if f.UncompressedSize64 > uint64(limit) {
		return nil, fmt.Errorf("%d bytes, want at most %d", f.UncompressedSize64, limit)
	}
	rc, err := f.Open()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("more than %d bytes", limit)
	}
	return b, nil
}

// legacyMagic is torch.save's legacy (pre-zip) header: pickle protocol 2 (PROTO 2), then the magic
// number 0x1950a86a20f9469cfc6c as a 10-byte LONG1 (torch/serialization.py MAGIC_NUMBER).
var legacyMagic = []byte{0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19}

// legacyTorchFormat names the format of a file that is not a zip archive when it is one torch can write
// but this reader does not read: the legacy torch.save format, or a bare pickle. "" otherwise.
func legacyTorchFormat(r io.ReaderAt, size int64) string {
	head := make([]byte, len(legacyMagic))
	n, _ := r.ReadAt(head, 0)
	switch {
	case n == len(head) && bytes.Equal(head, legacyMagic):
		return "legacy torch.save format (written by PyTorch < 1.6 or with _use_new_zipfile_serialization=False) " +
			"is not supported: re-save it as a zip archive with PyTorch >= 1.6: torch.save(torch.load(path), path)"
	case n >= 2 && head[0] == 0x80 && head[1] <= 5: // PROTO opcode
		return "a plain pickle, not a torch.save zip archive (PyTorch >= 1.6): only the zip format is supported"
	}
	return ""
}

// Close closes the underlying file (a no-op for NewTorchReader).
func (t *TorchFile) Close() error {
	if t.closer == nil {
		return nil
	}
	err := t.closer.Close()
	t.closer = nil
	return err
}

// Keys lists the top-level string keys in file order ("encoder", "predictor", "opt", "epoch", ...); nil
// when the pickled object is not a dict.
func (t *TorchFile) Keys() []string {
	d, ok := t.root.(*pyDict)
	if !ok {
		return nil
	}
	var keys []string
	for _, k := range d.keys {
		if s, ok := k.(string); ok {
			keys = append(keys, s)
		}
	}
	return keys
}

func (t *TorchFile) value(key string) (any, error) {
	if key == "" {
		return t.root, nil
	}
	d, ok := t.root.(*pyDict)
	if !ok {
		return nil, fmt.Errorf("model: read %s: top-level object has type %s, want a dict with key %q", t.Source, pyTypeName(t.root), key)
	}
	v, ok := d.get(key)
	if !ok {
		return nil, fmt.Errorf("model: read %s: no top-level key %q (have %s)", t.Source, key, strings.Join(t.Keys(), ", "))
	}
	return v, nil
}

// StateDict returns the tensors of the state_dict stored under a top-level key ("predictor", "encoder",
// "target_encoder"; "" when the file is a bare state_dict), in file order, with names as stored.
func (t *TorchFile) StateDict(key string) ([]*TorchTensor, error) {
	v, err := t.value(key)
	if err != nil {
		return nil, err
	}
	d, ok := v.(*pyDict)
	if !ok {
		return nil, fmt.Errorf("model: read %s: %q has type %s, want a state_dict", t.Source, key, pyTypeName(v))
	}
	out := make([]*TorchTensor, 0, len(d.keys))
	for i, k := range d.keys {
		name, ok := k.(string)
		if !ok {
			return nil, fmt.Errorf("model: read %s: %q: key %v has type %s, want str", t.Source, key, k, pyTypeName(k))
		}
		pt, ok := d.vals[i].(*pyTensor)
		if !ok {
			return nil, fmt.Errorf("model: read %s: %q: %s has type %s, want a tensor", t.Source, key, name, pyTypeName(d.vals[i]))
		}
		tt, err := t.resolve(name, pt)
		if err != nil {
			return nil, err
		}
		out = append(out, tt)
	}
	return out, nil
}

// StateDictKeys lists the top-level keys whose value is a non-empty dict holding only tensors.
func (t *TorchFile) StateDictKeys() []string {
	var keys []string
	for _, k := range t.Keys() {
		if v, _ := t.value(k); isStateDict(v) {
			keys = append(keys, k)
		}
	}
	return keys
}

// IsStateDict reports whether the file is a bare state_dict, as torch.save(model.state_dict()) writes:
// a non-empty dict of tensors (read it with StateDict("")).
func (t *TorchFile) IsStateDict() bool { return isStateDict(t.root) }

// isStateDict reports whether v is a non-empty dict from str to tensors.
func isStateDict(v any) bool {
	d, ok := v.(*pyDict)
	if !ok || len(d.keys) == 0 {
		return false
	}
	for i := range d.keys {
		_, isStr := d.keys[i].(string)
		_, isTensor := d.vals[i].(*pyTensor)
		if !isStr || !isTensor {
			return false
		}
	}
	return true
}

// Scalar returns a top-level value that is None (nil), a bool, an int (int64), a float (float64) or a
// str (string), such as "epoch", "loss" or "lr".
func (t *TorchFile) Scalar(key string) (any, error) {
	v, err := t.value(key)
	if err != nil {
		return nil, err
	}
	switch v.(type) {
	case nil, bool, int64, float64, string:
		return v, nil
	}
	return nil, fmt.Errorf("model: read %s: %q has type %s, want None, bool, int, float or str", t.Source, key, pyTypeName(v))
}

// Tensors returns every tensor reachable from the top-level object through dicts, lists and tuples, named
// by dotted path ("predictor.module.predictor_embed.weight", "opt.state.0.exp_avg"). A tensor reachable
// twice (the fixtures' empty target_encoder aliases encoder) is listed under each path.
func (t *TorchFile) Tensors() ([]*TorchTensor, error) {
	var out []*TorchTensor
	nodes := 0
	onPath := map[any]bool{}
	var walk func(path string, v any, depth int) error
	walk = func(path string, v any, depth int) error {
		nodes++
		if nodes > maxWalkNodes {
			return fmt.Errorf("model: read %s: more than %d values to walk", t.Source, maxWalkNodes)
		}
		if depth > maxWalkDepth {
			return fmt.Errorf("model: read %s: %s: nested deeper than %d", t.Source, path, maxWalkDepth)
		}
		join := func(k string) string {
			if path == "" {
				return k
			}
			return path + "." + k
		}
		switch v := v.(type) {
		case *pyTensor:
			tt, err := t.resolve(path, v)
			if err != nil {
				return err
			}
			out = append(out, tt)
		case *pyDict:
			if onPath[v] {
				return nil // a cycle; nothing new below
			}
			onPath[v] = true
			defer delete(onPath, v)
			for i, k := range v.keys {
				if err := walk(join(fmt.Sprint(k)), v.vals[i], depth+1); err != nil {
					return err
				}
			}
		case *pyList:
			if onPath[v] {
				return nil
			}
			onPath[v] = true
			defer delete(onPath, v)
			for i, x := range v.items {
				if err := walk(join(fmt.Sprint(i)), x, depth+1); err != nil {
					return err
				}
			}
		case pyTuple:
			for i, x := range v {
				if err := walk(join(fmt.Sprint(i)), x, depth+1); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if err := walk("", t.root, 0); err != nil {
		return nil, err
	}
	return out, nil
}

// resolve checks a pickled tensor against its storage record: the storage exists, is stored uncompressed,
// holds its declared elements, and the view (offset, size, stride) stays inside it.
func (t *TorchFile) resolve(name string, pt *pyTensor) (*TorchTensor, error) {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("model: read %s: %s: %s", t.Source, name, fmt.Sprintf(format, args...))
	}
	s := pt.storage
	rec, ok := t.storages[s.key]
	if !ok {
		return nil, fail("storage %q has no record %sdata/%s", s.key, t.prefix, s.key)
	}
	if rec.method != zip.Store {
		return nil, fail("record %s is compressed (method %d), want ZIP_STORED", rec.name, rec.method)
	}
	elem := int64(s.dtype.Size())
	if s.numel > rec.size/elem {
		return nil, fail("storage %q declares %d %v elements, record %s has %d bytes", s.key, s.numel, s.dtype, rec.name, rec.size)
	}
	limit := uint64(max(s.numel, maxBroadcastBytes/elem))
	shape, numel, ok := checkedShape(pt.shape, limit)
	if !ok {
		return nil, fail("size %v is larger than storage %q (%d elements)", pt.shape, s.key, s.numel)
	}
	strides := make([]int, len(pt.stride))
	span := int64(0)
	if numel > 0 {
		outside := fail("view (offset %d, size %v, stride %v) leaves storage %q of %d elements", pt.offset, pt.shape, pt.stride, s.key, s.numel)
		last := pt.offset // index of the last element the view touches, kept < s.numel so nothing overflows
		if last >= s.numel {
			return nil, outside
		}
		for i, st := range pt.stride {
			if n := pt.shape[i] - 1; n > 0 && st > 0 {
				if st > (s.numel-1-last)/n {
					return nil, outside
				}
				last += n * st
			}
			strides[i] = int(st)
		}
		span = last - pt.offset + 1
	} else {
		for i, st := range pt.stride {
			strides[i] = int(min(st, s.numel))
		}
	}
	return &TorchTensor{
		Name: name, DType: s.dtype, Shape: shape, Strides: strides, Offset: pt.offset,
		StorageKey: s.key, Location: s.location, numel: numel, span: span, rec: rec, file: t,
	}, nil
}

func (t *TorchTensor) Info() TensorInfo {
	return TensorInfo{Name: t.Name, DType: t.DType, Shape: t.Shape}
}

// Contiguous reports whether the view is dense row-major, so its data are one byte range of the storage.
func (t *TorchTensor) Contiguous() bool {
	want := 1
	for i := len(t.Shape) - 1; i >= 0; i-- {
		if t.Shape[i] != 1 && t.Strides[i] != want {
			return false
		}
		want *= t.Shape[i]
	}
	return true
}

// ReadRaw reads the tensor's elements from the archive, gathering a non-contiguous view into row-major
// order.
func (t *TorchTensor) ReadRaw() ([]byte, error) {
	elem := t.DType.Size()
	out := make([]byte, t.numel*elem)
	if t.numel == 0 {
		return out, nil
	}
	sec := io.NewSectionReader(t.file.r, t.rec.offset, t.rec.size)
	start := t.Offset * int64(elem)
	if t.Contiguous() {
		if err := readFull(sec, out, start); err != nil {
			return nil, fmt.Errorf("model: read %s: %s: %w", t.file.Source, t.Name, err)
		}
		return out, nil
	}
	src := make([]byte, t.span*int64(elem))
	if err := readFull(sec, src, start); err != nil {
		return nil, fmt.Errorf("model: read %s: %s: %w", t.file.Source, t.Name, err)
	}
	gather(out, src, t.Shape, t.Strides, elem)
	return out, nil
}

func readFull(r io.ReaderAt, buf []byte, off int64) error {
	n, err := r.ReadAt(buf, off)
	if n == len(buf) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return err
}

// gather copies the strided view of src (element strides) into dst in row-major order.
func gather(dst, src []byte, shape, strides []int, elem int) {
	idx := make([]int, len(shape))
	srcOff := 0
	for i := 0; i*elem < len(dst); i++ {
		copy(dst[i*elem:(i+1)*elem], src[srcOff*elem:])
		for d := len(shape) - 1; d >= 0; d-- {
			idx[d]++
			srcOff += strides[d]
			if idx[d] < shape[d] {
				break
			}
			srcOff -= strides[d] * idx[d]
			idx[d] = 0
		}
	}
}

// ReadFloat32 reads the tensor and converts it to float32 (F16, BF16 and F64 convert exactly or by
// rounding, as torch's .float() does).
func (t *TorchTensor) ReadFloat32() ([]float32, error) {
	raw, err := t.ReadRaw()
	if err != nil {
		return nil, err
	}
	return DecodeFloat32(t.DType, raw)
}
