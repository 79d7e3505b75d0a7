package data

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/jpeg"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"
)

func smallLoaderConfig(workers int) LoaderConfig {
	cfg := DefaultLoaderConfig()
	cfg.Image.Height, cfg.Image.Width = 24, 32
	cfg.Workers = workers
	cfg.BatchSize = 2
	cfg.ShuffleBuffer = 4
	cfg.Epochs = 2
	cfg.DropLast = false
	cfg.Seed = 7
	return cfg
}

// drain reads every batch of a loader.
func drain(t *testing.T, l *Loader) []*Batch {
	t.Helper()
	var out []*Batch
	for {
		b, err := l.Next(context.Background())
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
}

func sampleKey(s *Sample) string {
	return fmt.Sprintf("%s/%d/e%d/%s/%v", s.Shard, s.Record, s.Epoch, s.Clip.Camera, s.Clip.Indices)
}

// sameBatches fails unless got has want's clips in the same order with bit-identical frames.
func sameBatches(t *testing.T, got, want []*Batch) {
	t.Helper()
	for i := range want {
		for j := range want[i].Samples {
			if g, w := sampleKey(got[i].Samples[j]), sampleKey(want[i].Samples[j]); g != w {
				t.Fatalf("batch %d sample %d: %s, want %s", i, j, g, w)
			}
		}
		for k := range want[i].Frames {
			if math.Float32bits(got[i].Frames[k]) != math.Float32bits(want[i].Frames[k]) {
				t.Fatalf("batch %d: frames differ at %d", i, k)
			}
		}
	}
}

func runLoader(t *testing.T, src Source, cfg LoaderConfig) ([]*Batch, Counts) {
	t.Helper()
	l, err := NewLoader(context.Background(), src, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return drain(t, l), l.Counts()
}

// TestLoaderDeterministic: the same configuration gives the same batches, bit for bit; the counts
// match the sample's roles (one short episode of six, two epochs).
func TestLoaderDeterministic(t *testing.T) {
	cfg := smallLoaderConfig(2)
	cfg.Clip.Camera = CameraRandomExterior
	a, ca := runLoader(t, NewDirSource(sampleDir), cfg)
	b, cb := runLoader(t, NewDirSource(sampleDir), cfg)
	want := Counts{Records: 12, Episodes: 12, ShortEpisodes: 2, Clips: 10}
	if ca != want || cb != want {
		t.Fatalf("counts %+v and %+v, want %+v", ca, cb, want)
	}
	if len(a) != 5 || len(b) != 5 {
		t.Fatalf("%d and %d batches, want 5", len(a), len(b))
	}
	sameBatches(t, a, b)
	cfg.Seed = 8
	c, _ := runLoader(t, NewDirSource(sampleDir), cfg)
	same := true
	for i := range a {
		for j := range a[i].Samples {
			same = same && sampleKey(a[i].Samples[j]) == sampleKey(c[i].Samples[j])
		}
	}
	if same {
		t.Fatal("seed 8 gave the same clips in the same order as seed 7")
	}
}

// TestLoaderWorkers: the clip cut from each (epoch, shard, record) does not depend on the worker
// count, only the order does.
func TestLoaderWorkers(t *testing.T) {
	keys := func(batches []*Batch) []string {
		var k []string
		for _, b := range batches {
			for _, s := range b.Samples {
				k = append(k, sampleKey(s))
			}
		}
		sort.Strings(k)
		return k
	}
	var ref []string
	for _, w := range []int{1, 2, 3} {
		cfg := smallLoaderConfig(w)
		cfg.Clip.Camera = CameraRandomExterior
		got, _ := runLoader(t, NewDirSource(sampleDir), cfg)
		k := keys(got)
		if ref == nil {
			ref = k
			continue
		}
		if fmt.Sprint(k) != fmt.Sprint(ref) {
			t.Fatalf("workers=%d: clips\n%v\nwant\n%v", w, k, ref)
		}
	}
}

// TestLoaderBatchLayout checks that a batch stacks exactly what MakeClip and the Preprocessor give.
func TestLoaderBatchLayout(t *testing.T) {
	cfg := smallLoaderConfig(2)
	cfg.ShuffleBuffer = 0
	batches, _ := runLoader(t, NewDirSource(sampleDir), cfg)
	eps := sampleEpisodes(t)
	pre, err := NewPreprocessor(cfg.Image)
	if err != nil {
		t.Fatal(err)
	}
	T, H, W := cfg.Clip.Frames, cfg.Image.Height, cfg.Image.Width
	for bi, b := range batches {
		if b.T != T || b.H != H || b.W != W || len(b.Frames) != b.B*3*T*H*W || len(b.Actions) != b.B*(T-1)*7 {
			t.Fatalf("batch %d shape B=%d T=%d H=%d W=%d, %d frames values", bi, b.B, b.T, b.H, b.W, len(b.Frames))
		}
		for i, s := range b.Samples {
			ep := eps[3*s.ShardIndex+s.Record] // 3 episodes per sample shard
			want, err := MakeClip(ep, cfg.Clip, cfg.Filter, episodeRNG(cfg.Seed, s.Epoch, s.ShardIndex, s.Record))
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(want.Indices) != fmt.Sprint(s.Clip.Indices) {
				t.Fatalf("batch %d sample %d: indices %v, want %v", bi, i, s.Clip.Indices, want.Indices)
			}
			pix := make([]float32, 3*T*H*W)
			if err := pre.Clip(pix, want.Frames); err != nil {
				t.Fatal(err)
			}
			for k, v := range pix {
				if b.Frames[i*3*T*H*W+k] != v {
					t.Fatalf("batch %d sample %d: frames[%d] = %v, want %v", bi, i, k, b.Frames[i*3*T*H*W+k], v)
				}
			}
			for tt := range T {
				for k := range 7 {
					if got, w := b.States[(i*T+tt)*7+k], float32(want.States[tt][k]); got != w {
						t.Fatalf("batch %d sample %d: states[%d][%d] = %v, want %v", bi, i, tt, k, got, w)
					}
					if tt < T-1 {
						if got, w := b.Actions[(i*(T-1)+tt)*7+k], float32(want.Actions[tt][k]); got != w {
							t.Fatalf("batch %d sample %d: actions[%d][%d] = %v, want %v", bi, i, tt, k, got, w)
						}
					}
				}
			}
			for _, v := range b.Extrinsics[i*T*6 : (i+1)*T*6] {
				if v != 0 {
					t.Fatalf("extrinsics not zero: %v", v)
				}
			}
		}
	}
}

// TestLoaderRanks: two ranks see disjoint halves that together make the whole epoch.
func TestLoaderRanks(t *testing.T) {
	seen := map[string]int{}
	var records int64
	for r := range 2 {
		cfg := smallLoaderConfig(2)
		cfg.Epochs, cfg.Rank, cfg.WorldSize = 1, r, 2
		batches, counts := runLoader(t, NewDirSource(sampleDir), cfg)
		if counts.Records == 0 {
			t.Fatalf("rank %d read no records", r)
		}
		records += counts.Records
		for _, b := range batches {
			for _, s := range b.Samples {
				seen[fmt.Sprintf("%s/%d", s.Shard, s.Record)]++
			}
		}
	}
	// 2 ranks × 2 workers on 2 shards: each shard is split in 2 parts by record index.
	if len(seen) != 5 || records != 6 {
		t.Fatalf("ranks together took %d records and saw %v, want 6 records and the 5 clips of the epoch", records, seen)
	}
	for k, n := range seen {
		if n != 1 {
			t.Fatalf("%s seen %d times", k, n)
		}
	}
}

func TestLoaderCancel(t *testing.T) {
	before := runtime.NumGoroutine()
	cfg := smallLoaderConfig(2)
	cfg.Epochs = 0 // forever
	ctx, cancel := context.WithCancel(context.Background())
	l, err := NewLoader(ctx, NewDirSource(sampleDir), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Next(ctx); err != nil {
		t.Fatal(err)
	}
	cancel()
	for {
		_, err := l.Next(context.Background())
		if errors.Is(err, context.Canceled) {
			break
		}
		if err != nil {
			t.Fatalf("after cancel: %v, want context.Canceled", err)
		}
	}
	l.Close()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Fatalf("%d goroutines after Close, %d before", n, before)
	}
}

// TestLoaderCorrupt serves the sample from memory with one record's data damaged and a second shard
// truncated: the loader skips, counts and reports them, and delivers the other clips.
func TestLoaderCorrupt(t *testing.T) {
	mfs := fstest.MapFS{}
	for _, name := range []string{DatasetInfoFile, "droid_demo-train.tfrecord-00000-of-00002", "droid_demo-train.tfrecord-00001-of-00002"} {
		b, err := os.ReadFile(filepath.Join(sampleDir, name))
		if err != nil {
			t.Fatal(err)
		}
		mfs[name] = &fstest.MapFile{Data: b}
	}
	shard0 := mfs["droid_demo-train.tfrecord-00000-of-00002"].Data
	shard0[100_000] ^= 0xff // inside record 0's data
	shard1 := mfs["droid_demo-train.tfrecord-00001-of-00002"].Data
	mfs["droid_demo-train.tfrecord-00001-of-00002"].Data = shard1[:len(shard1)-5000] // cut inside record 2
	cfg := smallLoaderConfig(2)
	cfg.Epochs = 1
	var warnings []error
	warned := make(chan error, 10)
	cfg.Warn = func(err error) { warned <- err }
	batches, counts := runLoader(t, &FSSource{FS: mfs, Name: "mem"}, cfg)
	close(warned)
	for w := range warned {
		warnings = append(warnings, w)
	}
	want := Counts{Records: 4, CorruptRecords: 1, TruncatedShards: 1, Episodes: 4, Clips: 4}
	if counts != want {
		t.Fatalf("counts %+v, want %+v", counts, want)
	}
	if len(warnings) != 2 {
		t.Fatalf("warnings %v, want 2", warnings)
	}
	clips := 0
	for _, b := range batches {
		clips += b.B
		for _, s := range b.Samples {
			if s.Shard == "droid_demo-train.tfrecord-00000-of-00002" && s.Record == 0 {
				t.Fatal("the corrupt record produced a clip")
			}
		}
	}
	if clips != 4 {
		t.Fatalf("%d clips, want 4", clips)
	}
}

// TestLoaderNothing: when every episode is filtered, a loader with endless epochs still ends.
func TestLoaderNothing(t *testing.T) {
	cfg := smallLoaderConfig(2)
	cfg.Epochs = 0
	cfg.Clip.Frames = 20 // window 80 > 40 steps: every episode is short
	batches, counts := runLoader(t, NewDirSource(sampleDir), cfg)
	if len(batches) != 0 || counts.ShortEpisodes != 6 || counts.Clips != 0 {
		t.Fatalf("%d batches, counts %+v", len(batches), counts)
	}
}

// TestLoaderKeep: only the kept episodes are read, in every epoch, by any worker.
func TestLoaderKeep(t *testing.T) {
	cfg := smallLoaderConfig(2)
	cfg.Keep = func(shard, record int) bool { return shard == 1 && record == 0 }
	batches, counts := runLoader(t, NewDirSource(sampleDir), cfg)
	if counts.Records != 2 || counts.Clips != 2 {
		t.Fatalf("counts %+v, want 2 records and 2 clips (one per epoch)", counts)
	}
	for _, b := range batches {
		for _, s := range b.Samples {
			if s.ShardIndex != 1 || s.Record != 0 {
				t.Fatalf("clip from shard %d record %d", s.ShardIndex, s.Record)
			}
		}
	}
}

func TestLoaderMissingShard(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(sampleDir, DatasetInfoFile))
	if err != nil {
		t.Fatal(err)
	}
	l, err := NewLoader(context.Background(), &FSSource{FS: fstest.MapFS{DatasetInfoFile: {Data: b}}, Name: "mem"}, smallLoaderConfig(1))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, err = l.Next(context.Background())
	if err == nil || err == io.EOF {
		t.Fatalf("missing shard: %v, want an error", err)
	}
}

// BenchmarkLoader decodes sample clips at the model's 256×256 and reports clips/s.
func BenchmarkLoader(b *testing.B) {
	for _, workers := range []int{1, 2} {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) {
			cfg := DefaultLoaderConfig()
			cfg.Workers, cfg.BatchSize, cfg.ShuffleBuffer, cfg.Epochs = workers, 1, 0, 0
			l, err := NewLoader(context.Background(), NewDirSource(sampleDir), cfg)
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			for b.Loop() {
				if _, err := l.Next(context.Background()); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "clips/s")
		})
	}
}

