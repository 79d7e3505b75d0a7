package train

// Syncer mirrors a run folder to gs://bucket/prefix like `gsutil rsync -d -r`, from its own goroutine, so a
// preemptible VM loses at most a few minutes of checkpoints and metrics. It uses the Go storage client
// (never gsutil). A pass:
//
//  1. walks the local folder (skipping names that start with ".", i.e. the temp files of atomic writes);
//  2. lists the remote prefix with each object's size and CRC-32C;
//  3. uploads files whose size or CRC-32C differ (resumable uploads in ChunkSize pieces, the CRC-32C sent
//     along so GCS rejects a torn upload), and deletes remote objects that no longer exist locally.
//
// "No longer exist" means: this Syncer saw the file locally in an earlier pass and now it is gone (a
// rotated checkpoint). Remote objects it never saw locally are left alone, unlike plain `rsync -d`: on a
// fresh VM the run folder starts empty, and the first pass must not wipe the backup that
// RestoreFromGCS is about to bring back.
//
// Every request is bounded as data.GCSOptions describes: abandoned when no byte moves for its Timeout,
// retried on transient errors (408, 429, 5xx, dropped connections, stalls) at most Attempts-1 times with
// exponential backoff and jitter, each retry reported through its Logf and counted in SyncStats.Retries.
// A failed background pass is reported through SyncOptions.Logf as it happens, and every pass through
// OnPass. Passes never overlap: a tick or Trigger that arrives during a pass is coalesced into at most one
// more pass, and callers never wait.
//
// A file's CRC is computed from an open handle over the size seen at open time, and that handle is what
// gets uploaded: files replaced by rename (checkpoints, manifest.json) upload consistently, and
// append-only files (metrics.jsonl) upload a consistent prefix.

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"math"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"cloud.google.com/go/storage"
	"google.golang.org/api/iterator"

	"github.com/vjepa-vk/vjepa-vk/data"
)

// ParseGCSURL splits "gs://bucket/some/prefix" into "bucket" and "some/prefix" (no trailing slash).
func ParseGCSURL(u string) (bucket, prefix string, err error) {
	rest, ok := strings.CutPrefix(u, "gs://")
	if !ok {
		return "", "", fmt.Errorf("want gs://bucket[/prefix], got %q", u)
	}
	bucket, prefix, _ = strings.Cut(rest, "/")
	if bucket == "" {
		return "", "", fmt.Errorf("want gs://bucket[/prefix], got %q (empty bucket)", u)
	}
	return bucket, strings.Trim(prefix, "/"), nil
}

// SyncOptions configures a Syncer.
type SyncOptions struct {
	LocalDir string        // folder to mirror
	URL      string        // gs://bucket/prefix
	Every    time.Duration // period of background passes; 0 runs passes only on Trigger and Close
	// ChunkSize is the resumable-upload chunk; files larger than it go up in several requests. Rounded up
	// to a multiple of 256 KiB by the client. Default 16 MiB.
	ChunkSize int
	// GCS bounds and reports each request (attempts, backoff, stall timeout, retry lines).
	GCS data.GCSOptions
	// Logf receives errors of background passes as they happen; nil discards them (Stats().LastErr still
	// has them).
	Logf func(format string, args ...any)
	// OnPass, if set, receives the counters after every background pass (metrics).
	OnPass func(SyncStats)
}

// SyncStats counts what a Syncer has done since it started.
type SyncStats struct {
	Passes        int
	Uploaded      int
	UploadedBytes int64
	Deleted       int
	Unchanged     int // files found identical (size and CRC-32C) in the latest pass
	Retries       int
	Failures      int // failed passes in a row, 0 after a pass that succeeded
	LastPass      time.Time
	LastOK        time.Time // end of the latest pass that succeeded; zero if none has
	LastErr       error     // error of the latest pass, nil if it succeeded
}

// Syncer is a background mirror of a local folder to GCS.
type Syncer struct {
	client *storage.Client
	opts   SyncOptions
	bucket string
	prefix string

	trigger chan struct{}
	stop    chan struct{}
	done    chan struct{}
	ctx     context.Context
	cancel  context.CancelFunc

	passMu sync.Mutex // held for a whole pass
	crcs   map[string]fileCRC
	seen   map[string]bool // files present locally in some pass: only these are ever deleted remotely

	statsMu sync.Mutex
	stats   SyncStats

	closeOnce sync.Once
	closeErr  error
}

