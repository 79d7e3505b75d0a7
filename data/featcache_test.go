package data

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func syntheticRecord(cfg FeatureCacheConfig, i int) *FeatureRecord {
	rng := rand.New(rand.NewPCG(uint64(i), 11))
	T, HW, D := cfg.Frames, cfg.Tokens, cfg.Dim
	S, A := cfg.Dims()
	rec := &FeatureRecord{SourceShard: i % 3, SourceRecord: i, Start: 2 * i,
		States: make([]float32, T*S), Actions: make([]float32, (T-1)*A), Features: make([]uint16, T*HW*D)}
	for k := range rec.States {
		rec.States[k] = float32(rng.NormFloat64())
	}
	for k := range rec.Actions {
		rec.Actions[k] = float32(rng.NormFloat64() * 0.01)
	}
	f := make([]float32, len(rec.Features))
	for k := range f {
		f[k] = float32(rng.NormFloat64())
	}
	Float32ToF16(rec.Features, f)
	return rec
}

func writeCache(t *testing.T, dir string, cfg FeatureCacheConfig, n int) []*FeatureRecord {
	t.Helper()
	w, err := CreateFeatureCache(dir, cfg, map[string]any{"encoder": "synthetic"})
	if err != nil {
		t.Fatal(err)
	}
	var recs []*FeatureRecord
	for i := range n {
		r := syntheticRecord(cfg, i)
		recs = append(recs, r)
		if err := w.Append(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return recs
}

func TestFeatureCacheRoundTrip(t *testing.T) {
	hash, err := ConfigHash(map[string]any{"ckpt": "vitg", "crop": 256, "frames": 8})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ T, HW, D, S, A, perShard, n int }{
		{8, 256, 16, 0, 0, 3, 7}, // 7-D (the zero value); 3 shards, the last one partial
		{2, 1, 1, 7, 7, 1, 2},
		{4, 16, 1408, 6, 4, 10, 3}, // the LeRobot demo's widths
		{3, 2, 5, 1, 13, 2, 3},
	} {
		t.Run(fmt.Sprintf("T=%d,HW=%d,D=%d,S=%d,A=%d,per_shard=%d,n=%d", tc.T, tc.HW, tc.D, tc.S, tc.A, tc.perShard, tc.n), func(t *testing.T) {
			dir := t.TempDir()
			cfg := FeatureCacheConfig{Frames: tc.T, Tokens: tc.HW, Dim: tc.D, StateDim: tc.S, ActionDim: tc.A, ConfigHash: hash, RecordsPerShard: tc.perShard}
			want := writeCache(t, dir, cfg, tc.n)
			c, err := OpenFeatureCache(dir, FeatureCacheConfig{Frames: tc.T, Tokens: tc.HW, Dim: tc.D, StateDim: tc.S, ActionDim: tc.A, ConfigHash: hash})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if c.Len() != tc.n {
				t.Fatalf("Len() = %d, want %d", c.Len(), tc.n)
			}
			wantS, wantA := tc.S, tc.A
			if tc.S == 0 {
				wantS, wantA = 7, 7
			}
			if s, a := c.Config().Dims(); s != wantS || a != wantA {
				t.Fatalf("Dims() = %d, %d, want %d, %d", s, a, wantS, wantA)
			}
			var got FeatureRecord
			for _, i := range []int{tc.n - 1, 0, tc.n / 2} { // random access, out of order
				if err := c.Read(i, &got); err != nil {
					t.Fatal(err)
				}
				w := want[i]
				if got.SourceShard != w.SourceShard || got.SourceRecord != w.SourceRecord || got.Start != w.Start {
					t.Fatalf("record %d header %d/%d/%d, want %d/%d/%d", i, got.SourceShard, got.SourceRecord, got.Start, w.SourceShard, w.SourceRecord, w.Start)
				}
				for k := range w.States {
					if got.States[k] != w.States[k] {
						t.Fatalf("record %d states[%d] = %v, want %v", i, k, got.States[k], w.States[k])
					}
				}
				for k := range w.Actions {
					if got.Actions[k] != w.Actions[k] {
						t.Fatalf("record %d actions[%d] = %v, want %v", i, k, got.Actions[k], w.Actions[k])
					}
				}
				for k := range w.Features {
					if got.Features[k] != w.Features[k] {
						t.Fatalf("record %d features[%d] = %04x, want %04x", i, k, got.Features[k], w.Features[k])
					}
				}
			}
			if err := c.Read(tc.n, &got); err == nil {
				t.Fatal("reading past the end gave no error")
			}
		})
	}
}

func TestFeatureCacheErrors(t *testing.T) {
	cfg := FeatureCacheConfig{Frames: 4, Tokens: 8, Dim: 8, ConfigHash: "abc", RecordsPerShard: 2}
	fresh := func(t *testing.T) string {
		dir := t.TempDir()
		writeCache(t, dir, cfg, 3)
		return dir
	}
	shard0 := "features-00000.bin"
	t.Run("err=config-hash", func(t *testing.T) {
		want := cfg
		want.ConfigHash = "def"
		_, err := OpenFeatureCache(fresh(t), want)
		if !errors.Is(err, ErrFeatureCacheMismatch) || !strings.Contains(err.Error(), "config hash abc, want def") {
			t.Fatalf("error %v", err)
		}
	})
	t.Run("err=shape", func(t *testing.T) {
		want := cfg
		want.Dim = 16
		_, err := OpenFeatureCache(fresh(t), want)
		if !errors.Is(err, ErrFeatureCacheMismatch) || !strings.Contains(err.Error(), "D=8, want T=4 HW=8 D=16") {
			t.Fatalf("error %v", err)
		}
	})
	t.Run("err=widths", func(t *testing.T) {
		want := cfg
		want.StateDim, want.ActionDim = 6, 4
		_, err := OpenFeatureCache(fresh(t), want)
		if !errors.Is(err, ErrFeatureCacheMismatch) || !strings.Contains(err.Error(), "7-D states and 7-D actions (version 2), want 6 and 4") {
			t.Fatalf("error %v", err)
		}
	})
	t.Run("err=future-version", func(t *testing.T) {
		dir := fresh(t)
		p := filepath.Join(dir, FeatureCacheIndex)
		b, _ := os.ReadFile(p)
		os.WriteFile(p, []byte(strings.Replace(string(b), `"version": 2`, `"version": 3`, 1)), 0o644)
		_, err := OpenFeatureCache(dir, cfg)
		if err == nil || !strings.Contains(err.Error(), "version 3, want \"vjepa-vk feature cache\" version 1 to 2") {
			t.Fatalf("error %v", err)
		}
	})
	t.Run("err=truncated-shard", func(t *testing.T) {
		dir := fresh(t)
		p := filepath.Join(dir, shard0)
		b, _ := os.ReadFile(p)
		os.WriteFile(p, b[:len(b)-1], 0o644)
		_, err := OpenFeatureCache(dir, cfg)
		var fe *FeatureCacheError
		if !errors.As(err, &fe) || !strings.Contains(err.Error(), "want 2 records") {
			t.Fatalf("error %v", err)
		}
	})
	t.Run("err=flipped-byte", func(t *testing.T) {
		dir := fresh(t)
		p := filepath.Join(dir, shard0)
		b, _ := os.ReadFile(p)
		off := cfg.RecordBytes() + 200 // inside record 1
		b[off] ^= 1
		os.WriteFile(p, b, 0o644)
		c, err := OpenFeatureCache(dir, cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		var rec FeatureRecord
		if err := c.Read(0, &rec); err != nil {
			t.Fatalf("record 0 is intact: %v", err)
		}
		err = c.Read(1, &rec)
		var fe *FeatureCacheError
		if !errors.As(err, &fe) || fe.Record != 1 || fe.Offset != cfg.RecordBytes() || !strings.Contains(err.Error(), "crc32c") {
			t.Fatalf("error %v, want a crc error for record 1 at offset %d", err, cfg.RecordBytes())
		}
	})
	t.Run("err=missing-index", func(t *testing.T) {
		if _, err := OpenFeatureCache(t.TempDir(), cfg); err == nil {
			t.Fatal("an empty directory opened as a cache")
		}
	})
	t.Run("err=bad-config", func(t *testing.T) {
		if _, err := CreateFeatureCache(t.TempDir(), FeatureCacheConfig{Frames: 1, Tokens: 1, Dim: 1, RecordsPerShard: 1}, nil); err == nil {
			t.Fatal("T=1 accepted")
		}
	})
}

// TestFeatureCacheVersion1 reads a cache written by version 1 (before the state and action widths were
// recorded: 7-D, an 8-word record header), committed in testdata as that code wrote it, and refuses it
// for other widths.
func TestFeatureCacheVersion1(t *testing.T) {
	const dir = "../testdata/featcache_v1"
	cfg := FeatureCacheConfig{Frames: 3, Tokens: 2, Dim: 4, ConfigHash: "v1-fixture"}
	c, err := OpenFeatureCache(dir, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if s, a := c.Config().Dims(); c.Len() != 3 || s != 7 || a != 7 {
		t.Fatalf("%d records of %d-D states and %d-D actions, want 3 of 7 and 7", c.Len(), s, a)
	}
	var rec FeatureRecord
	for i := range 3 {
		if err := c.Read(i, &rec); err != nil {
			t.Fatal(err)
		}
		if rec.SourceShard != i%2 || rec.SourceRecord != i || rec.Start != 3*i || len(rec.States) != 21 || len(rec.Actions) != 14 || len(rec.Features) != 24 {
			t.Fatalf("record %d: source %d/%d start %d, %d states %d actions %d features", i, rec.SourceShard, rec.SourceRecord, rec.Start,
				len(rec.States), len(rec.Actions), len(rec.Features))
		}
		for k := range rec.States {
			if rec.States[k] != float32(i*100+k) {
				t.Fatalf("record %d states[%d] = %v, want %d", i, k, rec.States[k], i*100+k)
			}
		}
		for k := range rec.Actions {
			if rec.Actions[k] != -float32(i*100+k) {
				t.Fatalf("record %d actions[%d] = %v, want %d", i, k, rec.Actions[k], -(i*100 + k))
			}
		}
	}
	cfg.StateDim = 6
	if _, err := OpenFeatureCache(dir, cfg); !errors.Is(err, ErrFeatureCacheMismatch) || !strings.Contains(err.Error(), "7-D states and 7-D actions (version 1), want 6 and 7") {
		t.Fatalf("a version 1 cache opened for 6-D states: %v", err)
	}
}

// TestF16 checks the half-precision conversion on exactly representable values, rounding and limits.
func TestF16(t *testing.T) {
	in := []float32{0, 1, -2, 0.5, 65504, 1e-8, 1.0009766, 100000, float32(math.Inf(-1))}
	want := []float32{0, 1, -2, 0.5, 65504, 0, 1.0009766, float32(math.Inf(1)), float32(math.Inf(-1))}
	h := make([]uint16, len(in))
	Float32ToF16(h, in)
	out := make([]float32, len(in))
	F16ToFloat32(out, h)
	for i := range in {
		if out[i] != want[i] {
			t.Fatalf("f16(%v) = %v (%04x), want %v", in[i], out[i], h[i], want[i])
		}
	}
	if h[1] != 0x3c00 || h[2] != 0xc000 {
		t.Fatalf("f16 bits of 1, −2 = %04x, %04x, want 3c00, c000", h[1], h[2])
	}
}
