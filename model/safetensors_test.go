package model

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/x448/float16"
)

// slowF16 is the reference rounding: take the float64 value, find the two neighbouring halves by brute
// search over all 2^15 magnitudes, pick the nearer (ties to the even code), then clamp finite overflow.
func slowF16(f float32, halves []float64) uint16 {
	x := float64(f)
	sign := uint16(0)
	if math.Signbit(x) {
		sign, x = 0x8000, -x
	}
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return Float32ToF16(f) // specials are checked separately
	}
	// halves[i] is the value of magnitude code i, increasing, for i < 0x7c00.
	i, _ := slices.BinarySearch(halves[:0x7c00], x)
	if i == 0x7c00 {
		return sign | 0x7bff
	}
	if halves[i] == x || i == 0 {
		return sign | uint16(i)
	}
	lo, hi := halves[i-1], halves[i]
	switch {
	case x-lo < hi-x:
		return sign | uint16(i-1)
	case x-lo > hi-x:
		return sign | uint16(i)
	case (i-1)%2 == 0:
		return sign | uint16(i-1)
	}
	return sign | uint16(i)
}

func TestF16ToFloat32(t *testing.T) {
	// Widening is exact, so every one of the 65536 codes must match the x448/float16 library bit for bit.
	for h := range 1 << 16 {
		got := math.Float32bits(F16ToFloat32(uint16(h)))
		want := float16.Frombits(uint16(h)).Float32()
		if math.IsNaN(float64(want)) {
			if !math.IsNaN(float64(F16ToFloat32(uint16(h)))) {
				t.Fatalf("F16ToFloat32(0x%04x) = 0x%08x, want NaN", h, got)
			}
			continue
		}
		if got != math.Float32bits(want) {
			t.Fatalf("F16ToFloat32(0x%04x) = 0x%08x, want 0x%08x", h, got, math.Float32bits(want))
		}
	}
}

func TestFloat32ToF16(t *testing.T) {
	halves := make([]float64, 0x7c00)
	for i := range halves {
		halves[i] = float64(F16ToFloat32(uint16(i)))
	}
	check := func(f float32) {
		t.Helper()
		got := Float32ToF16(f)
		want := slowF16(f, halves)
		// Cross-check with x448/float16 (RNE, no clamp) wherever it does not overflow.
		if lib := float16.Fromfloat32(f); !lib.IsInf(0) && lib.Bits() != want {
			t.Fatalf("reference disagrees with x448/float16 at %g: 0x%04x vs 0x%04x", f, want, lib.Bits())
		}
		if got != want {
			t.Fatalf("Float32ToF16(%g = 0x%08x) = 0x%04x, want 0x%04x", f, math.Float32bits(f), got, want)
		}
	}
	// Every float32 whose exponent lands in or near the half range, sampled with an odd stride so all
	// mantissa residues (ties included) are hit, plus every half value and the midpoints around it.
	for b := uint32(0x30000000); b < 0x47800000; b += 4099 {
		check(math.Float32frombits(b))
		check(-math.Float32frombits(b))
	}
	for i := 0; i < 0x7c00; i++ {
		h := halves[i]
		check(float32(h))
		if i+1 < 0x7c00 {
			mid := float32((h + halves[i+1]) / 2) // exact in float32: halves have 11 significant bits
			check(mid)
			check(math.Nextafter32(mid, 0))
			check(math.Nextafter32(mid, 1e9))
		}
	}
	specials := []struct {
		in   float32
		want uint16
	}{
		{65504, 0x7bff}, {65519.99, 0x7bff}, {65520, 0x7bff}, {1e9, 0x7bff}, {-3.4e38, 0xfbff},
		{float32(math.Inf(1)), 0x7c00}, {float32(math.Inf(-1)), 0xfc00},
		{float32(math.Copysign(0, -1)), 0x8000}, {1e-30, 0},
		{5.960464477539063e-08, 0x0001}, // 2^-24, the smallest subnormal
		{2.9802322387695312e-08, 0},     // 2^-25: a tie, to even (0)
		{4.470348358154297e-08, 0x0001}, // 1.5·2^-25 rounds up
	}
	for _, s := range specials {
		if got := Float32ToF16(s.in); got != s.want {
			t.Errorf("Float32ToF16(%g) = 0x%04x, want 0x%04x", s.in, got, s.want)
		}
	}
	if got := Float32ToF16(float32(math.NaN())); got&0x7c00 != 0x7c00 || got&0x3ff == 0 {
		t.Errorf("Float32ToF16(NaN) = 0x%04x, want a NaN", got)
	}
}

