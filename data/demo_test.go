package data

import (
	"bytes"
	"context"
	"image/jpeg"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// schemaWidths is the DROID RLDS schema (droid-rlds §1): values per step of every key, 0 for
// episode-level keys, −1 for one JPEG per step.
var schemaWidths = map[string]int{
	KeyFilePath: 0, KeyRecordingFolder: 0,
	KeyIsFirst: 1, KeyIsLast: 1, KeyIsTerminal: 1, KeyReward: 1, KeyDiscount: 1,
	KeyLanguage1: 1, KeyLanguage2: 1, KeyLanguage3: 1,
	KeyAction: 7, KeyActCartesianPos: 6, KeyActCartesianVel: 6, KeyActGripperPos: 1, KeyActGripperVel: 1,
	KeyActJointPos: 7, KeyActJointVel: 7,
	KeyObsCartesianPos: 6, KeyObsGripperPos: 1, KeyObsJointPos: 7,
	KeyObsExteriorImage1: -1, KeyObsExteriorImage2: -1, KeyObsWristImage: -1,
}

// TestDemoSampleSchema checks the committed sample against the schema: every key with the right kind
// and length, metadata files that agree with the shards, decodable 180×320 JPEGs.
func TestDemoSampleSchema(t *testing.T) {
	var leaves []string
	b, err := os.ReadFile(filepath.Join(sampleDir, FeaturesFile))
	if err != nil {
		t.Fatal(err)
	}
	features, err := ParseFeatures(b)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range features {
		leaves = append(leaves, f.Key)
	}
	var keys []string
	for k := range schemaWidths {
		keys = append(keys, k)
	}
	sort.Strings(leaves)
	sort.Strings(keys)
	if strings.Join(leaves, ",") != strings.Join(keys, ",") {
		t.Fatalf("features.json leaves\n%v\nwant\n%v", leaves, keys)
	}
	for i, ep := range sampleEpisodes(t) {
		T := ep.Steps
		if got := ep.Example.Keys(); len(got) != len(schemaWidths) {
			t.Fatalf("episode %d keys %v", i, got)
		}
		for key, width := range schemaWidths {
			f := mustFeature(t, ep.Example, key)
			n, err := f.Len()
			if err != nil {
				t.Fatal(err)
			}
			want := width * T
			if width <= 0 {
				want = max(-width*T, 1)
			}
			if n != want {
				t.Fatalf("episode %d %s: %d values, want %d", i, key, n, want)
			}
		}
		first, _ := mustFeature(t, ep.Example, KeyIsFirst).Int64s()
		last, _ := mustFeature(t, ep.Example, KeyIsLast).Int64s()
		reward, _ := mustFeature(t, ep.Example, KeyReward).Floats()
		if first[0] != 1 || last[T-1] != 1 || first[1] != 0 || last[0] != 0 {
			t.Fatalf("episode %d: is_first %v is_last %v", i, first, last)
		}
		if wantR := map[bool]float32{true: 1, false: 0}[ep.Success()]; reward[T-1] != wantR {
			t.Fatalf("episode %d (%s): final reward %v", i, ep.FilePath, reward[T-1])
		}
		// steps/action is action_dict cartesian_position ++ gripper_position (droid PR #77).
		act, _ := mustFeature(t, ep.Example, KeyAction).Floats()
		cart, _ := mustFeature(t, ep.Example, KeyActCartesianPos).Floats()
		grip, _ := mustFeature(t, ep.Example, KeyActGripperPos).Floats()
		for s := range T {
			for k := range 6 {
				if act[7*s+k] != cart[6*s+k] {
					t.Fatalf("episode %d step %d: action[%d] %v != cartesian %v", i, s, k, act[7*s+k], cart[6*s+k])
				}
			}
			if act[7*s+6] != grip[s] {
				t.Fatalf("episode %d step %d: action gripper %v != %v", i, s, act[7*s+6], grip[s])
			}
		}
		for _, cam := range []string{CameraExterior1, CameraExterior2, CameraWrist} {
			fb, err := ep.Frame(cam, T/2)
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := jpeg.DecodeConfig(bytes.NewReader(fb))
			if err != nil || cfg.Width != 320 || cfg.Height != 180 {
				t.Fatalf("episode %d %s: %+v, %v", i, cam, cfg, err)
			}
		}
	}
}

// TestDemoRendersPose: the gripper sphere is drawn where the recorded end-effector position projects
// into exterior camera 1, green while open and blue while closed, at every step of episode 0.
func TestDemoRendersPose(t *testing.T) {
	ep := sampleEpisodes(t)[0]
	states, err := ep.States()
	if err != nil {
		t.Fatal(err)
	}
	cam := newDemoRenderer().exterior[0]
	for s, st := range states {
		v := sub(vec3{st[0], st[1], st[2]}, cam.eye)
		z := dot(v, cam.forward)
		px := int(dot(v, cam.right)/z*cam.focal + demoWidth/2)
		py := int(dot(v, cam.down)/z*cam.focal + demoHeight/2)
		fb, err := ep.Frame(CameraExterior1, s)
		if err != nil {
			t.Fatal(err)
		}
		img, err := jpeg.Decode(bytes.NewReader(fb))
		if err != nil {
			t.Fatal(err)
		}
		r, g, b, _ := img.At(px, py).RGBA()
		r, g, b = r>>8, g>>8, b>>8
		switch grip := st[6]; {
		case grip < 0.2 && !(g > r+40 && g > b+20):
			t.Fatalf("step %d: open gripper at pixel (%d, %d) is rgb(%d, %d, %d), want green", s, px, py, r, g, b)
		case grip > 0.55 && !(b > r+40 && b > g):
			t.Fatalf("step %d: closed gripper at pixel (%d, %d) is rgb(%d, %d, %d), want blue", s, px, py, r, g, b)
		}
	}
}

// TestDemoDeterministic writes a small dataset twice: the files are identical and readable, and the
// demo roles come out as documented.
func TestDemoDeterministic(t *testing.T) {
	if testing.Short() {
		t.Skip("renders 2 × 48 frames")
	}
	cfg := DemoConfig{Name: "tiny", Episodes: 2, Steps: 8, Shards: 2, Seed: 5, JPEGQuality: 50}
	a, b := t.TempDir(), t.TempDir()
	for _, dir := range []string{a, b} {
		if err := WriteDemoDataset(dir, cfg); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{DatasetInfoFile, "features.json", "tiny-train.tfrecord-00000-of-00002", "tiny-train.tfrecord-00001-of-00002"} {
		x, err1 := os.ReadFile(filepath.Join(a, name))
		y, err2 := os.ReadFile(filepath.Join(b, name))
		if err1 != nil || err2 != nil || !bytes.Equal(x, y) {
			t.Fatalf("%s differs between two runs (%v, %v)", name, err1, err2)
		}
	}
	opts := InspectOptions{Split: "train", Clip: ClipConfig{Frames: 3, FPS: 7.5, SourceFPS: 15, Camera: CameraWrist}}
	var reps []*EpisodeReport
	sum, err := InspectEpisodes(context.Background(), NewDirSource(a), opts, func(r *EpisodeReport) error {
		reps = append(reps, r)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Clips != 2 || len(reps) != 2 || reps[0].Steps != 8 || !reps[0].Success || !reps[1].Success {
		t.Fatalf("summary %+v, reports %+v", sum, reps)
	}
	if err := WriteDemoDataset(t.TempDir(), DemoConfig{Episodes: 1, Steps: 16, Shards: 2}); err == nil {
		t.Fatal("more shards than episodes accepted")
	}
}
