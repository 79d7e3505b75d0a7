package data

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/vjepa-vk/vjepa-vk/dist/disttest"
)

// TestLoaderExchange: the ranks of a distributed loader, batch b and w workers each, together draw
// exactly the batches of one loader with N·b clips and N·w workers: the same clips (episode, epoch,
// frame indices, camera) in the same order, bit-identical pixels, states and actions, after the same
// filtering (the sample's short episode) and with a held-out episode.
func TestLoaderExchange(t *testing.T) {
	for _, tc := range []struct{ ranks, batch, workers, shuffle int }{
		{2, 1, 1, 4}, {2, 2, 2, 4}, {3, 1, 1, 4}, {3, 2, 1, 0}, {2, 3, 1, 1},
	} {
		t.Run(fmt.Sprintf("ranks=%d,batch=%d,workers=%d,shuffle=%d", tc.ranks, tc.batch, tc.workers, tc.shuffle), func(t *testing.T) {
			const steps = 7 // more than an epoch of the sample: epochs 0 to 2 reshuffle the shards
			cfg := smallLoaderConfig(tc.workers)
			cfg.Epochs, cfg.ShuffleBuffer = 0, tc.shuffle
			cfg.Clip.Camera = CameraRandomExterior
			cfg.Keep = func(shard, record int) bool { return shard != 0 || record != 1 }

			one := cfg
			one.BatchSize, one.Workers = tc.ranks*tc.batch, tc.ranks*tc.workers
			want := takeBatches(t, one, steps)

			got := make([][]*Batch, tc.ranks)
			errs := make([]error, tc.ranks)
			var wg sync.WaitGroup
			for r, comm := range disttest.New(tc.ranks) {
				wg.Add(1)
				go func() {
					defer wg.Done()
					c := cfg
					c.BatchSize, c.Exchange = tc.batch, comm
					if got[r], errs[r] = takeBatchesErr(c, steps); errs[r] != nil {
						comm.Abort(errs[r])
					}
				}()
			}
			wg.Wait()
			for r, err := range errs {
				if err != nil {
					t.Fatalf("rank %d: %v", r, err)
				}
			}
			for i := range steps {
				for r := range tc.ranks {
					g, w := got[r][i], want[i]
					lo, hi := r*tc.batch, (r+1)*tc.batch
					T, HW := g.T, g.H*g.W
					for j, s := range g.Samples {
						ws := w.Samples[lo+j]
						if s.ShardIndex != ws.ShardIndex || s.Record != ws.Record || s.Epoch != ws.Epoch ||
							s.Shard != ws.Shard || s.Clip.Camera != ws.Clip.Camera || !slices.Equal(s.Clip.Indices, ws.Clip.Indices) {
							t.Fatalf("batch %d rank %d clip %d: shard %d record %d epoch %d frames %v %s, want shard %d record %d epoch %d frames %v %s",
								i, r, j, s.ShardIndex, s.Record, s.Epoch, s.Clip.Indices, s.Clip.Camera, ws.ShardIndex, ws.Record, ws.Epoch, ws.Clip.Indices, ws.Clip.Camera)
						}
					}
					for _, part := range []struct {
						name      string
						got, want []float32
						per       int
					}{
						{"frames", g.Frames, w.Frames, 3 * T * HW}, {"states", g.States, w.States, T * 7},
						{"actions", g.Actions, w.Actions, (T - 1) * 7}, {"extrinsics", g.Extrinsics, w.Extrinsics, T * 6},
					} {
						if !slices.Equal(part.got, part.want[lo*part.per:hi*part.per]) {
							t.Fatalf("batch %d rank %d: %s differ from the single loader's clips %d..%d", i, r, part.name, lo, hi-1)
						}
					}
				}
			}
		})
	}
}

