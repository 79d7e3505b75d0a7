package data

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"cloud.google.com/go/storage"
	"github.com/fsouza/fake-gcs-server/fakestorage"
	"google.golang.org/api/option"
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
	src, err := NewGCSSource(srv.Client(), "gs://gresearch/robotics/droid_demo/1.0.1/")
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
// connection, and refuses every other resumed (ranged) request with 403, which the storage client
// does not retry itself: the retrying reader must reopen at the right offset.
type flakyTransport struct {
	base   http.RoundTripper
	limit  int64
	cuts   atomic.Int64
	ranged atomic.Int64
}

func (f *flakyTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if rg := req.Header.Get("Range"); rg != "" && !strings.HasPrefix(rg, "bytes=0-") && f.ranged.Add(1)%2 == 1 {
		return &http.Response{StatusCode: http.StatusForbidden, Status: "403 Forbidden", Request: req,
			Header: http.Header{"Content-Type": {"application/json"}},
			Body:   io.NopCloser(strings.NewReader(`{"error":{"code":403,"message":"fake refusal"}}`))}, nil
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
		return 0, errors.New("fake body failure")
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	return n, err
}

func (c *cutBody) Close() error { return c.r.Close() }

func TestGCSSourceRetries(t *testing.T) {
	ctx := context.Background()
	srv := newFakeGCS(t, sampleObjects(t, "b", "p"))
	flaky := &flakyTransport{base: srv.HTTPClient().Transport, limit: 300_000}
	client, err := storage.NewClient(ctx, option.WithHTTPClient(&http.Client{Transport: flaky}),
		option.WithoutAuthentication(), storage.WithJSONReads())
	if err != nil {
		t.Fatal(err)
	}
	src, err := NewGCSSource(client, "gs://b/p")
	if err != nil {
		t.Fatal(err)
	}
	src.Backoff = time.Millisecond
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

	// With retries exhausted the error names the object and offset.
	src.Retries = 0
	rc, err = src.Open(ctx, shard.Name)
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.ReadAll(rc)
	rc.Close()
	if err == nil || !strings.Contains(err.Error(), "offset 300000") {
		t.Fatalf("error %v, want a read failure at offset 300000", err)
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