// fileCRC caches a local file's CRC-32C by size and modification time.
type fileCRC struct {
	size int64
	mod  time.Time
	crc  uint32
}

// NewSyncer validates opts and starts the background goroutine. client is typically
// storage.NewClient(ctx) (fakestorage's Server.Client() in tests).
func NewSyncer(client *storage.Client, opts SyncOptions) (*Syncer, error) {
	bucket, prefix, err := ParseGCSURL(opts.URL)
	if err != nil {
		return nil, fmt.Errorf("train: gcs sync: %w", err)
	}
	if opts.LocalDir == "" {
		return nil, fmt.Errorf("train: gcs sync %s: empty local folder", opts.URL)
	}
	if opts.ChunkSize <= 0 {
		opts.ChunkSize = 16 << 20
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Syncer{
		client: client, opts: opts, bucket: bucket, prefix: prefix,
		trigger: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}),
		ctx: ctx, cancel: cancel, crcs: map[string]fileCRC{}, seen: map[string]bool{},
	}
	go s.loop()
	return s, nil
}

func (s *Syncer) loop() {
	defer close(s.done)
	var tick <-chan time.Time
	if s.opts.Every > 0 {
		t := time.NewTicker(s.opts.Every)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-s.stop:
			return
		case <-tick:
		case <-s.trigger:
		}
		if err := s.Sync(s.ctx); err != nil && s.opts.Logf != nil {
			s.opts.Logf("%v", err)
		}
		if s.opts.OnPass != nil {
			s.opts.OnPass(s.Stats())
		}
	}
}

// Trigger asks for a pass soon (e.g. right after a checkpoint is saved). It never blocks; triggers that
// arrive while a pass is pending are merged into it.
func (s *Syncer) Trigger() {
	select {
	case s.trigger <- struct{}{}:
	default:
	}
}

// Stats returns a snapshot of the counters.
func (s *Syncer) Stats() SyncStats {
	s.statsMu.Lock()
	defer s.statsMu.Unlock()
	return s.stats
}

// Close stops the background passes, waits for a running one (cancelling it if ctx ends first), and runs
// one final pass with ctx so the remote copy matches the folder at the end of training. It returns that
// pass's error. Further calls return the same error.
func (s *Syncer) Close(ctx context.Context) error {
	s.closeOnce.Do(func() {
		close(s.stop)
		select {
		case <-s.done:
		case <-ctx.Done():
			s.cancel()
			<-s.done
		}
		s.cancel()
		s.closeErr = s.Sync(ctx)
	})
	return s.closeErr
}

// Sync runs one pass now and returns its error; it waits for a pass already running.
func (s *Syncer) Sync(ctx context.Context) error {
	s.passMu.Lock()
	defer s.passMu.Unlock()
	var st SyncStats
	err := s.pass(ctx, &st)
	if err != nil {
		err = fmt.Errorf("train: gcs sync %s -> gs://%s/%s: %w", s.opts.LocalDir, s.bucket, s.prefix, err)
	}
	s.statsMu.Lock()
	s.stats.Passes++
	s.stats.Uploaded += st.Uploaded
	s.stats.UploadedBytes += st.UploadedBytes
	s.stats.Deleted += st.Deleted
	s.stats.Unchanged = st.Unchanged
	s.stats.Retries += st.Retries
	s.stats.LastPass = time.Now()
	s.stats.LastErr = err
	if err == nil {
		s.stats.Failures = 0
		s.stats.LastOK = s.stats.LastPass
	} else {
		s.stats.Failures++
	}
	s.statsMu.Unlock()
	return err
}

// objectName maps a slash-separated relative path to its object name.
func (s *Syncer) objectName(rel string) string {
	if s.prefix == "" {
		return rel
	}
	return s.prefix + "/" + rel
}

type remoteObject struct {
	size int64
	crc  uint32
}