func TestFloat32ToBF16(t *testing.T) {
	// Reference: nearest of the two bf16 neighbours by float64 distance, ties to the even code.
	slow := func(f float32) uint16 {
		b := math.Float32bits(f)
		lo := uint16(b >> 16)
		hi := lo + 1
		x := float64(f)
		dl := math.Abs(x - float64(BF16ToFloat32(lo)))
		dh := math.Abs(float64(BF16ToFloat32(hi)) - x)
		if dl < dh || (dl == dh && lo%2 == 0) {
			return lo
		}
		return hi
	}
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 1 << 20 {
		b := r.Uint32()
		if i%4 == 0 {
			b = b&^0xffff | 0x8000 // exact ties
		}
		f := math.Float32frombits(b)
		if math.IsNaN(float64(f)) || b&0x7fffffff >= 0x7f7f8000 {
			continue
		}
		if got, want := Float32ToBF16(f), slow(f); got != want {
			t.Fatalf("Float32ToBF16(0x%08x) = 0x%04x, want 0x%04x", b, got, want)
		}
	}
	for _, c := range []struct {
		in   uint32
		want uint16
	}{
		{0x3f808000, 0x3f80}, {0x3f818000, 0x3f82}, {0x3f808001, 0x3f81}, {0x7f800000, 0x7f80},
		{0x7f7fffff, 0x7f80}, // rounds past the largest finite bf16, as torch does
	} {
		if got := Float32ToBF16(math.Float32frombits(c.in)); got != c.want {
			t.Errorf("Float32ToBF16(0x%08x) = 0x%04x, want 0x%04x", c.in, got, c.want)
		}
	}
	if got := Float32ToBF16(float32(math.NaN())); got&0x7f80 != 0x7f80 || got&0x7f == 0 {
		t.Errorf("Float32ToBF16(NaN) = 0x%04x, want a NaN", got)
	}
}

func TestEncodeDecodeFloat32(t *testing.T) {
	src := []float32{0, 1, -2.5, 3.140625, 1e-3, -65504}
	for _, dt := range []DType{DTypeF32, DTypeF64, DTypeF16, DTypeBF16} {
		t.Run("dtype="+dt.String(), func(t *testing.T) {
			raw, err := EncodeFloat32(dt, src)
			if err != nil {
				t.Fatal(err)
			}
			if len(raw) != len(src)*dt.Size() {
				t.Fatalf("EncodeFloat32(%v): %d bytes, want %d", dt, len(raw), len(src)*dt.Size())
			}
			got, err := DecodeFloat32(dt, raw)
			if err != nil {
				t.Fatal(err)
			}
			// bf16 keeps 8 significant bits, f16 11: relative error at most half an ulp.
			tol := map[DType]float64{DTypeF32: 0, DTypeF64: 0, DTypeF16: 1.0 / 2048, DTypeBF16: 1.0 / 256}[dt]
			for i := range src {
				if d := math.Abs(float64(got[i] - src[i])); d > tol*math.Abs(float64(src[i])) {
					t.Errorf("round trip %v: [%d] = %g, want %g (rel tol %g)", dt, i, got[i], src[i], tol)
				}
			}
		})
	}
	if _, err := EncodeFloat32(DTypeI64, src); err == nil {
		t.Error("EncodeFloat32(I64) succeeded, want an error")
	}
	ints := []struct {
		dt  DType
		raw []byte
	}{
		{DTypeI64, binary.LittleEndian.AppendUint64(nil, uint64(0xfffffffffffffffd))},
		{DTypeI32, binary.LittleEndian.AppendUint32(nil, 0xfffffffd)},
		{DTypeI16, []byte{0xfd, 0xff}},
		{DTypeI8, []byte{0xfd}},
	}
	for _, c := range ints {
		got, err := DecodeFloat32(c.dt, c.raw)
		if err != nil || len(got) != 1 || got[0] != -3 {
			t.Errorf("DecodeFloat32(%v, % x) = %v, %v, want [-3]", c.dt, c.raw, got, err)
		}
	}
	if got, _ := DecodeFloat32(DTypeBool, []byte{0, 7}); !slices.Equal(got, []float32{0, 1}) {
		t.Errorf("DecodeFloat32(BOOL) = %v, want [0 1]", got)
	}
	if _, err := DecodeFloat32(DTypeF32, make([]byte, 6)); err == nil {
		t.Error("DecodeFloat32(F32, 6 bytes) succeeded, want an error")
	}
}

