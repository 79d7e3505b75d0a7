package data

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/fsouza/fake-gcs-server/fakestorage"
)

// sampleObjects returns the committed sample dataset as fake-gcs-server objects under bucket/prefix.
func sampleObjects(t *testing.T, bucket, prefix string) []fakestorage.Object {
	t.Helper()
	entries, err := os.ReadDir(sampleDir)
	if err != nil {
		t.Fatal(err)
	}
	var objs []fakestorage.Object
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(sampleDir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		objs = append(objs, fakestorage.Object{
			ObjectAttrs: fakestorage.ObjectAttrs{BucketName: bucket, Name: prefix + "/" + e.Name()},
			Content:     b,
		})
	}
	return objs
}

func newFakeGCS(t *testing.T, objs []fakestorage.Object) *fakestorage.Server {
	t.Helper()
	srv, err := fakestorage.NewServerWithOptions(fakestorage.Options{NoListener: true, InitialObjects: objs})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	return srv
}

// readShard returns the good records of one shard.
func readShard(t *testing.T, src Source, shard Shard) [][]byte {
	t.Helper()
	var recs [][]byte
	_, err := EachRecord(context.Background(), src, shard, 0, func(_ int, data []byte) error {
		recs = append(recs, data)
		return nil
	}, func(c *CorruptRecordError) { t.Fatalf("corrupt record: %v", c) })
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

// TestGCSSource reads the sample through fake-gcs-server and compares it with the local copy.
func TestGCSSource(t *testing.T) {
	ctx := context.Background()
	srv := newFakeGCS(t, sampleObjects(t, "gresearch", "robotics/droid_demo/1.0.1"))
	src, err := NewGCSSource(srv.Client(), "gs://gresearch/robotics/droid_demo/1.0.1/", GCSOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := src.String(); got != "gs://gresearch/robotics/droid_demo/1.0.1" {
		t.Fatalf("String() = %q", got)
	}
	shards, err := FindShards(ctx, src, "train")
	if err != nil {
		t.Fatal(err)
	}
	local := NewDirSource(sampleDir)
	for _, sh := range shards {
		got, want := readShard(t, src, sh), readShard(t, local, sh)
		if len(got) != len(want) || int64(len(got)) != sh.Episodes {
			t.Fatalf("%s: %d records over GCS, %d locally, %d in shardLengths", sh.Name, len(got), len(want), sh.Episodes)
		}
		for i := range got {
			if !bytes.Equal(got[i], want[i]) {
				t.Fatalf("%s: record %d differs", sh.Name, i)
			}
		}
	}
	names, err := src.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(names, ",") != "dataset_info.json,droid_demo-train.tfrecord-00000-of-00002,droid_demo-train.tfrecord-00001-of-00002,features.json" {
		t.Fatalf("List() = %v", names)
	}
	if _, err := src.Open(ctx, "missing.tfrecord"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("open of a missing object: %v, want fs.ErrNotExist", err)
	}
}

// flakyTransport cuts every response body after limit bytes, so reads fail midway like a dropped
// connection, and answers every other resumed (ranged) request with 503: the client must reopen at the
// right offset, retrying the refused reopens with backoff. With ranged503 every resumed request fails.
type flakyTransport struct {
	base      http.RoundTripper
	limit     int64
	ranged503 bool
	cuts      atomic.Int64
	ranged    atomic.Int64
}

func (f *flakyTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if rg := req.Header.Get("Range"); rg != "" && !strings.HasPrefix(rg, "bytes=0-") && (f.ranged.Add(1)%2 == 1 || f.ranged503) {
		return &http.Response{StatusCode: http.StatusServiceUnavailable, Status: "503 Service Unavailable", Request: req,
			Header: http.Header{"Content-Type": {"application/json"}},
			Body:   io.NopCloser(strings.NewReader(`{"error":{"code":503,"message":"fake overload"}}`))}, nil
	}
	resp, err := f.base.RoundTrip(req)
	if err != nil || resp.StatusCode/100 != 2 || req.Method != http.MethodGet || !strings.Contains(req.URL.RawQuery, "alt=media") {
		return resp, err
	}
	resp.Body = &cutBody{r: resp.Body, left: f.limit, t: f}
	return resp, nil
}

type cutBody struct {
	r    io.ReadCloser
	left int64
	t    *flakyTransport
}

func (c *cutBody) Read(p []byte) (int, error) {
	if c.left <= 0 {
		c.t.cuts.Add(1)
		return 0, errors.New("fake body failure: connection reset by peer")
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	return n, err
}

func (c *cutBody) Close() error { return c.r.Close() }

// retryLog collects the retry lines of a GCS client.
type retryLog struct {
	mu    sync.Mutex
	lines []string
}

func (l *retryLog) logf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprintf(format, args...))
}

func (l *retryLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

// fastRetries are test bounds: the real ones (1 s backoff, 60 s stall timeout) behave the same, slower.
func fastRetries(log *retryLog, rt http.RoundTripper) GCSOptions {
	return GCSOptions{Attempts: 3, Backoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond, Timeout: 300 * time.Millisecond,
		Logf: log.logf, Anonymous: true, Transport: rt}
}

// boundedSource reads gs://b/p (the sample dataset) through rt with fastRetries, logging to log.
func boundedSource(t *testing.T, rt http.RoundTripper, log *retryLog) *GCSSource {
	t.Helper()
	opts := fastRetries(log, rt)
	client, err := NewGCSClient(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	src, err := NewGCSSource(client, "gs://b/p", opts)
	if err != nil {
		t.Fatal(err)
	}
	return src
}

// TestGCSSourceRetries reads a shard through connections that break every 300 kB and resumed requests of
// which every other one is refused with 503: the bytes must come out whole, each retry reported. Then
// every resumed request fails: the read stops after Attempts with an error naming the object, the byte
// offset and the attempts.
func TestGCSSourceRetries(t *testing.T) {
	ctx := context.Background()
	srv := newFakeGCS(t, sampleObjects(t, "b", "p"))
	flaky := &flakyTransport{base: srv.HTTPClient().Transport, limit: 300_000}
	var log retryLog
	src := boundedSource(t, flaky, &log)
	shard := Shard{Name: "droid_demo-train.tfrecord-00000-of-00002"}
	want, err := os.ReadFile(filepath.Join(sampleDir, shard.Name))
	if err != nil {
		t.Fatal(err)
	}
	rc, err := src.Open(ctx, shard.Name)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("read %d bytes through a flaky connection, want the %d-byte object", len(got), len(want))
	}
	if flaky.cuts.Load() < int64(len(want))/300_000 || flaky.ranged.Load() < 2*flaky.cuts.Load() {
		t.Fatalf("%d cuts, %d ranged requests: the transport did not exercise the retries", flaky.cuts.Load(), flaky.ranged.Load())
	}
	if want := "gcs: read gs://b/p/" + shard.Name + ": attempt 1 of 3 failed: "; !strings.Contains(log.String(), want) {
		t.Errorf("retry lines:\n%s\nwant one starting %q", log.String(), want)
	}

	flaky.ranged503 = true
	rc, err = src.Open(ctx, shard.Name)
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.ReadAll(rc)
	rc.Close()
	for _, want := range []string{"data: read gs://b/p/" + shard.Name + " at byte 300000: ", "retry failed after 3 attempts", "503"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v, want it to contain %q", err, want)
		}
	}
}

// deadTransport plays a server that dies: once dead, bodies in flight break and new connections are
// refused, as they are after the process or VM behind the address went away.
type deadTransport struct {
	base http.RoundTripper
	dead atomic.Bool
	reqs atomic.Int64
}

func (d *deadTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	d.reqs.Add(1)
	if d.dead.Load() {
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	}
	resp, err := d.base.RoundTrip(req)
	if err == nil {
		resp.Body = &dyingBody{r: resp.Body, d: d}
	}
	return resp, err
}

type dyingBody struct {
	r io.ReadCloser
	d *deadTransport
}

func (b *dyingBody) Read(p []byte) (int, error) {
	if b.d.dead.Load() {
		return 0, &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}
	}
	return b.r.Read(p[:min(len(p), 64<<10)])
}