func (s *Syncer) pass(ctx context.Context, st *SyncStats) error {
	var retries atomic.Int64 // counted from the uploads' goroutines too
	defer func() { st.Retries += int(retries.Load()) }()
	count := func() { retries.Add(1) }
	local, err := s.scanLocal()
	if err != nil {
		return err
	}
	remote, err := listRemote(ctx, s.client, s.bucket, s.prefix, s.opts.GCS, count)
	if err != nil {
		return fmt.Errorf("list: %w", err)
	}
	var errs []error
	for _, rel := range local {
		s.seen[rel] = true
		if ctx.Err() != nil {
			return errors.Join(append(errs, ctx.Err())...)
		}
		if err := s.syncFile(ctx, st, rel, remote, count); err != nil {
			errs = append(errs, fmt.Errorf("upload %s: %w", rel, err))
		}
		delete(remote, rel)
	}
	stale := make([]string, 0, len(remote))
	for rel := range remote {
		if s.seen[rel] {
			stale = append(stale, rel)
		}
	}
	sort.Strings(stale)
	for _, rel := range stale {
		name := s.objectName(rel)
		obj := s.client.Bucket(s.bucket).Object(name).Retryer(s.opts.GCS.RetryOptions("delete gs://"+s.bucket+"/"+name, count)...)
		err := obj.Delete(ctx)
		if errors.Is(err, storage.ErrObjectNotExist) {
			err = nil // a retried delete that had already succeeded
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("delete %s: %w", rel, err))
			continue
		}
		st.Deleted++
	}
	return errors.Join(errs...)
}

// scanLocal lists regular files under LocalDir as sorted slash paths, skipping dot-names and the temp
// files of interrupted atomic writes.
func (s *Syncer) scanLocal() ([]string, error) {
	var files []string
	err := filepath.WalkDir(s.opts.LocalDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if path != s.opts.LocalDir && errors.Is(err, fs.ErrNotExist) {
				return nil // vanished during the walk (rotated checkpoint)
			}
			return err
		}
		if path != s.opts.LocalDir && (strings.HasPrefix(d.Name(), ".") || isLeftoverTemp(d.Name())) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.Type().IsRegular() {
			rel, err := filepath.Rel(s.opts.LocalDir, path)
			if err != nil {
				return err
			}
			files = append(files, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("scan: %w", err)
	}
	sort.Strings(files)
	return files, nil
}

// listRemote lists the objects under gs://bucket/prefix/ by relative name.
func listRemote(ctx context.Context, client *storage.Client, bucket, prefix string, o data.GCSOptions, count func()) (map[string]remoteObject, error) {
	q := &storage.Query{}
	if prefix != "" {
		q.Prefix = prefix + "/"
	}
	if err := q.SetAttrSelection([]string{"Name", "Size", "CRC32C"}); err != nil {
		return nil, err
	}
	out := map[string]remoteObject{}
	it := client.Bucket(bucket).Retryer(o.RetryOptions("list gs://"+bucket+"/"+q.Prefix, count)...).Objects(ctx, q)
	for {
		a, err := it.Next()
		if errors.Is(err, iterator.Done) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		rel := strings.TrimPrefix(a.Name, q.Prefix)
		if rel == "" || strings.HasSuffix(rel, "/") {
			continue // zero-byte "dir/" marker objects that consoles create
		}
		out[rel] = remoteObject{size: a.Size, crc: a.CRC32C}
	}
}

// syncFile uploads one file unless the remote object already has its size and CRC-32C.
func (s *Syncer) syncFile(ctx context.Context, st *SyncStats, rel string, remote map[string]remoteObject, count func()) error {
	f, err := os.Open(filepath.Join(s.opts.LocalDir, filepath.FromSlash(rel)))
	if errors.Is(err, fs.ErrNotExist) {
		return nil // rotated away since the scan; the next pass deletes the remote copy
	}
	if err != nil {
		return err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return err
	}
	size := info.Size()
	crc, err := s.crcOf(rel, f, size, info.ModTime())
	if err != nil {
		return err
	}
	if r, ok := remote[rel]; ok && r.size == size && r.crc == crc {
		st.Unchanged++
		return nil
	}
	if err := s.upload(ctx, rel, f, size, crc, count); err != nil {
		return err
	}
	st.Uploaded++
	st.UploadedBytes += size
	return nil
}

func (s *Syncer) crcOf(rel string, f *os.File, size int64, mod time.Time) (uint32, error) {
	if c, ok := s.crcs[rel]; ok && c.size == size && c.mod.Equal(mod) {
		return c.crc, nil
	}
	h := crc32.New(castagnoli)
	if _, err := io.Copy(h, io.NewSectionReader(f, 0, size)); err != nil {
		return 0, err
	}
	s.crcs[rel] = fileCRC{size: size, mod: mod, crc: h.Sum32()}
	return h.Sum32(), nil
}

// upload sends size bytes of f as one object; GCS verifies the CRC-32C we send and rejects a mismatch.
// The client retries the upload's requests (the session start and each chunk) as GCSOptions says.
func (s *Syncer) upload(ctx context.Context, rel string, f *os.File, size int64, crc uint32, count func()) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // aborts the upload session if the copy fails
	o := s.opts.GCS
	name := s.objectName(rel)
	var attempts atomic.Int32
	attempts.Store(1)
	retry := o.RetryOptions("upload gs://"+s.bucket+"/"+name, func() {
		attempts.Add(1)
		if count != nil {
			count()
		}
	})
	w := s.client.Bucket(s.bucket).Object(name).Retryer(retry...).NewWriter(ctx)
	w.ChunkSize = s.opts.ChunkSize
	// The attempt count bounds the retries; the client's own per-chunk deadline (32 s by default) must
	// not cut them shorter.
	w.ChunkRetryDeadline = time.Hour
	w.CRC32C = crc
	w.SendCRC32C = true
	_, err := io.Copy(w, io.NewSectionReader(f, 0, size))
	if err != nil {
		cancel()
		w.Close()
	} else {
		err = w.Close()
	}
	if err != nil && storage.ShouldRetry(err) && ctx.Err() == nil {
		return fmt.Errorf("gave up after %d attempts: %w", attempts.Load(), err)
	}
	return err
}

