package train

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// sampleCheckpoint has one tensor of each kind a trainer saves: fp32 LoRA weights, 8-bit optimizer state,
// a bf16 blob, an fp32 scalar and an empty tensor.
func sampleCheckpoint(step int, valLoss *float64) *Checkpoint {
	w := make([]float32, 6)
	for i := range w {
		w[i] = float32(step) + float32(i)/8
	}
	return &Checkpoint{
		Header: CheckpointHeader{
			Step: step, Epoch: step / 10, Data: json.RawMessage(`{"shard":3,"episode":17}`),
			LR: 4.25e-4, WeightDecay: 0.04,
			LossScale: LossScaler{Enabled: true, Scale: 32768, GrowthInterval: 2000, GoodSteps: 11},
			RNG:       map[string][]byte{"data": {1, 2, 3, 4}, "dropout": {9, 8, 7}},
			ValLoss:   valLoss, Config: "training:\n  lr: 0.000425\n",
			Created: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
			Extra:   map[string]json.RawMessage{"adam_step": json.RawMessage(fmt.Sprint(step))},
		},
		Tensors: []Tensor{
			F32Tensor("predictor_blocks.0.attn.qkv.lora_A", []int{2, 3}, w),
			U8Tensor("opt.predictor_blocks.0.attn.qkv.lora_A.exp_avg_q", []int{5}, []uint8{0, 1, 127, 128, 255}),
			{Name: "bf16_blob", DType: BF16, Shape: []int{2}, Data: []byte{0x80, 0x3f, 0x00, 0xc0}},
			F32Tensor("scalar", nil, []float32{2.5}),
			F32Tensor("empty", []int{0, 4}, nil),
		},
	}
}

func ptr(x float64) *float64 { return &x }

func TestCheckpointRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.safetensors")
	ck := sampleCheckpoint(1200, ptr(0.3125))
	if err := WriteCheckpointFile(path, ck); err != nil {
		t.Fatal(err)
	}
	got, err := ReadCheckpoint(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.Header, ck.Header) {
		t.Errorf("header round trip:\n got %+v\nwant %+v", got.Header, ck.Header)
	}
	if len(got.Tensors) != len(ck.Tensors) {
		t.Fatalf("%d tensors back, want %d", len(got.Tensors), len(ck.Tensors))
	}
	for i, want := range ck.Tensors {
		g := got.Tensors[i] // write order is kept
		if g.Name != want.Name || g.DType != want.DType || !slices.Equal(g.Shape, nonNil(want.Shape)) || !bytes.Equal(g.Data, want.Data) {
			t.Errorf("tensor %d: got %s %s %v %x, want %s %s %v %x", i, g.Name, g.DType, g.Shape, g.Data, want.Name, want.DType, want.Shape, want.Data)
		}
	}
	w, _ := got.Tensor("predictor_blocks.0.attn.qkv.lora_A")
	f, err := w.Float32s()
	if err != nil || f[5] != 1200+5.0/8 {
		t.Errorf("Float32s = %v, %v; want element 5 = %g", f, err, 1200+5.0/8)
	}
	h, err := ReadCheckpointHeader(path)
	if err != nil || !reflect.DeepEqual(*h, ck.Header) {
		t.Errorf("ReadCheckpointHeader = %+v, %v; want %+v", h, err, ck.Header)
	}
}

func nonNil(s []int) []int {
	if s == nil {
		return []int{}
	}
	return s
}

// TestCheckpointSafetensorsLayout checks the bytes against the safetensors rules, so Python's
// safetensors can open our files: u64 header size, JSON padded to 8 bytes, string-only __metadata__,
// contiguous data_offsets covering the whole data section.
func TestCheckpointSafetensorsLayout(t *testing.T) {
	var b bytes.Buffer
	if err := WriteCheckpoint(&b, sampleCheckpoint(7, nil)); err != nil {
		t.Fatal(err)
	}
	buf := b.Bytes()
	n := binary.LittleEndian.Uint64(buf)
	if n%8 != 0 {
		t.Errorf("header size %d is not a multiple of 8", n)
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(buf[8:8+n], &top); err != nil {
		t.Fatalf("header is not JSON: %v", err)
	}
	var meta map[string]string
	if err := json.Unmarshal(top["__metadata__"], &meta); err != nil {
		t.Errorf("__metadata__ is not a string map: %v", err)
	}
	type entry struct {
		DType   string   `json:"dtype"`
		Shape   []int    `json:"shape"`
		Offsets [2]int64 `json:"data_offsets"`
	}
	var spans [][2]int64
	for name, raw := range top {
		if name == "__metadata__" {
			continue
		}
		var e entry
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&e); err != nil {
			t.Errorf("tensor %s entry %s: %v", name, raw, err)
		}
		spans = append(spans, e.Offsets)
	}
	slices.SortFunc(spans, func(a, b [2]int64) int { return int(a[0] - b[0]) })
	var end int64
	for _, s := range spans {
		if s[0] != end {
			t.Errorf("data_offsets %v do not start at %d", s, end)
		}
		end = s[1]
	}
	if got := int64(len(buf)) - 8 - int64(n); end != got {
		t.Errorf("tensors cover %d bytes, data section has %d", end, got)
	}
}

