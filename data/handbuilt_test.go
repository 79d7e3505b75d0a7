package data

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/droid_sample/handbuilt from the hand-built episodes")

// handbuiltDir holds a DROID-format dataset written the way a foreign tool might: Examples built by
// altExample (unpacked lists, shuffled and split maps, unknown fields), r2d2_faceblur shard names, no
// dataset_info.json (shards are found by listing), one episode without steps/is_first, one corrupt
// record and a truncated tail. Regenerate with go test ./data -run TestHandBuiltFixture -update.
const handbuiltDir = "../testdata/droid_sample/handbuilt"

type handbuiltEpisode struct {
	steps     int
	success   bool
	noIsFirst bool
	frame     []byte // every camera frame; nil: tinyJPEG shades
}

// The layout of the fixture: shard 0 holds A (36 steps, success) and B (20 steps, failure, short);
// shard 1 holds a corrupt record, then C (40 steps, success, no is_first), then a truncated record.
var handbuiltShards = [][]handbuiltEpisode{
	{{steps: 36, success: true}, {steps: 20}},
	{{steps: 40, success: true, noIsFirst: true}},
}

// handbuiltState is the state of episode e at step t: roll crosses the ±π seam, yaw turns, the
// gripper closes. Values are exact in float32 so the test can compare bit for bit.
func handbuiltState(e, t int) State {
	f := func(v float64) float64 { return float64(float32(v)) }
	roll := math.Pi - 0.02 + 0.004*float64(t)
	if roll > math.Pi {
		roll -= 2 * math.Pi
	}
	return State{f(0.4 + 0.005*float64(t)), f(-0.1 + 0.003*float64(t*e)), f(0.3 - 0.002*float64(t)),
		f(roll), f(0.01 * float64(e)), f(0.02 * float64(t)), f(min(float64(t)/20, 1))}
}

func tinyJPEG(t testing.TB, shade uint8) []byte {
	img := image.NewRGBA(image.Rect(0, 0, 16, 12))
	for i := 0; i < len(img.Pix); i += 4 {
		img.Pix[i], img.Pix[i+1], img.Pix[i+2], img.Pix[i+3] = shade, 255-shade, 128, 255
	}
	img.SetRGBA(0, 0, color.RGBA{0, 0, 0, 255})
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 50}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func handbuiltExample(t testing.TB, e int, spec handbuiltEpisode) []byte {
	T := spec.steps
	a := newAltExample(uint64(e))
	outcome := "failure"
	if spec.success {
		outcome = "success"
	}
	a.strings(KeyFilePath, fmt.Sprintf("/r2d2-data-full/HAND/%s/2023-07-0%d/Mon_Jul__%d_10:00:00_2023/trajectory.h5", outcome, e+1, e+1))
	a.strings(KeyRecordingFolder, "/r2d2-data-full/HAND/recordings/MP4")
	var pose, grip, jv, first []float32
	var isFirst []int64
	var cams [3][][]byte
	var lang []string
	for s := range T {
		st := handbuiltState(e, s)
		for k := range 6 {
			pose = append(pose, float32(st[k]))
		}
		grip = append(grip, float32(st[6]))
		for j := range 7 {
			jv = append(jv, float32(0.1*math.Sin(float64(s+j)))) // changes every step: never idle
		}
		isFirst = append(isFirst, b2i(s == 0))
		first = append(first, 1)
		for c := range cams {
			if spec.frame != nil {
				cams[c] = append(cams[c], spec.frame)
				continue
			}
			cams[c] = append(cams[c], tinyJPEG(t, uint8(40*c+s)))
		}
		lang = append(lang, "stack the cups")
	}
	a.floats(KeyObsCartesianPos, pose...)
	a.floats(KeyObsGripperPos, grip...)
	a.floats(KeyActJointVel, jv...)
	a.floats(KeyDiscount, first...)
	if !spec.noIsFirst {
		a.int64s(KeyIsFirst, isFirst...)
	}
	a.strings(KeyLanguage1, lang...)
	a.bytes(KeyObsExteriorImage1, cams[0]...)
	a.bytes(KeyObsExteriorImage2, cams[1]...)
	a.bytes(KeyObsWristImage, cams[2]...)
	return a.marshal()
}

