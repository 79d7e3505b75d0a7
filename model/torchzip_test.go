package model

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// fixtureDirOrEmpty finds shared/fixtures/<name> by walking up from the package directory (the fixtures
// live next to the repository, not in it); "" when absent.
func fixtureDirOrEmpty(name string) string {
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		cand := filepath.Join(dir, "shared", "fixtures", name)
		if st, err := os.Stat(cand); err == nil && st.IsDir() {
			return cand
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

func fixtureDir(t *testing.T, name string) string {
	t.Helper()
	dir := fixtureDirOrEmpty(name)
	if dir == "" {
		t.Skipf("shared/fixtures/%s not found above the package directory", name)
	}
	return dir
}

// --- a tiny torch.save writer for synthetic archives ---

type (
	odict []kv // collections.OrderedDict, as a state_dict is pickled (with a _metadata BUILD)
	pdict []kv // a plain dict
	kv    struct {
		k string
		v any
	}
	ptuple      []any
	long1       int64 // an int forced through LONG1
	synthTensor struct {
		storage, typ  string // key and torch storage class, e.g. "FloatStorage"
		numel         any    // int64 or long1
		offset        int64
		shape, stride []int64
	}
	unknownGlobal struct{} // numpy.core.multiarray.scalar(...), which we must carry without interpreting
)

type pickler struct{ bytes.Buffer }

func (p *pickler) int(v int64) {
	switch {
	case v >= 0 && v < 256:
		p.WriteByte('K')
		p.WriteByte(byte(v))
	case v >= 0 && v < 65536:
		p.WriteByte('M')
		binary.Write(p, binary.LittleEndian, uint16(v))
	case v >= math.MinInt32 && v <= math.MaxInt32:
		p.WriteByte('J')
		binary.Write(p, binary.LittleEndian, int32(v))
	default:
		p.long1(v)
	}
}

func (p *pickler) long1(v int64) {
	p.Write([]byte{0x8a, 8})
	binary.Write(p, binary.LittleEndian, v)
}

func (p *pickler) str(s string) {
	p.WriteByte('X')
	binary.Write(p, binary.LittleEndian, uint32(len(s)))
	p.WriteString(s)
}

func (p *pickler) items(kvs []kv) {
	if len(kvs) == 0 {
		return
	}
	p.WriteByte('(')
	for _, e := range kvs {
		p.str(e.k)
		p.value(e.v)
	}
	p.WriteByte('u')
}

func (p *pickler) value(v any) {
	switch v := v.(type) {
	case nil:
		p.WriteByte('N')
	case bool:
		p.WriteByte(map[bool]byte{true: 0x88, false: 0x89}[v])
	case int:
		p.int(int64(v))
	case int64:
		p.int(v)
	case long1:
		p.long1(int64(v))
	case float64:
		p.WriteByte('G')
		binary.Write(p, binary.BigEndian, math.Float64bits(v))
	case string:
		p.str(v)
	case pdict:
		p.WriteByte('}')
		p.items(v)
	case odict:
		p.WriteString("ccollections\nOrderedDict\n)R")
		p.items(v)
		p.WriteString("}(")
		p.str("_metadata")
		p.WriteString("ccollections\nOrderedDict\n)R(")
		p.str("")
		p.WriteString("}(")
		p.str("version")
		p.WriteString("K\x01uuub")
	case []any:
		p.WriteString("](")
		for _, x := range v {
			p.value(x)
		}
		p.WriteByte('e')
	case ptuple:
		p.WriteByte('(')
		for _, x := range v {
			p.value(x)
		}
		p.WriteByte('t')
	case synthTensor:
		p.WriteString("ctorch._utils\n_rebuild_tensor_v2\n((")
		p.str("storage")
		p.WriteString("ctorch\n" + v.typ + "\n")
		p.str(v.storage)
		p.str("cpu")
		p.value(v.numel)
		p.WriteString("tQ")
		p.int(v.offset)
		p.value(int64s(v.shape))
		p.value(int64s(v.stride))
		p.WriteString("\x89ccollections\nOrderedDict\n)RtR")
	case unknownGlobal:
		p.WriteString("cnumpy.core.multiarray\nscalar\n(K\x01tR")
	default:
		panic(fmt.Sprintf("pickler: %T", v))
	}
}

func int64s(v []int64) ptuple {
	t := make(ptuple, len(v))
	for i, x := range v {
		t[i] = x
	}
	return t
}

type zipRecord struct {
	name   string
	data   []byte
	method uint16
}

// torchArchive writes records the way torch.save lays them out: data.pkl first, storages, version.
func torchArchive(t testing.TB, recs []zipRecord) []byte {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, r := range recs {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: r.name, Method: r.method})
		if err != nil {
			t.Fatal(err)
		}
		w.Write(r.data)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// synthCheckpoint pickles root under "archive/" with the given storages (key -> bytes).
func synthCheckpoint(t testing.TB, root any, storages ...zipRecord) []byte {
	var p pickler
	p.WriteString("\x80\x02")
	p.value(root)
	p.WriteByte('.')
	recs := []zipRecord{{name: "archive/data.pkl", data: p.Bytes()}}
	for _, s := range storages {
		s.name = "archive/data/" + s.name
		recs = append(recs, s)
	}
	recs = append(recs, zipRecord{name: "archive/version", data: []byte("3\n")})
	return torchArchive(t, recs)
}

func f32bytes(v ...float32) []byte {
	b := make([]byte, 0, 4*len(v))
	for _, x := range v {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(x))
	}
	return b
}

func arange32(n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(i)
	}
	return v
}

