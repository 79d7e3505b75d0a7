package train

// Whole runs on the demo model (lavapipe): a second run into the same folder, crash and resume, changed
// configurations, and the GCS mirror failing, restoring and finishing.

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/fsouza/fake-gcs-server/fakestorage"

	"github.com/vjepa-vk/vjepa-vk/data"
	"github.com/vjepa-vk/vjepa-vk/model"
	"github.com/vjepa-vk/vjepa-vk/vk/vktest"
)

// runConfig is configs/demo.yaml shrunk to a few steps in dir, with a plain progress line per step.
func runConfig(t *testing.T, dir string, steps int, sets ...string) *Config {
	t.Helper()
	cfg, err := Load("../configs/demo.yaml", append([]string{
		"data.source=../testdata/droid_sample", "logging.dir=" + dir, "logging.progress=plain", "logging.every=1",
		"training.steps=" + strconv.Itoa(steps), "training.schedule.warmup=1", "training.schedule.decay=1",
		"training.val_every=0", "data.val_episodes=0", "checkpoint.every=2",
	}, sets...))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// Output collects a run's messages and calls Do once they contain Pattern (for example to cancel the
// run as SIGINT would). Exported for the package's external tests too.
type Output struct {
	Pattern string
	Do      func()
	mu      sync.Mutex
	buf     bytes.Buffer
	done    bool
}

func (o *Output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.buf.Write(p)
	if o.Do != nil && !o.done && strings.Contains(o.buf.String(), o.Pattern) {
		o.done = true
		o.Do()
	}
	return len(p), nil
}

func (o *Output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

// trainWithin runs Train and fails the test if it has not returned within limit (a hang).
func trainWithin(t *testing.T, limit time.Duration, ctx context.Context, cfg *Config, opts Options) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- Train(ctx, cfg, opts) }()
	select {
	case err := <-done:
		return err
	case <-time.After(limit):
		t.Fatalf("Train still running after %v", limit)
		return nil
	}
}

// trainLines counts the train records of each step in metrics.jsonl, duplicates included.
func trainLines(t *testing.T, dir string) map[int]int {
	t.Helper()
	raw := mustRead(t, filepath.Join(dir, MetricsFile))
	n := map[int]int{}
	for _, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		var step int
		if strings.HasPrefix(line, `{"kind":"train"`) {
			fmt.Sscanf(line[strings.Index(line, `"step":`):], `"step":%d`, &step)
			n[step]++
		}
	}
	return n
}