// failAfter lets n bytes through and then fails, like a full disk or a killed process.
type failAfter struct {
	w io.Writer
	n int
}

var errDiskFull = errors.New("no space left on device (simulated)")

func (f *failAfter) Write(p []byte) (int, error) {
	if len(p) > f.n {
		k, _ := f.w.Write(p[:f.n])
		f.n = 0
		return k, errDiskFull
	}
	f.n -= len(p)
	return f.w.Write(p)
}

// TestCheckpointTornWrite: a save that dies mid-write must leave the previous checkpoint intact and
// readable, and resume must pick the previous one.
func TestCheckpointTornWrite(t *testing.T) {
	dir := t.TempDir()
	good := sampleCheckpoint(100, nil)
	store := CheckpointStore{Dir: dir, KeepLast: 3}
	if _, err := store.Save(good); err != nil {
		t.Fatal(err)
	}

	for _, failAt := range []int{0, 5, 100, 600} {
		t.Run(fmt.Sprintf("fail_after_bytes=%d", failAt), func(t *testing.T) {
			bad := store
			bad.wrap = func(w io.Writer) io.Writer { return &failAfter{w: w, n: failAt} }
			// Same step as the good checkpoint: the failed write must not clobber it.
			_, err := bad.Save(sampleCheckpoint(100, nil))
			if !errors.Is(err, errDiskFull) {
				t.Fatalf("Save with failing writer = %v, want errDiskFull", err)
			}
			_, err = bad.Save(sampleCheckpoint(200, nil))
			if !errors.Is(err, errDiskFull) {
				t.Fatalf("Save with failing writer = %v, want errDiskFull", err)
			}
			assertOnly(t, dir, "ckpt-000000100.safetensors", ManifestFile)
			latest, err := LatestCheckpoint(dir)
			if err != nil || filepath.Base(latest) != "ckpt-000000100.safetensors" {
				t.Fatalf("LatestCheckpoint = %q, %v; want ckpt-000000100.safetensors", latest, err)
			}
			back, err := ReadCheckpoint(latest)
			if err != nil || back.Header.Step != 100 || !bytes.Equal(back.Tensors[0].Data, good.Tensors[0].Data) {
				t.Fatalf("previous checkpoint after torn write: %v, %+v", err, back)
			}
		})
	}

	t.Run("killed_leaves_temp", func(t *testing.T) {
		// A killed writer leaves a half-written temp file: it has no final name, so it is never resumed from,
		// and the next Save removes it.
		var b bytes.Buffer
		WriteCheckpoint(&b, sampleCheckpoint(300, nil))
		tmp := filepath.Join(dir, ".ckpt-000000300.safetensors.12345.tmp")
		if err := os.WriteFile(tmp, b.Bytes()[:b.Len()/2], 0o644); err != nil {
			t.Fatal(err)
		}
		if latest, _ := LatestCheckpoint(dir); filepath.Base(latest) != "ckpt-000000100.safetensors" {
			t.Fatalf("LatestCheckpoint = %q with a torn temp file present, want ckpt-000000100.safetensors", latest)
		}
		if _, err := store.Save(sampleCheckpoint(400, nil)); err != nil {
			t.Fatal(err)
		}
		assertOnly(t, dir, "ckpt-000000100.safetensors", "ckpt-000000400.safetensors", ManifestFile)
	})
}

func assertOnly(t *testing.T, dir string, want ...string) {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, de := range des {
		got = append(got, de.Name())
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("folder holds %v, want %v", got, want)
	}
}