func takeBatches(t *testing.T, cfg LoaderConfig, n int) []*Batch {
	t.Helper()
	out, err := takeBatchesErr(cfg, n)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func takeBatchesErr(cfg LoaderConfig, n int) ([]*Batch, error) {
	l, err := NewLoader(context.Background(), NewDirSource(sampleDir), cfg)
	if err != nil {
		return nil, err
	}
	defer l.Close()
	var out []*Batch
	for range n {
		b, err := l.Next(context.Background())
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, nil
}

// TestLoaderExchangeEpochs: a distributed loader reads endlessly; a finite one is refused.
func TestLoaderExchangeEpochs(t *testing.T) {
	cfg := smallLoaderConfig(1)
	cfg.Exchange = disttest.New(2)[0]
	if _, err := NewLoader(context.Background(), NewDirSource(sampleDir), cfg); err == nil {
		t.Fatal("a distributed loader with epochs 2 was accepted")
	}
}

// TestReadSampleShort: a clip travels whole, with its encoded frames or, without them (video), its
// pixels; a message cut anywhere inside a clip is an error, never a partial clip.
func TestReadSampleShort(t *testing.T) {
	const T, S, A, H, W = 3, 2, 4, 2, 2
	for _, frames := range []bool{true, false} {
		c := &Clip{Camera: "c", Start: 4, Indices: []int{4, 8, 12}, States: [][]float64{{1, 2}, {3, 4}, {5, 1.5}},
			Actions: [][]float64{{1, 2, 3, 4}, {5, 6, 7, -8}}, Extrinsics: make([][6]float64, T), Times: []float64{0, 0.25, 0.5}}
		s := &Sample{Shard: "x", ShardIndex: 1, Record: 2, Epoch: 3, Clip: c}
		if frames {
			c.Frames = [][]byte{[]byte("jpeg0"), nil, []byte("j2")}
		} else {
			s.Pixels = make([]float32, 3*T*H*W)
			s.Pixels[5] = -2
		}
		b := appendSample(nil, s)
		got, rest, err := readSample(b, T, S, A, H, W)
		if err != nil || len(rest) != 0 || got.Clip.States[2][1] != 1.5 || got.Clip.Actions[1][3] != -8 || got.Clip.Times[2] != 0.5 ||
			got.Record != 2 || got.Shard != "x" || got.Clip.Camera != "c" {
			t.Fatalf("frames=%v: round trip: %+v, %+v, %d bytes left, %v", frames, got, got.Clip, len(rest), err)
		}
		if frames && (string(got.Clip.Frames[2]) != "j2" || len(got.Clip.Frames[1]) != 0 || got.Pixels != nil) {
			t.Fatalf("frames: %q, pixels %v", got.Clip.Frames, got.Pixels != nil)
		}
		if !frames && (got.Clip.Frames != nil || len(got.Pixels) != 3*T*H*W || got.Pixels[5] != -2) {
			t.Fatalf("pixels: %d, frames %v", len(got.Pixels), got.Clip.Frames)
		}
		for n := 0; n < len(b); n++ {
			if _, _, err := readSample(b[:n], T, S, A, H, W); err == nil {
				t.Fatalf("frames=%v: message cut at %d of %d bytes read without error", frames, n, len(b))
			}
		}
		if _, _, err := readSample(b, T, S+1, A, H, W); err == nil {
			t.Fatal("a clip with other state widths was accepted")
		}
	}
}

// runShared runs the ranks of a distributed loader on per-rank sources until each has n batches or an
// error, which aborts the in-process job as MPI_Abort would.
func runShared(cfg LoaderConfig, srcs []Source, n int) ([][]*Batch, []error) {
	got := make([][]*Batch, len(srcs))
	errs := make([]error, len(srcs))
	var wg sync.WaitGroup
	for r, comm := range disttest.New(len(srcs)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := cfg
			c.Exchange = comm
			l, err := NewLoader(context.Background(), srcs[r], c)
			if err != nil {
				errs[r] = err
				comm.Abort(err)
				return
			}
			defer l.Close()
			for range n {
				b, err := l.Next(context.Background())
				if err != nil {
					errs[r] = err
					return
				}
				got[r] = append(got[r], b)
			}
		}()
	}
	wg.Wait()
	return got, errs
}

// TestLoaderExchangeNothing: when every episode is filtered on every rank, each rank ends with io.EOF
// (the ranks decide together: none alone knows that the others found nothing either).
func TestLoaderExchangeNothing(t *testing.T) {
	cfg := smallLoaderConfig(1)
	cfg.Epochs = 0
	cfg.Clip.Frames = 20 // every episode is short
	src := NewDirSource(sampleDir)
	_, errs := runShared(cfg, []Source{src, src}, 1)
	for r, err := range errs {
		if err != io.EOF {
			t.Fatalf("rank %d: %v, want io.EOF", r, err)
		}
	}
}

// TestLoaderExchangeFailure: a rank whose loader fails returns its error, and the others learn it
// from the status exchange instead of waiting for its clips.
func TestLoaderExchangeFailure(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(sampleDir, DatasetInfoFile))
	if err != nil {
		t.Fatal(err)
	}
	cfg := smallLoaderConfig(1)
	cfg.Epochs = 0
	broken := &FSSource{FS: fstest.MapFS{DatasetInfoFile: {Data: b}}, Name: "mem"} // no shard files
	_, errs := runShared(cfg, []Source{NewDirSource(sampleDir), broken}, 3)
	if errs[1] == nil || !strings.Contains(errs[1].Error(), "mem") {
		t.Fatalf("rank 1 (shards missing): %v, want its open error", errs[1])
	}
	if errs[0] == nil || !strings.Contains(errs[0].Error(), "rank [1]") {
		t.Fatalf("rank 0: %v, want the news that rank 1's loader stopped", errs[0])
	}
}
