package data

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"time"

	"cloud.google.com/go/storage"
	"google.golang.org/api/iterator"
	"google.golang.org/api/option"
)

// GCSSource reads a dataset directory under gs://Bucket/Prefix (droid-rlds §5). Objects are read
// with range reads; a read that fails midway is reopened at the current offset, pinned to the
// object's generation, up to Retries times with exponential backoff.
type GCSSource struct {
	Client  *storage.Client
	Bucket  string
	Prefix  string // without a trailing slash; may be empty
	Retries int
	Backoff time.Duration // first retry delay, doubled each time
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

// NewGCSSource reads url through client (tests pass a fake-gcs-server client).
func NewGCSSource(client *storage.Client, url string) (*GCSSource, error) {
	bucket, prefix, err := ParseGCSURL(url)
	if err != nil {
		return nil, err
	}
	return &GCSSource{Client: client, Bucket: bucket, Prefix: prefix, Retries: 5, Backoff: 200 * time.Millisecond}, nil
}

// NewAnonymousGCSSource reads a public bucket without credentials. JSON reads are used because they
// work against both GCS and emulators (the XML path needs the emulator's public host to match).
func NewAnonymousGCSSource(ctx context.Context, url string) (*GCSSource, error) {
	client, err := storage.NewClient(ctx, option.WithoutAuthentication(), storage.WithJSONReads())
	if err != nil {
		return nil, fmt.Errorf("data: gcs client for %s: %w", url, err)
	}
	return NewGCSSource(client, url)
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

// Open starts a range read of the whole object. A missing object gives an error matching
// fs.ErrNotExist.
func (s *GCSSource) Open(ctx context.Context, name string) (io.ReadCloser, error) {
	obj := s.Client.Bucket(s.Bucket).Object(s.object(name))
	r, err := obj.NewRangeReader(ctx, 0, -1)
	if err != nil {
		if errors.Is(err, storage.ErrObjectNotExist) {
			return nil, fmt.Errorf("data: open %s/%s: %w", s, name, fs.ErrNotExist)
		}
		return nil, fmt.Errorf("data: open %s/%s: %w", s, name, err)
	}
	return &retryReader{ctx: ctx, src: s, name: name, obj: obj.Generation(r.Attrs.Generation), r: r, size: r.Attrs.Size}, nil
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
	it := s.Client.Bucket(s.Bucket).Objects(ctx, q)
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

// retryReader resumes a failed object read from the current offset.
type retryReader struct {
	ctx   context.Context
	src   *GCSSource
	name  string
	obj   *storage.ObjectHandle
	r     io.ReadCloser
	off   int64
	size  int64
	tries int // consecutive failed reopen attempts
}

func (rr *retryReader) Read(p []byte) (int, error) {
	for {
		if rr.r == nil {
			if err := rr.reopen(); err != nil {
				return 0, err
			}
		}
		n, err := rr.r.Read(p)
		rr.off += int64(n)
		if n > 0 {
			rr.tries = 0
		}
		if err == nil || (err == io.EOF && rr.off >= rr.size) {
			return n, err
		}
		// The body ended early or broke: drop it and resume at rr.off on the next call.
		rr.r.Close()
		rr.r = nil
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		if rr.tries >= rr.src.Retries {
			return n, fmt.Errorf("data: read %s/%s at offset %d after %d retries: %w", rr.src, rr.name, rr.off, rr.tries, err)
		}
		if n > 0 {
			return n, nil
		}
	}
}

func (rr *retryReader) reopen() error {
	for {
		delay := rr.src.Backoff << rr.tries
		rr.tries++
		select {
		case <-rr.ctx.Done():
			return rr.ctx.Err()
		case <-time.After(delay):
		}
		r, err := rr.obj.NewRangeReader(rr.ctx, rr.off, -1)
		if err == nil {
			rr.r = r
			return nil
		}
		if rr.tries >= rr.src.Retries || errors.Is(err, storage.ErrObjectNotExist) || rr.ctx.Err() != nil {
			return fmt.Errorf("data: reopen %s/%s at offset %d (try %d): %w", rr.src, rr.name, rr.off, rr.tries, err)
		}
	}
}

func (rr *retryReader) Close() error {
	if rr.r == nil {
		return nil
	}
	err := rr.r.Close()
	rr.r = nil
	return err
}