func (b *dyingBody) Close() error { return b.r.Close() }

// TestGCSServerDies kills the server in the middle of a shard: the read must fail within the retry
// bounds (not hang), after reporting each retry, with an error naming the object and the offset.
func TestGCSServerDies(t *testing.T) {
	ctx := context.Background()
	srv := newFakeGCS(t, sampleObjects(t, "b", "p"))
	dead := &deadTransport{base: srv.HTTPClient().Transport}
	var log retryLog
	src := boundedSource(t, dead, &log)
	rc, err := src.Open(ctx, "droid_demo-train.tfrecord-00000-of-00002")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if _, err := io.ReadFull(rc, make([]byte, 100_000)); err != nil {
		t.Fatal(err)
	}
	dead.dead.Store(true)
	start := time.Now()
	_, err = io.ReadAll(rc)
	t.Logf("after %v: %v\n%s", time.Since(start), err, log.String())
	if err == nil || !strings.Contains(err.Error(), "data: read gs://b/p/droid_demo-train.tfrecord-00000-of-00002 at byte ") ||
		!strings.Contains(err.Error(), "retry failed after 3 attempts") || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("read after the server died: %v, want a connection-refused error after 3 attempts naming the object", err)
	}
	if n := strings.Count(log.String(), "; retrying"); n != 2 {
		t.Errorf("%d retry lines, want 2 (attempts 1 and 2 of 3):\n%s", n, log.String())
	}
	// New requests fail the same way.
	if _, err := FindShards(ctx, src, "train"); err == nil || !strings.Contains(err.Error(), "retry failed after 3 attempts") {
		t.Fatalf("FindShards on a dead server: %v", err)
	}
}