// TestLoaderFrameSize serves episodes whose frames are a JPEG bomb (608 bytes claiming 65500×65500) and
// good JPEGs of the wrong size, next to a good one, with features.json declaring 16×12 frames: both bad
// episodes are skipped and counted before any pixel is decoded, on each pass, and their warnings name
// the shard, the record, the frame, the sizes and the declaration, with one "data:" prefix.
func TestLoaderFrameSize(t *testing.T) {
	wrong := func() []byte {
		var buf bytes.Buffer
		if err := jpeg.Encode(&buf, image.NewGray(image.Rect(0, 0, 32, 24)), nil); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}()
	var shard []byte
	for e, spec := range []handbuiltEpisode{{steps: 40}, {steps: 40, frame: jpegBomb(t)}, {steps: 40, frame: wrong}} {
		shard = AppendRecord(shard, handbuiltExample(t, e, spec))
	}
	features, err := json.Marshal(droidFeaturesJSON(12, 16))
	if err != nil {
		t.Fatal(err)
	}
	const name = "mem-train.tfrecord-00000-of-00001"
	for _, declared := range []bool{true, false} {
		t.Run(fmt.Sprintf("declared=%v", declared), func(t *testing.T) {
			mfs := fstest.MapFS{name: {Data: shard}}
			if declared {
				mfs[FeaturesFile] = &fstest.MapFile{Data: features}
			}
			cfg := smallLoaderConfig(1)
			var mu sync.Mutex
			var warnings []string
			cfg.Warn = func(err error) { mu.Lock(); warnings = append(warnings, err.Error()); mu.Unlock() }
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, counts := runLoader(t, &FSSource{FS: mfs, Name: "mem"}, cfg)
			runtime.ReadMemStats(&after)
			wantBad := int64(4) // two episodes, two epochs
			if !declared {
				wantBad = 2 // only the bomb: a 32×24 frame is fine when nothing is declared
			}
			if counts.BadEpisodes != wantBad || counts.Clips != 6-wantBad {
				t.Errorf("counts %+v, want %d bad episodes and %d clips", counts, wantBad, 6-wantBad)
			}
			if n := after.TotalAlloc - before.TotalAlloc; n > 256<<20 {
				t.Errorf("the loader allocated %d MiB", n>>20)
			}
			want := "data: mem-train.tfrecord-00000-of-00001 record 1: frame 0: jpeg header (608 bytes) says 65500×65500, want the 16×12 that features.json (steps/observation/exterior_image_1_left) declares"
			if !declared {
				want = "data: mem-train.tfrecord-00000-of-00001 record 1: frame 0: jpeg header (608 bytes) says 65500×65500, more than the 16777216 pixels allowed"
			}
			if len(warnings) == 0 || warnings[0] != want && !strings.HasPrefix(warnings[0], want) {
				t.Errorf("first warning %q, want %q", warnings, want)
			}
			for _, w := range warnings {
				if strings.Count(w, "data:") != 1 {
					t.Errorf("warning %q: want one data: prefix", w)
				}
			}
			if declared && (len(warnings) != 4 || !strings.Contains(warnings[1], "record 2: frame 0: jpeg header") || !strings.Contains(warnings[1], "says 32×24, want the 16×12")) {
				t.Errorf("warnings %q, want the bomb and the 32×24 episode on each of two passes", warnings)
			}
		})
	}
}