// TestCheckpointCorrupt damages a valid file in each way that matters and checks the error says where.
func TestCheckpointCorrupt(t *testing.T) {
	var b bytes.Buffer
	if err := WriteCheckpoint(&b, sampleCheckpoint(55, nil)); err != nil {
		t.Fatal(err)
	}
	valid := b.Bytes()
	hdrLen := int(binary.LittleEndian.Uint64(valid))
	dataStart := 8 + hdrLen
	replaceInHeader := func(old, new string) func([]byte) []byte {
		return func(buf []byte) []byte {
			h := string(buf[8:dataStart])
			if !strings.Contains(h, old) || len(old) != len(new) {
				panic("test setup: " + old)
			}
			copy(buf[8:], strings.Replace(h, old, new, 1))
			return buf
		}
	}
	tests := []struct {
		name   string
		damage func([]byte) []byte
		want   string
	}{
		{"data_bitflip", func(buf []byte) []byte { buf[dataStart+3] ^= 0x10; return buf },
			"tensor predictor_blocks.0.attn.qkv.lora_A: crc32c mismatch"},
		{"u8_bitflip", func(buf []byte) []byte { buf[dataStart+24+2] ^= 1; return buf },
			"tensor opt.predictor_blocks.0.attn.qkv.lora_A.exp_avg_q: crc32c mismatch"},
		{"truncated_data", func(buf []byte) []byte { return buf[:len(buf)-3] },
			"past the end of the file (truncated?)"},
		{"truncated_header", func(buf []byte) []byte { return buf[:100] },
			"exceeds file size 100 (truncated?)"},
		{"too_short", func(buf []byte) []byte { return buf[:5] },
			"file is 5 bytes, shorter than the 8-byte header length"},
		{"trailing_bytes", func(buf []byte) []byte { return append(buf, 0, 0) },
			"2 trailing bytes after the last tensor"},
		{"header_step_changed", replaceInHeader(`\"step\":55`, `\"step\":56`),
			"header crc32c mismatch"},
		{"shape_swapped", replaceInHeader(`"shape":[2,3]`, `"shape":[3,2]`),
			"tensor predictor_blocks.0.attn.qkv.lora_A: crc32c mismatch"},
		{"dtype_changed", replaceInHeader(`"dtype":"BF16"`, `"dtype":"F16 "`),
			`tensor bf16_blob: unknown dtype "F16 "`},
		{"json_broken", func(buf []byte) []byte { buf[8] = '['; return buf },
			"header JSON:"},
		{"not_ours", func(buf []byte) []byte {
			js := []byte(`{"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}     `)
			out := binary.LittleEndian.AppendUint64(nil, uint64(len(js)))
			return append(append(out, js...), 7)
		}, "missing __metadata__ (not a vjepa-vk checkpoint?)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "c.safetensors")
			if err := os.WriteFile(path, tt.damage(bytes.Clone(valid)), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := ReadCheckpoint(path)
			var ce *CorruptCheckpointError
			if !errors.As(err, &ce) {
				t.Fatalf("ReadCheckpoint(%s) = %v, want a *CorruptCheckpointError", tt.name, err)
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "train: checkpoint "+path+": corrupt at byte ") {
				t.Fatalf("ReadCheckpoint(%s) = %q\nwant \"train: checkpoint %s: corrupt at byte N: ...%s...\"", tt.name, err, path, tt.want)
			}
		})
	}
}

// TestCheckpointRetention saves five checkpoints and checks which survive under each policy.
func TestCheckpointRetention(t *testing.T) {
	valLoss := []float64{0.5, 0.2, 0.4, 0.3, 0.6}
	tests := []struct {
		keepLast int
		keepBest bool
		want     []int // steps kept
		wantBest int   // 0: none
	}{
		{2, true, []int{2, 4, 5}, 2},
		{2, false, []int{4, 5}, 4},
		{1, true, []int{2, 5}, 2},
		{0, false, []int{1, 2, 3, 4, 5}, 2},
		{10, true, []int{1, 2, 3, 4, 5}, 2},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("keep_last=%d,keep_best=%v", tt.keepLast, tt.keepBest), func(t *testing.T) {
			dir := t.TempDir()
			store := CheckpointStore{Dir: dir, KeepLast: tt.keepLast, KeepBest: tt.keepBest}
			for i, vl := range valLoss {
				if _, err := store.Save(sampleCheckpoint(i+1, ptr(vl))); err != nil {
					t.Fatal(err)
				}
			}
			var want []string
			for _, s := range tt.want {
				want = append(want, CheckpointName(s))
			}
			assertOnly(t, dir, append(want, ManifestFile)...)

			m, err := ReadManifest(dir)
			if err != nil {
				t.Fatal(err)
			}
			var steps []int
			for _, e := range m.Checkpoints {
				steps = append(steps, e.Step)
			}
			if !slices.Equal(steps, tt.want) || m.Latest != CheckpointName(5) || m.Best != CheckpointName(tt.wantBest) {
				t.Errorf("manifest steps %v latest %s best %s; want %v, %s, %s", steps, m.Latest, m.Best, tt.want, CheckpointName(5), CheckpointName(tt.wantBest))
			}
			best, err := BestCheckpoint(dir)
			if err != nil || filepath.Base(best) != CheckpointName(tt.wantBest) {
				t.Errorf("BestCheckpoint = %q, %v; want %s", best, err, CheckpointName(tt.wantBest))
			}

			// Losing the manifest loses nothing: it is rebuilt from the checkpoint headers.
			os.Remove(filepath.Join(dir, ManifestFile))
			m2, err := ReadManifest(dir)
			if err != nil || m2.Best != m.Best || len(m2.Checkpoints) != len(m.Checkpoints) {
				t.Errorf("rebuilt manifest %+v, %v; want best %s and %d entries", m2, err, m.Best, len(m.Checkpoints))
			}
		})
	}
}