// RestoreFromGCS downloads gs://bucket/prefix into localDir, the reverse of a Syncer pass: objects missing
// locally or differing in size or CRC-32C are fetched (each written atomically); local files are never
// deleted, and temp files of interrupted writes are never fetched. Call it before NewSyncer when resuming
// on a fresh machine. It returns the number of files downloaded.
func RestoreFromGCS(ctx context.Context, client *storage.Client, url, localDir string, o data.GCSOptions) (int, error) {
	bucket, prefix, err := ParseGCSURL(url)
	if err != nil {
		return 0, fmt.Errorf("train: gcs restore: %w", err)
	}
	fail := func(err error) (int, error) {
		return 0, fmt.Errorf("train: gcs restore gs://%s/%s -> %s: %w", bucket, prefix, localDir, err)
	}
	remote, err := listRemote(ctx, client, bucket, prefix, o, nil)
	if err != nil {
		return fail(fmt.Errorf("list: %w", err))
	}
	names := make([]string, 0, len(remote))
	for rel := range remote {
		names = append(names, rel)
	}
	sort.Strings(names)
	crcs := map[string]fileCRC{}
	n := 0
	for _, rel := range names {
		base := path.Base(rel)
		if strings.HasPrefix(base, ".") || isLeftoverTemp(base) || strings.Contains(rel, "..") {
			continue // temp files, and names that would escape localDir
		}
		local := filepath.Join(localDir, filepath.FromSlash(rel))
		if same, _ := sameAsRemote(local, rel, remote[rel], crcs); same {
			continue
		}
		if err := os.MkdirAll(filepath.Dir(local), 0o777); err != nil {
			return fail(err)
		}
		name := rel
		if prefix != "" {
			name = prefix + "/" + rel
		}
		obj := client.Bucket(bucket).Object(name).Retryer(o.RetryOptions("download gs://"+bucket+"/"+name, nil)...)
		err := writeFileAtomic(local, func(w io.Writer) error {
			r, err := obj.NewReader(ctx) // reopened at the offset reached if the connection breaks
			if err != nil {
				return err
			}
			defer r.Close()
			_, err = io.Copy(w, r) // the reader checks the object's CRC-32C at EOF
			return err
		})
		if err != nil {
			return fail(fmt.Errorf("download %s: %w", rel, err))
		}
		n++
	}
	return n, nil
}