// batchRLDS is the RLDS format decoding its clips through BatchDecoder, as LeRobot does: it records
// the size of every call and fails the clips of one episode.
type batchRLDS struct {
	*RLDS
	size     int
	failPath string // the episode whose clips fail to decode
	mu       sync.Mutex
	calls    []int
}

func (b *batchRLDS) DecodeBatch() int { return b.size }

func (b *batchRLDS) DecodeClips(ctx context.Context, pre *Preprocessor, jobs []DecodeJob) []error {
	b.mu.Lock()
	b.calls = append(b.calls, len(jobs))
	b.mu.Unlock()
	errs := make([]error, len(jobs))
	for i, j := range jobs {
		if ep := j.Episode.(rldsEpisode); ep.FilePath == b.failPath {
			errs[i] = errors.New("injected decode failure")
			continue
		}
		errs[i] = j.Episode.DecodeClip(ctx, pre, j.Dst, j.Clip)
	}
	return errs
}

// TestLoaderBatchDecoder: a format that decodes several clips at once gives the same batches, bit for
// bit and in the same order, as decoding them one by one, with calls of at most DecodeBatch clips; a clip
// that fails in a batch makes only its own episode bad.
func TestLoaderBatchDecoder(t *testing.T) {
	run := func(f Format, cfg LoaderConfig) ([]*Batch, Counts, []string) {
		var mu sync.Mutex
		var warnings []string
		cfg.Warn = func(err error) {
			mu.Lock()
			warnings = append(warnings, err.Error())
			mu.Unlock()
		}
		l, err := NewFormatLoader(context.Background(), f, cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		return drain(t, l), l.Counts(), warnings
	}
	open := func() *RLDS {
		f, err := OpenRLDS(context.Background(), NewDirSource(sampleDir), "train", 0)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	for _, workers := range []int{1, 2} {
		cfg := smallLoaderConfig(workers)
		cfg.Clip.Camera = CameraRandomExterior
		want, wantCounts, _ := run(open(), cfg)
		for _, size := range []int{2, 3, 16} {
			t.Run(fmt.Sprintf("workers=%d,batch=%d", workers, size), func(t *testing.T) {
				bf := &batchRLDS{RLDS: open(), size: size}
				got, counts, _ := run(bf, cfg)
				if counts != wantCounts || len(got) != len(want) {
					t.Fatalf("%d batches, counts %+v; want %d, %+v", len(got), counts, len(want), wantCounts)
				}
				sameBatches(t, got, want)
				total := 0
				for _, n := range bf.calls {
					if n < 1 || n > size {
						t.Fatalf("DecodeClips called with %d clips, want 1..%d", n, size)
					}
					total += n
				}
				if int64(total) != counts.Clips {
					t.Fatalf("DecodeClips saw %d clips, the loader made %d", total, counts.Clips)
				}
			})
		}
	}
	t.Run("failure", func(t *testing.T) {
		cfg := smallLoaderConfig(1)
		_, wantCounts, _ := run(open(), cfg)
		bf := &batchRLDS{RLDS: open(), size: 4}
		// The second episode of shard 0 (not short: the sample's short one is the sixth).
		var path string
		bf.EachEpisode(context.Background(), bf.Shards()[0], func(r int) bool { return r == 1 }, func(_ int, ep ClipEpisode) error {
			path = ep.Info().FilePath
			return nil
		}, nil, nil)
		bf.failPath = path
		_, counts, warnings := run(bf, cfg)
		want := wantCounts
		want.BadEpisodes, want.Clips = 2, wantCounts.Clips-2 // one per epoch
		if counts != want {
			t.Fatalf("counts %+v, want %+v", counts, want)
		}
		if len(warnings) != 2 || !strings.Contains(warnings[0], "record 1: injected decode failure") {
			t.Fatalf("warnings %q, want two naming record 1 and the failure", warnings)
		}
	})
}
