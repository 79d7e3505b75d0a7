package train

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"cloud.google.com/go/storage"
	"github.com/fsouza/fake-gcs-server/fakestorage"
	"google.golang.org/api/option"

	"github.com/vjepa-vk/vjepa-vk/data"
)

const testBucket = "runs-bucket"

// fastGCS are test request bounds (the defaults behave the same, slower); logf nil discards retry lines.
func fastGCS(logf func(string, ...any)) data.GCSOptions {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	return data.GCSOptions{Attempts: 3, Backoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond, Timeout: 2 * time.Second, Logf: logf, Anonymous: true}
}

// fakeGCS starts an in-memory fake-gcs-server (no socket) with one bucket plus an object outside the
// synced prefix and one under a sibling prefix, which a sync must never touch.
func fakeGCS(t *testing.T) *fakestorage.Server {
	t.Helper()
	srv, err := fakestorage.NewServerWithOptions(fakestorage.Options{
		NoListener: true,
		InitialObjects: []fakestorage.Object{
			{ObjectAttrs: fakestorage.ObjectAttrs{BucketName: testBucket, Name: "other/keep.txt"}, Content: []byte("not ours")},
			{ObjectAttrs: fakestorage.ObjectAttrs{BucketName: testBucket, Name: "run10/keep.txt"}, Content: []byte("sibling prefix")},
			{ObjectAttrs: fakestorage.ObjectAttrs{BucketName: testBucket, Name: "run1/from-earlier-vm.txt"}, Content: []byte("backup")},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	return srv
}

// remoteFiles lists bucket objects as name -> content.
func remoteFiles(t *testing.T, srv *fakestorage.Server) map[string]string {
	t.Helper()
	objs, _, err := srv.ListObjectsWithOptions(testBucket, fakestorage.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, o := range objs {
		full, err := srv.GetObject(testBucket, o.Name)
		if err != nil {
			t.Fatal(err)
		}
		out[o.Name] = string(full.Content)
	}
	return out
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func randomBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// TestSyncerMirror runs passes by hand: first upload, no-op, change detection (same size, different
// bytes: only the CRC differs), deletion of a file that disappeared locally, and that dot-files, temp
// files of interrupted writes, other prefixes and remote files never seen locally
// (run1/from-earlier-vm.txt) are left alone.
func TestSyncerMirror(t *testing.T) {
	srv := fakeGCS(t)
	dir := t.TempDir()
	big := randomBytes(1, 600<<10) // > 2 chunks of 256 KiB: a multi-request resumable upload
	writeFile(t, filepath.Join(dir, "metrics.jsonl"), []byte("hello\n"))
	writeFile(t, filepath.Join(dir, "checkpoints", "ckpt-000000001.safetensors"), big)
	writeFile(t, filepath.Join(dir, "checkpoints", ".ckpt-000000002.safetensors.1.tmp"), []byte("partial"))
	writeFile(t, filepath.Join(dir, ".hidden", "x"), []byte("skip"))
	// Temp files of writers killed mid-write (kill -9): never uploaded, whatever their naming.
	writeFile(t, filepath.Join(dir, "adapter", "adapter_model.safetensors.tmp-4242"), []byte("partial"))
	writeFile(t, filepath.Join(dir, "adapter", ".adapter_config.json5791"), []byte("partial"))

	client, rt := flakyClient(t, srv, 0, 0) // counts upload requests, fails none
	s, err := NewSyncer(client, SyncOptions{LocalDir: dir, URL: "gs://" + testBucket + "/run1/", ChunkSize: 256 << 10, GCS: fastGCS(nil)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	ctx := context.Background()

	steps := []struct {
		name   string
		before func()
		want   map[string]string
		wantUp int // cumulative uploads
		wantDe int // cumulative deletions
	}{
		{"first", nil, map[string]string{
			"run1/metrics.jsonl": "hello\n", "run1/checkpoints/ckpt-000000001.safetensors": string(big),
		}, 2, 0},
		{"unchanged", nil, map[string]string{
			"run1/metrics.jsonl": "hello\n", "run1/checkpoints/ckpt-000000001.safetensors": string(big),
		}, 2, 0},
		{"same_size_changed", func() { writeFile(t, filepath.Join(dir, "metrics.jsonl"), []byte("jello\n")) }, map[string]string{
			"run1/metrics.jsonl": "jello\n", "run1/checkpoints/ckpt-000000001.safetensors": string(big),
		}, 3, 0},
		{"appended", func() { writeFile(t, filepath.Join(dir, "metrics.jsonl"), []byte("jello\nworld\n")) }, map[string]string{
			"run1/metrics.jsonl": "jello\nworld\n", "run1/checkpoints/ckpt-000000001.safetensors": string(big),
		}, 4, 0},
		{"deleted", func() { os.Remove(filepath.Join(dir, "checkpoints", "ckpt-000000001.safetensors")) }, map[string]string{
			"run1/metrics.jsonl": "jello\nworld\n",
		}, 4, 1},
	}
	for _, st := range steps {
		t.Run("pass="+st.name, func(t *testing.T) {
			if st.before != nil {
				st.before()
			}
			if err := s.Sync(ctx); err != nil {
				t.Fatal(err)
			}
			st.want["other/keep.txt"] = "not ours"
			st.want["run10/keep.txt"] = "sibling prefix"
			st.want["run1/from-earlier-vm.txt"] = "backup"
			got := remoteFiles(t, srv)
			if len(got) != len(st.want) {
				t.Errorf("remote objects %v, want %v", keys(got), keys(st.want))
			}
			for name, want := range st.want {
				if got[name] != want {
					t.Errorf("remote %s: %d bytes, want %d (%q...)", name, len(got[name]), len(want), want[:min(len(want), 12)])
				}
			}
			if st.name == "first" {
				// 600 KiB in 256 KiB chunks is 3 requests, the small file 1; at least 4 upload requests.
				if n := rt.seen.Load(); n < 4 {
					t.Errorf("first pass made %d upload requests, want >= 4 (a chunked resumable upload)", n)
				}
				t.Logf("first pass: %d upload requests", rt.seen.Load())
			}
			stats := s.Stats()
			if stats.Uploaded != st.wantUp || stats.Deleted != st.wantDe || stats.LastErr != nil {
				t.Errorf("stats uploaded %d deleted %d err %v; want %d, %d, nil", stats.Uploaded, stats.Deleted, stats.LastErr, st.wantUp, st.wantDe)
			}
		})
	}
}

func keys(m map[string]string) []string {
	var k []string
	for n := range m {
		k = append(k, n)
	}
	slices.Sort(k)
	return k
}

// flakyTransport fails the first `fail` upload requests with the given status, then passes through.
type flakyTransport struct {
	next   http.RoundTripper
	status int
	fail   int32
	seen   atomic.Int32 // upload requests seen
}

func (f *flakyTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if strings.Contains(r.URL.Path, "/upload/") {
		if n := f.seen.Add(1); n <= f.fail {
			body := fmt.Sprintf(`{"error":{"code":%d,"message":"injected failure %d"}}`, f.status, n)
			if r.Body != nil {
				io.Copy(io.Discard, r.Body)
				r.Body.Close()
			}
			return &http.Response{
				StatusCode: f.status, Status: http.StatusText(f.status), Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
				Header: http.Header{"Content-Type": {"application/json"}}, Body: io.NopCloser(strings.NewReader(body)),
				ContentLength: int64(len(body)), Request: r,
			}, nil
		}
	}
	return f.next.RoundTrip(r)
}

func flakyClient(t *testing.T, srv *fakestorage.Server, status int, fail int32) (*storage.Client, *flakyTransport) {
	rt := &flakyTransport{next: srv.HTTPClient().Transport, status: status, fail: fail}
	c, err := storage.NewClient(context.Background(), option.WithHTTPClient(&http.Client{Transport: rt}), option.WithoutAuthentication())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, rt
}

// TestSyncerRetry injects HTTP failures into uploads: transient ones are retried with backoff until they
// succeed or the attempts run out; permanent ones fail at once.
func TestSyncerRetry(t *testing.T) {
	tests := []struct {
		name        string
		status      int
		fail        int32
		attempts    int
		wantErr     string // "" = success
		wantRetries int
	}{
		{"status=503,failures=2", http.StatusServiceUnavailable, 2, 5, "", 2},
		{"status=429,failures=1", http.StatusTooManyRequests, 1, 5, "", 1},
		{"status=503,failures=9,attempts=3", http.StatusServiceUnavailable, 9, 3, "upload a.txt: gave up after 3 attempts: ", 2},
		{"status=403,failures=1", http.StatusForbidden, 1, 5, "upload a.txt: googleapi: Error 403: injected failure 1", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := fakeGCS(t)
			client, rt := flakyClient(t, srv, tt.status, tt.fail)
			dir := t.TempDir()
			writeFile(t, filepath.Join(dir, "a.txt"), []byte("payload"))
			s, err := NewSyncer(client, SyncOptions{LocalDir: dir, URL: "gs://" + testBucket + "/r", GCS: data.GCSOptions{Attempts: tt.attempts, Backoff: time.Millisecond, Logf: t.Logf}})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close(context.Background())
			err = s.Sync(context.Background())
			stats := s.Stats()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Sync = %v after %d injected failures, want success", err, tt.fail)
				}
				if got := remoteFiles(t, srv)["r/a.txt"]; got != "payload" {
					t.Errorf("remote r/a.txt = %q, want payload", got)
				}
			} else if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Sync = %v, want error containing %q", err, tt.wantErr)
			}
			if stats.Retries != tt.wantRetries {
				t.Errorf("retries = %d (upload requests seen %d), want %d", stats.Retries, rt.seen.Load(), tt.wantRetries)
			}
		})
	}
}

// TestSyncerBackground checks the goroutine: periodic passes pick up new files without the caller doing
// anything, Trigger never blocks, and Close runs a final pass that catches the last files.
func TestSyncerBackground(t *testing.T) {
	srv := fakeGCS(t)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "early.txt"), []byte("1"))
	var logged atomic.Int32
	s, err := NewSyncer(srv.Client(), SyncOptions{LocalDir: dir, URL: "gs://" + testBucket + "/bg", Every: 10 * time.Millisecond,
		GCS: fastGCS(nil), Logf: func(string, ...any) { logged.Add(1) }})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for remoteFiles(t, srv)["bg/early.txt"] != "1" {
		if time.Now().After(deadline) {
			t.Fatal("periodic pass did not upload early.txt within 10 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	for range 1000 {
		s.Trigger() // coalesced; must return at once even while a pass runs
	}
	writeFile(t, filepath.Join(dir, "late.txt"), []byte("2"))
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := remoteFiles(t, srv)["bg/late.txt"]; got != "2" {
		t.Errorf("after Close, remote bg/late.txt = %q, want 2 (final pass)", got)
	}
	if err := s.Close(context.Background()); err != nil {
		t.Errorf("second Close = %v, want the first Close's nil", err)
	}
	if st := s.Stats(); st.Passes < 2 || logged.Load() != 0 {
		t.Errorf("passes %d, logged errors %d; want >= 2 passes and no errors", st.Passes, logged.Load())
	}
}

func TestParseGCSURL(t *testing.T) {
	tests := []struct {
		url, bucket, prefix, err string
	}{
		{"gs://gresearch/robotics/droid/1.0.1", "gresearch", "robotics/droid/1.0.1", ""},
		{"gs://b/p/", "b", "p", ""},
		{"gs://b", "b", "", ""},
		{"gs://", "", "", `want gs://bucket[/prefix], got "gs://" (empty bucket)`},
		{"/local/path", "", "", `want gs://bucket[/prefix], got "/local/path"`},
	}
	for _, tt := range tests {
		t.Run("url="+tt.url, func(t *testing.T) {
			b, p, err := ParseGCSURL(tt.url)
			if tt.err != "" {
				if err == nil || err.Error() != tt.err {
					t.Fatalf("ParseGCSURL(%q) error %v, want %q", tt.url, err, tt.err)
				}
				return
			}
			if err != nil || b != tt.bucket || p != tt.prefix {
				t.Fatalf("ParseGCSURL(%q) = %q, %q, %v; want %q, %q", tt.url, b, p, err, tt.bucket, tt.prefix)
			}
		})
	}
}

// TestRestoreFromGCS plays a preempted VM: run A syncs up, a fresh run folder B restores it, a changed
// file is fetched again while identical ones are not, and a Syncer started on B afterwards deletes nothing.
func TestRestoreFromGCS(t *testing.T) {
	srv := fakeGCS(t)
	ctx := context.Background()
	a, b := t.TempDir(), t.TempDir()
	files := map[string][]byte{
		"metrics.jsonl":                          []byte("{}\n"),
		"checkpoints/manifest.json":              []byte(`{"latest":"ckpt-000000200.safetensors"}`),
		"checkpoints/ckpt-000000200.safetensors": randomBytes(2, 300<<10),
	}
	for name, data := range files {
		writeFile(t, filepath.Join(a, name), data)
	}
	url := "gs://" + testBucket + "/run1"
	up, err := NewSyncer(srv.Client(), SyncOptions{LocalDir: a, URL: url})
	if err != nil {
		t.Fatal(err)
	}
	if err := up.Close(ctx); err != nil {
		t.Fatal(err)
	}

	// run1/from-earlier-vm.txt was in the bucket before: restored too.
	files["from-earlier-vm.txt"] = []byte("backup")
	n, err := RestoreFromGCS(ctx, srv.Client(), url, b, fastGCS(nil))
	if err != nil || n != len(files) {
		t.Fatalf("RestoreFromGCS into an empty folder = %d, %v; want %d files", n, err, len(files))
	}
	for name, want := range files {
		got, err := os.ReadFile(filepath.Join(b, name))
		if err != nil || string(got) != string(want) {
			t.Errorf("restored %s: %d bytes, %v; want %d bytes", name, len(got), err, len(want))
		}
	}

	writeFile(t, filepath.Join(b, "metrics.jsonl"), []byte("{]\n")) // same size, different bytes
	writeFile(t, filepath.Join(b, "local-only.txt"), []byte("mine"))
	n, err = RestoreFromGCS(ctx, srv.Client(), url, b, fastGCS(nil))
	if err != nil || n != 1 {
		t.Fatalf("second RestoreFromGCS = %d, %v; want 1 (only the changed file)", n, err)
	}
	if got, _ := os.ReadFile(filepath.Join(b, "metrics.jsonl")); string(got) != "{}\n" {
		t.Errorf("metrics.jsonl = %q after restore, want the remote copy", got)
	}
	if _, err := os.Stat(filepath.Join(b, "local-only.txt")); err != nil {
		t.Errorf("restore removed a local-only file: %v", err)
	}

	down, err := NewSyncer(srv.Client(), SyncOptions{LocalDir: b, URL: url})
	if err != nil {
		t.Fatal(err)
	}
	if err := down.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if st := down.Stats(); st.Deleted != 0 || st.Uploaded != 1 {
		t.Errorf("syncer on the restored folder: uploaded %d, deleted %d; want 1 (local-only.txt) and 0", st.Uploaded, st.Deleted)
	}
}

// TestSyncerUnreachable syncs to an address nobody listens on: the pass must fail within its retry bounds
// with an error that says so, after one line per retry, and count as a failed pass.
func TestSyncerUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Skipf("cannot listen on loopback: %v", err)
	}
	addr := ln.Addr().String()
	ln.Close()
	t.Setenv("STORAGE_EMULATOR_HOST", addr)
	var lines atomic.Int32
	opts := fastGCS(func(string, ...any) { lines.Add(1) })
	opts.Anonymous = false // the emulator host needs no credentials either
	client, err := data.NewGCSClient(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "a.txt"), []byte("payload"))
	s, err := NewSyncer(client, SyncOptions{LocalDir: dir, URL: "gs://" + testBucket + "/r", GCS: opts})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = s.Close(ctx)
	if ctx.Err() != nil {
		t.Fatal("the pass was still retrying after 30 s")
	}
	if err == nil || !strings.Contains(err.Error(), "list: ") || !strings.Contains(err.Error(), "retry failed after 3 attempts") || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("Close = %v, want the list's connection-refused error after 3 attempts", err)
	}
	if st := s.Stats(); st.Retries != 2 || st.Failures != 1 || lines.Load() != 2 {
		t.Errorf("retries %d, failures %d, retry lines %d; want 2, 1, 2", st.Retries, st.Failures, lines.Load())
	}
}
