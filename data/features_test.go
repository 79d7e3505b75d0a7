package data

import (
	"context"
	"fmt"
	"image"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
)

// TestParseFeatures reads the committed sample's features.json (TFDS's FeaturesDict JSON for the DROID
// schema): every leaf under its flattened Example key, with kind and shape.
func TestParseFeatures(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(sampleDir, FeaturesFile))
	if err != nil {
		t.Fatal(err)
	}
	feats, err := ParseFeatures(b)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]FeatureSpec{}
	for _, f := range feats {
		got[f.Key] = f
	}
	if len(got) != len(schemaWidths) {
		t.Errorf("%d leaves, want the %d keys of the schema", len(got), len(schemaWidths))
	}
	for key := range schemaWidths {
		if _, ok := got[key]; !ok {
			t.Errorf("no leaf %s", key)
		}
	}
	for key, want := range map[string]string{
		KeyObsExteriorImage1: "image uint8 [180 320 3]",
		KeyAction:            "tensor float64 [7]",
		KeyIsFirst:           "tensor bool []",
		KeyLanguage1:         "text  []",
	} {
		f := got[key]
		if s := strings.TrimSpace(f.Kind + " " + f.DType + " " + fmt.Sprint(f.Shape)); s != want {
			t.Errorf("%s: %q, want %q", key, s, want)
		}
	}
}

func TestParseFeaturesErrors(t *testing.T) {
	for _, c := range []struct{ json, want string }{
		{`{`, "data: parse features.json: unexpected end of JSON input"},
		{`{"featuresDict": {"features": {"steps": {"sequence": {"feature": {"featuresDict": {"features": {"img": {"image": {"shape": {"dimensions": ["180", "x", "3"]}}}}}}}}}}}`,
			`data: parse features.json: steps/img: shape.dimensions[1] = "x", want an integer >= -1`},
		{`{"featuresDict": {"features": {"odd": {"pythonClassName": "Mystery"}}}}`, "odd: no featuresDict, sequence, image, tensor or text"},
	} {
		if _, err := ParseFeatures([]byte(c.json)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("ParseFeatures(%s): %v, want %q", c.json, err, c.want)
		}
	}
}

// TestFrameSizes: the sample declares 320×180 for its three cameras; a source without features.json
// declares nothing; an image of varying size (-1) is not a declaration.
func TestFrameSizes(t *testing.T) {
	ctx := context.Background()
	sizes, err := FrameSizes(ctx, NewDirSource(sampleDir))
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{KeyObsExteriorImage1, KeyObsExteriorImage2, KeyObsWristImage} {
		if sizes[k] != image.Pt(320, 180) {
			t.Errorf("%s: %v, want (320,180)", k, sizes[k])
		}
	}
	if len(sizes) != 3 {
		t.Errorf("%d sizes, want the 3 cameras: %v", len(sizes), sizes)
	}
	if sizes, err := FrameSizes(ctx, &FSSource{FS: fstest.MapFS{}, Name: "empty"}); sizes != nil || err != nil {
		t.Errorf("no features.json: %v, %v; want nil, nil", sizes, err)
	}
	varying := `{"featuresDict": {"features": {"img": {"image": {"shape": {"dimensions": ["-1", "-1", "3"]}}}}}}`
	src := &FSSource{FS: fstest.MapFS{FeaturesFile: {Data: []byte(varying)}}, Name: "mem"}
	if sizes, err := FrameSizes(ctx, src); len(sizes) != 0 || err != nil {
		t.Errorf("varying size: %v, %v; want no declaration", sizes, err)
	}
	src = &FSSource{FS: fstest.MapFS{FeaturesFile: {Data: []byte("{")}}, Name: "mem"}
	if _, err := FrameSizes(ctx, src); err == nil || !strings.Contains(err.Error(), "features.json") || !strings.Contains(err.Error(), "(in mem)") {
		t.Errorf("broken features.json: %v, want an error naming the file and the source", err)
	}
}
