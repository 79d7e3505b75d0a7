package train_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/vjepa-vk/vjepa-vk/train"
	"github.com/vjepa-vk/vjepa-vk/vk/vktest"
)

// TestVerifyFixture runs every golden fixture folder (official PyTorch outputs in float64, stored f32) on
// the device in fp32: predictor forward, teacher-forcing and rollout outputs and losses, LoRA gradients,
// and the encoder. Tolerances are the verify contract's (relative 1e-3 tensors, 1e-4 losses).
func TestVerifyFixture(t *testing.T) {
	d := vktest.Device(t)
	dirs, _ := filepath.Glob("../testdata/fixtures/*/case.json")
	if len(dirs) < 2 {
		t.Fatalf("found %d fixture folders under testdata/fixtures, want the shared ac_tiny and enc_tiny at least", len(dirs))
	}
	for _, cj := range dirs {
		dir := filepath.Dir(cj)
		t.Run(filepath.Base(dir), func(t *testing.T) {
			rep, err := train.VerifyFixture(d, dir)
			if err != nil {
				t.Fatal(err)
			}
			worst, name := 0.0, ""
			for k, r := range rep.Results {
				if r.MaxRel > worst {
					worst, name = r.MaxRel, k
				}
				if !r.OK {
					t.Errorf("%s: %s: max rel err %.3g, max abs err %.3g: over the tolerance %.0g (absolute: %v)", dir, k, r.MaxRel, r.MaxAbs, r.Tol, r.Abs)
				}
			}
			t.Logf("%d outputs, worst %s at rel %.3g", len(rep.Results), name, worst)
		})
	}
}

// TestVerifyFixtureBadInput checks that a broken fixture folder is a clear error, not a panic.
func TestVerifyFixtureBadInput(t *testing.T) {
	d := vktest.Device(t)
	dir := t.TempDir()
	if _, err := train.VerifyFixture(d, dir); err == nil {
		t.Fatal("empty folder: no error")
	}
	if err := os.WriteFile(filepath.Join(dir, "case.json"), []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := train.VerifyFixture(d, dir); err == nil {
		t.Fatal("bad case.json: no error")
	}
}
