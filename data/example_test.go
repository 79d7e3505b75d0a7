package data

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
)

// altExample builds tf.train.Example bytes by hand with protowire, the way another writer might:
// unpacked repeated fields, map entries in a shuffled order with value before key, unknown fields at
// every level, and the Features message split over two occurrences (which proto merges). It shares no
// code with MarshalExample.
type altExample struct {
	rng     *rand.Rand
	entries [][]byte
}

func newAltExample(seed uint64) *altExample {
	return &altExample{rng: rand.New(rand.NewPCG(seed, 99))}
}

func unknownField(b []byte) []byte {
	b = protowire.AppendTag(b, 15, protowire.VarintType)
	b = protowire.AppendVarint(b, 12345)
	b = protowire.AppendTag(b, 16, protowire.Fixed64Type)
	return protowire.AppendFixed64(b, 7)
}

func (a *altExample) add(key string, kind FeatureKind, list []byte) {
	var feat []byte
	feat = unknownField(feat)
	feat = protowire.AppendTag(feat, protowire.Number(kind), protowire.BytesType)
	feat = protowire.AppendBytes(feat, list)
	var entry []byte
	entry = protowire.AppendTag(entry, fieldMapValue, protowire.BytesType) // value first
	entry = protowire.AppendBytes(entry, feat)
	entry = unknownField(entry)
	entry = protowire.AppendTag(entry, fieldMapKey, protowire.BytesType)
	entry = protowire.AppendString(entry, key)
	a.entries = append(a.entries, entry)
}

// floats writes one fixed32 field per element (unpacked).
func (a *altExample) floats(key string, v ...float32) {
	var list []byte
	for _, x := range v {
		list = protowire.AppendTag(list, fieldListValue, protowire.Fixed32Type)
		list = protowire.AppendFixed32(list, math.Float32bits(x))
	}
	list = unknownField(list)
	a.add(key, KindFloat, list)
}

// int64s writes one varint field per element (unpacked).
func (a *altExample) int64s(key string, v ...int64) {
	var list []byte
	for _, x := range v {
		list = protowire.AppendTag(list, fieldListValue, protowire.VarintType)
		list = protowire.AppendVarint(list, uint64(x))
	}
	a.add(key, KindInt64, list)
}

func (a *altExample) bytes(key string, v ...[]byte) {
	var list []byte
	for _, x := range v {
		list = protowire.AppendTag(list, fieldListValue, protowire.BytesType)
		list = protowire.AppendBytes(list, x)
	}
	a.add(key, KindBytes, list)
}

func (a *altExample) strings(key string, v ...string) {
	b := make([][]byte, len(v))
	for i, s := range v {
		b[i] = []byte(s)
	}
	a.bytes(key, b...)
}

func (a *altExample) marshal() []byte {
	a.rng.Shuffle(len(a.entries), func(i, j int) { a.entries[i], a.entries[j] = a.entries[j], a.entries[i] })
	half := len(a.entries) / 2
	var ex []byte
	ex = unknownField(ex)
	for _, part := range [][][]byte{a.entries[:half], a.entries[half:]} {
		var fs []byte
		for _, e := range part {
			fs = protowire.AppendTag(fs, fieldFeaturesMap, protowire.BytesType)
			fs = protowire.AppendBytes(fs, e)
			fs = unknownField(fs)
		}
		ex = protowire.AppendTag(ex, fieldExampleFeatures, protowire.BytesType)
		ex = protowire.AppendBytes(ex, fs)
	}
	return ex
}

func mustFeature(t *testing.T, ex *Example, key string) Feature {
	t.Helper()
	f, ok := ex.Feature(key)
	if !ok {
		t.Fatalf("missing feature %q (have %v)", key, ex.Keys())
	}
	return f
}

func TestExampleRoundTrip(t *testing.T) {
	want := map[string]FeatureValue{
		"b":     BytesFeature([]byte("x"), nil, []byte("hello")),
		"f":     FloatFeature(1.5, -0, float32(math.Inf(1)), 3.25e-8),
		"i":     Int64Feature(0, 1, -1, math.MaxInt64, math.MinInt64),
		"empty": FloatFeature(),
	}
	ex, err := ParseExample(MarshalExample(want))
	if err != nil {
		t.Fatal(err)
	}
	if got := ex.Keys(); !reflect.DeepEqual(got, []string{"b", "empty", "f", "i"}) {
		t.Fatalf("keys %v", got)
	}
	checkFeatures(t, ex, want)
}