func TestParseDType(t *testing.T) {
	for in, want := range map[string]DType{"f32": DTypeF32, "F16": DTypeF16, "bf16": DTypeBF16, "BF16": DTypeBF16,
		"float64": DTypeF64, "half": DTypeF16, "I64": DTypeI64, "bool": DTypeBool, "u8": DTypeU8} {
		if got, err := ParseDType(in); got != want || err != nil {
			t.Errorf("ParseDType(%q) = %v, %v, want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "INVALID", "f8", "complex64"} {
		if _, err := ParseDType(in); err == nil {
			t.Errorf("ParseDType(%q) succeeded, want an error", in)
		}
	}
}

// randomRaw fills a tensor's bytes with seeded noise.
func randomRaw(info TensorInfo, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 7))
	b := make([]byte, info.Bytes())
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func TestSafetensorsRoundTrip(t *testing.T) {
	tensors := []RawTensor{
		{TensorInfo: TensorInfo{"a.weight", DTypeF32, []int{3, 5}}},
		{TensorInfo: TensorInfo{"b.f16", DTypeF16, []int{7}}},
		{TensorInfo: TensorInfo{"c.bf16", DTypeBF16, []int{2, 1, 3}}},
		{TensorInfo: TensorInfo{"step", DTypeI64, nil}}, // 0-dim
		{TensorInfo: TensorInfo{"empty", DTypeF32, []int{0, 4}}},
		{TensorInfo: TensorInfo{"mask", DTypeBool, []int{5}}},
		{TensorInfo: TensorInfo{"d\"quoted\\name", DTypeF64, []int{2}}},
	}
	for i := range tensors {
		tensors[i].Data = randomRaw(tensors[i].TensorInfo, uint64(i))
	}
	for _, meta := range []map[string]string{nil, {"format": "pt", "note": "héllo \"x\""}} {
		t.Run(fmt.Sprintf("metadata=%d", len(meta)), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "w.safetensors")
			if err := WriteSafetensors(path, tensors, meta); err != nil {
				t.Fatal(err)
			}
			b, _ := os.ReadFile(path)
			if n := binary.LittleEndian.Uint64(b); (8+n)%8 != 0 {
				t.Errorf("data start at %d, want 8-byte aligned", 8+n)
			}
			st, err := OpenSafetensors(path)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			if !maps2Equal(st.Metadata, meta) {
				t.Errorf("metadata %v, want %v", st.Metadata, meta)
			}
			if len(st.Tensors()) != len(tensors) {
				t.Fatalf("%d tensors, want %d", len(st.Tensors()), len(tensors))
			}
			for i, want := range tensors {
				got := st.Tensors()[i] // data order is write order
				gi := got.Info()
				if gi.Name != want.Name || gi.DType != want.DType || !slices.Equal(gi.Shape, want.Shape) {
					t.Errorf("tensor %d: %v %v %v, want %v %v %v", i, gi.Name, gi.DType, gi.Shape, want.Name, want.DType, want.Shape)
				}
				raw, err := got.ReadRaw()
				if err != nil || !bytes.Equal(raw, want.Data) {
					t.Errorf("tensor %s: data differ (err %v)", want.Name, err)
				}
				if byName, ok := st.Tensor(want.Name); !ok || byName != got {
					t.Errorf("Tensor(%q) not found", want.Name)
				}
			}
			f, err := st.Tensors()[0].ReadFloat32()
			if err != nil {
				t.Fatal(err)
			}
			for i, v := range f {
				if want := binary.LittleEndian.Uint32(tensors[0].Data[4*i:]); math.Float32bits(v) != want {
					t.Errorf("ReadFloat32(a.weight)[%d] = 0x%08x, want 0x%08x", i, math.Float32bits(v), want)
				}
			}
			st.Close()
			if _, err := st.Tensors()[0].ReadRaw(); err == nil {
				t.Error("ReadRaw after Close succeeded, want an error")
			}
		})
	}
}

