package data

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sort"

	"google.golang.org/protobuf/encoding/protowire"
)

// FeatureKind is the arm of tf.train.Feature's oneof (droid-rlds §2).
type FeatureKind int

const (
	KindNone  FeatureKind = iota // no arm set
	KindBytes                    // BytesList, field 1
	KindFloat                    // FloatList, field 2
	KindInt64                    // Int64List, field 3
)

func (k FeatureKind) String() string {
	switch k {
	case KindBytes:
		return "bytes_list"
	case KindFloat:
		return "float_list"
	case KindInt64:
		return "int64_list"
	}
	return "none"
}

// Field numbers of example.proto and feature.proto.
const (
	fieldExampleFeatures = 1 // Example.features
	fieldFeaturesMap     = 1 // Features.feature (map entries)
	fieldMapKey          = 1 // map entry key
	fieldMapValue        = 2 // map entry value
	fieldListValue       = 1 // {Bytes,Float,Int64}List.value
)

// ErrFeatureKind is returned when a feature is read as a kind it does not hold.
var ErrFeatureKind = errors.New("wrong feature kind")

// Feature is one lazily decoded tf.train.Feature: Kind and the still encoded list message, a view
// into the record it came from. Nothing is decoded until a value accessor is called.
type Feature struct {
	Kind  FeatureKind
	parts [][]byte // the encoded BytesList/FloatList/Int64List message, possibly split (proto merge)
}

// Example is a parsed tf.train.Example whose features keep byte views into the record buffer.
type Example struct {
	features map[string]Feature
}

// ParseExample parses the map structure of a serialized tf.train.Example (example.proto). It checks
// the wire structure down to each Feature's oneof but leaves the lists encoded. Map entries may come
// in any order, a later duplicate key wins, a missing key or value takes its default, a Features
// message split over several occurrences is merged, and unknown fields are skipped (proto3 rules).
func ParseExample(b []byte) (*Example, error) {
	ex := &Example{features: make(map[string]Feature)}
	err := walkFields(b, func(num protowire.Number, typ protowire.Type, v []byte) error {
		if num != fieldExampleFeatures {
			return nil
		}
		if typ != protowire.BytesType {
			return fmt.Errorf("example.features: wire type %d, want %d", typ, protowire.BytesType)
		}
		return ex.parseFeatures(v)
	})
	if err != nil {
		return nil, fmt.Errorf("data: parse example: %w", err)
	}
	return ex, nil
}