func checkFeatures(t *testing.T, ex *Example, want map[string]FeatureValue) {
	t.Helper()
	for k, v := range want {
		f := mustFeature(t, ex, k)
		if f.Kind != v.Kind {
			t.Fatalf("%s: kind %v, want %v", k, f.Kind, v.Kind)
		}
		n, err := f.Len()
		if err != nil {
			t.Fatalf("%s: Len: %v", k, err)
		}
		switch v.Kind {
		case KindBytes:
			got, err := f.Bytes()
			if err != nil || len(got) != len(v.Bytes) || n != len(v.Bytes) {
				t.Fatalf("%s: Bytes %q (len %d), %v; want %q", k, got, n, err, v.Bytes)
			}
			for i := range got {
				if string(got[i]) != string(v.Bytes[i]) {
					t.Fatalf("%s[%d] = %q, want %q", k, i, got[i], v.Bytes[i])
				}
				at, err := f.BytesAt(i)
				if err != nil || string(at) != string(v.Bytes[i]) {
					t.Fatalf("%s: BytesAt(%d) = %q, %v", k, i, at, err)
				}
			}
			if _, err := f.BytesAt(len(got)); err == nil {
				t.Fatalf("%s: BytesAt(%d) past the end gave no error", k, len(got))
			}
		case KindFloat:
			got, err := f.Floats()
			if err != nil || len(got) != len(v.Floats) || n != len(v.Floats) {
				t.Fatalf("%s: Floats %v (len %d), %v; want %v", k, got, n, err, v.Floats)
			}
			for i := range got {
				if math.Float32bits(got[i]) != math.Float32bits(v.Floats[i]) {
					t.Fatalf("%s[%d] = %v, want %v", k, i, got[i], v.Floats[i])
				}
			}
		case KindInt64:
			got, err := f.Int64s()
			if err != nil || !reflect.DeepEqual(got, v.Int64s) || n != len(v.Int64s) {
				t.Fatalf("%s: Int64s %v (len %d), %v; want %v", k, got, n, err, v.Int64s)
			}
		}
	}
}

// TestExampleForeignEncoding parses what altExample writes: unpacked lists, shuffled and split maps,
// value-before-key entries and unknown fields everywhere.
func TestExampleForeignEncoding(t *testing.T) {
	for seed := range uint64(5) {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			a := newAltExample(seed)
			a.floats("steps/observation/cartesian_position", 0.5, -0.25, 0.125, 3.1, -0.01, 1.5)
			a.int64s("steps/is_first", 1, 0, 0)
			a.int64s("neg", -5, math.MinInt64)
			a.strings("episode_metadata/file_path", "/x/success/y/trajectory.h5")
			a.bytes("jpegs", []byte{0xff, 0xd8}, []byte{}, []byte{1, 2, 3})
			a.floats("empty")
			ex, err := ParseExample(a.marshal())
			if err != nil {
				t.Fatal(err)
			}
			checkFeatures(t, ex, map[string]FeatureValue{
				"steps/observation/cartesian_position": FloatFeature(0.5, -0.25, 0.125, 3.1, -0.01, 1.5),
				"steps/is_first":                       Int64Feature(1, 0, 0),
				"neg":                                  Int64Feature(-5, math.MinInt64),
				"episode_metadata/file_path":           StringFeature("/x/success/y/trajectory.h5"),
				"jpegs":                                BytesFeature([]byte{0xff, 0xd8}, []byte{}, []byte{1, 2, 3}),
				"empty":                                FloatFeature(),
			})
		})
	}
}

