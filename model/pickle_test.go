package model

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// pyRepr prints an unpickled value the way Python's repr would (close enough to compare in tests).
func pyRepr(v any) string {
	switch v := v.(type) {
	case nil:
		return "None"
	case bool:
		if v {
			return "True"
		}
		return "False"
	case int64:
		return fmt.Sprint(v)
	case float64:
		return fmt.Sprint(v)
	case string:
		return fmt.Sprintf("'%s'", v)
	case []byte:
		return fmt.Sprintf("b'%s'", v)
	case pyTuple:
		parts := make([]string, len(v))
		for i, x := range v {
			parts[i] = pyRepr(x)
		}
		if len(v) == 1 {
			return "(" + parts[0] + ",)"
		}
		return "(" + strings.Join(parts, ", ") + ")"
	case *pyList:
		parts := make([]string, len(v.items))
		for i, x := range v.items {
			parts[i] = pyRepr(x)
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case *pyDict:
		parts := make([]string, len(v.keys))
		for i := range v.keys {
			parts[i] = pyRepr(v.keys[i]) + ": " + pyRepr(v.vals[i])
		}
		return "{" + strings.Join(parts, ", ") + "}"
	case *pyGlobal:
		return "<" + v.module + "." + v.name + ">"
	case *pyObject:
		return "<object " + v.global.module + "." + v.global.name + ">"
	case *pyStorage:
		return fmt.Sprintf("<storage %v %s %s %d>", v.dtype, v.key, v.location, v.numel)
	case *pyTensor:
		return fmt.Sprintf("<tensor %s+%d %v %v>", pyRepr(v.storage), v.offset, v.shape, v.stride)
	}
	return fmt.Sprintf("?%T", v)
}

// p joins opcode fragments: strings are raw bytes, ints are single bytes.
func p(parts ...any) []byte {
	var b []byte
	for _, x := range parts {
		switch x := x.(type) {
		case string:
			b = append(b, x...)
		case int:
			b = append(b, byte(x))
		case []byte:
			b = append(b, x...)
		}
	}
	return b
}

func u32(n int) []byte { return binary.LittleEndian.AppendUint32(nil, uint32(n)) }

func TestUnpickle(t *testing.T) {
	bigMemo := p(0x80, 2, "]", "(")
	for i := range 300 {
		bigMemo = append(bigMemo, p("K", i%256, "r", u32(i))...)
	}
	bigMemo = append(bigMemo, p("j", u32(299), "j", u32(0), "h", 17, "e", ".")...)
	var want []string
	for i := range 300 {
		want = append(want, fmt.Sprint(i%256))
	}
	bigMemoWant := "[" + strings.Join(append(want, "43", "0", "17"), ", ") + "]"
	cases := []struct {
		name string
		in   []byte
		want string
	}{
		{"none", p(0x80, 2, "N."), "None"},
		{"bools", p(0x80, 2, 0x88, 0x89, 0x86, "."), "(True, False)"},
		{"ints", p("(K", 255, "M", 0xff, 0xff, "J", u32(-5), 0x8a, 0, 0x8a, 1, 0xff, 0x8a, 2, 0x00, 0x80, 0x8a, 3, 0x00, 0x80, 0x00, "t."), "(255, 65535, -5, 0, -1, -32768, 32768)"},
		{"long-9-bytes", p(0x8a, 9, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 0x00, "."), "9223372036854775807"},
		{"long4", p(0x8b, u32(3), 0x01, 0x00, 0x01, "."), "65537"},
		{"binfloat", p("G", binary.BigEndian.AppendUint64(nil, math.Float64bits(0.4321)), "."), "0.4321"},
		{"strings", p("(X", u32(3), "abc", 0x8c, 3, "hé", 0x8d, binary.LittleEndian.AppendUint64(nil, 1), "z", "U", 1, 0xe9, "t."), "('abc', 'hé', 'z', 'é')"},
		{"bytes", p("(B", u32(2), "hi", "C", 1, "x", 0x8e, binary.LittleEndian.AppendUint64(nil, 0), "t."), "(b'hi', b'x', b'')"},
		{"codecs-bytes", p("c_codecs\nencode\nX", u32(2), "\xc3\xbf", "X", u32(6), "latin1", 0x86, "R."), "b'\xff'"},
		{"tuples", p("()K", 1, 0x85, "K", 1, "K", 2, 0x86, "K", 1, "K", 2, "K", 3, 0x87, "t."), "((), (1,), (1, 2), (1, 2, 3))"},
		{"list", p("]K", 1, "a(K", 2, "K", 3, "e.", ""), "[1, 2, 3]"},
		{"list-opcode", p("(K", 1, "K", 2, "l."), "[1, 2]"},
		{"dict", p("}K", 1, "K", 2, "s(X", u32(1), "a", "N", "K", 1, "K", 3, "u."), "{1: 3, 'a': None}"},
		{"dict-opcode", p("(K", 1, "K", 2, "d."), "{1: 2}"},
		{"tuple-key", p("}K", 1, "K", 2, 0x86, "K", 5, "s."), "{(1, 2): 5}"},
		{"ordereddict-build", p("ccollections\nOrderedDict\nq", 0, ")R(X", u32(1), "k", "K", 7, "u}(X", u32(9), "_metadata", "h", 0, ")R", "ub."), "{'k': 7}"},
		{"memo", p("X", u32(2), "ab", "q", 5, "0h", 5, "."), "'ab'"},
		{"long-memo", bigMemo, bigMemoWant},
		{"proto4", p(0x80, 4, 0x95, binary.LittleEndian.AppendUint64(nil, 9), 0x8c, 5, "torch", 0x94, 0x8c, 5, "Thing", 0x94, 0x93, 0x94, "."), "<torch.Thing>"},
		{"dup-pop-popmark", p("K", 1, "2", "(K", 9, "K", 9, "1", "0", "."), "1"},
		{"unknown-global-is-inert", p("cnumpy.core.multiarray\nscalar\n(K", 1, "tR", "}b."), "<object numpy.core.multiarray.scalar>"},
		{"newobj", p("cfoo\nBar\n)", 0x81, "."), "<object foo.Bar>"},
		{"tensor", p("ctorch._utils\n_rebuild_tensor_v2\n((X", u32(7), "storage", "ctorch\nHalfStorage\nX", u32(1), "0", "X", u32(6), "cuda:0", "K", 6, "tQK", 1, "K", 2, "K", 2, 0x86, "K", 2, "K", 1, 0x86, 0x89, "ccollections\nOrderedDict\n)R", "tR."),
			"<tensor <storage F16 0 cuda:0 6>+1 [2 2] [2 1]>"},
		{"parameter", p("ctorch._utils\n_rebuild_parameter\n(ctorch._utils\n_rebuild_tensor_v2\n((X", u32(7), "storage", "ctorch\nFloatStorage\nX", u32(1), "3", "X", u32(3), "cpu", "K", 1, "tQK", 0, ")", ")", 0x89, "}tR", 0x88, "}tR."),
			"<tensor <storage F32 3 cpu 1>+0 [] []>"},
	}
	for _, c := range cases {
		t.Run("case="+c.name, func(t *testing.T) {
			v, err := unpickle(c.in)
			if err != nil {
				t.Fatalf("unpickle(% x): %v", c.in, err)
			}
			if got := pyRepr(v); got != c.want {
				t.Errorf("unpickle(% x) = %s, want %s", c.in, got, c.want)
			}
		})
	}
}

func TestUnpickleErrors(t *testing.T) {
	storageID := func(typ string, numel int) []byte {
		return p("(X", u32(7), "storage", "ctorch\n"+typ+"\nX", u32(1), "0", "X", u32(3), "cpu", "K", numel, "t")
	}
	cases := []struct {
		name string
		in   []byte
		want string // substring of the error
	}{
		{"empty", nil, "unexpected end of data"},
		{"no-stop", p("N"), "offset 1"},
		{"proto-6", p(0x80, 6), "protocol 6"},
		{"unknown-opcode", p("I1\n."), "opcode 0x49 unknown): unsupported opcode"},
		{"truncated-string", p("X", u32(100), "abc"), "needs 100 bytes, 3 left"},
		{"huge-bytes8", p(0x8e, binary.LittleEndian.AppendUint64(nil, 1<<62)), "needs 4611686018427387904 bytes"},
		{"bad-utf8", p("X", u32(1), 0xff, "."), "invalid utf-8"},
		{"underflow", p("t."), "no MARK"},
		{"underflow-pop", p("0"), "stack underflow"},
		{"underflow-at-mark", p("(", 0x85), "stack underflow"},
		{"memo-miss", p("h", 3), "memo 3 is not set"},
		{"two-items-at-stop", p("NN."), "stack holds 2 items"},
		{"append-to-tuple", p(")K", 1, "a"), "append to tuple"},
		{"setitem-on-list", p("]K", 1, "K", 2, "s"), "setitem on list, want a dict"},
		{"odd-setitems", p("}(K", 1, "u"), "1 items for key/value pairs"},
		{"reduce-non-global", p("K", 1, ")R"), "call of int"},
		{"build-on-list", p("]}b"), "BUILD with dict on list"},
		{"long-too-big", p(0x8a, 9, 0, 0, 0, 0, 0, 0, 0, 0, 1), "does not fit in int64"},
		{"long-2^64-1", p(0x8a, 9, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00), "does not fit in int64"},
		{"long4-truncated", p(0x8b, u32(1000), 1), "needs 1000 bytes"},
		{"global-no-newline", p("ctorch"), "no newline"},
		{"persid-not-tuple", p("K", 1, "Q"), "persistent id int"},
		{"persid-kind", p("(X", u32(3), "xyz", "N", "N", "N", "N", "tQ"), "kind xyz"},
		{"storage-type", p(storageID("ComplexFloatStorage", 1), "Q"), "torch.ComplexFloatStorage is not supported"},
		{"storage-type-module", p("(X", u32(7), "storage", "cos\nsystem\nX", u32(1), "0", "X", u32(3), "cpu", "K", 1, "tQ"), "want a torch.*Storage global"},
		{"rebuild-args", p("ctorch._utils\n_rebuild_tensor_v2\n(K", 1, "tR"), "with 1 arguments"},
		{"rebuild-storage", p("ctorch._utils\n_rebuild_tensor_v2\n(K", 1, "K", 0, ")", ")", "tR"), "storage is int"},
		{"rebuild-rank", p("ctorch._utils\n_rebuild_tensor_v2\n(", storageID("FloatStorage", 4), "QK", 0, "K", 4, 0x85, ")tR"), "differ in rank"},
		{"rebuild-negative", p("ctorch._utils\n_rebuild_tensor_v2\n(", storageID("FloatStorage", 4), "QK", 0, "J", u32(-4), 0x85, "K", 1, 0x85, "tR"), "size[0] = -4"},
		{"stack-global-types", p("K", 1, "K", 2, 0x93), "STACK_GLOBAL wants two strings"},
	}
	for _, c := range cases {
		t.Run("case="+c.name, func(t *testing.T) {
			v, err := unpickle(c.in)
			if err == nil {
				t.Fatalf("unpickle(% x) = %s, want an error containing %q", c.in, pyRepr(v), c.want)
			}
			if !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "pickle offset ") {
				t.Errorf("unpickle(% x): error %q, want one containing %q", c.in, err, c.want)
			}
		})
	}
}

