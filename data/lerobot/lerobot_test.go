package lerobot

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/fsouza/fake-gcs-server/fakestorage"

	"github.com/vjepa-vk/vjepa-vk/data"
)

// The committed datasets in testdata were written by tools/lerobotgen with Apache Arrow's parquet
// writer (not parquet-go, the reader's library) and FFmpeg, from the demo trajectories: each test checks
// what it reads against the trajectory data itself.
var fixtures = []struct {
	dir             string
	version         string
	episodes, steps int
	seed            uint64
	image           bool
}{
	{"testdata/v21_h264", "v2.1", 3, 24, 2, true},
	{"testdata/v30_av1", "v3.0", 4, 24, 3, false},
}

func needFFmpeg(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Skip("ffmpeg not installed (apt-get install ffmpeg)")
	}
}

func open(t testing.TB, dir string, m Mapping) *Dataset {
	t.Helper()
	ds, err := Open(context.Background(), data.NewDirSource(dir), Options{Mapping: m})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ds.Close() })
	return ds
}

func clipConfig(camera string, frames int) data.ClipConfig {
	c := data.DefaultClipConfig()
	c.Camera, c.Frames, c.Start = camera, frames, 2
	return c
}

// eachEpisode collects every episode of the dataset in shard order.
func eachEpisode(t *testing.T, ds *Dataset) []data.ClipEpisode {
	t.Helper()
	var out []data.ClipEpisode
	for _, sh := range ds.Shards() {
		err := ds.EachEpisode(context.Background(), sh, nil, func(_ int, ep data.ClipEpisode) error {
			out = append(out, ep)
			return nil
		}, func(r int, err error) { t.Fatalf("%s record %d: %v", sh.Name, r, err) }, nil)
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// TestFixtureColumns reads every mapped column of both layouts and compares it with the trajectory the
// files were written from: exact float32 values, row for row.
func TestFixtureColumns(t *testing.T) {
	for _, fx := range fixtures {
		t.Run("version="+fx.version, func(t *testing.T) {
			ds := open(t, fx.dir, Mapping{})
			if s, a := ds.Dims(); s != 6 || a != 4 {
				t.Fatalf("dims %d, %d, want 6, 4", s, a)
			}
			if ds.Info.Version() != int(fx.version[1]-'0') || len(ds.Episodes) != fx.episodes {
				t.Fatalf("version %d with %d episodes, want %s with %d", ds.Info.Version(), len(ds.Episodes), fx.version, fx.episodes)
			}
			dcfg := data.DefaultDemoConfig()
			dcfg.Steps, dcfg.Seed = fx.steps, fx.seed
			eps := eachEpisode(t, ds)
			if len(eps) != fx.episodes {
				t.Fatalf("%d episodes read, want %d", len(eps), fx.episodes)
			}
			for e, ep := range eps {
				tr := data.NewDemoTrajectory(dcfg, e)
				states := tr.States()
				le := ep.(*episode)
				if got := ep.Info().Steps; got != len(states) {
					t.Fatalf("episode %d: %d steps, want %d", e, got, len(states))
				}
				for i, s := range states {
					j := tr.Joints(i)
					want := []float32{float32(j[0]), float32(j[1]), float32(j[2]), float32(j[3]), float32(j[4]), float32(s[6])}
					for k, w := range want {
						if got := le.stateRow(i)[k]; got != float64(w) {
							t.Fatalf("episode %d row %d: state[%d] = %v, want %v", e, i, k, got, w)
						}
					}
					if got, w := le.fr.times[le.lo+i], float64(float32(float64(i)/data.DemoFPS)); got != w {
						t.Fatalf("episode %d row %d: timestamp %v, want %v", e, i, got, w)
					}
					if i+1 < len(states) {
						if got, w := le.actionRow(i)[3], float64(float32(states[i+1][6]-s[6])); got != w {
							t.Fatalf("episode %d row %d: action[3] = %v, want %v", e, i, got, w)
						}
					}
				}
			}
		})
	}
}

// TestMapping checks each mapping of states and actions on a clip: raw vectors with each action
// reduction, and the end-effector pose conversion to DROID's 7-D state and pose deltas.
func TestMapping(t *testing.T) {
	fx := fixtures[1]
	dcfg := data.DefaultDemoConfig()
	dcfg.Steps, dcfg.Seed = fx.steps, fx.seed
	tr := data.NewDemoTrajectory(dcfg, 0)
	states := tr.States()
	cfg := clipConfig(DemoVideoKey, 4) // stride ceil(15/4) = 4: frames 2, 6, 10, 14
	for _, reduce := range ActionReductions {
		t.Run("reduce="+reduce, func(t *testing.T) {
			ds := open(t, fx.dir, Mapping{ActionReduce: reduce})
			clip, err := eachEpisode(t, ds)[0].MakeClip(cfg, data.DefaultFilterConfig(), rand.New(rand.NewPCG(1, 1)))
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(clip.Indices) != "[2 6 10 14]" {
				t.Fatalf("indices %v, want [2 6 10 14]", clip.Indices)
			}
			for k := range clip.Actions {
				i, j := clip.Indices[k], clip.Indices[k+1]
				var want float64
				switch reduce {
				case "first":
					want = float64(float32(states[i+1][0] - states[i][0]))
				case "last":
					want = float64(float32(states[j][0] - states[j-1][0]))
				case "sum", "mean":
					for r := i; r < j; r++ {
						want += float64(float32(states[r+1][0] - states[r][0]))
					}
					if reduce == "mean" {
						want /= float64(j - i)
					}
				}
				if got := clip.Actions[k][0]; math.Abs(got-want) > 1e-12 {
					t.Fatalf("action %d Δx = %v, want %v", k, got, want)
				}
			}
		})
	}
	t.Run("convert=ee_pose", func(t *testing.T) {
		ds := open(t, fx.dir, Mapping{State: "observation.ee_pose", Convert: "ee_pose"})
		if s, a := ds.Dims(); s != 7 || a != 7 {
			t.Fatalf("dims %d, %d, want 7, 7", s, a)
		}
		clip, err := eachEpisode(t, ds)[0].MakeClip(cfg, data.DefaultFilterConfig(), nil)
		if err != nil {
			t.Fatal(err)
		}
		var poses []data.State
		for _, i := range clip.Indices {
			var s data.State
			for k := range s {
				s[k] = float64(float32(states[i][k]))
			}
			poses = append(poses, s)
		}
		want := data.StatesToActions(poses)
		for k := range want {
			for c := range 7 {
				if clip.Actions[k][c] != want[k][c] || clip.States[k][c] != poses[k][c] {
					t.Fatalf("step %d dim %d: state %v action %v, want %v %v", k, c, clip.States[k][c], clip.Actions[k][c], poses[k][c], want[k][c])
				}
			}
		}
	})
}

// renderAt returns the demo's frame of camera cam at step i of episode e, as written (halved size).
func renderAt(fx int, cam, e, i int) image.Image {
	key := [4]int{fx, cam, e, i}
	if img, ok := rendered[key]; ok {
		return img
	}
	dcfg := data.DefaultDemoConfig()
	dcfg.Steps, dcfg.Seed = fixtures[fx].steps, fixtures[fx].seed
	img := downscale(data.NewDemoRenderer().Render(cam, data.NewDemoTrajectory(dcfg, e), i), 160, 90)
	if img, ok := img.(*image.RGBA); ok && img.Bounds().Dx() == 160 {
		rendered[key] = img
	}
	return img
}

// rendered caches renderAt (its frames are compared with several decoded frames).
var rendered = map[[4]int]image.Image{}

// meanAbs is the mean absolute difference of a decoded [3, T, H, W] clip's frame k and img, both
// through the same preprocessing, in normalized units.
func meanAbs(t *testing.T, pre *data.Preprocessor, got []float32, T, k int, img image.Image) float64 {
	want := make([]float32, len(got))
	pre.FrameImage(want, T, k, img)
	plane := len(got) / (3 * T)
	var sum float64
	for c := range 3 {
		off := (c*T + k) * plane
		for p := range plane {
			sum += math.Abs(float64(got[off+p] - want[off+p]))
		}
	}
	return sum / float64(3*plane)
}

// TestDecodeClip decodes clips from the H.264 and AV1 videos and the JPEG image feature with FFmpeg
// and Go, and checks every frame is the rendered frame at its index: close to it, and no farther from it
// than from any other step within two (the codecs are lossy, so "closest" rather than "equal"; the idle
// episode repeats frames, so ties are allowed), and strictly closest for most frames.
func TestDecodeClip(t *testing.T) {
	needFFmpeg(t)
	pre, err := data.NewPreprocessor(data.ImageConfig{Height: 64, Width: 64, MinRatio: 0.75, MaxRatio: 1.35})
	if err != nil {
		t.Fatal(err)
	}
	for fi, fx := range fixtures {
		cams := []struct {
			key string
			cam int
		}{{DemoVideoKey, 0}}
		if fx.image {
			cams = append(cams, struct {
				key string
				cam int
			}{DemoImageKey, 2})
		}
		for _, c := range cams {
			t.Run(fmt.Sprintf("version=%s/camera=%s", fx.version, c.key), func(t *testing.T) {
				ds := open(t, fx.dir, Mapping{})
				frames, closest := 0, 0
				defer func() {
					if closest*2 <= frames {
						t.Errorf("only %d of %d frames strictly closest to their own step", closest, frames)
					}
				}()
				for e, ep := range eachEpisode(t, ds) {
					cfg := clipConfig(c.key, 4)
					cfg.Start = -1
					clip, err := ep.MakeClip(cfg, data.DefaultFilterConfig(), rand.New(rand.NewPCG(7, uint64(e))))
					if err != nil {
						t.Fatal(err)
					}
					dst := make([]float32, 3*4*64*64)
					if err := ep.DecodeClip(context.Background(), pre, dst, clip); err != nil {
						t.Fatal(err)
					}
					for k, i := range clip.Indices {
						same := meanAbs(t, pre, dst, 4, k, renderAt(fi, c.cam, e, i))
						other := math.Inf(1)
						for j := max(i-2, 0); j <= min(i+2, fx.steps-1); j++ {
							if j != i {
								other = min(other, meanAbs(t, pre, dst, 4, k, renderAt(fi, c.cam, e, j)))
							}
						}
						frames++
						if same < other-0.002 {
							closest++
						}
						if !(same < 0.06 && same <= other+1e-4) {
							t.Errorf("episode %d frame %d (step %d): mean |Δ| %.4f to its frame, %.4f to the nearest other step", e, k, i, same, other)
						}
					}
				}
			})
		}
	}
}

// TestLoader runs the data.Loader over a v3.0 dataset: batches of 6-D states and 4-D actions, and the
// same batches again from a second loader with other workers (the per-clip seeds depend on the shard
// and record only).
func TestLoader(t *testing.T) {
	needFFmpeg(t)
	ds := open(t, fixtures[1].dir, Mapping{ActionReduce: "sum"})
	run := func(workers, decodeBatch int) map[string][]float32 {
		ds.opts.DecodeBatch = decodeBatch
		cfg := data.DefaultLoaderConfig()
		cfg.Clip = clipConfig(DemoVideoKey, 4)
		cfg.Clip.Start = -1
		cfg.Image = data.ImageConfig{Height: 32, Width: 32, MinRatio: 0.75, MaxRatio: 1.35}
		cfg.BatchSize, cfg.Workers, cfg.ShuffleBuffer, cfg.Epochs, cfg.DropLast = 2, workers, 0, 1, false
		l, err := data.NewFormatLoader(context.Background(), ds, cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		got := map[string][]float32{}
		for {
			b, err := l.Next(context.Background())
			if err != nil {
				if c := l.Counts(); c.Clips != 4 || c.BadEpisodes != 0 {
					t.Fatalf("counts %+v, want 4 clips and no bad episodes (err %v)", c, err)
				}
				return got
			}
			if b.S != 6 || b.A != 4 || len(b.States) != b.B*4*6 || len(b.Actions) != b.B*3*4 {
				t.Fatalf("batch S=%d A=%d with %d states, %d actions", b.S, b.A, len(b.States), len(b.Actions))
			}
			for i, s := range b.Samples {
				got[fmt.Sprintf("%s/%d", s.Shard, s.Record)] = append(b.States[i*24:(i+1)*24:(i+1)*24], b.Frames[i*3*4*32*32:][:16]...)
			}
		}
	}
	a := run(1, 1)
	if len(a) != 4 {
		t.Fatalf("%d clips, want 4", len(a))
	}
	for _, c := range []struct{ workers, batch int }{{2, 1}, {1, 3}, {2, 8}} {
		if b := run(c.workers, c.batch); fmt.Sprint(a) != fmt.Sprint(b) {
			t.Fatalf("1 worker decoding clip by clip gave %v\n%d workers decoding %d clips per FFmpeg gave %v", a, c.workers, c.batch, b)
		}
	}
}

// TestDecodeAll decodes the clips of every episode of both layouts with one FFmpeg process (v2.1:
// a file per episode; v3.0: several episodes of one file) and checks each frame is byte for byte what
// a process of its own gives; a request that cannot be served among them (past the end of its video,
// or a missing file) fails alone, with its own error.
func TestDecodeAll(t *testing.T) {
	needFFmpeg(t)
	ctx := context.Background()
	for _, fx := range fixtures {
		t.Run("version="+fx.version, func(t *testing.T) {
			// An ffmpeg that counts its starts.
			dir := t.TempDir()
			starts, wrapper := filepath.Join(dir, "starts"), filepath.Join(dir, "ffmpeg")
			script := "#!/bin/sh\necho >>" + starts + "\nexec ffmpeg \"$@\"\n"
			if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
				t.Fatal(err)
			}
			dec := VideoDecoder{FFmpeg: wrapper}
			ds := open(t, fx.dir, Mapping{})
			var reqs []VideoRequest
			for e, ep := range eachEpisode(t, ds) {
				cfg := clipConfig(DemoVideoKey, 4)
				cfg.Start = -1
				clip, err := ep.MakeClip(cfg, data.DefaultFilterConfig(), rand.New(rand.NewPCG(3, uint64(e))))
				if err != nil {
					t.Fatal(err)
				}
				r, err := ep.(*episode).videoRequest(ctx, clip)
				if err != nil {
					t.Fatal(err)
				}
				reqs = append(reqs, r)
			}
			past := reqs[0]
			past.Times = []float64{past.Times[0], 1000}
			missing := reqs[1]
			missing.Path += ".missing.mp4"
			startsSince := func() int {
				b, _ := os.ReadFile(starts)
				os.Remove(starts)
				return len(b)
			}
			var alone [][]Frame // each request decoded by a process of its own
			for _, r := range reqs {
				f, err := dec.Decode(ctx, r.Path, r.Times, r.FPS)
				if err != nil {
					t.Fatal(err)
				}
				alone = append(alone, f)
			}
			startsSince()
			same := func(frames [][]Frame, errs []error, skip int) {
				t.Helper()
				for i := range frames {
					if i == skip {
						continue
					}
					j := i
					if skip >= 0 && i > skip {
						j--
					}
					if errs[i] != nil {
						t.Fatalf("request %d: %v", i, errs[i])
					}
					if len(frames[i]) != len(alone[j]) {
						t.Fatalf("request %d: %d frames, %d decoded alone", i, len(frames[i]), len(alone[j]))
					}
					for k, a := range alone[j] {
						if f := frames[i][k]; f.W != a.W || f.H != a.H || !bytes.Equal(f.RGB, a.RGB) {
							t.Fatalf("request %d frame %d differs from the one decoded alone", i, k)
						}
					}
				}
			}
			frames, errs := dec.DecodeAll(ctx, reqs)
			if n := startsSince(); n != 1 {
				t.Errorf("DecodeAll of %d good requests started FFmpeg %d times, want once", len(reqs), n)
			}
			same(frames, errs, -1)
			// A request past the end of its video gets fewer frames in company: it alone is decoded again.
			// A missing file stops the shared process: every request is decoded again on its own.
			for _, tc := range []struct {
				bad    VideoRequest
				starts int
				want   string
			}{{past, 2, "1 of 2 frames"}, {missing, 2 + len(reqs), "No such file"}} {
				all := append([]VideoRequest{reqs[0], tc.bad}, reqs[1:]...)
				frames, errs := dec.DecodeAll(ctx, all)
				if n := startsSince(); n != tc.starts {
					t.Errorf("bad request %v: DecodeAll started FFmpeg %d times, want %d", tc.bad, n, tc.starts)
				}
				var de *DecodeError
				if !errors.As(errs[1], &de) || de.File != tc.bad.Path || frames[1] != nil || !strings.Contains(de.Error(), tc.want) {
					t.Errorf("request %s at %v: %d frames, error %v; want a *DecodeError naming the file and saying %q", tc.bad.Path, tc.bad.Times, len(frames[1]), errs[1], tc.want)
				}
				same(frames, errs, 1)
			}
		})
	}
}

// TestGCS reads the v3.0 dataset from a (fake) gs:// bucket: parquet through memory, videos through the
// cache folder.
func TestGCS(t *testing.T) {
	needFFmpeg(t)
	var objs []fakestorage.Object
	root := fixtures[1].dir
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		rel, _ := filepath.Rel(root, p)
		objs = append(objs, fakestorage.Object{ObjectAttrs: fakestorage.ObjectAttrs{BucketName: "robots", Name: "lerobot/demo/" + filepath.ToSlash(rel)}, Content: b})
		return err
	})
	srv, err := fakestorage.NewServerWithOptions(fakestorage.Options{NoListener: true, InitialObjects: objs})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	src, err := data.NewGCSSource(srv.Client(), "gs://robots/lerobot/demo", data.GCSOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ds, err := Open(context.Background(), src, Options{})
	if err != nil {
		t.Fatal(err)
	}
	local := open(t, root, Mapping{})
	pre, _ := data.NewPreprocessor(data.ImageConfig{Height: 16, Width: 16, MinRatio: 0.75, MaxRatio: 1.35})
	decode := func(ds *Dataset) []float32 {
		var out []float32
		for _, ep := range eachEpisode(t, ds) {
			clip, err := ep.MakeClip(clipConfig(DemoVideoKey, 2), data.DefaultFilterConfig(), nil)
			if err != nil {
				t.Fatal(err)
			}
			dst := make([]float32, 3*2*16*16)
			if err := ep.DecodeClip(context.Background(), pre, dst, clip); err != nil {
				t.Fatal(err)
			}
			out = append(out, dst...)
		}
		return out
	}
	if g, l := decode(ds), decode(local); fmt.Sprint(g) != fmt.Sprint(l) {
		t.Fatal("gs:// and local copies decode differently")
	}
	cache := ds.cacheDir
	if err := ds.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(cache); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Close left the video cache %s (%v)", cache, err)
	}
}

