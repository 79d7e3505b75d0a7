package train

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/vjepa-vk/vjepa-vk/data"
)

// fakeClock advances by step on every call.
func fakeClock(start time.Time, step time.Duration) func() time.Time {
	t := start.Add(-step)
	return func() time.Time { t = t.Add(step); return t }
}

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func sampleStep(s int) StepMetrics {
	return StepMetrics{Step: s, Loss: 1 / float64(s), LossTF: 0.4 / float64(s), LossRollout: 0.6 / float64(s),
		LR: 1e-4 * float64(s), WeightDecay: 0.04, GradNorm: 2.5, LossScale: 65536, StepTime: 0.5, ClipsPerSec: 16}
}

// sameMetrics compares records treating NaN as equal to NaN.
func sameMetrics(a, b any) bool {
	va, vb := reflect.ValueOf(a), reflect.ValueOf(b)
	for i := 0; i < va.NumField(); i++ {
		fa, fb := va.Field(i), vb.Field(i)
		switch fa.Kind() {
		case reflect.Float64:
			x, y := fa.Float(), fb.Float()
			if x != y && !(math.IsNaN(x) && math.IsNaN(y)) {
				return false
			}
		case reflect.Slice:
			if fa.Len() != fb.Len() {
				return false
			}
			for j := 0; j < fa.Len(); j++ {
				x, y := fa.Index(j).Float(), fb.Index(j).Float()
				if x != y && !(math.IsNaN(x) && math.IsNaN(y)) {
					return false
				}
			}
		default:
			if !reflect.DeepEqual(fa.Interface(), fb.Interface()) {
				return false
			}
		}
	}
	return true
}

// TestMetricsJSONL writes steps (one with NaN/Inf, one repeated as after a resume) and a validation
// record, then reads them back.
func TestMetricsJSONL(t *testing.T) {
	dir := t.TempDir()
	m, err := NewMetricsWriter(dir, MetricsOptions{JSONL: true, Now: fakeClock(t0, time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	s1, s2, s3 := sampleStep(1), sampleStep(2), sampleStep(3)
	s2.Loss, s2.GradNorm, s2.Skipped = math.NaN(), math.Inf(1), true
	val := ValMetrics{Step: 2, Loss: 0.7, LossTF: 0.3, LossRollout: 0.4, RolloutErr: []float64{0.3, math.NaN(), 0.5}, Clips: 64}
	redo := sampleStep(3)
	redo.Loss = 0.125 // a resumed run re-does step 3; the later record must win
	for _, rec := range []any{s1, s2, val, s3, redo} {
		switch r := rec.(type) {
		case StepMetrics:
			err = m.LogStep(r)
		case ValMetrics:
			err = m.LogVal(r)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	jsonl, events := m.Paths()
	if events != "" || jsonl != filepath.Join(dir, MetricsFile) {
		t.Errorf("Paths = %q, %q; want %s and no event file", jsonl, events, filepath.Join(dir, MetricsFile))
	}

	raw, _ := os.ReadFile(jsonl)
	lines := strings.Split(strings.TrimSpace(string(raw)), "\n")
	wantLine1 := `{"kind":"train","wall_time":1772366400,"step":1,"loss":1,"loss_tf":0.4,"loss_rollout":0.6,"lr":0.0001,"weight_decay":0.04,"grad_norm":2.5,"loss_scale":65536,"skipped":false,"step_time":0.5,"clips_per_s":16}`
	if lines[0] != wantLine1 {
		t.Errorf("line 1:\n got %s\nwant %s", lines[0], wantLine1)
	}
	if !strings.Contains(lines[1], `"loss":null`) || !strings.Contains(lines[1], `"grad_norm":null`) {
		t.Errorf("line 2 = %s; want NaN and Inf written as null", lines[1])
	}
	if want := `"rollout_err":[0.3,null,0.5],"clips":64}`; !strings.HasSuffix(lines[2], want) {
		t.Errorf("line 3 = %s; want suffix %s", lines[2], want)
	}

	log, err := ReadMetrics(jsonl)
	if err != nil {
		t.Fatal(err)
	}
	s2back := s2
	s2back.GradNorm = math.NaN() // Inf is written as null too
	wantTrain := []StepMetrics{s1, s2back, redo}
	if len(log.Train) != 3 {
		t.Fatalf("read %d train records, want 3", len(log.Train))
	}
	for i := range wantTrain {
		if !sameMetrics(log.Train[i], wantTrain[i]) {
			t.Errorf("train record %d:\n got %+v\nwant %+v", i, log.Train[i], wantTrain[i])
		}
	}
	if len(log.Val) != 1 || !sameMetrics(log.Val[0], val) {
		t.Errorf("val records %+v, want [%+v]", log.Val, val)
	}

	t.Run("torn_last_line", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), MetricsFile)
		os.WriteFile(path, append(raw, `{"kind":"train","wall_time":1,"st`...), 0o644)
		log, err := ReadMetrics(path)
		if err != nil || len(log.Train) != 3 {
			t.Errorf("ReadMetrics with a torn last line = %d records, %v; want 3, nil", len(log.Train), err)
		}
	})
	t.Run("corrupt_middle_line", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), MetricsFile)
		os.WriteFile(path, []byte(lines[0]+"\n{oops\n"+lines[1]+"\n"), 0o644)
		_, err := ReadMetrics(path)
		if want := "train: read metrics " + path + ": line 2: "; err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("ReadMetrics = %v, want prefix %q", err, want)
		}
	})
	t.Run("unknown_kind", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), MetricsFile)
		os.WriteFile(path, []byte(`{"kind":"eval","step":1}`+"\n"), 0o644)
		_, err := ReadMetrics(path)
		if want := `line 1: kind "eval", want train, val or sync`; err == nil || !strings.HasSuffix(err.Error(), want) {
			t.Errorf("ReadMetrics = %v, want suffix %q", err, want)
		}
	})
}