func eventFiles(t *testing.T, dir string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "events.out.tfevents.*"))
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// TestNewRunIntoEarlierRun: a second new run into a run folder refuses, naming --resume and --overwrite,
// and leaves the first run alone; --overwrite replaces it. The run writes config.yaml and logs the
// config to TensorBoard (text and hparams), and its files get 0666 less the umask.
func TestNewRunIntoEarlierRun(t *testing.T) {
	d := vktest.Device(t)
	old := syscall.Umask(0o002)
	defer syscall.Umask(old)
	dir := t.TempDir()
	ctx := context.Background()
	if err := Train(ctx, runConfig(t, dir, 2), Options{Device: d, Out: io.Discard}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{RunConfigFile, MetricsFile, "checkpoints/" + CheckpointName(2), "checkpoints/" + ManifestFile,
		AdapterDir + "/" + model.AdapterWeightsFile, AdapterDir + "/" + model.AdapterConfigFile} {
		st, err := os.Stat(filepath.Join(dir, p))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o664 {
			t.Errorf("%s: mode %v, want -rw-rw-r-- (0666 less umask 002)", p, st.Mode().Perm())
		}
	}
	exported := t.TempDir()
	if step, err := ExportCheckpoint(filepath.Join(dir, "checkpoints", CheckpointName(2)), exported); err != nil || step != 2 {
		t.Fatalf("ExportCheckpoint = %d, %v", step, err)
	}
	for _, f := range []string{model.AdapterWeightsFile, model.AdapterConfigFile} {
		if !bytes.Equal(mustRead(t, filepath.Join(exported, f)), mustRead(t, filepath.Join(dir, AdapterDir, f))) {
			t.Errorf("%s exported from the final checkpoint differs from the one the run exported", f)
		}
	}
	saved, err := Load(filepath.Join(dir, RunConfigFile), nil)
	if err != nil || saved.Training.Steps != 2 || saved.Logging.Dir != dir {
		t.Errorf("config.yaml read back: %+v, %v", saved, err)
	}
	evs := eventFiles(t, dir)
	if len(evs) != 1 {
		t.Fatalf("event files %v, want 1", evs)
	}
	tags := map[string]string{}
	for _, rec := range tfRecords(t, mustRead(t, evs[0])) {
		for tag, plugin := range decodeEvent(t, rec).plugins {
			tags[tag] = plugin
		}
	}
	for tag, plugin := range map[string]string{"config": "text", "_hparams_/experiment": "hparams",
		"_hparams_/session_start_info": "hparams", "_hparams_/session_end_info": "hparams"} {
		if tags[tag] != plugin {
			t.Errorf("event file: summary %q has plugin %q, want %q (all: %v)", tag, tags[tag], plugin, tags)
		}
	}

	metrics := mustRead(t, filepath.Join(dir, MetricsFile))
	err = Train(ctx, runConfig(t, dir, 3), Options{Device: d, Out: io.Discard})
	if !errors.Is(err, ErrRunDirNotEmpty) || !strings.Contains(err.Error(), "--resume auto") || !strings.Contains(err.Error(), "--overwrite") {
		t.Fatalf("second new run into %s: %v, want a refusal naming --resume and --overwrite", dir, err)
	}
	if !bytes.Equal(mustRead(t, filepath.Join(dir, MetricsFile)), metrics) {
		t.Error("the refused run changed metrics.jsonl")
	}
	if err := Train(ctx, runConfig(t, dir, 2, "checkpoint.resume=auto"), Options{Device: d, Out: io.Discard, Overwrite: true}); err == nil {
		t.Error("--overwrite with --resume was accepted")
	}
	notes := filepath.Join(dir, "notes.txt") // not ours: --overwrite must keep it
	os.WriteFile(notes, []byte("mine"), 0o666)
	time.Sleep(1100 * time.Millisecond) // a new event file name (unix seconds)
	if err := Train(ctx, runConfig(t, dir, 3), Options{Device: d, Out: io.Discard, Overwrite: true}); err != nil {
		t.Fatal(err)
	}
	if n := trainLines(t, dir); len(n) != 3 || n[1] != 1 || n[3] != 1 {
		t.Errorf("after --overwrite metrics.jsonl has train records %v, want steps 1-3 once", n)
	}
	if evs := eventFiles(t, dir); len(evs) != 1 {
		t.Errorf("after --overwrite event files %v, want only the new run's", evs)
	}
	if _, err := os.Stat(notes); err != nil {
		t.Errorf("--overwrite removed a file that is not a run output: %v", err)
	}
}

// TestResumeAfterCrash: a run killed after its step-4 checkpoint was torn, leaving temp files of
// interrupted writes. resume auto must warn and fall back to step 2, remove the temp files, drop the
// metrics of steps 3-4 before re-doing them (JSONL truncated, TensorBoard purge marker at step 3), and
// reproduce the lost steps exactly.
func TestResumeAfterCrash(t *testing.T) {
	d := vktest.Device(t)
	dir := t.TempDir()
	ctx := context.Background()
	if err := Train(ctx, runConfig(t, dir, 4), Options{Device: d, Out: io.Discard}); err != nil {
		t.Fatal(err)
	}
	first, err := ReadMetrics(filepath.Join(dir, MetricsFile))
	if err != nil {
		t.Fatal(err)
	}
	ck4 := filepath.Join(dir, "checkpoints", CheckpointName(4))
	raw := mustRead(t, ck4)
	raw[len(raw)-1] ^= 0xff // a flipped bit in the last tensor
	os.WriteFile(ck4, raw, 0o666)
	temps := []string{"checkpoints/.manifest.json.1234.tmp", "checkpoints/.ckpt-000000006.safetensors88",
		"adapter/adapter_model.safetensors.tmp-77", ".config.yaml5"}
	for _, p := range temps {
		os.WriteFile(filepath.Join(dir, p), []byte("partial"), 0o666)
	}
	time.Sleep(1100 * time.Millisecond)

	out := &Output{}
	if err := Train(ctx, runConfig(t, dir, 4, "checkpoint.resume=auto"), Options{Device: d, Out: out}); err != nil {
		t.Fatalf("%v\noutput:\n%s", err, out)
	}
	for _, want := range []string{"warning: resume: train: checkpoint " + ck4 + ": corrupt", "set aside as ckpt-000000004.safetensors.corrupt",
		"falling back to ckpt-000000002.safetensors", "resumed at step 2", "removed 4 temp files"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	for _, p := range temps {
		if _, err := os.Stat(filepath.Join(dir, p)); err == nil {
			t.Errorf("leftover %s was not removed", p)
		}
	}
	if _, err := os.Stat(ck4 + corruptSuffix); err != nil {
		t.Errorf("corrupt checkpoint not set aside: %v", err)
	}
	if n := trainLines(t, dir); len(n) != 4 || n[1] != 1 || n[2] != 1 || n[3] != 1 || n[4] != 1 {
		t.Errorf("metrics.jsonl train records per step %v, want steps 1-4 once each", n)
	}
	again, err := ReadMetrics(filepath.Join(dir, MetricsFile))
	if err != nil {
		t.Fatal(err)
	}
	for i := range first.Train {
		if a, b := first.Train[i], again.Train[i]; a.Loss != b.Loss || a.GradNorm != b.GradNorm {
			t.Errorf("step %d: loss %v grad norm %v first, %v %v after the resume", a.Step, a.Loss, a.GradNorm, b.Loss, b.GradNorm)
		}
	}
	evs := eventFiles(t, dir)
	if len(evs) != 2 {
		t.Fatalf("event files %v, want 2", evs)
	}
	recs := tfRecords(t, mustRead(t, evs[1]))
	if e1, e2 := decodeEvent(t, recs[1]), decodeEvent(t, recs[2]); e1.fileVersion != "brain.Event:2" || e1.step != 3 || e2.sessionLog != 1 || e2.step != 3 {
		t.Errorf("resumed event file starts %+v, %+v; want the purge_step=3 marker", e1, e2)
	}
}

// TestResumeRefuses: a resume with a different adapter shape or past training.steps is refused before
// any work, naming what is wrong; other changes are listed and accepted.
func TestResumeRefuses(t *testing.T) {
	d := vktest.Device(t)
	dir := t.TempDir()
	ctx := context.Background()
	if err := Train(ctx, runConfig(t, dir, 2), Options{Device: d, Out: io.Discard}); err != nil {
		t.Fatal(err)
	}
	ckpt := filepath.Join(dir, "checkpoints", CheckpointName(2))
	for _, tt := range []struct {
		sets []string
		want string
	}{
		{[]string{"lora.r=8", "lora.alpha=16"}, "lora.r: 4 -> 8"},
		{[]string{"model.depth=3"}, "model.depth: 2 -> 3"},
		{[]string{"training.steps=1", "training.schedule.decay=0"}, "the checkpoint is at step 2, past training.steps = 1"},
	} {
		err := Train(ctx, runConfig(t, dir, 2, append(tt.sets, "checkpoint.resume=auto")...), Options{Device: d, Out: io.Discard})
		if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), ckpt) {
			t.Errorf("resume with %v: %v, want a refusal naming %s and %q", tt.sets, err, ckpt, tt.want)
		}
	}
	out := &Output{}
	if err := Train(ctx, runConfig(t, dir, 2, "checkpoint.resume=auto", "training.lr=0.003", "lora.dropout=0.1"), Options{Device: d, Out: out}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"the config changed since the checkpoint at step 2", "training.lr: 0.001 -> 0.003", "lora.dropout: 0 -> 0.1"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// gcsTestOptions are fast request bounds over a fake server's transport.
func gcsTestOptions(rt http.RoundTripper) data.GCSOptions {
	return data.GCSOptions{Attempts: 3, Backoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond, Timeout: 5 * time.Second,
		Anonymous: true, Transport: rt}
}

// killableTransport refuses every request once killed, like a server whose host went away.
type killableTransport struct {
	next http.RoundTripper
	dead atomic.Bool
}

func (k *killableTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if k.dead.Load() {
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	}
	return k.next.RoundTrip(r)
}

// TestSyncServerDies kills the GCS server after the first step: training goes on, every failed pass
// prints a warning and logs a sync metric as it happens, and the run fails once the bounded final pass
// does, instead of hanging or exiting 0 with nothing uploaded.
func TestSyncServerDies(t *testing.T) {
	d := vktest.Device(t)
	srv := fakeGCS(t)
	kt := &killableTransport{next: srv.HTTPClient().Transport}
	dir := t.TempDir()
	cfg := runConfig(t, dir, 6, "checkpoint.gcs_sync.url=gs://"+testBucket+"/dies", "checkpoint.gcs_sync.every_minutes=0.0005",
		"checkpoint.every=1")
	out := &Output{Pattern: "step 1/", Do: func() { kt.dead.Store(true) }}
	err := trainWithin(t, 2*time.Minute, context.Background(), cfg, Options{Device: d, Out: out, GCS: gcsTestOptions(kt)})
	if err == nil || errors.Is(err, ErrInterrupted) || !strings.Contains(err.Error(), "train: gcs sync: final pass failed") ||
		!strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("Train = %v, want the final sync's failure\noutput:\n%s", err, out)
	}
	for _, want := range []string{"warning: gcs sync failed (1 passes in a row", "gcs: list gs://" + testBucket + "/dies/: attempt 1 of 3 failed: "} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	m, err := ReadMetrics(filepath.Join(dir, MetricsFile))
	if err != nil {
		t.Fatal(err)
	}
	failed := 0
	for _, s := range m.Sync {
		if !s.OK && s.Failures >= 1 && strings.Contains(s.Error, "connection refused") {
			failed++
		}
	}
	if failed == 0 {
		t.Errorf("no failed sync pass among the metrics %+v", m.Sync)
	}
}

// TestResumeFromBucket: a run mirrored to GCS continues on a machine with an empty run folder, through
// --resume auto (with gcs_sync.url) and through --resume gs://..., and both continue exactly where the
// bucket's checkpoint left off. Temp files that reached the bucket are not restored.
func TestResumeFromBucket(t *testing.T) {
	d := vktest.Device(t)
	srv := fakeGCS(t)
	opts := gcsTestOptions(srv.HTTPClient().Transport)
	url := "gs://" + testBucket + "/mirror"
	ctx := context.Background()
	first := t.TempDir()
	if err := Train(ctx, runConfig(t, first, 4, "checkpoint.gcs_sync.url="+url), Options{Device: d, Out: io.Discard, MaxStep: 2, GCS: opts}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"mirror/checkpoints/.ckpt-000000008.safetensors.3.tmp", "mirror/adapter/adapter_model.safetensors.tmp-5"} {
		srv.CreateObject(fakestorage.Object{ObjectAttrs: fakestorage.ObjectAttrs{BucketName: testBucket, Name: name}, Content: []byte("partial")})
	}
	var losses [][]StepMetrics
	for _, sets := range [][]string{
		{"checkpoint.resume=" + url},                                 // restores only
		{"checkpoint.resume=auto", "checkpoint.gcs_sync.url=" + url}, // restores, then mirrors on
	} {
		dir := filepath.Join(t.TempDir(), "fresh-vm")
		out := &Output{}
		if err := Train(ctx, runConfig(t, dir, 4, sets...), Options{Device: d, Out: out, GCS: opts}); err != nil {
			t.Fatalf("%v: %v\noutput:\n%s", sets, err, out)
		}
		if !strings.Contains(out.String(), "resume: restored ") || !strings.Contains(out.String(), "resumed at step 2") {
			t.Errorf("%v: output lacks the restore and the resume at step 2:\n%s", sets, out)
		}
		for _, p := range []string{"checkpoints/.ckpt-000000008.safetensors.3.tmp", "adapter/adapter_model.safetensors.tmp-5"} {
			if _, err := os.Stat(filepath.Join(dir, p)); err == nil {
				t.Errorf("%v: temp file %s was restored", sets, p)
			}
		}
		m, err := ReadMetrics(filepath.Join(dir, MetricsFile))
		if err != nil {
			t.Fatal(err)
		}
		if len(m.Train) != 4 {
			t.Fatalf("%v: %d steps logged, want 4 (1-2 restored, 3-4 trained)", sets, len(m.Train))
		}
		losses = append(losses, m.Train)
	}
	for i := range losses[0] {
		if losses[0][i].Loss != losses[1][i].Loss {
			t.Errorf("step %d: loss %v after --resume gs://, %v after --resume auto", i+1, losses[0][i].Loss, losses[1][i].Loss)
		}
	}
}

// stallingTransport never answers uploads (a server that accepts and hangs); other requests pass.
type stallingTransport struct{ next http.RoundTripper }

func (s stallingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if strings.Contains(r.URL.Path, "/upload/") {
		<-r.Context().Done()
		return nil, r.Context().Err()
	}
	return s.next.RoundTrip(r)
}

// TestFinalSyncBounded: a final sync against a server that hangs ends at gcs_sync.final_minutes with an
// error, and a second interrupt (Options.Abort) abandons it at once.
func TestFinalSyncBounded(t *testing.T) {
	d := vktest.Device(t)
	srv := fakeGCS(t)
	opts := gcsTestOptions(stallingTransport{srv.HTTPClient().Transport})
	opts.Timeout = time.Hour // only the final bound or the abort can end the upload
	ctx := context.Background()

	cfg := runConfig(t, t.TempDir(), 2, "checkpoint.gcs_sync.url=gs://"+testBucket+"/hang", "checkpoint.gcs_sync.final_minutes=0.01",
		"checkpoint.every=0")
	start := time.Now()
	err := trainWithin(t, time.Minute, ctx, cfg, Options{Device: d, Out: io.Discard, GCS: opts})
	if err == nil || !strings.Contains(err.Error(), "the final pass did not finish within checkpoint.gcs_sync.final_minutes (600ms)") {
		t.Fatalf("Train = %v after %v, want the final pass cut at 600ms", err, time.Since(start))
	}

	abort, cancel := context.WithCancel(ctx)
	defer cancel()
	out := &Output{Pattern: "final pass to", Do: cancel}
	cfg = runConfig(t, t.TempDir(), 2, "checkpoint.gcs_sync.url=gs://"+testBucket+"/hang2", "checkpoint.every=0")
	if err := trainWithin(t, time.Minute, ctx, cfg, Options{Device: d, Out: out, GCS: opts, Abort: abort}); err != nil {
		t.Fatalf("Train = %v, want a finished run whose abandoned final sync is only a warning", err)
	}
	if !strings.Contains(out.String(), "warning: gcs sync: final pass abandoned") {
		t.Errorf("output lacks the abandoned final pass:\n%s", out)
	}
}

// TestAllShardsCorrupt: a dataset whose every record fails its checksum stops the run before the first
// step with an error that says so (not "ran out of clips" at step 1), and leaves no run folder.
func TestAllShardsCorrupt(t *testing.T) {
	d := vktest.Device(t)
	src := t.TempDir()
	entries, err := os.ReadDir("../testdata/droid_sample")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		b := mustRead(t, filepath.Join("../testdata/droid_sample", e.Name()))
		if strings.Contains(e.Name(), ".tfrecord-") {
			for off := 0; off+16 <= len(b); { // TFRecord framing: u64 length, u32 crc, data, u32 crc
				n := int(binary.LittleEndian.Uint64(b[off:]))
				b[off+12+n/2] ^= 0xff // inside the record's data: its data crc fails
				off += 16 + n
			}
		}
		os.WriteFile(filepath.Join(src, e.Name()), b, 0o666)
	}
	dir := filepath.Join(t.TempDir(), "run")
	err = Train(context.Background(), runConfig(t, dir, 4, "data.source="+src), Options{Device: d, Out: io.Discard})
	if err == nil || !strings.Contains(err.Error(), "gave no clip of 4 frames for training") || !strings.Contains(err.Error(), "6 corrupt records") {
		t.Fatalf("Train on a dataset of corrupt records: %v, want an error counting them before the first step", err)
	}
	if _, err := os.Stat(dir); err == nil {
		t.Errorf("the failed run left %s behind", dir)
	}
}