func TestUnpickleLimits(t *testing.T) {
	// A MARK bomb: more nested marks than allowed.
	bomb := bytes.Repeat([]byte("("), maxPickleMarks+1)
	if _, err := unpickle(bomb); err == nil || !strings.Contains(err.Error(), "nested MARKs") {
		t.Errorf("mark bomb: %v, want a nested-MARKs error", err)
	}
	if testing.Short() {
		t.Skip("value-count bomb allocates ~100 MB")
	}
	// A DUP bomb: one byte per value, stopped by the value cap rather than by memory.
	dup := append([]byte("N"), bytes.Repeat([]byte("2"), maxPickleItems+1)...)
	if _, err := unpickle(dup); err == nil || !strings.Contains(err.Error(), "values and memo entries") {
		t.Errorf("dup bomb: %v, want a value-cap error", err)
	}
}

func TestDecodeLong(t *testing.T) {
	cases := []struct {
		in   []byte
		want int64
	}{
		{nil, 0}, {[]byte{0x7f}, 127}, {[]byte{0x80}, -128}, {[]byte{0x00, 0x80}, -32768}, {[]byte{0x00, 0x80, 0x00}, 32768},
		{[]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}, math.MaxInt64},
		{[]byte{0, 0, 0, 0, 0, 0, 0, 0x80}, math.MinInt64},
		{[]byte{0, 0, 0, 0x80, 0}, 1 << 31},
		{[]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, -1},
	}
	for _, c := range cases {
		if got, err := decodeLong(c.in); got != c.want || err != nil {
			t.Errorf("decodeLong(% x) = %d, %v, want %d", c.in, got, err, c.want)
		}
	}
}