// tfRecords splits a TFRecord stream, checking both masked CRC-32Cs of every record.
func tfRecords(t *testing.T, b []byte) [][]byte {
	t.Helper()
	table := crc32.MakeTable(crc32.Castagnoli)
	mask := func(c uint32) uint32 { return (c>>15 | c<<17) + 0xa282ead8 }
	var out [][]byte
	for off := 0; off < len(b); {
		if len(b)-off < 16 {
			t.Fatalf("record at %d: %d bytes left, want >= 16", off, len(b)-off)
		}
		n := int(binary.LittleEndian.Uint64(b[off:]))
		if got, want := binary.LittleEndian.Uint32(b[off+8:]), mask(crc32.Checksum(b[off:off+8], table)); got != want {
			t.Fatalf("record at %d: length crc %08x, want %08x", off, got, want)
		}
		data := b[off+12 : off+12+n]
		if got, want := binary.LittleEndian.Uint32(b[off+12+n:]), mask(crc32.Checksum(data, table)); got != want {
			t.Fatalf("record at %d: data crc %08x, want %08x", off, got, want)
		}
		out = append(out, data)
		off += 16 + n
	}
	return out
}

// event is a decoded Event proto: the fields we write.
type event struct {
	wall        float64
	step        int64
	fileVersion string
	sessionLog  int                // SessionLog.status; 0 when absent
	values      map[string]float32 // simple values by tag
	plugins     map[string]string  // plugin name by tag, for plugin summaries
	contents    map[string][]byte  // plugin content by tag
	strings     map[string]string  // first string_val of the tensor by tag
}

// consumeMessage iterates the fields of one encoded message, failing the test on a malformed one.
func consumeMessage(t *testing.T, b []byte, field func(num protowire.Number, typ protowire.Type, v []byte, x uint64)) {
	t.Helper()
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			t.Fatalf("bad tag: %v", protowire.ParseError(n))
		}
		b = b[n:]
		var v []byte
		var x uint64
		switch typ {
		case protowire.BytesType:
			v, n = protowire.ConsumeBytes(b)
		case protowire.VarintType:
			x, n = protowire.ConsumeVarint(b)
		case protowire.Fixed32Type:
			var y uint32
			y, n = protowire.ConsumeFixed32(b)
			x = uint64(y)
		case protowire.Fixed64Type:
			x, n = protowire.ConsumeFixed64(b)
		default:
			t.Fatalf("field %d: unexpected wire type %d", num, typ)
		}
		if n < 0 {
			t.Fatalf("field %d: %v", num, protowire.ParseError(n))
		}
		b = b[n:]
		field(num, typ, v, x)
	}
}

