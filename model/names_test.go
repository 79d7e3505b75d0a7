package model

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func params(infos []TensorInfo) int {
	n := 0
	for _, i := range infos {
		n += i.Numel()
	}
	return n
}

func TestPredictorTensors(t *testing.T) {
	cases := []struct {
		cfg             PredictorConfig
		tensors, params int
	}{
		// Spec §2.2: 300 tensors, 305,220,992 parameters, with or without use_extrinsics.
		{OfficialPredictorConfig(), 300, 305_220_992},
		{func() PredictorConfig { c := OfficialPredictorConfig(); c.Extrinsics = true; return c }(), 300, 305_220_992},
		// ac_tiny: embed 96, D 128, depth 2 (36 tensors).
		{PredictorConfig{EmbedDim: 96, Dim: 128, Depth: 2, Heads: 2, Grid: 4, MLPRatio: 4}, 36,
			(128*96 + 128) + 2*(128*7+128) + (128*6 + 128) + 2*(4*128+384*128+384+128*128+128+512*128+512+128*512+128) + 2*128 + 96*128 + 96},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("embed=%d,dim=%d,depth=%d,extrinsics=%v", c.cfg.EmbedDim, c.cfg.Dim, c.cfg.Depth, c.cfg.Extrinsics), func(t *testing.T) {
			infos := PredictorTensors(c.cfg)
			if len(infos) != c.tensors || params(infos) != c.params {
				t.Errorf("%d tensors, %d parameters; want %d, %d", len(infos), params(infos), c.tensors, c.params)
			}
			if err := c.cfg.Validate(); err != nil {
				t.Error(err)
			}
		})
	}
	// Spec §2.2 per block: 12 tensors, 12,596,224 parameters; fused qkv is [3D, D].
	blk := 0
	for _, i := range PredictorTensors(OfficialPredictorConfig()) {
		if strings.HasPrefix(i.Name, "predictor_blocks.23.") {
			blk += i.Numel()
		}
		if i.Name == "predictor_blocks.3.attn.qkv.weight" && !slices.Equal(i.Shape, []int{3072, 1024}) {
			t.Errorf("qkv shape %v, want [3072 1024]", i.Shape)
		}
	}
	if blk != 12_596_224 {
		t.Errorf("block 23 has %d parameters, want 12,596,224", blk)
	}
}

func TestEncoderTensors(t *testing.T) {
	g := ViTGiantEncoderConfig()
	if g.MLPHidden != 6144 || g.Heads != 22 || g.Depth != 40 || g.Dim != 1408 || g.Patch != 16 || g.Tubelet != 2 {
		t.Errorf("ViT-g config %+v, want dim 1408 depth 40 heads 22 mlp 6144 patch 16 tubelet 2", g)
	}
	infos := EncoderTensors(g)
	// Spec §8.2: 484 tensors, 1,012,173,952 parameters; 25,250,176 per block.
	if len(infos) != 484 || params(infos) != 1_012_173_952 {
		t.Errorf("ViT-g: %d tensors, %d parameters; want 484, 1,012,173,952", len(infos), params(infos))
	}
	if infos[0].Name != "patch_embed.proj.weight" || !slices.Equal(infos[0].Shape, []int{1408, 3, 2, 16, 16}) {
		t.Errorf("first tensor %v, want patch_embed.proj.weight [1408 3 2 16 16]", infos[0])
	}
	if c := NewEncoderConfig(128, 2, 2); c.MLPHidden != 558 {
		t.Errorf("NewEncoderConfig(128).MLPHidden = %d, want int(128·48/11) = 558", c.MLPHidden)
	}
	for _, bad := range []EncoderConfig{{}, {Dim: 130, Depth: 1, Heads: 4, MLPHidden: 1, Patch: 16, Tubelet: 2}} {
		if bad.Validate() == nil {
			t.Errorf("Validate(%+v) = nil, want an error", bad)
		}
	}
	if (PredictorConfig{EmbedDim: 8, Dim: 10, Depth: 1, Heads: 3, Grid: 1, MLPRatio: 4}).Validate() == nil {
		t.Error("predictor dim 10 with 3 heads validated")
	}
}