func openBytes(t testing.TB, b []byte) (*TorchFile, error) {
	t.Helper()
	return NewTorchReader("synthetic.pt", bytes.NewReader(b), int64(len(b)))
}

// --- tests ---

func TestTorchFixture(t *testing.T) {
	type golden struct {
		name            string
		shape           []int
		first, last, sm float64 // from torch.load: t.flatten()[0], [-1], t.double().sum()
	}
	cases := []struct {
		name    string
		key     string
		n       int
		steps   int // AdamW state entries with a 0-dim step tensor
		golden  []golden
		sdKeys  []string
		checkOK func(cfg map[string]any, infos []TensorInfo) error
	}{
		{name: "ac_tiny", key: "predictor", n: 36, steps: 4, sdKeys: []string{"predictor"},
			golden: []golden{
				{"predictor_embed.weight", []int{128, 96}, -0.007629957050085068, -0.011885319836437702, 0.8572692695256592},
				{"predictor_blocks.0.mlp.fc2.weight", []int{128, 512}, -0.020767660811543465, -0.008337076753377914, 1.51755528109652},
				{"predictor_proj.bias", []int{96}, 0.015453948639333248, -0.0027916606049984694, -0.5666488074639346},
			},
			checkOK: func(c map[string]any, infos []TensorInfo) error {
				cfg := PredictorConfig{EmbedDim: int(c["embed_dim"].(float64)), Dim: int(c["pred_dim"].(float64)),
					Depth: int(c["depth"].(float64)), Heads: int(c["heads"].(float64)), Grid: int(c["img"].(float64)) / 16,
					MLPRatio: 4, Extrinsics: c["extrinsics"].(bool)}
				if err := cfg.Validate(); err != nil {
					return err
				}
				return CheckPredictor("ac_tiny", cfg, infos)
			}},
		{name: "enc_tiny", key: "encoder", n: 28, sdKeys: []string{"encoder", "target_encoder"},
			golden: []golden{
				{"patch_embed.proj.weight", []int{128, 3, 2, 16, 16}, 0.003817317308858037, -0.017533112317323685, 0.0015059680818492183},
				{"blocks.1.norm1.weight", []int{128}, 1.0268641710281372, 0.9888611435890198, 128.13476991653442},
				{"norm.bias", []int{128}, -0.00786103680729866, 0.09794043004512787, 0.2912618183727318},
			},
			checkOK: func(c map[string]any, infos []TensorInfo) error {
				cfg := NewEncoderConfig(int(c["dim"].(float64)), int(c["depth"].(float64)), int(c["heads"].(float64)))
				if err := cfg.Validate(); err != nil {
					return err
				}
				return CheckEncoder("enc_tiny", cfg, infos)
			}},
	}
	for _, c := range cases {
		t.Run("case="+c.name, func(t *testing.T) {
			dir := fixtureDir(t, c.name)
			var cj struct {
				Config    map[string]any `json:"config"`
				MLPHidden int            `json:"mlp_hidden"`
			}
			b, err := os.ReadFile(filepath.Join(dir, "case.json"))
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(b, &cj); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, "checkpoint.pt")
			tf, err := OpenTorch(path)
			if err != nil {
				t.Fatal(err)
			}
			defer tf.Close()

			wantKeys := []string{"encoder", "predictor", "opt", "scaler", "target_encoder", "epoch", "loss", "batch_size", "world_size", "lr"}
			if !slices.Equal(tf.Keys(), wantKeys) {
				t.Errorf("Keys() = %v, want %v", tf.Keys(), wantKeys)
			}
			if got := tf.StateDictKeys(); !slices.Equal(got, c.sdKeys) {
				t.Errorf("StateDictKeys() = %v, want %v", got, c.sdKeys)
			}
			for key, want := range map[string]any{"epoch": int64(3), "loss": 0.4321, "batch_size": int64(2), "world_size": int64(1), "lr": 0.0001, "scaler": nil} {
				if got, err := tf.Scalar(key); got != want || err != nil {
					t.Errorf("Scalar(%q) = %v (%T), %v, want %v (%T)", key, got, got, err, want, want)
				}
			}
			if _, err := tf.Scalar("opt"); err == nil || !strings.Contains(err.Error(), `"opt" has type dict`) {
				t.Errorf("Scalar(opt) error %v, want a type error", err)
			}

			sd, err := OpenStateDict(path, c.key)
			if err != nil {
				t.Fatal(err)
			}
			defer sd.Close()
			if len(sd.Names) != c.n {
				t.Errorf("%s: %d tensors, want %d", c.key, len(sd.Names), c.n)
			}
			if err := c.checkOK(cj.Config, sd.Infos()); err != nil {
				t.Errorf("check: %v", err)
			}
			if cj.MLPHidden != 0 && cj.MLPHidden != NewEncoderConfig(int(cj.Config["dim"].(float64)), 1, 1).MLPHidden {
				t.Errorf("mlp_hidden %d in case.json, NewEncoderConfig gives %d", cj.MLPHidden, NewEncoderConfig(int(cj.Config["dim"].(float64)), 1, 1).MLPHidden)
			}
			for _, g := range c.golden {
				ref := sd.Refs[g.name]
				if ref == nil {
					t.Errorf("%s: missing", g.name)
					continue
				}
				if !slices.Equal(ref.Info().Shape, g.shape) {
					t.Errorf("%s: shape %v, want %v", g.name, ref.Info().Shape, g.shape)
				}
				v, err := ref.ReadFloat32()
				if err != nil {
					t.Fatal(err)
				}
				var sum float64
				for _, x := range v {
					sum += float64(x)
				}
				// first/last are the stored float32 values printed by Python as float64: exact. The sum
				// is accumulated in a different order than torch's: 1e-9 relative covers that.
				if float64(v[0]) != g.first || float64(v[len(v)-1]) != g.last || math.Abs(sum-g.sm) > 1e-9*math.Max(1, math.Abs(g.sm))*float64(len(v)) {
					t.Errorf("%s: first %v last %v sum %v, want %v %v %v", g.name, v[0], v[len(v)-1], sum, g.first, g.last, g.sm)
				}
			}
			// AdamW's 0-dim step tensors (DoubleStorage) sit in nested dicts under opt.
			all, err := tf.Tensors()
			if err != nil {
				t.Fatal(err)
			}
			steps := 0
			for _, tt := range all {
				if strings.HasSuffix(tt.Name, ".step") {
					steps++
					v, err := tt.ReadFloat32()
					if err != nil || len(tt.Shape) != 0 || len(v) != 1 || v[0] != 3 {
						t.Errorf("%s: shape %v value %v (%v), want a 0-dim 3", tt.Name, tt.Shape, v, err)
					}
				}
			}
			if steps != c.steps {
				t.Errorf("%d opt.state.*.step tensors, want %d", steps, c.steps)
			}
		})
	}
}

