package data

// GCS access for datasets (droid-rlds §5) and for the trainer's run-folder mirror (package train). Every
// request is bounded twice:
//
//   - in time: an attempt that moves no byte, in either direction, for GCSOptions.Timeout is abandoned
//     (stallTransport); this covers an unreachable host, a black-holed connection and a server that
//     stops answering mid-body, none of which fail by themselves;
//   - in attempts: a failed attempt (408, 429, 5xx, refused or reset connection, stall) is retried by the
//     storage client's own retryer (storage.WithMaxAttempts, WithBackoff, WithErrorFuncWithContext) at
//     most Attempts-1 times, after exponential backoff with full jitter (gax.Backoff: a delay drawn
//     uniformly from (0, d], d doubling from Backoff up to MaxBackoff). Each retry prints one line naming
//     the operation, the attempt and the error; when they run out the error says so.
//
// Interrupted object reads are reopened at the current offset by the client itself, pinned to the
// object's generation.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"cloud.google.com/go/storage"
	"github.com/googleapis/gax-go/v2"
	"google.golang.org/api/iterator"
	"google.golang.org/api/option"
	htransport "google.golang.org/api/transport/http"
)

// GCSOptions bounds and reports the requests of a GCS client. The zero value gives the defaults.
type GCSOptions struct {
	// Attempts per request, the first included; default 5.
	Attempts int
	// Backoff is the first retry delay bound, doubled per retry up to MaxBackoff; each delay is drawn
	// uniformly from (0, bound]. Defaults 1 s and 30 s.
	Backoff, MaxBackoff time.Duration
	// Timeout abandons an attempt that moves no byte for this long (connecting, waiting for the response,
	// sending or receiving the body); default 60 s.
	Timeout time.Duration
	// Logf prints one line per retried request; nil prints to standard error.
	Logf func(format string, args ...any)
	// Anonymous reads without credentials (public buckets such as DROID's). Clients always are when
	// STORAGE_EMULATOR_HOST is set.
	Anonymous bool
	// Transport is the network transport under the bounds; nil uses a clone of http.DefaultTransport.
	// Tests pass a fake server's.
	Transport http.RoundTripper
}

func (o GCSOptions) withDefaults() GCSOptions {
	if o.Attempts <= 0 {
		o.Attempts = 5
	}
	if o.Backoff <= 0 {
		o.Backoff = time.Second
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 30 * time.Second
	}
	if o.Timeout <= 0 {
		o.Timeout = time.Minute
	}
	if o.Logf == nil {
		o.Logf = func(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) }
	}
	return o
}

// NewGCSClient returns a storage client whose every request follows o. Without Anonymous it uses
// Application Default Credentials and fails at once when there are none.
func NewGCSClient(ctx context.Context, o GCSOptions) (*storage.Client, error) {
	o = o.withDefaults()
	rt := o.Transport
	if rt == nil {
		rt = http.DefaultTransport.(*http.Transport).Clone()
	}
	if !o.Anonymous && os.Getenv("STORAGE_EMULATOR_HOST") == "" {
		var err error
		rt, err = htransport.NewTransport(ctx, rt, option.WithScopes(storage.ScopeFullControl, "https://www.googleapis.com/auth/cloud-platform"))
		if err != nil {
			return nil, fmt.Errorf("data: gcs credentials: %w (log in with `gcloud auth application-default login` or set GOOGLE_APPLICATION_CREDENTIALS)", err)
		}
	}
	hc := &http.Client{Transport: &stallTransport{next: rt, opts: o, stalls: map[string]int{}}}
	opts := []option.ClientOption{option.WithHTTPClient(hc), storage.WithJSONReads()}
	if o.Anonymous {
		opts = append(opts, option.WithoutAuthentication())
	}
	c, err := storage.NewClient(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("data: gcs client: %w", err)
	}
	// Handles made without RetryOptions (none in this module) still get bounded retries.
	c.SetRetry(o.retryOptions("gcs request", nil, false)...)
	return c, nil
}

// RetryOptions is the retry policy of one operation, for storage's ObjectHandle.Retryer and
// BucketHandle.Retryer: what names the operation in the retry lines ("upload gs://b/run/metrics.jsonl");
// onRetry, if not nil, is called before each retry (to count them).
func (o GCSOptions) RetryOptions(what string, onRetry func()) []storage.RetryOption {
	return o.withDefaults().retryOptions(what, onRetry, true)
}