// decodeEvent walks the Event proto field by field (tensorflow/core/util/event.proto).
func decodeEvent(t *testing.T, b []byte) event {
	t.Helper()
	ev := event{values: map[string]float32{}, plugins: map[string]string{}, contents: map[string][]byte{}, strings: map[string]string{}}
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			t.Fatalf("event: bad tag: %v", protowire.ParseError(n))
		}
		b = b[n:]
		switch {
		case num == 1 && typ == protowire.Fixed64Type:
			v, n := protowire.ConsumeFixed64(b)
			ev.wall, b = math.Float64frombits(v), b[n:]
		case num == 2 && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			ev.step, b = int64(v), b[n:]
		case num == 3 && typ == protowire.BytesType:
			v, n := protowire.ConsumeString(b)
			ev.fileVersion, b = v, b[n:]
		case num == 5 && typ == protowire.BytesType:
			sum, n := protowire.ConsumeBytes(b)
			b = b[n:]
			for len(sum) > 0 {
				num, typ, n := protowire.ConsumeTag(sum)
				sum = sum[n:]
				if num != 1 || typ != protowire.BytesType {
					t.Fatalf("summary: field %d type %d, want 1 (value) bytes", num, typ)
				}
				val, n := protowire.ConsumeBytes(sum)
				sum = sum[n:]
				var tag, plugin, str string
				var content []byte
				var x float32
				simple := false
				consumeMessage(t, val, func(num protowire.Number, typ protowire.Type, v []byte, u uint64) {
					switch {
					case num == 1 && typ == protowire.BytesType:
						tag = string(v)
					case num == 2 && typ == protowire.Fixed32Type:
						x, simple = math.Float32frombits(uint32(u)), true
					case num == 8 && typ == protowire.BytesType: // tensor
						consumeMessage(t, v, func(num protowire.Number, _ protowire.Type, v []byte, _ uint64) {
							if num == 8 && str == "" {
								str = string(v)
							}
						})
					case num == 9 && typ == protowire.BytesType: // metadata
						consumeMessage(t, v, func(num protowire.Number, _ protowire.Type, v []byte, _ uint64) {
							if num == 1 { // plugin_data
								consumeMessage(t, v, func(num protowire.Number, _ protowire.Type, v []byte, _ uint64) {
									switch num {
									case 1:
										plugin = string(v)
									case 2:
										content = v
									}
								})
							}
						})
					default:
						t.Fatalf("summary value: unexpected field %d type %d", num, typ)
					}
				})
				if simple {
					ev.values[tag] = x
				} else {
					ev.plugins[tag], ev.contents[tag], ev.strings[tag] = plugin, content, str
				}
			}
		case num == 7 && typ == protowire.BytesType:
			sl, n := protowire.ConsumeBytes(b)
			b = b[n:]
			consumeMessage(t, sl, func(num protowire.Number, _ protowire.Type, _ []byte, x uint64) {
				if num == 1 {
					ev.sessionLog = int(x)
				}
			})
		default:
			t.Fatalf("event: unexpected field %d type %d", num, typ)
		}
	}
	return ev
}