// TestExportModules: on a dataset whose state and action are not 7-D (the LeRobot demo: 6-D states, 4-D
// actions), the run's adapter and `export` from its checkpoint carry the conditioning encoders trained in
// full (modules_to_save), byte for byte the same, and ReadAdapter reads them back at their widths.
func TestExportModules(t *testing.T) {
	d := vktest.Device(t)
	dir := t.TempDir()
	cfg, err := Load("../configs/lerobot-demo.yaml", []string{
		"data.source=../testdata/lerobot_demo", "logging.dir=" + dir, "logging.progress=plain", "logging.every=1",
		"training.steps=2", "training.schedule.warmup=1", "training.schedule.decay=1",
		"training.val_every=0", "data.val_episodes=0", "checkpoint.every=2", "data.workers=1",
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := Train(context.Background(), cfg, Options{Device: d, Out: io.Discard}); err != nil {
		t.Fatal(err)
	}
	exported := t.TempDir()
	if _, err := ExportCheckpoint(filepath.Join(dir, "checkpoints", CheckpointName(2)), exported); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{model.AdapterWeightsFile, model.AdapterConfigFile} {
		if !bytes.Equal(mustRead(t, filepath.Join(exported, f)), mustRead(t, filepath.Join(dir, AdapterDir, f))) {
			t.Errorf("%s exported from the final checkpoint differs from the one the run exported", f)
		}
	}
	ad, err := model.ReadAdapter(exported)
	if err != nil {
		t.Fatal(err)
	}
	shapes := map[string][]int{}
	for _, m := range ad.Modules {
		shapes[m.Name] = m.Shape
	}
	D := cfg.Model.PredDim
	want := map[string][]int{"action_encoder.weight": {D, 4}, "action_encoder.bias": {D},
		"state_encoder.weight": {D, 6}, "state_encoder.bias": {D}}
	if fmt.Sprint(shapes) != fmt.Sprint(want) {
		t.Errorf("exported modules %v, want %v", shapes, want)
	}
}