// handbuiltFiles returns the fixture's shard files.
func handbuiltFiles(t testing.TB) map[string][]byte {
	files := map[string][]byte{}
	e := 0
	for s, eps := range handbuiltShards {
		var shard []byte
		if s == 1 {
			bad := AppendRecord(nil, []byte("this record's data crc is broken"))
			bad[len(bad)-1] ^= 1
			shard = append(shard, bad...)
		}
		for _, spec := range eps {
			shard = AppendRecord(shard, handbuiltExample(t, e, spec))
			e++
		}
		if s == 1 {
			tail := AppendRecord(nil, make([]byte, 100))
			shard = append(shard, tail[:40]...)
		}
		files[fmt.Sprintf("r2d2_faceblur-train.tfrecord-%05d-of-%05d", s, len(handbuiltShards))] = shard
	}
	return files
}

func TestHandBuiltFixture(t *testing.T) {
	files := handbuiltFiles(t)
	if *update {
		if err := os.MkdirAll(handbuiltDir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, b := range files {
			if err := os.WriteFile(filepath.Join(handbuiltDir, name), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	for name, want := range files {
		got, err := os.ReadFile(filepath.Join(handbuiltDir, name))
		if err != nil {
			t.Fatalf("%v (run go test ./data -run TestHandBuiltFixture -update)", err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("%s differs from its generator (run go test ./data -run TestHandBuiltFixture -update)", name)
		}
	}

	opts := InspectOptions{Split: "train", Clip: DefaultClipConfig(), Filter: DefaultFilterConfig()}
	opts.Clip.Start = 2
	var warnings []error
	opts.Warn = func(err error) { warnings = append(warnings, err) }
	var reports []*EpisodeReport
	sum, err := InspectEpisodes(context.Background(), NewDirSource(handbuiltDir), opts, func(r *EpisodeReport) error {
		reports = append(reports, r)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := Counts{Records: 3, CorruptRecords: 1, TruncatedShards: 1, Episodes: 3, ShortEpisodes: 1, Clips: 2}
	if sum.Counts != want || sum.Shards != 2 {
		t.Fatalf("summary %+v, want %d shards and %+v", sum, 2, want)
	}
	if len(warnings) != 2 || !errors.Is(warnings[0], ErrDataCRC) || !errors.Is(warnings[1], ErrTruncated) {
		t.Fatalf("warnings %v, want a data crc mismatch and a truncation", warnings)
	}
	type wantReport struct {
		shard, index, steps int
		success             bool
		clip                bool
	}
	wants := []wantReport{{0, 0, 36, true, true}, {0, 1, 20, false, false}, {1, 1, 40, true, true}}
	if len(reports) != len(wants) {
		t.Fatalf("%d reports, want %d", len(reports), len(wants))
	}
	for i, w := range wants {
		r := reports[i]
		name := fmt.Sprintf("r2d2_faceblur-train.tfrecord-%05d-of-00002", w.shard)
		if r.Shard != name || r.Index != w.index || r.Steps != w.steps || r.Success != w.success || (r.Clip != nil) != w.clip {
			t.Fatalf("report %d = %+v, want %+v", i, r, w)
		}
		if r.Instruction != "stack the cups" {
			t.Fatalf("report %d instruction %q", i, r.Instruction)
		}
		if !w.clip {
			if r.NoClip == nil || r.NoClip.Reason != SkipShort {
				t.Fatalf("report %d: no_clip %+v, want short", i, r.NoClip)
			}
			continue
		}
		e := i
		var states []State
		for k := range 8 {
			idx := 2 + 4*k
			if r.Clip.Indices[k] != idx {
				t.Fatalf("report %d: indices %v, want 2, 6, …, 30", i, r.Clip.Indices)
			}
			states = append(states, handbuiltState(e, idx))
		}
		for k := range states {
			if !slices.Equal(r.Clip.States[k], states[k][:]) {
				t.Fatalf("report %d: state %d = %v, want %v", i, k, r.Clip.States[k], states[k])
			}
		}
		for k, a := range StatesToActions(states) {
			if !slices.Equal(r.Clip.Actions[k], a[:]) {
				t.Fatalf("report %d: action %d = %v, want %v", i, k, r.Clip.Actions[k], a)
			}
		}
	}
}
