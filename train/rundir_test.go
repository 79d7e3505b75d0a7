package train

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
)

// TestLeftoverTemps: the temp names of every atomic writer this program has had are recognised (and
// only they), and removeLeftoverTemps deletes exactly those.
func TestLeftoverTemps(t *testing.T) {
	temps := []string{
		".manifest.json.123456.tmp",               // train before renameio
		".ckpt-000000004.safetensors.98.tmp",      // train before renameio
		"adapter_model.safetensors.tmp-4242",      // model before renameio
		"adapter_config.json.tmp-1",               // model before renameio
		".ckpt-000000004.safetensors573829104922", // renameio (model.NewPendingFile)
		".manifest.json8",
		".config.yaml1234",
		".adapter_model.safetensors77",
		".predictor_merged.safetensors5",
		".metrics.jsonl31",
	}
	keep := []string{
		"manifest.json", "ckpt-000000004.safetensors", "ckpt-000000004.safetensors.corrupt", "config.yaml",
		".gitignore", ".notes123", "metrics.jsonl", "events.out.tfevents.1.host", "my.tmp", ".hidden.tmp",
		"adapter_model.safetensors", "results-2.csv",
	}
	for _, n := range temps {
		if !isLeftoverTemp(n) {
			t.Errorf("isLeftoverTemp(%q) = false, want true", n)
		}
	}
	for _, n := range keep {
		if isLeftoverTemp(n) {
			t.Errorf("isLeftoverTemp(%q) = true, want false", n)
		}
	}
	dir := t.TempDir()
	for _, n := range append(slices.Clone(temps), keep...) {
		if err := os.WriteFile(filepath.Join(dir, n), []byte("x"), 0o666); err != nil {
			t.Fatal(err)
		}
	}
	removed, err := removeLeftoverTemps(dir, filepath.Join(dir, "missing"))
	if err != nil || len(removed) != len(temps) {
		t.Fatalf("removeLeftoverTemps removed %d files (%v), want %d", len(removed), err, len(temps))
	}
	left, _ := os.ReadDir(dir)
	if len(left) != len(keep) {
		t.Errorf("%d files left, want the %d others", len(left), len(keep))
	}
}

// TestAtomicWritesHonourUmask: checkpoints, the manifest and config.yaml get 0666 less the umask, like
// the output of any other tool (they were 0600).
func TestAtomicWritesHonourUmask(t *testing.T) {
	old := syscall.Umask(0o002)
	defer syscall.Umask(old)
	dir := t.TempDir()
	ck := &Checkpoint{Header: CheckpointHeader{Step: 3}, Tensors: []Tensor{F32Tensor("w", []int{2}, []float32{1, 2})}}
	if _, err := (CheckpointStore{Dir: dir}).Save(ck); err != nil {
		t.Fatal(err)
	}
	cfg := Default()
	cfg.Data.Source = "x"
	if err := writeRunConfig(dir, cfg); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{CheckpointName(3), ManifestFile, RunConfigFile} {
		st, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if got := st.Mode().Perm(); got != 0o664 {
			t.Errorf("%s: mode %v, want -rw-rw-r-- (0666 less umask 002)", name, got)
		}
	}
}