func maps2Equal(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestSafetensorsWriterErrors(t *testing.T) {
	dir := t.TempDir()
	infos := []TensorInfo{{"a", DTypeF32, []int{2}}, {"b", DTypeF16, []int{3}}}
	cases := []struct {
		name  string
		write func(w *SafetensorsWriter) error
		want  string
	}{
		{"order", func(w *SafetensorsWriter) error { return w.WriteTensor("b", make([]byte, 6)) }, `out of order, want "a"`},
		{"size", func(w *SafetensorsWriter) error { return w.WriteTensor("a", make([]byte, 7)) }, "7 bytes, want 8"},
		{"incomplete", func(w *SafetensorsWriter) error { w.WriteTensor("a", make([]byte, 8)); return w.Close() }, "closed after 1 of 2 tensors"},
		{"extra", func(w *SafetensorsWriter) error {
			w.WriteTensor("a", make([]byte, 8))
			w.WriteTensor("b", make([]byte, 6))
			return w.WriteTensor("c", nil)
		}, "all 2 tensors already written"},
	}
	for _, c := range cases {
		t.Run("case="+c.name, func(t *testing.T) {
			path := filepath.Join(dir, c.name+".safetensors")
			w, err := CreateSafetensors(path, infos, nil)
			if err != nil {
				t.Fatal(err)
			}
			err = c.write(w)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v, want it to contain %q", err, c.want)
			}
			w.Close()
			if _, err := os.Stat(path); !os.IsNotExist(err) {
				t.Errorf("%s exists after a failed write", path)
			}
			if left, _ := filepath.Glob(filepath.Join(dir, "."+c.name+"*")); len(left) > 0 {
				t.Errorf("temporary files left: %v", left)
			}
		})
	}
	for _, bad := range [][]TensorInfo{
		{{"a", DTypeF32, nil}, {"a", DTypeF32, nil}},
		{{"__metadata__", DTypeF32, nil}},
		{{"x", DTypeInvalid, nil}},
		{{"x", DTypeF32, []int{-1}}},
	} {
		if _, err := CreateSafetensors(filepath.Join(dir, "bad.safetensors"), bad, nil); err == nil {
			t.Errorf("CreateSafetensors(%v) succeeded, want an error", bad)
		}
	}
}

// TestWritersHonourUmask: safetensors files (convert, merge) and PEFT adapters (export) are created
// 0666 less the umask, like any tool's output, not 0600; no temp file is left next to them.
func TestWritersHonourUmask(t *testing.T) {
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	dir := t.TempDir()
	st := filepath.Join(dir, "w.safetensors")
	if err := WriteSafetensors(st, []RawTensor{{TensorInfo{"a", DTypeF32, []int{1}}, make([]byte, 4)}}, nil); err != nil {
		t.Fatal(err)
	}
	adapter := filepath.Join(dir, "adapter")
	cfg := NewAdapterConfig(1, 2, false, []string{"qkv"}, "base")
	l := LoRAWeights{Module: "predictor_blocks.0.attn.qkv", R: 1, In: 2, Out: 3, A: make([]float32, 2), B: make([]float32, 3)}
	if err := WritePEFTAdapter(adapter, cfg, []LoRAWeights{l}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{st, filepath.Join(adapter, AdapterWeightsFile), filepath.Join(adapter, AdapterConfigFile)} {
		info, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if got := info.Mode().Perm(); got != 0o644 {
			t.Errorf("%s: mode %v, want -rw-r--r-- (0666 less umask 022)", p, got)
		}
	}
	for _, d := range []string{dir, adapter} {
		entries, _ := os.ReadDir(d)
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), ".") {
				t.Errorf("temp file %s left in %s", e.Name(), d)
			}
		}
	}
}

// stFile assembles a safetensors image from a raw header string and data length.
func stFile(header string, data int) []byte {
	b := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
	b = append(b, header...)
	return append(b, make([]byte, data)...)
}

