package data

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// Run with a bounded minimization, e.g.
//
//	go test ./data -run '^$' -fuzz FuzzExample -fuzztime 60s -fuzzminimizetime 200x
//
// The test binary links the GCS client, so each execution scans a large coverage map and the default
// time-based minimization of a KB-sized input can stall the engine for its whole minute.

// fuzzMaxRecord keeps fuzz inputs from reaching the 1 GiB default.
const fuzzMaxRecord = 1 << 20

// seedFiles returns the shards of the hand-built fixture and of the sample.
func seedFiles(f *testing.F) [][]byte {
	var seeds [][]byte
	for _, dir := range []string{handbuiltDir, sampleDir} {
		entries, err := os.ReadDir(dir)
		if err != nil {
			f.Fatal(err)
		}
		for _, e := range entries {
			if e.IsDir() || filepath.Ext(e.Name()) == ".json" {
				continue
			}
			b, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err != nil {
				f.Fatal(err)
			}
			seeds = append(seeds, b)
		}
	}
	return seeds
}

// FuzzTFRecord: any byte string reads to io.EOF without panicking; the reader never returns more
// than it was given, never a record over the limit, and never consumes bytes it was not given.
func FuzzTFRecord(f *testing.F) {
	// Prefixes keep the seeds small (whole shards make mutation slow): each holds a first header
	// claiming more than fuzzMaxRecord (sample) or a record cut short (hand-built).
	for _, s := range seedFiles(f) {
		f.Add(s[:min(len(s), 4096)])
	}
	f.Add(AppendRecord(AppendRecord(nil, []byte("a")), nil))
	f.Fuzz(func(t *testing.T, data []byte) {
		rr := NewRecordReader(bytes.NewReader(data), "fuzz", fuzzMaxRecord)
		total := 0
		for i := 0; ; i++ {
			if i > len(data)+1 {
				t.Fatalf("more than %d results from %d bytes", i, len(data))
			}
			rec, err := rr.Next()
			if err == io.EOF {
				break
			}
			var ce *CorruptRecordError
			if err != nil && !errors.As(err, &ce) {
				t.Fatalf("unexpected error type %T: %v", err, err)
			}
			if len(rec) > fuzzMaxRecord {
				t.Fatalf("record of %d bytes over the limit", len(rec))
			}
			if err == nil {
				total += len(rec) + 16
			}
		}
		if s := rr.Stats(); total > len(data) || s.Bytes > int64(len(data)) {
			t.Fatalf("returned %d framed bytes, consumed %d, of %d", total, s.Bytes, len(data))
		}
	})
}

// FuzzExample: any byte string either fails ParseExample or yields features whose accessors and the
// episode/clip code return errors, never panics, with allocation bounded by the input.
func FuzzExample(f *testing.F) {
	// Whole testdata episodes are 50 KB to 1.5 MB; the engine spends its time minimizing inputs that
	// large, so the seeds are shortened: the first episode of each sample shard re-encoded with 2
	// steps and clipped JPEGs, and hand-built episodes (unpacked, shuffled) of 2 and 3 steps.
	for _, shard := range seedFiles(f)[2:] {
		rr := NewRecordReader(bytes.NewReader(shard), "seed", 0)
		rec, err := rr.Next()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(shortenEpisode(f, rec, 2))
	}
	f.Add(handbuiltExample(f, 0, handbuiltEpisode{steps: 2, success: true}))
	f.Add(handbuiltExample(f, 1, handbuiltEpisode{steps: 3, noIsFirst: true}))
	f.Add(MarshalExample(map[string]FeatureValue{
		KeyIsFirst: Int64Feature(1, 0, 0), KeyObsCartesianPos: FloatFeature(make([]float32, 18)...),
		KeyObsGripperPos: FloatFeature(0, 0.5, 1), KeyObsExteriorImage1: BytesFeature(nil, nil, nil),
	}))
	f.Fuzz(checkExample)
}

// checkExample is FuzzExample's property check.
func checkExample(t *testing.T, data []byte) {
	{
		ex, err := ParseExample(data)
		if err != nil {
			return
		}
		for _, k := range ex.Keys() {
			feat, _ := ex.Feature(k)
			n, lerr := feat.Len()
			var m int
			switch feat.Kind {
			case KindBytes:
				v, err := feat.Bytes()
				m = len(v)
				lerr = errors.Join(lerr, err)
				if n > 0 && lerr == nil {
					if _, err := feat.BytesAt(n - 1); err != nil {
						t.Fatalf("%s: BytesAt(%d) of %d: %v", k, n-1, n, err)
					}
				}
			case KindFloat:
				v, err := feat.Floats()
				m = len(v)
				lerr = errors.Join(lerr, err)
			case KindInt64:
				v, err := feat.Int64s()
				m = len(v)
				lerr = errors.Join(lerr, err)
			}
			if lerr == nil && feat.Kind != KindNone && m != n {
				t.Fatalf("%s: Len %d, decoded %d", k, n, m)
			}
			if n > len(data) {
				t.Fatalf("%s: %d elements from %d bytes", k, n, len(data))
			}
		}
		ep, err := NewEpisode(ex)
		if err != nil {
			return
		}
		if ep.Steps > len(data) {
			t.Fatalf("%d steps from %d bytes", ep.Steps, len(data))
		}
		cfg := ClipConfig{Frames: 2, FPS: 15, SourceFPS: 15, Camera: CameraRandomExterior, Start: -1}
		filters := DefaultFilterConfig()
		filters.Idle.Enabled, filters.Motion.Enabled = true, true
		MakeClip(ep, cfg, filters, rand.New(rand.NewPCG(1, 2)))
	}
}

// shortenEpisode re-encodes a DROID episode keeping its first steps and the first 32 bytes of each
// bytes value.
func shortenEpisode(f *testing.F, rec []byte, steps int) []byte {
	ex, err := ParseExample(rec)
	if err != nil {
		f.Fatal(err)
	}
	ep, err := NewEpisode(ex)
	if err != nil {
		f.Fatal(err)
	}
	out := map[string]FeatureValue{}
	for _, k := range ex.Keys() {
		feat, _ := ex.Feature(k)
		n, err := feat.Len()
		if err != nil {
			f.Fatal(err)
		}
		keep := n
		if n >= ep.Steps {
			keep = n / ep.Steps * steps
		}
		switch feat.Kind {
		case KindBytes:
			v, _ := feat.Bytes()
			v = v[:keep]
			for i := range v {
				v[i] = v[i][:min(len(v[i]), 32)] // JPEG heads: FuzzExample never decodes them
			}
			out[k] = BytesFeature(v...)
		case KindFloat:
			v, _ := feat.Floats()
			out[k] = FloatFeature(v[:keep]...)
		case KindInt64:
			v, _ := feat.Int64s()
			out[k] = Int64Feature(v[:keep]...)
		}
	}
	return MarshalExample(out)
}