// TestGCSUnreachable points the anonymous client at a loopback port nobody listens on (through
// STORAGE_EMULATOR_HOST, as a user of an emulator would): opening the dataset must fail with the
// retries spent, well before the test's own deadline, instead of retrying forever.
func TestGCSUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Skipf("cannot listen on loopback: %v", err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there any more: connections are refused
	t.Setenv("STORAGE_EMULATOR_HOST", addr)
	var log retryLog
	opts := fastRetries(&log, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	src, err := OpenSourceWith(ctx, "gs://gresearch/robotics/droid/1.0.1", opts)
	if err != nil {
		t.Fatal(err)
	}
	_, err = FindShards(ctx, src, "train")
	if ctx.Err() != nil {
		t.Fatalf("still retrying after 30 s: %v", err)
	}
	if err == nil || !strings.Contains(err.Error(), "retry failed after 3 attempts") || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("FindShards on an unreachable host: %v, want connection refused after 3 attempts", err)
	}
	if want := "gcs: read gs://gresearch/robotics/droid/1.0.1/dataset_info.json: attempt 2 of 3 failed: "; !strings.Contains(log.String(), want) {
		t.Errorf("retry lines:\n%s\nwant one starting %q", log.String(), want)
	}
}

// TestGCSStall serves a body that stops after a few bytes and then sends nothing, and a server that
// accepts connections without ever answering: both must be abandoned after Timeout and retried, and
// give up after Attempts stalls in a row, instead of hanging.
func TestGCSStall(t *testing.T) {
	content := bytes.Repeat([]byte("x"), 1000)
	release := make(chan struct{})
	var requests atomic.Int64
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := requests.Add(1)
		if r.URL.Query().Get("alt") != "media" {
			http.NotFound(w, r)
			return
		}
		if n > 1 { // resumed reads: accept and never answer
			select {
			case <-release:
			case <-r.Context().Done():
			}
			return
		}
		w.Header().Set("Content-Length", fmt.Sprint(len(content)))
		w.Header().Set("X-Goog-Generation", "1")
		w.WriteHeader(http.StatusOK)
		w.Write(content[:100])
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer hs.Close()
	defer close(release)
	t.Setenv("STORAGE_EMULATOR_HOST", strings.TrimPrefix(hs.URL, "http://"))
	var log retryLog
	opts := fastRetries(&log, nil)
	opts.Timeout = 100 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	src, err := OpenSourceWith(ctx, "gs://b/p", opts)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := src.Open(ctx, "shard")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	got, err := io.ReadAll(rc)
	t.Logf("%d bytes, %v after %d requests\n%s", len(got), err, requests.Load(), log.String())
	if ctx.Err() != nil {
		t.Fatal("a stalled read was still waiting after 30 s")
	}
	if len(got) != 100 || err == nil || !strings.Contains(err.Error(), "at byte 100") || !strings.Contains(err.Error(), "moved no data") {
		t.Fatalf("read %d bytes, error %v; want the 100 bytes sent, then an error about requests that moved no data", len(got), err)
	}
	if n := strings.Count(log.String(), "no data moved for 100ms; abandoning the request"); n != 3 {
		t.Errorf("%d stall lines, want 3 (Attempts in a row)", n)
	}
}

// TestOpenSourceEmulator goes through OpenSource's anonymous client and STORAGE_EMULATOR_HOST with an
// emulator listening on loopback; it covers the XML-read quirk of droid-rlds §5 (JSON reads are used).
func TestOpenSourceEmulator(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a loopback listener")
	}
	srv, err := fakestorage.NewServerWithOptions(fakestorage.Options{
		Scheme: "http", Host: "127.0.0.1", Port: 0, InitialObjects: sampleObjects(t, "gresearch", "robotics/droid_demo/1.0.1"),
	})
	if err != nil {
		t.Skipf("cannot listen on loopback: %v", err)
	}
	defer srv.Stop()
	t.Setenv("STORAGE_EMULATOR_HOST", strings.TrimPrefix(srv.URL(), "http://"))
	ctx := context.Background()
	src, err := OpenSource(ctx, "gs://gresearch/robotics/droid_demo/1.0.1")
	if err != nil {
		t.Fatal(err)
	}
	var episodes int
	sum, err := InspectEpisodes(ctx, src, InspectOptions{Split: "train", Clip: DefaultClipConfig()}, func(r *EpisodeReport) error {
		episodes++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if episodes != 6 || sum.Clips != 5 || sum.ShortEpisodes != 1 {
		t.Fatalf("%d episodes, summary %+v; want 6 episodes, 5 clips, 1 short", episodes, sum)
	}
}

func TestParseGCSURL(t *testing.T) {
	for _, tc := range []struct{ url, bucket, prefix string }{
		{"gs://gresearch/robotics/droid/1.0.1", "gresearch", "robotics/droid/1.0.1"},
		{"gs://gresearch/robotics/droid/1.0.1/", "gresearch", "robotics/droid/1.0.1"},
		{"gs://b", "b", ""},
	} {
		b, p, err := ParseGCSURL(tc.url)
		if err != nil || b != tc.bucket || p != tc.prefix {
			t.Fatalf("ParseGCSURL(%q) = %q, %q, %v", tc.url, b, p, err)
		}
	}
	for _, bad := range []string{"s3://x/y", "gs:///x", "/local/dir"} {
		if _, _, err := ParseGCSURL(bad); err == nil {
			t.Fatalf("ParseGCSURL(%q) gave no error", bad)
		}
	}
}