func TestSafetensorsParseErrors(t *testing.T) {
	cases := []struct {
		name string
		b    []byte
		want string
	}{
		{"short", []byte{1, 2, 3}, "want at least the 8-byte header length"},
		{"header-past-end", binary.LittleEndian.AppendUint64(nil, 100), "header length 100"},
		{"header-huge", binary.LittleEndian.AppendUint64(nil, 1<<62), "header length"},
		{"json", stFile(`{"a":`, 0), "header json"},
		{"dtype", stFile(`{"a":{"dtype":"F8","shape":[1],"data_offsets":[0,1]}}`, 1), `dtype "F8" is not supported`},
		{"lowercase-dtype", stFile(`{"a":{"dtype":"f32","shape":[1],"data_offsets":[0,4]}}`, 4), "not supported"},
		{"offsets-past-end", stFile(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,8]}}`, 4), "data_offsets [0 8]"},
		{"offsets-reversed", stFile(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}}`, 4), "data_offsets [4 0]"},
		{"offsets-arity", stFile(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0]}}`, 4), "data_offsets [0]"},
		{"size-mismatch", stFile(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}`, 4), "needs 8 bytes, data_offsets give 4"},
		{"negative-dim", stFile(`{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}`, 4), "shape [-1]"},
		{"overflow", stFile(`{"a":{"dtype":"F32","shape":[4294967296,4294967296,4294967296],"data_offsets":[0,4]}}`, 4), "shape"},
		{"gap", stFile(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, 8), "starts at 4, want 0"},
		{"overlap", stFile(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, 8), "want 8"},
		{"uncovered", stFile(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, 8), "cover 4 of 8"},
		{"unknown-field", stFile(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"x":1}}`, 4), "unknown field"},
		{"metadata-type", stFile(`{"__metadata__":{"a":1}}`, 0), "__metadata__"},
	}
	for _, c := range cases {
		t.Run("case="+c.name, func(t *testing.T) {
			_, err := ParseSafetensors("x.safetensors", c.b)
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "model: read safetensors x.safetensors: ") {
				t.Errorf("ParseSafetensors: error %v, want one containing %q", err, c.want)
			}
		})
	}
	// Empty file on disk: no mmap of zero bytes.
	path := filepath.Join(t.TempDir(), "empty.safetensors")
	os.WriteFile(path, nil, 0o644)
	if _, err := OpenSafetensors(path); err == nil {
		t.Error("OpenSafetensors(empty) succeeded, want an error")
	}
}

func TestSafetensorsFixture(t *testing.T) {
	dir := fixtureDir(t, "ac_tiny")
	st, err := OpenSafetensors(filepath.Join(dir, "case.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var cj struct {
		Tensors map[string][]int `json:"tensors"`
	}
	b, err := os.ReadFile(filepath.Join(dir, "case.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &cj); err != nil {
		t.Fatal(err)
	}
	if len(st.Tensors()) != len(cj.Tensors) {
		t.Errorf("%d tensors, case.json lists %d", len(st.Tensors()), len(cj.Tensors))
	}
	for name, shape := range cj.Tensors {
		tt, ok := st.Tensor(name)
		if !ok {
			t.Errorf("%s: missing", name)
			continue
		}
		if !slices.Equal(tt.Info().Shape, shape) {
			t.Errorf("%s: shape %v, case.json says %v", name, tt.Info().Shape, shape)
		}
	}
}

func FuzzSafetensors(f *testing.F) {
	good := []RawTensor{
		{TensorInfo{"a", DTypeF32, []int{2, 2}}, make([]byte, 16)},
		{TensorInfo{"b", DTypeBF16, []int{3}}, make([]byte, 6)},
		{TensorInfo{"s", DTypeI64, nil}, make([]byte, 8)},
	}
	header, _ := safetensorsHeader(infosOf(good), map[string]string{"k": "v"})
	seed := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
	seed = append(seed, header...)
	for _, t := range good {
		seed = append(seed, t.Data...)
	}
	f.Add(seed)
	f.Add(stFile(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, 8))
	f.Add(stFile(`{}`, 0))
	if dir := fixtureDirOrEmpty("enc_tiny"); dir != "" {
		if b, err := os.ReadFile(filepath.Join(dir, "case.safetensors")); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := ParseSafetensors("fuzz", b)
		if err != nil {
			return
		}
		// Whatever parses must survive a write and re-read unchanged.
		var raws []RawTensor
		for _, tt := range st.Tensors() {
			if _, err := tt.ReadFloat32(); err != nil {
				t.Fatalf("%s: ReadFloat32: %v", tt.Info().Name, err)
			}
			raws = append(raws, RawTensor{tt.Info(), tt.Bytes()})
		}
		header, err := safetensorsHeader(infosOf(raws), st.Metadata)
		if err != nil {
			t.Fatalf("re-encode header: %v", err)
		}
		again := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
		again = append(again, header...)
		for _, r := range raws {
			again = append(again, r.Data...)
		}
		st2, err := ParseSafetensors("fuzz-again", again)
		if err != nil {
			t.Fatalf("re-read: %v", err)
		}
		if len(st2.Tensors()) != len(raws) {
			t.Fatalf("re-read %d tensors, want %d", len(st2.Tensors()), len(raws))
		}
	})
}

func infosOf(ts []RawTensor) []TensorInfo {
	out := make([]TensorInfo, len(ts))
	for i, t := range ts {
		out[i] = t.TensorInfo
	}
	return out
}

func BenchmarkEncodeFloat32(b *testing.B) {
	src := make([]float32, 1<<20)
	r := rand.New(rand.NewPCG(1, 1))
	for i := range src {
		src[i] = float32(r.NormFloat64())
	}
	for _, dt := range []DType{DTypeF32, DTypeF16, DTypeBF16} {
		b.Run("dtype="+dt.String(), func(b *testing.B) {
			b.SetBytes(int64(4 * len(src)))
			for b.Loop() {
				EncodeFloat32(dt, src)
			}
			b.ReportMetric(float64(len(src))*float64(b.N)/b.Elapsed().Seconds()/1e9, "Gelem/s")
		})
	}
}