func TestTorchFixtureMisshaped(t *testing.T) {
	dir := fixtureDir(t, "ac_tiny")
	path := filepath.Join(dir, "checkpoint.pt")
	sd, err := OpenStateDict(path, "predictor")
	if err != nil {
		t.Fatal(err)
	}
	defer sd.Close()
	cfg := PredictorConfig{EmbedDim: 96, Dim: 128, Depth: 3, Heads: 2, Grid: 4, MLPRatio: 4}
	err = CheckPredictor(path, cfg, sd.Infos())
	ce, ok := err.(*CheckError)
	if !ok || len(ce.Missing) != 12 || len(ce.Unexpected) != 0 || len(ce.Mismatched) != 0 {
		t.Fatalf("depth 3 against a depth-2 file: %v, want 12 missing", err)
	}
	if !strings.Contains(err.Error(), "predictor_blocks.2.attn.qkv.weight: missing (want shape [384 128])") {
		t.Errorf("error %q does not name the missing qkv", err)
	}
	cfg = PredictorConfig{EmbedDim: 96, Dim: 128, Depth: 2, Heads: 2, Grid: 4, MLPRatio: 2}
	err = CheckPredictor(path, cfg, sd.Infos())
	want := "model: load " + path + ": 6 tensor problems (6 mis-shaped, 0 missing, 0 unexpected): predictor_blocks.0.mlp.fc1.weight: shape [512 128], want [256 128]; "
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("mlp ratio 2: %v, want prefix %q", err, want)
	}
}