func TestCleanKey(t *testing.T) {
	for in, want := range map[string]string{
		"module.backbone.blocks.0.attn.qkv.weight": "blocks.0.attn.qkv.weight",
		"module.predictor_embed.weight":            "predictor_embed.weight",
		"backbone.module.norm.bias":                "norm.bias",
		"predictor_blocks.1.module.mlp.fc1.weight": "predictor_blocks.1.mlp.fc1.weight", // anywhere, not only a prefix
		"norm.weight": "norm.weight",
		"submodule.x": "subx", // a plain substring delete, exactly like the hub
	} {
		if got := CleanKey(in); got != want {
			t.Errorf("CleanKey(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestCheckTensors(t *testing.T) {
	cfg := PredictorConfig{EmbedDim: 8, Dim: 16, Depth: 1, Heads: 2, Grid: 2, MLPRatio: 4}
	want := PredictorTensors(cfg)
	withPrefix := func(infos []TensorInfo, p string) []TensorInfo {
		out := slices.Clone(infos)
		for i := range out {
			out[i].Name = p + out[i].Name
		}
		return out
	}
	if err := CheckPredictor("x.pt", cfg, withPrefix(want, "module.")); err != nil {
		t.Errorf("module.-prefixed predictor: %v", err)
	}
	one := withPrefix(want, "")
	one[10].Shape = []int{48, 8} // predictor_blocks.0.attn.qkv.weight
	err := CheckPredictor("ckpt/a.pt", cfg, one)
	if want := "model: load ckpt/a.pt: predictor_blocks.0.attn.qkv.weight: shape [48 8], want [48 16]"; err == nil || err.Error() != want {
		t.Errorf("one mis-shaped tensor: %v, want %q", err, want)
	}
	many := withPrefix(want, "")
	many[0].DType = DTypeI64
	many = append(many[:4], many[5:]...) // drop state_encoder.weight
	many = append(many, TensorInfo{"mask", DTypeF32, []int{4}})
	err = CheckPredictor("a.pt", cfg, many)
	ce, ok := err.(*CheckError)
	if !ok || len(ce.Missing) != 1 || len(ce.Unexpected) != 1 || len(ce.Mismatched) != 1 {
		t.Fatalf("CheckPredictor = %v, want 1 missing, 1 unexpected, 1 mis-typed", err)
	}
	for _, part := range []string{"3 tensor problems", "predictor_embed.weight: dtype I64, want a floating-point dtype",
		"state_encoder.weight: missing (want shape [16 7])", "mask: unexpected (shape [4])"} {
		if !strings.Contains(err.Error(), part) {
			t.Errorf("error %q lacks %q", err, part)
		}
	}
	// Encoder: pos_embed is ignored, everything else strict.
	ecfg := NewEncoderConfig(16, 1, 2)
	enc := withPrefix(append(EncoderTensors(ecfg), TensorInfo{"pos_embed", DTypeF32, []int{1, 8, 16}}), "module.backbone.")
	if err := CheckEncoder("e.pt", ecfg, enc); err != nil {
		t.Errorf("encoder with pos_embed: %v", err)
	}
	if err := CheckEncoder("e.pt", ecfg, enc[1:]); err == nil || !strings.Contains(err.Error(), "patch_embed.proj.weight: missing") {
		t.Errorf("encoder without patch_embed: %v", err)
	}
}

func TestStateDict(t *testing.T) {
	dir := t.TempDir()
	// A "convert --key all" style file: names under "<key>.", already cleaned.
	path := filepath.Join(dir, "all.safetensors")
	tensors := []RawTensor{
		{TensorInfo{"predictor.a", DTypeF32, []int{1}}, f32bytes(1)},
		{TensorInfo{"encoder.module.a", DTypeF32, []int{1}}, f32bytes(2)},
		{TensorInfo{"encoder.b", DTypeBF16, []int{2}}, []byte{0x80, 0x3f, 0x00, 0x40}},
	}
	if err := WriteSafetensors(path, tensors, nil); err != nil {
		t.Fatal(err)
	}
	sd, err := OpenStateDict(path, "encoder")
	if err != nil {
		t.Fatal(err)
	}
	defer sd.Close()
	if !slices.Equal(sd.Names, []string{"a", "b"}) || sd.Refs["a"].Info().Name != "a" {
		t.Errorf("encoder names %v, want [a b] (prefix and module. removed)", sd.Names)
	}
	if v, err := sd.ReadFloat32("b"); err != nil || !slices.Equal(v, []float32{1, 2}) {
		t.Errorf("b = %v, %v, want [1 2]", v, err)
	}
	if _, err := sd.ReadFloat32("zzz"); err == nil {
		t.Error("ReadFloat32(zzz) succeeded")
	}
	// No "<key>." names: the whole file is the state_dict.
	sd2, err := OpenStateDict(path, "target_encoder")
	if err != nil {
		t.Fatal(err)
	}
	defer sd2.Close()
	if len(sd2.Names) != 3 {
		t.Errorf("fallback names %v, want all 3", sd2.Names)
	}
	// Two stored names that clean to one.
	refs := []TensorRef{renamed{sd.Refs["a"], "module.x"}, renamed{sd.Refs["b"], "backbone.x"}}
	if _, err := NewStateDict("dup.pt", refs); err == nil || !strings.Contains(err.Error(), `"module.x" and "backbone.x" are both "x"`) {
		t.Errorf("collision: %v", err)
	}
	if _, err := OpenStateDict(filepath.Join(dir, "missing.pt"), "predictor"); err == nil {
		t.Error("OpenStateDict(missing file) succeeded")
	}
}