// sameAsRemote reports whether the local file has the remote object's size and CRC-32C.
func sameAsRemote(local, rel string, r remoteObject, crcs map[string]fileCRC) (bool, error) {
	f, err := os.Open(local)
	if err != nil {
		return false, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil || info.Size() != r.size {
		return false, err
	}
	s := &Syncer{crcs: crcs}
	crc, err := s.crcOf(rel, f, info.Size(), info.ModTime())
	return err == nil && crc == r.crc, err
}

// gcsOptions are the GCS request bounds of this run, reporting retries on the progress output.
func (t *trainer) gcsOptions() data.GCSOptions {
	o := t.opts.GCS
	if o.Logf == nil {
		o.Logf = t.progress.Printf
	}
	return o
}

// gcsClient is the run's client for the mirror (credentials: Application Default Credentials), made on
// first use.
func (t *trainer) gcsClient(ctx context.Context) (*storage.Client, error) {
	if t.gcs == nil {
		c, err := data.NewGCSClient(ctx, t.gcsOptions())
		if err != nil {
			return nil, fmt.Errorf("train: checkpoint.gcs_sync: %w", err)
		}
		t.gcs = c
	}
	return t.gcs, nil
}

// startSync mirrors the run folder to checkpoint.gcs_sync.url in the background, if set. A failed pass
// prints a warning at once and every pass is logged as a "sync" metric. The returned function runs the
// final pass, bounded by gcs_sync.final_minutes and abandoned when Options.Abort is done, and returns
// its error.
func (t *trainer) startSync(ctx context.Context) (func() error, error) {
	gs := t.cfg.Checkpoint.GCSSync
	if gs.URL == "" || !t.root() { // rank 0 writes the run folder and mirrors it
		return func() error { return nil }, nil
	}
	client, err := t.gcsClient(ctx)
	if err != nil {
		return nil, err
	}
	s, err := NewSyncer(client, SyncOptions{LocalDir: t.cfg.Logging.Dir, URL: gs.URL,
		Every: time.Duration(gs.EveryMinutes * float64(time.Minute)), GCS: t.gcsOptions(), OnPass: t.syncPassed})
	if err != nil {
		return nil, err
	}
	t.syncer = s
	return func() error {
		abort := t.opts.Abort
		if abort == nil {
			abort = context.Background()
		}
		limit := time.Duration(gs.FinalMinutes * float64(time.Minute))
		cctx, cancel := context.WithTimeout(abort, limit)
		defer cancel()
		t.progress.Printf("gcs sync: final pass to %s (at most %v; interrupt again to abandon it)", gs.URL, limit)
		err := s.Close(cctx)
		switch {
		case err == nil:
			st := s.Stats()
			t.progress.Printf("gcs sync: %s is up to date (%d files uploaded, %d retries)", gs.URL, st.Uploaded, st.Retries)
			return nil
		case abort.Err() != nil:
			t.progress.Printf("warning: gcs sync: final pass abandoned; %s may lack the latest files of %s", gs.URL, t.cfg.Logging.Dir)
			return nil
		case errors.Is(cctx.Err(), context.DeadlineExceeded):
			return fmt.Errorf("train: gcs sync: the final pass did not finish within checkpoint.gcs_sync.final_minutes (%v): %w", limit, err)
		}
		return fmt.Errorf("train: gcs sync: final pass failed: %w", err)
	}, nil
}

// syncPassed reports a background pass: a warning line when it failed, and a "sync" metric either way.
func (t *trainer) syncPassed(st SyncStats) {
	m := SyncMetrics{Step: int(t.doneSteps.Load()), OK: st.LastErr == nil, Failures: float64(st.Failures),
		Retries: float64(st.Retries), Uploaded: float64(st.Uploaded), UploadedBytes: float64(st.UploadedBytes), SinceOK: math.NaN()}
	if !st.LastOK.IsZero() {
		m.SinceOK = st.LastPass.Sub(st.LastOK).Seconds()
	}
	if st.LastErr != nil {
		m.Error = st.LastErr.Error()
		since := "none has succeeded yet"
		if !st.LastOK.IsZero() {
			since = fmt.Sprintf("last success %v ago", st.LastPass.Sub(st.LastOK).Round(time.Second))
		}
		t.progress.Printf("warning: gcs sync failed (%d passes in a row, %s): %v", st.Failures, since, st.LastErr)
	}
	if t.metrics != nil {
		if err := t.metrics.LogSync(m); err != nil {
			t.progress.Printf("warning: %v", err)
		}
	}
}
