package main

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/vjepa-vk/vjepa-vk/model"
)

const viewsPT = "../../model/testdata/torch_views.pt"

func TestConvert(t *testing.T) {
	src, err := model.OpenTorch(viewsPT)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	want, err := src.StateDict("module")
	if err != nil {
		t.Fatal(err)
	}
	for _, dtype := range []string{"", "f32", "f16", "bf16"} {
		t.Run("dtype="+dtype, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "m.safetensors")
			args := []string{viewsPT, out, "--key", "module"}
			if dtype != "" {
				args = append(args, "--dtype", dtype)
			}
			if err := runConvert(context.Background(), args); err != nil {
				t.Fatal(err)
			}
			st, err := model.OpenSafetensors(out)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			wantType := model.DTypeF32
			if dtype != "" {
				wantType, _ = model.ParseDType(dtype)
			}
			if len(st.Tensors()) != len(want) {
				t.Fatalf("%d tensors, want %d", len(st.Tensors()), len(want))
			}
			for i, got := range st.Tensors() {
				w := want[i]
				gi := got.Info()
				if gi.Name != w.Name || gi.DType != wantType || !slices.Equal(gi.Shape, w.Shape) {
					t.Errorf("tensor %d: %s %v %v, want %s %v %v", i, gi.Name, gi.DType, gi.Shape, w.Name, wantType, w.Shape)
				}
				src, _ := w.ReadFloat32()
				enc, _ := model.EncodeFloat32(wantType, src)
				if !slices.Equal(got.Bytes(), enc) {
					t.Errorf("%s: bytes differ from EncodeFloat32(%v, torch values)", gi.Name, wantType)
				}
			}
			for k, v := range map[string]string{"epoch": "7", "loss": "0.25", "name": "run-1", "flag": "true", "key": "module", "source": "torch_views.pt", "format": "pt"} {
				if st.Metadata[k] != v {
					t.Errorf("metadata %s = %q, want %q", k, st.Metadata[k], v)
				}
			}
		})
	}
}