// TestPurgeMarker resumes a run whose earlier process logged steps 1-5 but checkpointed step 2: the
// JSONL keeps the records up to step 2 (and drops a torn last line), and the new event file carries
// PyTorch's purge_step=3 marker: file_version at step 3, then SessionLog START at step 3.
func TestPurgeMarker(t *testing.T) {
	dir := t.TempDir()
	first, err := NewMetricsWriter(dir, MetricsOptions{JSONL: true, TensorBoard: true, Host: "h", Now: fakeClock(t0, time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	for s := 1; s <= 5; s++ {
		first.LogStep(sampleStep(s))
		if s == 2 || s == 4 {
			first.LogVal(ValMetrics{Step: s, Loss: 1, RolloutErr: []float64{0.5}})
		}
	}
	first.LogSync(SyncMetrics{Step: 4, OK: false, Failures: 1, SinceOK: math.NaN(), Error: "gcs: \"boom\"\n"})
	first.Close()
	jsonl := filepath.Join(dir, MetricsFile)
	if log, err := ReadMetrics(jsonl); err != nil || len(log.Sync) != 1 || log.Sync[0].Error != "gcs: \"boom\"\n" || !math.IsNaN(log.Sync[0].SinceOK) {
		t.Fatalf("sync record read back as %+v, %v", log, err)
	}
	f, _ := os.OpenFile(jsonl, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"kind":"train","wall_time":9,"step":6,"lo`) // the crash
	f.Close()

	second, err := NewMetricsWriter(dir, MetricsOptions{JSONL: true, TensorBoard: true, Host: "h", PurgeStep: 3,
		Now: fakeClock(t0.Add(time.Hour), time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	second.LogStep(sampleStep(3))
	second.Close()

	raw, _ := os.ReadFile(jsonl)
	var steps []string
	for _, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		var kind string
		var step int
		fmt.Sscanf(line[strings.Index(line, `"kind":`):], `"kind":%q`, &kind)
		fmt.Sscanf(line[strings.Index(line, `"step":`):], `"step":%d`, &step)
		steps = append(steps, fmt.Sprintf("%s%d", kind, step))
	}
	if got, want := strings.Join(steps, " "), "train1 train2 val2 train3"; got != want {
		t.Errorf("metrics.jsonl records %s, want %s", got, want)
	}
	_, events := second.Paths()
	recs := tfRecords(t, mustRead(t, events))
	if len(recs) != 4 {
		t.Fatalf("%d events, want 4 (file_version, purge file_version, START, step 3)", len(recs))
	}
	got := []event{decodeEvent(t, recs[0]), decodeEvent(t, recs[1]), decodeEvent(t, recs[2])}
	if got[0].fileVersion != "brain.Event:2" || got[0].step != 0 ||
		got[1].fileVersion != "brain.Event:2" || got[1].step != 3 ||
		got[2].sessionLog != 1 || got[2].step != 3 || got[2].fileVersion != "" {
		t.Errorf("first events %+v, want file_version@0, file_version@3, SessionLog START@3", got)
	}
	if got[1].wall == 0 || got[2].wall == 0 {
		t.Error("purge marker events have no wall_time (SummaryWriter's FileWriter.add_event sets it)")
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestLogConfig decodes the configuration summaries: the YAML as a text summary, and the hparams
// experiment and session start (plugin "hparams", version 0) with every key and its typed value.
func TestLogConfig(t *testing.T) {
	dir := t.TempDir()
	cfg, err := Load("../configs/demo.yaml", []string{"training.lr=0.00025"})
	if err != nil {
		t.Fatal(err)
	}
	m, err := NewMetricsWriter(dir, MetricsOptions{TensorBoard: true, Host: "h", Now: fakeClock(t0, time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.LogConfig(0, cfg); err != nil {
		t.Fatal(err)
	}
	if err := m.LogRunEnd(7, true); err != nil {
		t.Fatal(err)
	}
	m.Close()
	_, path := m.Paths()
	recs := tfRecords(t, mustRead(t, path))
	if len(recs) != 3 {
		t.Fatalf("%d events, want 3", len(recs))
	}
	ev := decodeEvent(t, recs[1])
	if ev.plugins["config"] != "text" || !strings.Contains(ev.strings["config"], "    training:\n") || !strings.Contains(ev.strings["config"], "lr: 0.00025") {
		t.Errorf("config text summary: plugin %q, text %q", ev.plugins["config"], ev.strings["config"])
	}
	exp, ssi := ev.contents["_hparams_/experiment"], ev.contents["_hparams_/session_start_info"]
	if ev.plugins["_hparams_/experiment"] != "hparams" || ev.plugins["_hparams_/session_start_info"] != "hparams" {
		t.Fatalf("hparams summaries missing: %v", ev.plugins)
	}
	hp := map[string]any{}
	var infos, metrics int
	consumeMessage(t, exp, func(num protowire.Number, _ protowire.Type, v []byte, _ uint64) {
		switch num {
		case 2: // experiment
			consumeMessage(t, v, func(num protowire.Number, _ protowire.Type, _ []byte, _ uint64) {
				if num == 4 {
					infos++
				} else if num == 5 {
					metrics++
				}
			})
		}
	})
	consumeMessage(t, ssi, func(num protowire.Number, _ protowire.Type, v []byte, _ uint64) {
		if num != 3 {
			return
		}
		consumeMessage(t, v, func(num protowire.Number, _ protowire.Type, entry []byte, _ uint64) {
			if num != 1 {
				return
			}
			var key string
			var val any
			consumeMessage(t, entry, func(num protowire.Number, _ protowire.Type, v []byte, _ uint64) {
				if num == 1 {
					key = string(v)
					return
				}
				consumeMessage(t, v, func(num protowire.Number, _ protowire.Type, s []byte, x uint64) {
					switch num {
					case 2:
						val = math.Float64frombits(x)
					case 3:
						val = string(s)
					case 4:
						val = x != 0
					}
				})
			})
			hp[key] = val
		})
	})
	flat, _ := flattenConfig(cfg)
	if infos != len(flat) || len(hp) != len(flat) || metrics != 2 {
		t.Errorf("%d hparam infos, %d values, %d metrics; want %d, %d, 2", infos, len(hp), metrics, len(flat), len(flat))
	}
	for key, want := range map[string]any{"training.lr": 0.00025, "model.depth": 2.0, "lora.targets": "[qkv, proj, fc1, fc2]", "logging.jsonl": true} {
		if hp[key] != want {
			t.Errorf("hparam %s = %#v, want %#v", key, hp[key], want)
		}
	}
	end := decodeEvent(t, recs[2])
	if end.plugins["_hparams_/session_end_info"] != "hparams" || end.step != 7 {
		t.Errorf("session end event %+v", end)
	}
}

// TestConfigChanges: a resume refuses changes to what the checkpoint's tensors depend on and lists the
// rest; keys one side lacks are listed, never fatal.
func TestConfigChanges(t *testing.T) {
	base, err := Load("../configs/demo.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	var saved strings.Builder
	Print(&saved, base)
	for _, tt := range []struct {
		sets         []string
		fatal, other string
	}{
		{nil, "", ""},
		{[]string{"checkpoint.resume=auto", "logging.progress=off"}, "", ""},
		{[]string{"training.lr=0.002", "training.steps=300"}, "", "training.lr: 0.001 -> 0.002 | training.steps: 150 -> 300"},
		{[]string{"lora.r=8", "lora.alpha=16"}, "lora.alpha: 8 -> 16 | lora.r: 4 -> 8", ""},
		{[]string{"lora.targets=qkv"}, "lora.targets: [qkv, proj, fc1, fc2] -> [qkv]", ""},
		{[]string{"model.depth=3", "model.encoder.depth=3", "lora.dropout=0.1"}, "model.depth: 2 -> 3 | model.encoder.depth: 2 -> 3", "lora.dropout: 0 -> 0.1"},
		{[]string{"training.optimizer=adamw8bit", "model.precision=bf16"}, "training.optimizer: adamw -> adamw8bit", "model.precision: fp32 -> bf16"},
	} {
		t.Run(strings.Join(tt.sets, ","), func(t *testing.T) {
			cur, err := Load("../configs/demo.yaml", tt.sets)
			if err != nil {
				t.Fatal(err)
			}
			fatal, other, err := configChanges(saved.String(), cur)
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(fatal, " | "); got != tt.fatal {
				t.Errorf("fatal %q, want %q", got, tt.fatal)
			}
			if got := strings.Join(other, " | "); got != tt.other {
				t.Errorf("other %q, want %q", got, tt.other)
			}
		})
	}
	old := strings.Replace(saved.String(), "  keep_best: true\n", "  keep_best: true\n  retired_key: 3\n", 1)
	old = strings.Replace(old, "  r: 4\n", "", 1)
	fatal, other, err := configChanges(old, base)
	if err != nil || len(fatal) != 0 || strings.Join(other, " | ") != "checkpoint.retired_key: 3 -> (absent) | lora.r: (absent) -> 4" {
		t.Errorf("keys of another version: fatal %q, other %q, %v", fatal, other, err)
	}
}