func TestTorchDTypes(t *testing.T) {
	tf, err := OpenTorch("testdata/torch_dtypes.pt")
	if err != nil {
		t.Fatal(err)
	}
	defer tf.Close()
	byName := map[string]*TorchTensor{}
	all, err := tf.Tensors()
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range all {
		byName[tt.Name] = tt
	}
	read := func(name string, dt DType) []float32 {
		t.Helper()
		tt := byName[name]
		if tt == nil {
			t.Fatalf("%s: missing", name)
		}
		if tt.DType != dt {
			t.Errorf("%s: dtype %v, want %v", name, tt.DType, dt)
		}
		v, err := tt.ReadFloat32()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	x32 := read("x32", DTypeF32)
	raw16, _ := byName["x16"].ReadRaw()
	rawbf, _ := byName["xbf"].ReadRaw()
	x64 := read("x64", DTypeF64)
	read("x16", DTypeF16)
	read("xbf", DTypeBF16)
	for i, x := range x32 {
		torch16 := binary.LittleEndian.Uint16(raw16[2*i:])
		ours := Float32ToF16(x)
		switch {
		case x != x:
			if ours&0x7c00 != 0x7c00 || ours&0x3ff == 0 || torch16&0x7c00 != 0x7c00 || torch16&0x3ff == 0 {
				t.Errorf("f16(NaN) ours 0x%04x torch 0x%04x, want NaN both", ours, torch16)
			}
		case math.Abs(float64(x)) >= 65520 && !math.IsInf(float64(x), 0):
			// The one intended difference: torch overflows to Inf, we clamp.
			if torch16&0x7fff != 0x7c00 || ours&0x7fff != 0x7bff {
				t.Errorf("f16(%g): torch 0x%04x ours 0x%04x, want Inf vs 65504", x, torch16, ours)
			}
		case ours != torch16:
			t.Errorf("Float32ToF16(%g) = 0x%04x, torch .half() gives 0x%04x", x, ours, torch16)
		}
		if bf := binary.LittleEndian.Uint16(rawbf[2*i:]); x == x && Float32ToBF16(x) != bf {
			t.Errorf("Float32ToBF16(%g) = 0x%04x, torch .bfloat16() gives 0x%04x", x, Float32ToBF16(x), bf)
		}
		if math.Float32bits(x64[i]) != math.Float32bits(x) && x == x {
			t.Errorf("x64[%d] = %g, want %g", i, x64[i], x)
		}
	}
	ints := []float32{-3, -2, -1, 0, 1, 2, 3, 4}
	for name, dt := range map[string]DType{"i64": DTypeI64, "i32": DTypeI32, "i16": DTypeI16, "i8": DTypeI8} {
		if v := read(name, dt); !slices.Equal(v, ints) {
			t.Errorf("%s = %v, want %v", name, v, ints)
		}
	}
	if v := read("u8", DTypeU8); !slices.Equal(v, []float32{0, 1, 2, 3, 4, 5, 6, 7}) {
		t.Errorf("u8 = %v", v)
	}
	if v := read("bool", DTypeBool); !slices.Equal(v, []float32{1, 0, 1}) {
		t.Errorf("bool = %v, want [1 0 1]", v)
	}
	if v := read("scalar", DTypeF32); len(byName["scalar"].Shape) != 0 || !slices.Equal(v, []float32{3.5}) {
		t.Errorf("scalar: shape %v value %v, want [] [3.5]", byName["scalar"].Shape, v)
	}
	if v := read("empty", DTypeF32); !slices.Equal(byName["empty"].Shape, []int{0, 3}) || len(v) != 0 {
		t.Errorf("empty: shape %v, %d values, want [0 3] and none", byName["empty"].Shape, len(v))
	}
}

func TestTorchViews(t *testing.T) {
	for _, file := range []string{"torch_views.pt", "torch_proto4.pt"} {
		t.Run("file="+file, func(t *testing.T) {
			tf, err := OpenTorch(filepath.Join("testdata", file))
			if err != nil {
				t.Fatal(err)
			}
			defer tf.Close()
			views, err := tf.StateDict("views")
			if err != nil {
				t.Fatal(err)
			}
			want, err := tf.StateDict("want")
			if err != nil {
				t.Fatal(err)
			}
			contiguous := map[string]bool{"base": true, "rows": true, "cols": false, "t": false, "step": false, "expand": false, "elem": true}
			if len(views) != len(contiguous) || len(want) != len(views) {
				t.Fatalf("%d views and %d copies, want %d", len(views), len(want), len(contiguous))
			}
			for i, v := range views {
				w := want[i]
				if v.Name != w.Name || !slices.Equal(v.Shape, w.Shape) {
					t.Fatalf("view %s %v vs copy %s %v", v.Name, v.Shape, w.Name, w.Shape)
				}
				if v.Contiguous() != contiguous[v.Name] {
					t.Errorf("%s: Contiguous() = %v, want %v (strides %v)", v.Name, v.Contiguous(), contiguous[v.Name], v.Strides)
				}
				got, err := v.ReadFloat32()
				if err != nil {
					t.Fatal(err)
				}
				exp, err := w.ReadFloat32()
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(got, exp) {
					t.Errorf("%s (offset %d, shape %v, strides %v) = %v, want %v", v.Name, v.Offset, v.Shape, v.Strides, got, exp)
				}
			}
			if views[1].StorageKey != views[0].StorageKey || views[1].Offset != 20 {
				t.Errorf("rows: storage %s offset %d, want base's storage %s at offset 20", views[1].StorageKey, views[1].Offset, views[0].StorageKey)
			}
		})
	}

	tf, err := OpenTorch("testdata/torch_views.pt")
	if err != nil {
		t.Fatal(err)
	}
	defer tf.Close()
	t.Run("many", func(t *testing.T) {
		many, err := tf.StateDict("many")
		if err != nil {
			t.Fatal(err)
		}
		if len(many) != 300 {
			t.Fatalf("%d tensors, want 300", len(many))
		}
		for i, m := range many {
			if want := fmt.Sprintf("module.backbone.blocks.%d.w", i); m.Name != want || CleanKey(m.Name) != fmt.Sprintf("blocks.%d.w", i) {
				t.Fatalf("tensor %d: %s, want %s", i, m.Name, want)
			}
			v, err := m.ReadFloat32()
			if err != nil || !slices.Equal(v, []float32{float32(2 * i), float32(2*i + 1)}) {
				t.Fatalf("%s = %v (%v), want [%d %d]", m.Name, v, err, 2*i, 2*i+1)
			}
		}
	})
	t.Run("module", func(t *testing.T) {
		f32, err := tf.StateDict("module")
		if err != nil {
			t.Fatal(err)
		}
		bf, err := tf.StateDict("module_bf16")
		if err != nil {
			t.Fatal(err)
		}
		names := []string{"0.weight", "0.bias", "1.weight", "1.bias"}
		for i, n := range names {
			if f32[i].Name != n || bf[i].Name != n || bf[i].DType != DTypeBF16 {
				t.Fatalf("tensor %d: %s %v / %s %v, want %s F32 / BF16", i, f32[i].Name, f32[i].DType, bf[i].Name, bf[i].DType, n)
			}
			a, _ := f32[i].ReadFloat32()
			b, _ := bf[i].ReadFloat32()
			for j := range a {
				if want := BF16ToFloat32(Float32ToBF16(a[j])); b[j] != want {
					t.Errorf("%s[%d]: bf16 %g, want %g rounded from %g", n, j, b[j], want, a[j])
				}
			}
		}
	})
	t.Run("scalars", func(t *testing.T) {
		for key, want := range map[string]any{"epoch": int64(7), "loss": 0.25, "name": "run-1", "flag": true, "nothing": nil} {
			if got, err := tf.Scalar(key); got != want || err != nil {
				t.Errorf("Scalar(%q) = %v, %v, want %v", key, got, err, want)
			}
		}
		if _, err := tf.Scalar("absent"); err == nil || !strings.Contains(err.Error(), `no top-level key "absent"`) {
			t.Errorf("Scalar(absent): %v", err)
		}
	})
}

func TestTorchSynthetic(t *testing.T) {
	w := synthTensor{storage: "0", typ: "FloatStorage", numel: int64(6), shape: []int64{2, 3}, stride: []int64{3, 1}}
	root := pdict{
		{"predictor", odict{{"module.a", w}, {"module.b", synthTensor{storage: "0", typ: "FloatStorage", numel: long1(6), offset: 1, shape: []int64{2, 2}, stride: []int64{1, 3}}}}},
		{"opt", pdict{{"param_groups", []any{pdict{{"betas", ptuple{0.9, 0.999}}, {"params", []any{0, 1}}}}}}},
		{"np", unknownGlobal{}},
		{"big", int64(1) << 40},
	}
	b := synthCheckpoint(t, root, zipRecord{name: "0", data: f32bytes(arange32(6)...)})
	tf, err := openBytes(t, b)
	if err != nil {
		t.Fatal(err)
	}
	sd, err := tf.StateDict("predictor")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := sd[1].ReadFloat32()
	if want := []float32{1, 4, 2, 5}; !slices.Equal(got, want) {
		t.Errorf("transposed view = %v, want %v", got, want)
	}
	if v, err := tf.Scalar("big"); v != int64(1)<<40 || err != nil {
		t.Errorf("Scalar(big) = %v, %v", v, err)
	}
	if _, err := tf.Scalar("np"); err == nil || !strings.Contains(err.Error(), "object numpy.core.multiarray.scalar") {
		t.Errorf("Scalar(np): %v, want an opaque-object error", err)
	}
	if keys := tf.StateDictKeys(); !slices.Equal(keys, []string{"predictor"}) {
		t.Errorf("StateDictKeys() = %v", keys)
	}

	// A bare state_dict at the top level (torch.save(model.state_dict())).
	b = synthCheckpoint(t, odict{{"x", w}}, zipRecord{name: "0", data: f32bytes(arange32(6)...)})
	tf, err = openBytes(t, b)
	if err != nil {
		t.Fatal(err)
	}
	if sd, err := tf.StateDict(""); err != nil || len(sd) != 1 || sd[0].Name != "x" {
		t.Errorf(`StateDict("") = %v, %v`, sd, err)
	}
}

func TestTorchSyntheticErrors(t *testing.T) {
	ok := func(st synthTensor) any { return pdict{{"predictor", odict{{"w", st}}}} }
	w := synthTensor{storage: "0", typ: "FloatStorage", numel: int64(6), shape: []int64{2, 3}, stride: []int64{3, 1}}
	with := func(f func(*synthTensor)) synthTensor { c := w; f(&c); return c }
	store := zipRecord{name: "0", data: f32bytes(arange32(6)...)}
	pkl := func(root any) []byte {
		var p pickler
		p.WriteString("\x80\x02")
		p.value(root)
		p.WriteByte('.')
		return p.Bytes()
	}
	cases := []struct {
		name    string
		archive []byte
		atOpen  bool // the error comes from OpenTorch rather than StateDict
		want    string
	}{
		{"no-storage-record", synthCheckpoint(t, ok(with(func(s *synthTensor) { s.storage = "9" }))), false, `storage "9" has no record archive/data/9`},
		{"compressed", synthCheckpoint(t, ok(w), zipRecord{name: "0", data: store.data, method: zip.Deflate}), false, "is compressed (method 8), want ZIP_STORED"},
		{"numel-past-record", synthCheckpoint(t, ok(with(func(s *synthTensor) { s.numel = int64(7) })), store), false, "declares 7 F32 elements, record archive/data/0 has 24 bytes"},
		{"numel-long1-huge", synthCheckpoint(t, ok(with(func(s *synthTensor) { s.numel = long1(1 << 40) })), store), false, "declares 1099511627776 F32 elements"},
		{"view-past-storage", synthCheckpoint(t, ok(with(func(s *synthTensor) { s.offset = 1 })), store), false, "leaves storage"},
		{"stride-past-storage", synthCheckpoint(t, ok(with(func(s *synthTensor) { s.stride = []int64{4, 1} })), store), false, "leaves storage"},
		{"stride-overflow", synthCheckpoint(t, ok(with(func(s *synthTensor) { s.stride = []int64{1 << 62, 1} })), store), false, "leaves storage"},
		{"offset-past-storage", synthCheckpoint(t, ok(with(func(s *synthTensor) { s.offset = 1 << 40; s.shape = []int64{1}; s.stride = []int64{1} })), store), false, "leaves storage"},
		{"broadcast-bomb", synthCheckpoint(t, ok(with(func(s *synthTensor) { s.shape = []int64{1 << 40}; s.stride = []int64{0} })), store), false, "is larger than storage"},
		{"not-a-tensor", synthCheckpoint(t, pdict{{"predictor", odict{{"w", 1.5}}}}), false, "w has type float, want a tensor"},
		{"not-a-dict", synthCheckpoint(t, pdict{{"predictor", []any{}}}), false, `"predictor" has type list, want a state_dict`},
		{"no-key", synthCheckpoint(t, pdict{{"encoder", odict{}}}), false, `no top-level key "predictor" (have encoder)`},
		{"no-pickle", torchArchive(t, []zipRecord{{name: "archive/version", data: []byte("3\n")}}), true, "no <prefix>/data.pkl record"},
		{"two-pickles", torchArchive(t, []zipRecord{{name: "a/data.pkl", data: pkl(nil)}, {name: "b/data.pkl", data: pkl(nil)}}), true, `two pickle records "a/data.pkl" and "b/data.pkl"`},
		{"big-endian", torchArchive(t, []zipRecord{{name: "a/data.pkl", data: pkl(nil)}, {name: "a/byteorder", data: []byte("big")}}), true, "big-endian archives are not supported"},
		{"bad-pickle", torchArchive(t, []zipRecord{{name: "a/data.pkl", data: []byte("\x80\x02N")}}), true, "a/data.pkl: pickle offset 3"},
		{"not-zip", []byte("PK\x03\x04 not really a zip"), true, "zip: not a valid zip file"},
	}
	for _, c := range cases {
		t.Run("case="+c.name, func(t *testing.T) {
			tf, err := openBytes(t, c.archive)
			if err == nil {
				_, err = tf.StateDict("predictor")
				if c.atOpen {
					t.Fatalf("open succeeded, want an error containing %q", c.want)
				}
			} else if !c.atOpen {
				t.Fatalf("open: %v", err)
			}
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "model: ") || !strings.Contains(err.Error(), "synthetic.pt") {
				t.Errorf("error %v, want one naming synthetic.pt and containing %q", err, c.want)
			}
		})
	}
	// A little-endian byteorder record and the prefix-less layout both load.
	b := torchArchive(t, []zipRecord{{name: "data.pkl", data: pkl(pdict{{"predictor", odict{{"w", w}}}})}, {name: "byteorder", data: []byte("little")}, {name: "data/0", data: store.data}})
	tf, err := openBytes(t, b)
	if err != nil {
		t.Fatal(err)
	}
	if sd, err := tf.StateDict("predictor"); err != nil || len(sd) != 1 {
		t.Errorf("prefix-less archive: %v, %v", sd, err)
	}
}

