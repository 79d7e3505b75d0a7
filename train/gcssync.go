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
// Each file operation is retried with exponential backoff on transient errors (408, 429, 5xx, dropped
// connections; storage.ShouldRetry). Passes never overlap: a tick or Trigger that arrives during a pass is
// coalesced into at most one more pass, and callers never wait.
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
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"cloud.google.com/go/storage"
	"google.golang.org/api/iterator"
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
	// Attempts per file operation (1 = no retries); default 5.
	Attempts int
	// Backoff is the first retry delay, doubled per retry up to 30 s; default 1 s.
	Backoff time.Duration
	// Logf receives errors of background passes; nil discards them (Stats().LastErr still has them).
	Logf func(format string, args ...any)
}

// SyncStats counts what a Syncer has done since it started.
type SyncStats struct {
	Passes        int
	Uploaded      int
	UploadedBytes int64
	Deleted       int
	Unchanged     int // files found identical (size and CRC-32C) in the latest pass
	Retries       int
	LastPass      time.Time
	LastErr       error // error of the latest pass, nil if it succeeded
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
	if opts.Attempts <= 0 {
		opts.Attempts = 5
	}
	if opts.Backoff <= 0 {
		opts.Backoff = time.Second
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
	local, err := s.scanLocal()
	if err != nil {
		return err
	}
	var remote map[string]remoteObject
	if err := s.retry(ctx, st, func() (err error) { remote, err = s.listRemote(ctx); return err }); err != nil {
		return fmt.Errorf("list: %w", err)
	}
	var errs []error
	for _, rel := range local {
		s.seen[rel] = true
		if ctx.Err() != nil {
			return errors.Join(append(errs, ctx.Err())...)
		}
		if err := s.syncFile(ctx, st, rel, remote); err != nil {
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
		obj := s.client.Bucket(s.bucket).Object(s.objectName(rel))
		err := s.retry(ctx, st, func() error {
			err := obj.Delete(ctx)
			if errors.Is(err, storage.ErrObjectNotExist) {
				return nil // a retried delete that had already succeeded
			}
			return err
		})
		if err != nil {
			errs = append(errs, fmt.Errorf("delete %s: %w", rel, err))
			continue
		}
		st.Deleted++
	}
	return errors.Join(errs...)
}

// scanLocal lists regular files under LocalDir as sorted slash paths, skipping dot-names.
func (s *Syncer) scanLocal() ([]string, error) {
	var files []string
	err := filepath.WalkDir(s.opts.LocalDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if path != s.opts.LocalDir && errors.Is(err, fs.ErrNotExist) {
				return nil // vanished during the walk (rotated checkpoint)
			}
			return err
		}
		if path != s.opts.LocalDir && strings.HasPrefix(d.Name(), ".") {
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

func (s *Syncer) listRemote(ctx context.Context) (map[string]remoteObject, error) {
	q := &storage.Query{}
	if s.prefix != "" {
		q.Prefix = s.prefix + "/"
	}
	if err := q.SetAttrSelection([]string{"Name", "Size", "CRC32C"}); err != nil {
		return nil, err
	}
	out := map[string]remoteObject{}
	it := s.client.Bucket(s.bucket).Objects(ctx, q)
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
func (s *Syncer) syncFile(ctx context.Context, st *SyncStats, rel string, remote map[string]remoteObject) error {
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
	err = s.retry(ctx, st, func() error { return s.upload(ctx, rel, f, size, crc) })
	if err != nil {
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
func (s *Syncer) upload(ctx context.Context, rel string, f *os.File, size int64, crc uint32) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // aborts the upload session if the copy fails
	w := s.client.Bucket(s.bucket).Object(s.objectName(rel)).NewWriter(ctx)
	w.ChunkSize = s.opts.ChunkSize
	w.CRC32C = crc
	w.SendCRC32C = true
	if _, err := io.Copy(w, io.NewSectionReader(f, 0, size)); err != nil {
		cancel()
		w.Close()
		return err
	}
	return w.Close()
}

// retry runs op until it succeeds, fails with a non-transient error, or runs out of attempts.
func (s *Syncer) retry(ctx context.Context, st *SyncStats, op func() error) error {
	delay := s.opts.Backoff
	for attempt := 1; ; attempt++ {
		err := op()
		if err == nil {
			return nil
		}
		if !storage.ShouldRetry(err) || ctx.Err() != nil {
			return err
		}
		if attempt >= s.opts.Attempts {
			return fmt.Errorf("after %d attempts: %w", attempt, err)
		}
		st.Retries++
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return errors.Join(err, ctx.Err())
		}
		delay = min(2*delay, 30*time.Second)
	}
}

// RestoreFromGCS downloads gs://bucket/prefix into localDir, the reverse of a Syncer pass: objects missing
// locally or differing in size or CRC-32C are fetched (each written atomically); local files are never
// deleted. Call it before NewSyncer when resuming on a fresh machine. It returns the number of files
// downloaded.
func RestoreFromGCS(ctx context.Context, client *storage.Client, url, localDir string) (int, error) {
	bucket, prefix, err := ParseGCSURL(url)
	if err != nil {
		return 0, fmt.Errorf("train: gcs restore: %w", err)
	}
	s := &Syncer{client: client, bucket: bucket, prefix: prefix,
		opts: SyncOptions{LocalDir: localDir, Attempts: 5, Backoff: time.Second}, crcs: map[string]fileCRC{}}
	fail := func(err error) (int, error) {
		return 0, fmt.Errorf("train: gcs restore gs://%s/%s -> %s: %w", bucket, prefix, localDir, err)
	}
	var st SyncStats
	var remote map[string]remoteObject
	if err := s.retry(ctx, &st, func() (err error) { remote, err = s.listRemote(ctx); return err }); err != nil {
		return fail(fmt.Errorf("list: %w", err))
	}
	names := make([]string, 0, len(remote))
	for rel := range remote {
		names = append(names, rel)
	}
	sort.Strings(names)
	n := 0
	for _, rel := range names {
		if strings.HasPrefix(path.Base(rel), ".") || strings.Contains(rel, "..") {
			continue // temp files, and names that would escape localDir
		}
		local := filepath.Join(localDir, filepath.FromSlash(rel))
		if f, err := os.Open(local); err == nil {
			info, err := f.Stat()
			same := false
			if err == nil && info.Size() == remote[rel].size {
				crc, err := s.crcOf(rel, f, info.Size(), info.ModTime())
				same = err == nil && crc == remote[rel].crc
			}
			f.Close()
			if same {
				continue
			}
		}
		if err := os.MkdirAll(filepath.Dir(local), 0o755); err != nil {
			return fail(err)
		}
		obj := client.Bucket(bucket).Object(s.objectName(rel))
		err := s.retry(ctx, &st, func() error {
			return writeFileAtomic(local, func(w io.Writer) error {
				r, err := obj.NewReader(ctx)
				if err != nil {
					return err
				}
				defer r.Close()
				_, err = io.Copy(w, r) // the reader checks the object's CRC-32C at EOF
				return err
			})
		})
		if err != nil {
			return fail(fmt.Errorf("download %s: %w", rel, err))
		}
		n++
	}
	return n, nil
}