// retryOptions: RetryAlways, since our writes (whole-object uploads, deletes) are safe to repeat.
// Resumable uploads call the error function without a RetryContext and without counting attempts
// themselves; with countOwn the function counts them, so that they are bounded too.
func (o GCSOptions) retryOptions(what string, onRetry func(), countOwn bool) []storage.RetryOption {
	var failed atomic.Int32
	return []storage.RetryOption{
		storage.WithPolicy(storage.RetryAlways),
		storage.WithBackoff(gax.Backoff{Initial: o.Backoff, Max: o.MaxBackoff, Multiplier: 2}),
		storage.WithMaxAttempts(o.Attempts),
		storage.WithErrorFuncWithContext(func(err error, rc *storage.RetryContext) bool {
			if !storage.ShouldRetry(err) {
				return false
			}
			var attempt int
			switch {
			case rc != nil:
				attempt = rc.Attempt
			case countOwn:
				attempt = int(failed.Add(1))
				if attempt >= o.Attempts {
					return false
				}
			}
			if onRetry != nil {
				onRetry()
			}
			if attempt > 0 {
				o.Logf("gcs: %s: attempt %d of %d failed: %v; retrying", what, attempt, o.Attempts, err)
			} else {
				o.Logf("gcs: %s: %v; retrying", what, err)
			}
			return true
		}),
	}
}

// StallError is the error of a request abandoned for lack of progress. It is transient (retried).
type StallError struct {
	Request string        // "GET /storage/v1/b/bucket/o/name"
	After   time.Duration // the GCSOptions.Timeout that ran out
}

func (e *StallError) Error() string {
	return fmt.Sprintf("%s: no data moved for %v", e.Request, e.After)
}

// Temporary and Timeout mark the error transient for storage.ShouldRetry.
func (e *StallError) Temporary() bool { return true }
func (e *StallError) Timeout() bool   { return true }

// stallTransport abandons a request once no byte has moved for opts.Timeout while we wait on it: during
// the round trip (connect, send, response headers) and inside response body reads. Time spent by the
// caller between reads does not count, so a slow consumer is never mistaken for a dead server.
//
// The storage client reopens a broken object read by itself, without a limit when each reopen succeeds
// and then stalls; stalls are therefore counted per object path, and after opts.Attempts in a row without
// progress the next request on that path fails at once.
type stallTransport struct {
	next http.RoundTripper
	opts GCSOptions

	mu     sync.Mutex
	stalls map[string]int // consecutive stalls per URL path
}

func (t *stallTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	what := req.Method + " " + req.URL.Path
	t.mu.Lock()
	n := t.stalls[req.URL.Path]
	if n >= t.opts.Attempts {
		delete(t.stalls, req.URL.Path) // the next operation starts afresh
	}
	t.mu.Unlock()
	if n >= t.opts.Attempts {
		return nil, fmt.Errorf("%s: gave up: %d attempts in a row moved no data for %v each", what, n, t.opts.Timeout)
	}
	ctx, cancel := context.WithCancelCause(req.Context())
	w := &watchdog{t: t, path: req.URL.Path, what: what, ctx: ctx, cancel: cancel}
	w.arm()
	req = req.Clone(ctx)
	if req.Body != nil && req.Body != http.NoBody {
		req.Body = &watchedBody{rc: req.Body, w: w, sending: true}
	}
	resp, err := t.next.RoundTrip(req)
	w.disarm()
	if err != nil {
		if se := w.stalled(); se != nil {
			err = se
		}
		cancel(nil)
		return nil, err
	}
	resp.Body = &watchedBody{rc: resp.Body, w: w}
	return resp, nil
}

// watchdog cancels one request's context when its timer fires; arm/disarm bracket the waits that count.
type watchdog struct {
	t      *stallTransport
	path   string
	what   string
	ctx    context.Context // the request's, cancelled by fire
	cancel context.CancelCauseFunc

	mu    sync.Mutex
	timer *time.Timer
}

func (w *watchdog) arm() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.timer == nil {
		w.timer = time.AfterFunc(w.t.opts.Timeout, w.fire)
	} else {
		w.timer.Reset(w.t.opts.Timeout)
	}
}

func (w *watchdog) disarm() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.timer != nil {
		w.timer.Stop()
	}
}

func (w *watchdog) fire() {
	w.t.mu.Lock()
	w.t.stalls[w.path]++
	n := w.t.stalls[w.path]
	w.t.mu.Unlock()
	w.t.opts.Logf("gcs: %s: no data moved for %v; abandoning the request (stall %d of %d in a row)", w.what, w.t.opts.Timeout, n, w.t.opts.Attempts)
	w.cancel(&StallError{Request: w.what, After: w.t.opts.Timeout})
}

// progress records that bytes moved: the stall count of the path starts over.
func (w *watchdog) progress() {
	w.t.mu.Lock()
	delete(w.t.stalls, w.path)
	w.t.mu.Unlock()
}

// stalled returns the StallError that cancelled the request, if that is what did.
func (w *watchdog) stalled() error {
	var se *StallError
	if errors.As(context.Cause(w.ctx), &se) {
		return se
	}
	return nil
}

// watchedBody re-arms the watchdog on progress: a request body while it is being sent, a response body
// inside each Read.
type watchedBody struct {
	rc      io.ReadCloser
	w       *watchdog
	sending bool
	moved   bool
}