// TestExampleProtoRules covers the proto3 corner cases one by one.
func TestExampleProtoRules(t *testing.T) {
	entry := func(fields ...[]byte) []byte {
		var e []byte
		for _, f := range fields {
			e = append(e, f...)
		}
		var fs []byte
		fs = protowire.AppendTag(fs, fieldFeaturesMap, protowire.BytesType)
		fs = protowire.AppendBytes(fs, e)
		return fs
	}
	key := func(k string) []byte {
		b := protowire.AppendTag(nil, fieldMapKey, protowire.BytesType)
		return protowire.AppendString(b, k)
	}
	value := func(arms ...[]byte) []byte {
		var f []byte
		for _, a := range arms {
			f = append(f, a...)
		}
		b := protowire.AppendTag(nil, fieldMapValue, protowire.BytesType)
		return protowire.AppendBytes(b, f)
	}
	arm := func(kind FeatureKind, list []byte) []byte {
		b := protowire.AppendTag(nil, protowire.Number(kind), protowire.BytesType)
		return protowire.AppendBytes(b, list)
	}
	packedF := func(v ...float32) []byte {
		var p []byte
		for _, x := range v {
			p = binary.LittleEndian.AppendUint32(p, math.Float32bits(x))
		}
		b := protowire.AppendTag(nil, fieldListValue, protowire.BytesType)
		return protowire.AppendBytes(b, p)
	}
	example := func(features ...[]byte) []byte {
		var fs []byte
		for _, f := range features {
			fs = append(fs, f...)
		}
		b := protowire.AppendTag(nil, fieldExampleFeatures, protowire.BytesType)
		return protowire.AppendBytes(b, fs)
	}
	cases := []struct {
		name string
		ex   []byte
		want map[string]FeatureValue
		none []string // keys present with no oneof arm
	}{
		{"rule=later-duplicate-wins",
			example(entry(key("a"), value(arm(KindFloat, packedF(1)))), entry(key("a"), value(arm(KindFloat, packedF(2))))),
			map[string]FeatureValue{"a": FloatFeature(2)}, nil},
		{"rule=missing-key-is-empty-string",
			example(entry(value(arm(KindFloat, packedF(7))))),
			map[string]FeatureValue{"": FloatFeature(7)}, nil},
		{"rule=missing-value-has-no-arm",
			example(entry(key("v"))), nil, []string{"v"}},
		{"rule=empty-list-selects-arm",
			example(entry(key("e"), value(arm(KindInt64, nil)))),
			map[string]FeatureValue{"e": Int64Feature()}, nil},
		{"rule=last-oneof-arm-wins",
			example(entry(key("o"), value(arm(KindInt64, nil), arm(KindFloat, packedF(3))))),
			map[string]FeatureValue{"o": FloatFeature(3)}, nil},
		{"rule=same-arm-twice-merges",
			example(entry(key("m"), value(arm(KindFloat, packedF(1, 2)), arm(KindFloat, packedF(3))))),
			map[string]FeatureValue{"m": FloatFeature(1, 2, 3)}, nil},
		{"rule=value-field-twice-merges",
			example(entry(key("m"), value(arm(KindFloat, packedF(1))), value(arm(KindFloat, packedF(4))))),
			map[string]FeatureValue{"m": FloatFeature(1, 4)}, nil},
		{"rule=empty-example", nil, map[string]FeatureValue{}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ex, err := ParseExample(tc.ex)
			if err != nil {
				t.Fatal(err)
			}
			if len(ex.Keys()) != len(tc.want)+len(tc.none) {
				t.Fatalf("keys %v, want %d", ex.Keys(), len(tc.want)+len(tc.none))
			}
			checkFeatures(t, ex, tc.want)
			for _, k := range tc.none {
				if f := mustFeature(t, ex, k); f.Kind != KindNone {
					t.Fatalf("%s: kind %v, want none", k, f.Kind)
				}
			}
		})
	}
}

func TestExampleErrors(t *testing.T) {
	good := MarshalExample(map[string]FeatureValue{"f": FloatFeature(1, 2), "s": StringFeature("x")})
	cases := []struct {
		name string
		ex   []byte
	}{
		{"err=truncated", good[:len(good)-3]},
		{"err=bad-tag", []byte{0x80}},
		{"err=features-wire-type", protowire.AppendVarint(protowire.AppendTag(nil, 1, protowire.VarintType), 3)},
		{"err=length-past-end", []byte{0x0a, 0x7f, 0x00}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ParseExample(tc.ex); err == nil {
				t.Fatalf("ParseExample(% x) gave no error", tc.ex)
			}
		})
	}
	t.Run("err=wrong-kind", func(t *testing.T) {
		ex, err := ParseExample(good)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := mustFeature(t, ex, "f").Int64s(); !errors.Is(err, ErrFeatureKind) {
			t.Fatalf("Int64s on a float list: %v, want ErrFeatureKind", err)
		}
		if _, err := mustFeature(t, ex, "s").Floats(); !errors.Is(err, ErrFeatureKind) {
			t.Fatalf("Floats on a bytes list: %v, want ErrFeatureKind", err)
		}
	})
	t.Run("err=packed-float-length", func(t *testing.T) {
		list := protowire.AppendBytes(protowire.AppendTag(nil, fieldListValue, protowire.BytesType), []byte{1, 2, 3})
		f := Feature{Kind: KindFloat, parts: [][]byte{list}}
		if _, err := f.Floats(); err == nil {
			t.Fatal("3-byte packed float list gave no error")
		}
		if _, err := f.Len(); err == nil {
			t.Fatal("Len of a 3-byte packed float list gave no error")
		}
	})
}

func BenchmarkParseExample(b *testing.B) {
	jpegs := make([][]byte, 300)
	for i := range jpegs {
		jpegs[i] = make([]byte, 20000)
	}
	floats := make([]float32, 300*7)
	raw := MarshalExample(map[string]FeatureValue{
		KeyObsExteriorImage1: BytesFeature(jpegs...), KeyObsExteriorImage2: BytesFeature(jpegs...),
		KeyObsWristImage: BytesFeature(jpegs...), KeyObsCartesianPos: FloatFeature(floats[:1800]...),
		KeyActJointVel: FloatFeature(floats...),
	})
	// Parsing is lazy, so its cost follows the number of features, not the 18 MB of JPEGs.
	for b.Loop() {
		ex, err := ParseExample(raw)
		if err != nil {
			b.Fatal(err)
		}
		f, _ := ex.Feature(KeyObsExteriorImage1)
		if _, err := f.BytesAt(150); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "episodes/s")
}