// pickleSeeds returns the data.pkl records of the testdata archives and fixtures, for fuzz seeds.
func pickleSeeds(f *testing.F) [][]byte {
	var paths []string
	paths, _ = filepath.Glob("testdata/*.pt")
	for _, c := range []string{"ac_tiny", "enc_tiny"} {
		if dir := fixtureDirOrEmpty(c); dir != "" {
			paths = append(paths, filepath.Join(dir, "checkpoint.pt"))
		}
	}
	sort.Strings(paths)
	var out [][]byte
	for _, path := range paths {
		zr, err := zip.OpenReader(path)
		if err != nil {
			f.Fatal(err)
		}
		for _, zf := range zr.File {
			if strings.HasSuffix(zf.Name, "/data.pkl") {
				b, err := readRecord(zf, maxPickleBytes)
				if err != nil {
					f.Fatal(err)
				}
				out = append(out, b)
			}
		}
		zr.Close()
	}
	return out
}

func FuzzPickle(f *testing.F) {
	for _, b := range pickleSeeds(f) {
		f.Add(b)
	}
	f.Add(p("ccollections\nOrderedDict\nq", 0, ")R(X", u32(1), "k", "K", 7, "u}(X", u32(9), "_metadata", "h", 0, ")R", "ub."))
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := unpickle(b)
		if err == nil {
			budget := 100000
			walkValue(v, &budget)
		}
	})
}

// walkValue visits an unpickled value like pyRepr, with a node budget: shared references (memo gets) can
// make the tree exponentially larger than the pickle, and lists can contain themselves.
func walkValue(v any, budget *int) {
	if *budget <= 0 {
		return
	}
	*budget--
	switch v := v.(type) {
	case pyTuple:
		for _, x := range v {
			walkValue(x, budget)
		}
	case *pyList:
		for _, x := range v.items {
			walkValue(x, budget)
		}
	case *pyDict:
		for i := range v.keys {
			walkValue(v.keys[i], budget)
			walkValue(v.vals[i], budget)
		}
	}
}