func TestFormatPath(t *testing.T) {
	for _, tc := range []struct {
		tmpl string
		vars map[string]any
		want string
	}{
		{"data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet", map[string]any{"episode_chunk": 1, "episode_index": 1234}, "data/chunk-001/episode_001234.parquet"},
		{"videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4", map[string]any{"video_key": "observation.images.top", "chunk_index": 0, "file_index": 12}, "videos/observation.images.top/chunk-000/file-012.mp4"},
		{"x/{n}", map[string]any{"n": 1234567}, "x/1234567"},
	} {
		if got, err := FormatPath(tc.tmpl, tc.vars); err != nil || got != tc.want {
			t.Errorf("FormatPath(%q) = %q, %v; want %q", tc.tmpl, got, err, tc.want)
		}
	}
	for _, bad := range []string{"a/{missing}", "a/{x", "a/{n:3x}"} {
		if _, err := FormatPath(bad, map[string]any{"n": 1}); err == nil {
			t.Errorf("FormatPath(%q): no error", bad)
		}
	}
}

// copyFixture copies a fixture dataset into a temporary folder that a test may damage.
func copyFixture(t *testing.T, dir string) string {
	t.Helper()
	out := t.TempDir()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(out, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(out, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func editFile(t *testing.T, path, old, new string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), old) {
		t.Fatalf("%s has no %q", path, old)
	}
	if err := os.WriteFile(path, []byte(strings.Replace(string(b), old, new, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestBadDataset: problems with the dataset as a whole fail Open or the loader's start with an error
// naming the file and the field.
func TestBadDataset(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, dir string)
		m      Mapping
		want   string
	}{
		{"no info.json", func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, InfoFile)) }, Mapping{}, "meta/info.json: no such file"},
		{"bad fps", func(t *testing.T, dir string) { editFile(t, filepath.Join(dir, InfoFile), `"fps": 15`, `"fps": 0`) }, Mapping{}, "meta/info.json: fps: 0, want > 0"},
		{"bad version", func(t *testing.T, dir string) {
			editFile(t, filepath.Join(dir, InfoFile), `"codebase_version": "v3.0"`, `"codebase_version": "v1.6"`)
		}, Mapping{}, `codebase_version: "v1.6", want v2.0, v2.1 or v3.0`},
		{"no state feature", nil, Mapping{State: "observation.joints"}, `lerobot.state: no feature "observation.joints" in meta/info.json`},
		{"state not float", nil, Mapping{State: "frame_index"}, `feature "frame_index" is int64 in meta/info.json, want float32 or float64`},
		{"no episodes", func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, "meta/episodes/chunk-000/file-000.parquet"))
		}, Mapping{}, "no meta/episodes/chunk-000/file-000.parquet"},
		{"bad split", func(t *testing.T, dir string) {
			editFile(t, filepath.Join(dir, InfoFile), `"train": "0:4"`, `"train": "4"`)
		}, Mapping{}, `splits.train = "4"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := copyFixture(t, fixtures[1].dir)
			if tc.damage != nil {
				tc.damage(t, dir)
			}
			_, err := Open(context.Background(), data.NewDirSource(dir), Options{Mapping: tc.m})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
	t.Run("camera not in dataset", func(t *testing.T) {
		ds := open(t, fixtures[1].dir, Mapping{})
		err := ds.CheckClip(clipConfig("observation.images.top", 4))
		if err == nil || !strings.Contains(err.Error(), `"observation.images.top" is not a camera`) || !strings.Contains(err.Error(), DemoVideoKey) {
			t.Fatalf("error %v, want one naming the camera and the dataset's cameras", err)
		}
	})
}

// TestBadEpisode: one damaged episode among many is skipped and counted by the loader, with a warning
// naming the file and what is wrong; the others still give clips.
func TestBadEpisode(t *testing.T) {
	needFFmpeg(t)
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, dir string)
		want   string
	}{
		{"vector width", func(t *testing.T, dir string) {
			// info.json says 5 values per state row; the parquet has 6: every episode is bad.
			editFile(t, filepath.Join(dir, InfoFile), `"shape": [
                6
            ]`, `"shape": [
                5
            ]`)
		}, `column "observation.state" row 0: 6 values, want 5`},
		{"wrong column type", func(t *testing.T, dir string) {
			// The parquet's timestamp column as an integer: written by parquet-go over episode 0's file.
			type row struct {
				State        []float32 `parquet:"observation.state,list"`
				Action       []float32 `parquet:"action,list"`
				Timestamp    int64     `parquet:"timestamp"`
				EpisodeIndex int64     `parquet:"episode_index"`
			}
			rows := make([]row, 24)
			for i := range rows {
				rows[i] = row{State: make([]float32, 6), Action: make([]float32, 4), Timestamp: int64(i)}
			}
			if err := writeParquet(filepath.Join(dir, "data/chunk-000/episode_000000.parquet"), rows); err != nil {
				t.Fatal(err)
			}
		}, `column "timestamp" holds INT64 values, want float or double`},
		{"length", func(t *testing.T, dir string) {
			editFile(t, filepath.Join(dir, EpisodesJSONLFile), `{"episode_index": 1, "tasks": ["put the red cube on the blue plate"], "length": 24}`,
				`{"episode_index": 1, "tasks": ["put the red cube on the blue plate"], "length": 30}`)
		}, "episode 1 has 24 rows, meta/episodes.jsonl says length 30"},
		{"short video", func(t *testing.T, dir string) {
			// Episode 2's video keeps only its first 8 frames: clips past them cannot be decoded.
			p := filepath.Join(dir, "videos/chunk-000", DemoVideoKey, "episode_000002.mp4")
			cut := p + ".cut.mp4"
			if out, err := exec.Command("ffmpeg", "-v", "error", "-i", p, "-frames:v", "8", "-c", "copy", cut).CombinedOutput(); err != nil {
				t.Fatalf("%v: %s", err, out)
			}
			os.Rename(cut, p)
		}, "episode_000002.mp4: 0 of 3 frames"},
		{"corrupt video", func(t *testing.T, dir string) {
			p := filepath.Join(dir, "videos/chunk-000", DemoVideoKey, "episode_000000.mp4")
			b, _ := os.ReadFile(p)
			for i := 0; i < len(b); i += 7 {
				b[i] ^= 0x5a
			}
			os.WriteFile(p, b, 0o644)
		}, "episode_000000.mp4"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := copyFixture(t, fixtures[0].dir)
			tc.damage(t, dir)
			ds := open(t, dir, Mapping{})
			cfg := data.DefaultLoaderConfig()
			cfg.Clip = clipConfig(DemoVideoKey, 4)
			cfg.Clip.Frames = 3
			cfg.Clip.Start = 8 // frames 8, 12, 16: past the cut video's 8 frames
			cfg.Image = data.ImageConfig{Height: 16, Width: 16, MinRatio: 0.75, MaxRatio: 1.35}
			cfg.BatchSize, cfg.Workers, cfg.ShuffleBuffer, cfg.Epochs, cfg.DropLast = 1, 1, 0, 1, false
			var warnings []string
			cfg.Warn = func(err error) { warnings = append(warnings, err.Error()) }
			l, err := data.NewFormatLoader(context.Background(), ds, cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			clips := 0
			for {
				b, err := l.Next(context.Background())
				if err != nil {
					break
				}
				clips += b.B
			}
			c := l.Counts()
			if c.BadEpisodes == 0 || int64(clips) != c.Clips || c.Clips+c.BadEpisodes != 3 {
				t.Fatalf("%d clips, counts %+v: want the bad episodes counted and the rest giving clips", clips, c)
			}
			if len(warnings) == 0 || !strings.Contains(strings.Join(warnings, "\n"), tc.want) {
				t.Fatalf("warnings %q, want one containing %q", warnings, tc.want)
			}
		})
	}
}

// TestWriteDemo writes both layouts with parquet-go and FFmpeg (make-demo-data --format lerobot) and
// reads them back.
func TestWriteDemo(t *testing.T) {
	needFFmpeg(t)
	if testing.Short() {
		t.Skip("renders and encodes a dataset")
	}
	for _, v := range []string{"v2.1", "v3.0"} {
		t.Run("version="+v, func(t *testing.T) {
			dir := t.TempDir()
			cfg := DemoConfig{Version: v, Episodes: 2, Steps: 12, Seed: 5, Codec: "h264", Width: 160, Height: 90, ImageCamera: v == "v2.1"}
			if err := WriteDemo(dir, cfg); err != nil {
				t.Fatal(err)
			}
			ds := open(t, dir, Mapping{})
			eps := eachEpisode(t, ds)
			if len(eps) != 2 || eps[1].Info().Steps != 12 {
				t.Fatalf("%d episodes", len(eps))
			}
			// LeRobot's statistics: meta/stats.json, and per episode in v2.1.
			if n := open(t, dir, Mapping{Normalize: "mean_std"}).Normalization(); n.Source != StatsFile || n.State.Count != 24 {
				t.Fatalf("statistics from %s over %d rows, want %s over 24", n.Source, n.State.Count, StatsFile)
			}
			if _, err := os.Stat(filepath.Join(dir, EpisodesStatsFile)); (err == nil) != (v == "v2.1") {
				t.Fatalf("%s: %v (want it in v2.1 only)", EpisodesStatsFile, err)
			}
			pre, _ := data.NewPreprocessor(data.ImageConfig{Height: 16, Width: 16, MinRatio: 0.75, MaxRatio: 1.35})
			clip, err := eps[1].MakeClip(clipConfig(DemoVideoKey, 2), data.DefaultFilterConfig(), nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := eps[1].DecodeClip(context.Background(), pre, make([]float32, 3*2*16*16), clip); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestCheck: data check's statistics cover every row of every episode, read from the parquet columns
// (raw vectors with their action reduction, or the ee_pose conversion), and a corrupt video among the
// clips decoded together is reported under its own episode.
func TestCheck(t *testing.T) {
	needFFmpeg(t)
	fx := fixtures[0]
	dcfg := data.DefaultDemoConfig()
	dcfg.Steps, dcfg.Seed = fx.steps, fx.seed
	pre, err := data.NewPreprocessor(data.ImageConfig{Height: 16, Width: 16, MinRatio: 0.75, MaxRatio: 1.35})
	if err != nil {
		t.Fatal(err)
	}
	cfg := clipConfig(DemoVideoKey, 4) // stride 4 at 15 fps
	// want gives each row's expected state and the action from it to the row 4 later (nil past the end).
	check := func(t *testing.T, dir string, m Mapping, want func(states []data.State, tr data.DemoTrajectory, i int) (state, action []float64)) *data.CheckReport {
		r, err := data.Check(context.Background(), open(t, dir, m), cfg, pre, 0)
		if err != nil {
			t.Fatal(err)
		}
		var mean, lo, hi [2][]float64
		n := [2]int{}
		for e := range fx.episodes {
			tr := data.NewDemoTrajectory(dcfg, e)
			states := tr.States()
			for i := range states {
				s, a := want(states, tr, i)
				for p, v := range [][]float64{s, a} {
					if v == nil {
						continue
					}
					if mean[p] == nil {
						mean[p], lo[p], hi[p] = make([]float64, len(v)), slices.Clone(v), slices.Clone(v)
					}
					for k, x := range v {
						mean[p][k] += x
						lo[p][k], hi[p][k] = min(lo[p][k], x), max(hi[p][k], x)
					}
					n[p]++
				}
			}
		}
		for p, got := range [][]data.DimStats{r.States, r.Actions} {
			if len(got) != len(mean[p]) {
				t.Fatalf("%d dimensions, want %d", len(got), len(mean[p]))
			}
			for k, g := range got {
				if w := mean[p][k] / float64(n[p]); math.Abs(g.Mean-w) > 1e-9 || g.Min != lo[p][k] || g.Max != hi[p][k] {
					t.Errorf("vector %d dim %d: mean %v min %v max %v, want %v %v %v over every row", p, k, g.Mean, g.Min, g.Max, w, lo[p][k], hi[p][k])
				}
			}
		}
		if r.StatsOver != "rows" || r.Episodes != fx.episodes || r.Frames != fx.episodes*fx.steps {
			t.Errorf("stats over %q, %d episodes, %d frames; want rows, %d, %d", r.StatsOver, r.Episodes, r.Frames, fx.episodes, fx.episodes*fx.steps)
		}
		return r
	}
	f32 := func(v float64) float64 { return float64(float32(v)) }
	t.Run("reduce=sum", func(t *testing.T) {
		r := check(t, fx.dir, Mapping{ActionReduce: "sum"}, func(states []data.State, tr data.DemoTrajectory, i int) ([]float64, []float64) {
			j := tr.Joints(i)
			s := []float64{f32(j[0]), f32(j[1]), f32(j[2]), f32(j[3]), f32(j[4]), f32(states[i][6])}
			if i+4 >= len(states) {
				return s, nil
			}
			a := make([]float64, 4)
			for r := i; r < i+4; r++ {
				for k, c := range []int{0, 1, 2, 6} {
					a[k] += f32(states[r+1][c] - states[r][c])
				}
			}
			return s, a
		})
		if r.Clips != fx.episodes || r.Counts != (data.CheckCounters{}) {
			t.Errorf("%d clips, counts %+v; want %d and no problems", r.Clips, r.Counts, fx.episodes)
		}
	})
	t.Run("convert=ee_pose", func(t *testing.T) {
		check(t, fx.dir, Mapping{State: "observation.ee_pose", Convert: "ee_pose"}, func(states []data.State, _ data.DemoTrajectory, i int) ([]float64, []float64) {
			pose := func(i int) data.State {
				var p data.State
				for k := range p {
					p[k] = f32(states[i][k])
				}
				return p
			}
			p := pose(i)
			if i+4 >= len(states) {
				return p[:], nil
			}
			a := data.StatesToActions([]data.State{p, pose(i + 4)})[0]
			return p[:], a[:]
		})
	})
	t.Run("corrupt video", func(t *testing.T) {
		dir := copyFixture(t, fx.dir)
		p := filepath.Join(dir, "videos/chunk-000", DemoVideoKey, "episode_000001.mp4")
		b, _ := os.ReadFile(p)
		for i := 0; i < len(b); i += 7 {
			b[i] ^= 0x5a
		}
		os.WriteFile(p, b, 0o644)
		r, err := data.Check(context.Background(), open(t, dir, Mapping{}), cfg, pre, 0)
		if err != nil {
			t.Fatal(err)
		}
		if r.Clips != 2 || len(r.DecodeErrors) != 1 || !strings.Contains(r.DecodeErrors[0], "episode_000001.parquet") || !strings.Contains(r.DecodeErrors[0], "episode_000001.mp4") {
			t.Fatalf("%d clips, decode failures %q; want 2 and one naming episode 1's parquet and mp4", r.Clips, r.DecodeErrors)
		}
	})
}

// TestNormalize: lerobot.normalize normalizes the state and action columns with the statistics the
// demo writer stores as LeRobot does (meta/stats.json; v2.1's per-episode meta/episodes_stats.jsonl,
// aggregated as LeRobot's aggregate_stats when stats.json is missing), and bad statistics are refused
// with the file and the field.
func TestNormalize(t *testing.T) {
	dir := fixtures[0].dir // v2.1: meta/stats.json and meta/episodes_stats.jsonl
	raw := eachEpisode(t, open(t, dir, Mapping{}))
	for _, mode := range []string{"mean_std", "min_max"} {
		t.Run("mode="+mode, func(t *testing.T) {
			ds := open(t, dir, Mapping{Normalize: mode})
			n := ds.Normalization()
			if n == nil || n.Mode != mode || n.Source != StatsFile || n.State.Column != "observation.state" || n.Action.Column != "action" || n.State.Count != 72 {
				t.Fatalf("normalization %+v, want %s from %s over 72 rows", n, mode, StatsFile)
			}
			norm := func(x float64, st FeatureStats, k int) float64 {
				if mode == "min_max" {
					return 2*(x-st.Min[k])/(st.Max[k]-st.Min[k]+1e-8) - 1
				}
				return (x - st.Mean[k]) / (st.Std[k] + 1e-8)
			}
			var sum, sq float64
			rows := 0
			for e, ep := range eachEpisode(t, ds) {
				got, want := ep.(*episode), raw[e].(*episode)
				for i := range want.hi - want.lo {
					for k, x := range want.stateRow(i) {
						if g := got.stateRow(i)[k]; g != norm(x, n.State.FeatureStats, k) {
							t.Fatalf("episode %d row %d state[%d] = %v, want %v", e, i, k, g, norm(x, n.State.FeatureStats, k))
						}
					}
					for k, x := range want.actionRow(i) {
						if g := got.actionRow(i)[k]; g != norm(x, n.Action.FeatureStats, k) {
							t.Fatalf("episode %d row %d action[%d] = %v, want %v", e, i, k, g, norm(x, n.Action.FeatureStats, k))
						}
					}
					sum += got.stateRow(i)[0]
					sq += got.stateRow(i)[0] * got.stateRow(i)[0]
					rows++
				}
			}
			if mean, std := sum/float64(rows), math.Sqrt(sq/float64(rows)-sum*sum/float64(rows*rows)); mode == "mean_std" && (math.Abs(mean) > 1e-6 || math.Abs(std-1) > 1e-6) {
				t.Errorf("normalized state[0]: mean %v std %v over every row, want 0 and 1", mean, std)
			}
		})
	}
	t.Run("source=episodes_stats", func(t *testing.T) {
		want := open(t, dir, Mapping{Normalize: "mean_std"}).Normalization()
		v21 := copyFixture(t, dir)
		os.Remove(filepath.Join(v21, StatsFile))
		got := open(t, v21, Mapping{Normalize: "mean_std"}).Normalization()
		if got.Source != EpisodesStatsFile || got.State.Count != want.State.Count {
			t.Fatalf("statistics from %s over %d rows, want %s over %d", got.Source, got.State.Count, EpisodesStatsFile, want.State.Count)
		}
		for _, f := range [][2]FeatureStats{{got.State.FeatureStats, want.State.FeatureStats}, {got.Action.FeatureStats, want.Action.FeatureStats}} {
			for k := range f[1].Mean {
				if math.Abs(f[0].Mean[k]-f[1].Mean[k]) > 1e-12 || math.Abs(f[0].Std[k]-f[1].Std[k]) > 1e-9*(1+f[1].Std[k]) || f[0].Min[k] != f[1].Min[k] || f[0].Max[k] != f[1].Max[k] {
					t.Fatalf("dim %d aggregated from the episodes: %v %v %v %v, over every row: %v %v %v %v", k,
						f[0].Mean[k], f[0].Std[k], f[0].Min[k], f[0].Max[k], f[1].Mean[k], f[1].Std[k], f[1].Min[k], f[1].Max[k])
				}
			}
		}
	})
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, dir string)
		m      Mapping
		want   string
	}{
		{"width", func(t *testing.T, dir string) {
			editFile(t, filepath.Join(dir, StatsFile), `"observation.state": {
        "count": [
            72
        ],
        "max": [`, `"observation.state": {
        "count": [
            72
        ],
        "max": [
            1,`)
		}, Mapping{Normalize: "min_max"}, "meta/stats.json: observation.state.max: 7 values, want 6"},
		{"no statistics", func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, StatsFile))
			os.Remove(filepath.Join(dir, EpisodesStatsFile))
		}, Mapping{Normalize: "mean_std"}, "lerobot.normalize mean_std needs statistics: no meta/stats.json or meta/episodes_stats.jsonl"},
		{"ee_pose", nil, Mapping{State: "observation.ee_pose", Convert: "ee_pose", Normalize: "mean_std"}, "lerobot.normalize: must be \"\" with convert: ee_pose"},
		{"mode", nil, Mapping{Normalize: "z"}, `lerobot.normalize: must be "", mean_std or min_max, got "z"`},
	} {
		t.Run("err="+tc.name, func(t *testing.T) {
			bad := copyFixture(t, dir)
			if tc.damage != nil {
				tc.damage(t, bad)
			}
			_, err := Open(context.Background(), data.NewDirSource(bad), Options{Mapping: tc.m})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}