func TestConvertAll(t *testing.T) {
	out := filepath.Join(t.TempDir(), "all.safetensors")
	if err := runConvert(context.Background(), []string{viewsPT, out}); err != nil {
		t.Fatal(err)
	}
	st, err := model.OpenSafetensors(out)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	// Every state_dict, prefixed by its key, names cleaned (module./backbone. removed), views gathered.
	if n := len(st.Tensors()); n != 7+7+300+4+4 {
		t.Errorf("%d tensors, want 322", n)
	}
	for name, want := range map[string][]float32{
		"many.blocks.299.w": {598, 599},
		"views.expand":      {0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3},
		"views.elem":        {47},
	} {
		tt, ok := st.Tensor(name)
		if !ok {
			t.Errorf("%s: missing", name)
			continue
		}
		if got, _ := tt.ReadFloat32(); !slices.Equal(got, want) {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	// The loader reads one key of the converted file back.
	sd, err := model.OpenStateDict(out, "many")
	if err != nil {
		t.Fatal(err)
	}
	defer sd.Close()
	if len(sd.Names) != 300 || sd.Names[0] != "blocks.0.w" {
		t.Errorf("OpenStateDict(many): %d names, first %q", len(sd.Names), sd.Names[0])
	}
}

// TestConvertBareStateDict converts a file that is a state_dict itself, as torch.save(model.state_dict())
// writes it (torch_dtypes.pt: a dict of tensors written by torch), with no flag: the tensors keep their
// names, unprefixed, and their stored types and bytes.
func TestConvertBareStateDict(t *testing.T) {
	const in = "../../model/testdata/torch_dtypes.pt"
	out := filepath.Join(t.TempDir(), "sd.safetensors")
	if err := runConvert(context.Background(), []string{in, out}); err != nil {
		t.Fatal(err)
	}
	src, err := model.OpenTorch(in)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	want, err := src.StateDict("")
	if err != nil {
		t.Fatal(err)
	}
	st, err := model.OpenSafetensors(out)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if len(st.Tensors()) != len(want) {
		t.Fatalf("%d tensors, want %d", len(st.Tensors()), len(want))
	}
	for _, w := range want {
		got, ok := st.Tensor(w.Name)
		if !ok {
			t.Errorf("%s: missing", w.Name)
			continue
		}
		raw, _ := w.ReadRaw()
		if gi := got.Info(); gi.DType != w.Info().DType || !slices.Equal(gi.Shape, w.Shape) || !slices.Equal(got.Bytes(), raw) {
			t.Errorf("%s: %v %v, want %v %v and the stored bytes", w.Name, gi.DType, gi.Shape, w.Info().DType, w.Shape)
		}
	}
}

// TestConvertLegacyFormat gives convert a file in torch.save's legacy format (PyTorch < 1.6): its header
// is the pickled magic number, and the error must say that format is not supported and how to re-save.
func TestConvertLegacyFormat(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "old.pt")
	// pickle.dumps(0x1950a86a20f9469cfc6c, protocol=2), then what legacy torch.save writes after it.
	legacy := []byte("\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.\x80\x02M\xe9\x03.")
	if err := os.WriteFile(in, legacy, 0o644); err != nil {
		t.Fatal(err)
	}
	err := runConvert(context.Background(), []string{in, filepath.Join(dir, "out.safetensors")})
	for _, want := range []string{in, "legacy torch.save format", "PyTorch < 1.6", "not supported", "torch.save(torch.load(path), path)"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("convert of a legacy file: %v, want an error containing %q", err, want)
		}
	}
	// A bare pickle (pickle.dump of a dict) is not a torch.save archive either.
	if err := os.WriteFile(in, []byte("\x80\x04\x95\x05\x00\x00\x00\x00\x00\x00\x00}\x94."), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := runConvert(context.Background(), []string{in, filepath.Join(dir, "out.safetensors")}); err == nil || !strings.Contains(err.Error(), "a plain pickle") {
		t.Errorf("convert of a plain pickle: %v, want an error saying it is a plain pickle", err)
	}
}

func TestConvertFixture(t *testing.T) {
	in := "../../../shared/fixtures/ac_tiny/checkpoint.pt"
	if _, err := os.Stat(in); err != nil {
		t.Skip("shared/fixtures/ac_tiny not found next to the repository")
	}
	out := filepath.Join(t.TempDir(), "pred.safetensors")
	if err := runConvert(context.Background(), []string{in, out, "--key", "predictor", "--dtype", "bf16"}); err != nil {
		t.Fatal(err)
	}
	sd, err := model.OpenStateDict(out, "predictor")
	if err != nil {
		t.Fatal(err)
	}
	defer sd.Close()
	cfg := model.PredictorConfig{EmbedDim: 96, Dim: 128, Depth: 2, Heads: 2, Grid: 4, MLPRatio: 4}
	if err := model.CheckPredictor(out, cfg, sd.Infos()); err != nil {
		t.Error(err)
	}
	orig, err := model.OpenStateDict(in, "predictor")
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	for _, name := range orig.Names {
		a, _ := orig.ReadFloat32(name)
		b, _ := sd.ReadFloat32(name)
		for i := range a {
			if want := model.BF16ToFloat32(model.Float32ToBF16(a[i])); b[i] != want {
				t.Fatalf("%s[%d] = %g, want bf16(%g) = %g", name, i, b[i], a[i], want)
			}
		}
	}
}

func TestConvertErrors(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "x.safetensors")
	cases := []struct {
		args []string
		want string
	}{
		{[]string{viewsPT}, "want IN and OUT paths, got 1"},
		{[]string{viewsPT, out, "--dtype", "i64"}, `--dtype "i64"`},
		{[]string{viewsPT, out, "--key", "predictor"}, `no top-level key "predictor"`},
		{[]string{viewsPT, out, "--key", "epoch"}, `"epoch" has type int, want a state_dict`},
		{[]string{filepath.Join(dir, "missing.pt"), out}, "no such file"},
	}
	for _, c := range cases {
		err := runConvert(context.Background(), c.args)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("convert %v: %v, want an error containing %q", c.args, err, c.want)
		}
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("%s exists after failed conversions", out)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := runConvert(ctx, []string{viewsPT, out}); err == nil || !strings.Contains(err.Error(), "context canceled") {
		t.Errorf("cancelled convert: %v", err)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "*")); len(left) != 0 {
		t.Errorf("files left after a cancelled convert: %v", left)
	}
}