// TestTensorBoardEvents decodes our event file by hand: framing, CRCs, the file_version header event,
// then one Summary per record with the expected tags and values.
func TestTensorBoardEvents(t *testing.T) {
	dir := t.TempDir()
	m, err := NewMetricsWriter(dir, MetricsOptions{TensorBoard: true, Host: "testhost", Now: fakeClock(t0, 250*time.Millisecond)})
	if err != nil {
		t.Fatal(err)
	}
	s7 := sampleStep(7)
	s7.LossRollout = math.NaN()
	if err := m.LogStep(s7); err != nil {
		t.Fatal(err)
	}
	if err := m.LogVal(ValMetrics{Step: 7, Loss: 0.5, LossTF: 0.25, LossRollout: 0.25, RolloutErr: []float64{0.2, 0.3}, Clips: 8}); err != nil {
		t.Fatal(err)
	}
	m.Close()
	_, path := m.Paths()
	if want := filepath.Join(dir, fmt.Sprintf("events.out.tfevents.%d.testhost", t0.Unix())); path != want {
		t.Fatalf("event file %s, want %s", path, want)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	recs := tfRecords(t, raw)
	if len(recs) != 3 {
		t.Fatalf("%d records, want 3 (file_version, step, val)", len(recs))
	}
	wall := func(i int) float64 { return float64(t0.Add(time.Duration(i)*250*time.Millisecond).UnixNano()) / 1e9 }
	want := []event{
		{wall: wall(0), step: 0, fileVersion: "brain.Event:2", values: map[string]float32{}},
		{wall: wall(1), step: 7, values: map[string]float32{
			"train/loss": float32(1.0 / 7), "train/loss_tf": float32(0.4 / 7), "train/loss_rollout": float32(math.NaN()),
			"train/lr": float32(7e-4), "train/weight_decay": 0.04, "train/grad_norm": 2.5, "train/loss_scale": 65536,
			"train/step_time": 0.5, "train/clips_per_s": 16,
		}},
		{wall: wall(2), step: 7, values: map[string]float32{
			"val/loss": 0.5, "val/loss_tf": 0.25, "val/loss_rollout": 0.25, "val/rollout_err/k=1": 0.2, "val/rollout_err/k=2": 0.3,
		}},
	}
	for i, rec := range recs {
		got := decodeEvent(t, rec)
		w := want[i]
		if got.wall != w.wall || got.step != w.step || got.fileVersion != w.fileVersion || len(got.values) != len(w.values) {
			t.Errorf("event %d = wall %v step %d version %q %d values; want wall %v step %d version %q %d values",
				i, got.wall, got.step, got.fileVersion, len(got.values), w.wall, w.step, w.fileVersion, len(w.values))
		}
		for tag, wv := range w.values {
			gv, ok := got.values[tag]
			if !ok || (gv != wv && !(math.IsNaN(float64(gv)) && math.IsNaN(float64(wv)))) {
				t.Errorf("event %d: %s = %v (present %v), want %v", i, tag, gv, ok, wv)
			}
		}
	}
}

// TestMaskedCRC pins the CRC table to CRC-32C with the standard check value, and the mask to a value
// computed from TFRecord's definition.
func TestMaskedCRC(t *testing.T) {
	if got := crc32.Checksum([]byte("123456789"), castagnoli); got != 0xe3069283 {
		t.Fatalf("crc32c(123456789) = %08x, want e3069283", got)
	}
	// rotr15(0xe3069283) = 0x2507c60d; + 0xa282ead8 = 0xc78ab0e5: the data CRC that ends the event-file
	// record framing "123456789" (written by data.AppendRecord).
	rec := data.AppendRecord(nil, []byte("123456789"))
	if got := binary.LittleEndian.Uint32(rec[len(rec)-4:]); got != 0xc78ab0e5 {
		t.Errorf("maskedCRC(123456789) = %08x, want c78ab0e5", got)
	}
}

// TestMetricsWriterSameSecond opens two writers in one folder within the same second (a quick resume):
// each gets its own event file.
func TestMetricsWriterSameSecond(t *testing.T) {
	dir := t.TempDir()
	now := func() time.Time { return time.Unix(1700000000, 0) }
	a, err := NewMetricsWriter(dir, MetricsOptions{TensorBoard: true, Now: now, Host: "h"})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := NewMetricsWriter(dir, MetricsOptions{TensorBoard: true, Now: now, Host: "h"})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	_, pa := a.Paths()
	_, pb := b.Paths()
	if pa == pb {
		t.Fatalf("both writers use %s", pa)
	}
}