func FuzzTorchZip(f *testing.F) {
	paths, _ := filepath.Glob("testdata/*.pt")
	for _, path := range paths {
		b, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	w := synthTensor{storage: "0", typ: "FloatStorage", numel: int64(6), offset: 1, shape: []int64{2, 2}, stride: []int64{1, 3}}
	f.Add(synthCheckpoint(f, pdict{{"predictor", odict{{"module.w", w}}}, {"epoch", 3}}, zipRecord{name: "0", data: f32bytes(arange32(6)...)}))
	f.Fuzz(func(t *testing.T, b []byte) {
		tf, err := NewTorchReader("fuzz.pt", bytes.NewReader(b), int64(len(b)))
		if err != nil {
			return
		}
		for _, k := range tf.Keys() {
			tf.Scalar(k)
			tf.StateDict(k)
		}
		tf.StateDictKeys()
		all, err := tf.Tensors()
		if err != nil {
			return
		}
		for _, tt := range all {
			if tt.Info().Bytes() > 1<<20 {
				continue // allowed (bounded by maxBroadcastBytes) but too slow to fuzz
			}
			raw, err := tt.ReadRaw()
			if err == nil && int64(len(raw)) != tt.Info().Bytes() {
				t.Fatalf("%s: %d bytes, want %d", tt.Name, len(raw), tt.Info().Bytes())
			}
		}
	})
}

// BenchmarkTorchReadFloat32 reads every encoder tensor of the enc_tiny fixture from the page cache: the
// streaming path a 12 GB checkpoint takes, tensor by tensor.
func BenchmarkTorchReadFloat32(b *testing.B) {
	dir := fixtureDirOrEmpty("enc_tiny")
	if dir == "" {
		b.Skip("shared/fixtures/enc_tiny not found")
	}
	tf, err := OpenTorch(filepath.Join(dir, "checkpoint.pt"))
	if err != nil {
		b.Fatal(err)
	}
	defer tf.Close()
	sd, err := tf.StateDict("encoder")
	if err != nil {
		b.Fatal(err)
	}
	var total int64
	for _, t := range sd {
		total += t.Info().Bytes()
	}
	b.SetBytes(total)
	for b.Loop() {
		for _, t := range sd {
			if _, err := t.ReadFloat32(); err != nil {
				b.Fatal(err)
			}
		}
	}
}