func (ex *Example) parseFeatures(b []byte) error {
	return walkFields(b, func(num protowire.Number, typ protowire.Type, v []byte) error {
		if num != fieldFeaturesMap {
			return nil
		}
		if typ != protowire.BytesType {
			return fmt.Errorf("features.feature: wire type %d, want %d", typ, protowire.BytesType)
		}
		var key string
		var f Feature
		err := walkFields(v, func(num protowire.Number, typ protowire.Type, v []byte) error {
			switch num {
			case fieldMapKey:
				if typ != protowire.BytesType {
					return fmt.Errorf("feature map key: wire type %d, want %d", typ, protowire.BytesType)
				}
				key = string(v)
			case fieldMapValue:
				if typ != protowire.BytesType {
					return fmt.Errorf("feature map value: wire type %d, want %d", typ, protowire.BytesType)
				}
				// A repeated value field merges; for a oneof that means the last arm set wins.
				return parseFeature(v, &f)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("feature %q: %w", key, err)
		}
		ex.features[key] = f
		return nil
	})
}

func parseFeature(b []byte, f *Feature) error {
	return walkFields(b, func(num protowire.Number, typ protowire.Type, v []byte) error {
		kind := FeatureKind(num)
		if kind < KindBytes || kind > KindInt64 {
			return nil
		}
		if typ != protowire.BytesType {
			return fmt.Errorf("%v: wire type %d, want %d", kind, typ, protowire.BytesType)
		}
		if f.Kind == kind {
			// The same message field twice merges: its repeated values concatenate.
			f.parts = append(f.parts, v)
			return nil
		}
		f.Kind, f.parts = kind, [][]byte{v}
		return nil
	})
}

// walkFields calls fn for each top-level field of the message b, with the payload of LEN fields and
// the raw encoded value of the others.
func walkFields(b []byte, fn func(num protowire.Number, typ protowire.Type, v []byte) error) error {
	for off := 0; len(b) > 0; {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return fmt.Errorf("offset %d: tag: %w", off, protowire.ParseError(n))
		}
		var v []byte
		var m int
		if typ == protowire.BytesType {
			v, m = protowire.ConsumeBytes(b[n:])
		} else {
			m = protowire.ConsumeFieldValue(num, typ, b[n:])
			if m >= 0 {
				v = b[n : n+m]
			}
		}
		if m < 0 {
			return fmt.Errorf("offset %d: field %d: %w", off, num, protowire.ParseError(m))
		}
		if err := fn(num, typ, v); err != nil {
			return err
		}
		b = b[n+m:]
		off += n + m
	}
	return nil
}

// walkList walks the fields of the list message, over all its merged parts.
func (f Feature) walkList(fn func(num protowire.Number, typ protowire.Type, v []byte) error) error {
	for _, p := range f.parts {
		if err := walkFields(p, fn); err != nil {
			return err
		}
	}
	return nil
}

// Feature returns the feature stored under key.
func (ex *Example) Feature(key string) (Feature, bool) {
	f, ok := ex.features[key]
	return f, ok
}

// Keys returns the feature keys in sorted order.
func (ex *Example) Keys() []string {
	keys := make([]string, 0, len(ex.features))
	for k := range ex.features {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Bytes returns a BytesList's elements as views into the record (no copies).
func (f Feature) Bytes() ([][]byte, error) {
	if f.Kind != KindBytes {
		return nil, fmt.Errorf("%w: %v, want %v", ErrFeatureKind, f.Kind, KindBytes)
	}
	var out [][]byte
	err := f.walkList(func(num protowire.Number, typ protowire.Type, v []byte) error {
		if num != fieldListValue {
			return nil
		}
		if typ != protowire.BytesType {
			return fmt.Errorf("bytes_list.value: wire type %d, want %d", typ, protowire.BytesType)
		}
		out = append(out, v)
		return nil
	})
	return out, err
}

// BytesAt returns the i-th element of a BytesList without collecting the others.
func (f Feature) BytesAt(i int) ([]byte, error) {
	if f.Kind != KindBytes {
		return nil, fmt.Errorf("%w: %v, want %v", ErrFeatureKind, f.Kind, KindBytes)
	}
	var found []byte
	n := 0
	errFound := errors.New("found")
	err := f.walkList(func(num protowire.Number, typ protowire.Type, v []byte) error {
		if num != fieldListValue {
			return nil
		}
		if typ != protowire.BytesType {
			return fmt.Errorf("bytes_list.value: wire type %d, want %d", typ, protowire.BytesType)
		}
		if n == i {
			found = v
			return errFound
		}
		n++
		return nil
	})
	if err == errFound {
		return found, nil
	}
	if err != nil {
		return nil, err
	}
	return nil, fmt.Errorf("bytes_list index %d out of range [0, %d)", i, n)
}

// Floats decodes a FloatList, accepting packed (one LEN blob of fixed32) and unpacked (one fixed32
// field per element) encodings, also mixed.
func (f Feature) Floats() ([]float32, error) {
	if f.Kind != KindFloat {
		return nil, fmt.Errorf("%w: %v, want %v", ErrFeatureKind, f.Kind, KindFloat)
	}
	var out []float32
	err := f.walkList(func(num protowire.Number, typ protowire.Type, v []byte) error {
		if num != fieldListValue {
			return nil
		}
		switch typ {
		case protowire.BytesType:
			if len(v)%4 != 0 {
				return fmt.Errorf("float_list packed length %d, want a multiple of 4", len(v))
			}
			if out == nil {
				out = make([]float32, 0, len(v)/4)
			}
			for i := 0; i < len(v); i += 4 {
				out = append(out, math.Float32frombits(binary.LittleEndian.Uint32(v[i:])))
			}
		case protowire.Fixed32Type:
			out = append(out, math.Float32frombits(binary.LittleEndian.Uint32(v)))
		default:
			return fmt.Errorf("float_list.value: wire type %d, want %d or %d", typ, protowire.BytesType, protowire.Fixed32Type)
		}
		return nil
	})
	return out, err
}

// Int64s decodes an Int64List (plain varints, not zigzag), packed or unpacked.
func (f Feature) Int64s() ([]int64, error) {
	if f.Kind != KindInt64 {
		return nil, fmt.Errorf("%w: %v, want %v", ErrFeatureKind, f.Kind, KindInt64)
	}
	var out []int64
	err := f.walkList(func(num protowire.Number, typ protowire.Type, v []byte) error {
		if num != fieldListValue {
			return nil
		}
		switch typ {
		case protowire.BytesType:
			for len(v) > 0 {
				x, n := protowire.ConsumeVarint(v)
				if n < 0 {
					return fmt.Errorf("int64_list packed: %w", protowire.ParseError(n))
				}
				out = append(out, int64(x))
				v = v[n:]
			}
		case protowire.VarintType:
			x, _ := protowire.ConsumeVarint(v)
			out = append(out, int64(x))
		default:
			return fmt.Errorf("int64_list.value: wire type %d, want %d or %d", typ, protowire.BytesType, protowire.VarintType)
		}
		return nil
	})
	return out, err
}

// Len counts the elements of the list without decoding them into a slice.
func (f Feature) Len() (int, error) {
	n := 0
	err := f.walkList(func(num protowire.Number, typ protowire.Type, v []byte) error {
		if num != fieldListValue {
			return nil
		}
		switch {
		case f.Kind == KindFloat && typ == protowire.BytesType:
			if len(v)%4 != 0 {
				return fmt.Errorf("float_list packed length %d, want a multiple of 4", len(v))
			}
			n += len(v) / 4
		case f.Kind == KindInt64 && typ == protowire.BytesType:
			for len(v) > 0 {
				_, m := protowire.ConsumeVarint(v)
				if m < 0 {
					return fmt.Errorf("int64_list packed: %w", protowire.ParseError(m))
				}
				n++
				v = v[m:]
			}
		default:
			n++
		}
		return nil
	})
	return n, err
}

// FeatureValue is one feature to encode: exactly one of the lists is used, chosen by Kind.
type FeatureValue struct {
	Kind   FeatureKind
	Bytes  [][]byte
	Floats []float32
	Int64s []int64
}

// BytesFeature, FloatFeature and Int64Feature build FeatureValues.
func BytesFeature(v ...[]byte) FeatureValue  { return FeatureValue{Kind: KindBytes, Bytes: v} }
func FloatFeature(v ...float32) FeatureValue { return FeatureValue{Kind: KindFloat, Floats: v} }
func Int64Feature(v ...int64) FeatureValue   { return FeatureValue{Kind: KindInt64, Int64s: v} }
func StringFeature(v ...string) FeatureValue {
	b := make([][]byte, len(v))
	for i, s := range v {
		b[i] = []byte(s)
	}
	return BytesFeature(b...)
}

// MarshalExample encodes a tf.train.Example the way TensorFlow does: map entries in sorted key order,
// FloatList and Int64List packed.
func MarshalExample(features map[string]FeatureValue) []byte {
	keys := make([]string, 0, len(features))
	for k := range features {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var fs []byte
	for _, k := range keys {
		var entry []byte
		entry = protowire.AppendTag(entry, fieldMapKey, protowire.BytesType)
		entry = protowire.AppendString(entry, k)
		entry = protowire.AppendTag(entry, fieldMapValue, protowire.BytesType)
		entry = protowire.AppendBytes(entry, marshalFeature(features[k]))
		fs = protowire.AppendTag(fs, fieldFeaturesMap, protowire.BytesType)
		fs = protowire.AppendBytes(fs, entry)
	}
	var ex []byte
	ex = protowire.AppendTag(ex, fieldExampleFeatures, protowire.BytesType)
	return protowire.AppendBytes(ex, fs)
}

func marshalFeature(v FeatureValue) []byte {
	var list []byte
	switch v.Kind {
	case KindBytes:
		for _, b := range v.Bytes {
			list = protowire.AppendTag(list, fieldListValue, protowire.BytesType)
			list = protowire.AppendBytes(list, b)
		}
	case KindFloat:
		if len(v.Floats) > 0 {
			packed := make([]byte, 0, 4*len(v.Floats))
			for _, x := range v.Floats {
				packed = binary.LittleEndian.AppendUint32(packed, math.Float32bits(x))
			}
			list = protowire.AppendTag(list, fieldListValue, protowire.BytesType)
			list = protowire.AppendBytes(list, packed)
		}
	case KindInt64:
		if len(v.Int64s) > 0 {
			var packed []byte
			for _, x := range v.Int64s {
				packed = protowire.AppendVarint(packed, uint64(x))
			}
			list = protowire.AppendTag(list, fieldListValue, protowire.BytesType)
			list = protowire.AppendBytes(list, packed)
		}
	default:
		panic(fmt.Sprintf("data: marshal feature: kind %v", v.Kind))
	}
	var f []byte
	f = protowire.AppendTag(f, protowire.Number(v.Kind), protowire.BytesType)
	return protowire.AppendBytes(f, list)
}