func (b *watchedBody) Read(p []byte) (int, error) {
	if !b.sending {
		b.w.arm()
		defer b.w.disarm()
	}
	n, err := b.rc.Read(p)
	if n > 0 {
		if b.sending {
			b.w.arm() // still sending: restart the clock
		} else if !b.moved {
			b.moved = true
			b.w.progress()
		}
	}
	if err != nil && err != io.EOF && !b.sending {
		if se := b.w.stalled(); se != nil {
			return n, se
		}
	}
	return n, err
}

func (b *watchedBody) Close() error {
	if !b.sending {
		b.w.disarm()
		b.w.cancel(nil) // releases the request's context
	}
	return b.rc.Close()
}

// GCSSource reads a dataset directory under gs://Bucket/Prefix (droid-rlds §5) with range reads.
type GCSSource struct {
	Client *storage.Client
	Bucket string
	Prefix string // without a trailing slash; may be empty
	Opts   GCSOptions
}

// ParseGCSURL splits gs://bucket/prefix.
func ParseGCSURL(url string) (bucket, prefix string, err error) {
	rest, ok := strings.CutPrefix(url, "gs://")
	if !ok {
		return "", "", fmt.Errorf("data: gcs url %q: want gs://bucket/prefix", url)
	}
	bucket, prefix, _ = strings.Cut(rest, "/")
	if bucket == "" {
		return "", "", fmt.Errorf("data: gcs url %q: empty bucket", url)
	}
	return bucket, strings.TrimSuffix(prefix, "/"), nil
}

// NewGCSSource reads url through client (tests pass a fake-gcs-server client); opts names the retry
// policy of each read (the client's transport bounds stay those it was made with).
func NewGCSSource(client *storage.Client, url string, opts GCSOptions) (*GCSSource, error) {
	bucket, prefix, err := ParseGCSURL(url)
	if err != nil {
		return nil, err
	}
	return &GCSSource{Client: client, Bucket: bucket, Prefix: prefix, Opts: opts.withDefaults()}, nil
}

// NewAnonymousGCSSource reads a public bucket without credentials. JSON reads are used because they
// work against both GCS and emulators (the XML path needs the emulator's public host to match).
func NewAnonymousGCSSource(ctx context.Context, url string, opts GCSOptions) (*GCSSource, error) {
	opts.Anonymous = true
	client, err := NewGCSClient(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("data: gcs client for %s: %w", url, err)
	}
	return NewGCSSource(client, url, opts)
}

func (s *GCSSource) object(name string) string {
	if s.Prefix == "" {
		return name
	}
	return s.Prefix + "/" + name
}

func (s *GCSSource) String() string {
	if s.Prefix == "" {
		return "gs://" + s.Bucket
	}
	return "gs://" + s.Bucket + "/" + s.Prefix
}

// Open starts a read of the whole object. A missing object gives an error matching fs.ErrNotExist.
func (s *GCSSource) Open(ctx context.Context, name string) (io.ReadCloser, error) {
	url := s.String() + "/" + name
	obj := s.Client.Bucket(s.Bucket).Object(s.object(name)).Retryer(s.Opts.RetryOptions("read "+url, nil)...)
	r, err := obj.NewReader(ctx)
	if err != nil {
		if errors.Is(err, storage.ErrObjectNotExist) {
			return nil, fmt.Errorf("data: open %s: %w", url, fs.ErrNotExist)
		}
		return nil, fmt.Errorf("data: open %s: %w", url, err)
	}
	return &objectReader{r: r, url: url}, nil
}

// List lists the objects directly under the prefix.
func (s *GCSSource) List(ctx context.Context) ([]string, error) {
	prefix := s.Prefix
	if prefix != "" {
		prefix += "/"
	}
	q := &storage.Query{Prefix: prefix, Delimiter: "/"}
	if err := q.SetAttrSelection([]string{"Name"}); err != nil {
		return nil, fmt.Errorf("data: list %s: %w", s, err)
	}
	it := s.Client.Bucket(s.Bucket).Retryer(s.Opts.RetryOptions("list "+s.String(), nil)...).Objects(ctx, q)
	var names []string
	for {
		a, err := it.Next()
		if err == iterator.Done {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("data: list %s: %w", s, err)
		}
		if a.Name == "" { // a "directory" prefix
			continue
		}
		names = append(names, strings.TrimPrefix(a.Name, prefix))
	}
	return sortedCopy(names), nil
}

// objectReader names the object and the offset in read errors (the client has already retried).
type objectReader struct {
	r   *storage.Reader
	url string
	off int64
}

func (o *objectReader) Read(p []byte) (int, error) {
	n, err := o.r.Read(p)
	o.off += int64(n)
	if err != nil && err != io.EOF {
		err = fmt.Errorf("data: read %s at byte %d: %w", o.url, o.off, err)
	}
	return n, err
}

func (o *objectReader) Close() error { return o.r.Close() }