// TestFindResume covers every form of checkpoint.resume on local folders: off, auto (empty, missing,
// newest, newest corrupt: warned, set aside, next older used; all corrupt), a folder, a file (never
// replaced by another, even when corrupt) and missing paths.
func TestFindResume(t *testing.T) {
	empty := t.TempDir()
	full := t.TempDir()
	store := CheckpointStore{Dir: full}
	for _, s := range []int{10, 20, 30} {
		if _, err := store.Save(sampleCheckpoint(s, nil)); err != nil {
			t.Fatal(err)
		}
	}
	corrupt := func(step int) {
		p := filepath.Join(full, CheckpointName(step))
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		b[len(b)-1] ^= 1
		os.WriteFile(p, b, 0o666)
	}
	explicit := filepath.Join(full, CheckpointName(10))
	tests := []struct {
		name       string
		dir        string // checkpoint.dir
		resume     string
		before     func()
		want       int // step; 0 = fresh start
		wantErr    string
		wantOutput string
	}{
		{"resume=off", full, "", nil, 0, "", ""},
		{"resume=auto,dir=empty", empty, "auto", nil, 0, "", ""},
		{"resume=auto,dir=missing", filepath.Join(empty, "nope"), "auto", nil, 0, "", ""},
		{"resume=auto", full, "auto", nil, 30, "", ""},
		{"resume=file", empty, explicit, nil, 10, "", ""},
		{"resume=folder", empty, full, nil, 30, "", ""},
		{"resume=missing", full, filepath.Join(empty, "x.safetensors"), nil, 0, "train: checkpoint.resume: stat ", ""},
		{"resume=empty_folder", full, empty, nil, 0, "no checkpoint", ""},
		{"resume=auto,newest=corrupt", full, "auto", func() { corrupt(30) }, 20, "",
			"set aside as ckpt-000000030.safetensors.corrupt; falling back to ckpt-000000020.safetensors"},
		{"resume=file,corrupt", full, explicit, func() { corrupt(10) }, 0, "crc32c mismatch", ""},
		{"resume=auto,all=corrupt", full, "auto", func() { corrupt(20) }, 0, "every checkpoint is corrupt (ckpt-000000020.safetensors, ckpt-000000010.safetensors)", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.before != nil {
				tt.before()
			}
			cfg := Default()
			cfg.Checkpoint.Dir, cfg.Checkpoint.Resume = tt.dir, tt.resume
			var out strings.Builder
			tr := &trainer{cfg: cfg, progress: NewProgress(&out, "plain", cfg.Training.Steps, 1)}
			ck, _, err := tr.findResume(context.Background())
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("findResume(%q) = %v; want error containing %q", tt.resume, err, tt.wantErr)
				}
				return
			}
			step := 0
			if ck != nil {
				step = ck.Header.Step
			}
			if err != nil || step != tt.want {
				t.Fatalf("findResume(%q) = step %d, %v; want step %d", tt.resume, step, err, tt.want)
			}
			if !strings.Contains(out.String(), tt.wantOutput) {
				t.Errorf("output %q, want it to contain %q", out.String(), tt.wantOutput)
			}
		})
	}
	if _, err := LatestCheckpoint(empty); !errors.Is(err, ErrNoCheckpoint) {
		t.Errorf("LatestCheckpoint(empty) = %v, want ErrNoCheckpoint", err)
	}
}

func TestCheckpointRejectsBadTensors(t *testing.T) {
	tests := []struct {
		name string
		t    Tensor
		want string
	}{
		{"size", Tensor{Name: "w", DType: F32, Shape: []int{3}, Data: make([]byte, 8)}, "tensor w: 8 bytes, want 12 for F32 [3]"},
		{"dtype", Tensor{Name: "w", DType: "F128", Shape: []int{1}, Data: make([]byte, 16)}, `tensor w: unknown dtype "F128"`},
		{"reserved", Tensor{Name: "__metadata__", DType: U8, Shape: []int{1}, Data: []byte{1}}, `tensor name "__metadata__" is reserved`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "c.safetensors")
			err := WriteCheckpointFile(path, &Checkpoint{Tensors: []Tensor{tt.t}})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("WriteCheckpointFile = %v, want error containing %q", err, tt.want)
			}
			if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("a rejected checkpoint left a file at %s", path)
			}
		})
	}
}
