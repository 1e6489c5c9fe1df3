package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"os"
	"sync/atomic"

	"github.com/minio/minio-go/v7"
)

// PutOptions configures an upload.
type PutOptions struct {
	// PutObjectOptions pass through to minio-go (content type, metadata...). PartSize defaults
	// to DefaultPartSize: objects larger than one part are uploaded in parts. NumThreads is
	// how many parts are uploaded at once (minio-go's default, 4, when 0).
	minio.PutObjectOptions
	// OnProgress, when set, is called with the bytes sent so far by the current attempt; a
	// retry starts again from 0. It may be called from several goroutines at once.
	OnProgress func(sent int64)
}

// PutObject uploads size bytes of r as bucket/key (size -1: until EOF). The upload fails over
// and is retried when r can be read again: an io.ReaderAt or io.Seeker positioned at the data
// (a file, bytes.Reader...); a plain stream is retried only while none of it was consumed.
func (c *Client) PutObject(ctx context.Context, bucket, key string, r io.Reader, size int64, opts PutOptions) (minio.UploadInfo, error) {
	mopts := opts.PutObjectOptions
	if mopts.PartSize == 0 {
		mopts.PartSize = DefaultPartSize
	}
	body, size, replayable := newSource(r, size)
	if !replayable && size < 0 && mopts.NumThreads > 1 {
		mopts.ConcurrentStreamParts = true // NumThreads buffers of PartSize, uploaded in parallel
	}
	o := op{name: "put", bucket: bucket, key: key, idempotent: true}
	var consumed func() int64
	if !replayable {
		cr := &countingReader{r: r}
		consumed = cr.n.Load
		body = func() io.Reader { return cr }
		o.canRetry = func() bool { return consumed() == 0 }
	}
	info, _, release, err := run(c, ctx, o, func(ctx context.Context, ep *endpoint) (minio.UploadInfo, error) {
		po := mopts
		if opts.OnProgress != nil {
			po.Progress = &progressReader{fn: opts.OnProgress}
		}
		return ep.mc.PutObject(ctx, bucket, key, body(), size, po)
	}, nil)
	if release != nil {
		release()
	}
	if err != nil {
		if consumed != nil && consumed() > 0 {
			return info, fmt.Errorf("%w (not retried: %d bytes of the stream were already consumed)", err, consumed())
		}
		return info, err
	}
	if size >= 0 && info.Size != size {
		return info, fmt.Errorf("put s3://%s/%s: stored %d bytes, sent %d", bucket, key, info.Size, size)
	}
	return info, nil
}

// FPutObject uploads the file at path; being re-readable, it fails over and retries.
func (c *Client) FPutObject(ctx context.Context, bucket, key, path string, opts PutOptions) (minio.UploadInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return minio.UploadInfo{}, fmt.Errorf("put s3://%s/%s: %w", bucket, key, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return minio.UploadInfo{}, fmt.Errorf("put s3://%s/%s: %w", bucket, key, err)
	}
	size := st.Size()
	if !st.Mode().IsRegular() {
		size = -1 // a pipe or device: a stream
	}
	return c.PutObject(ctx, bucket, key, f, size, opts)
}

// newSource returns a function giving a fresh reader of the data for each attempt when r can
// be read again, and the size (found by seeking when it was -1).
func newSource(r io.Reader, size int64) (func() io.Reader, int64, bool) {
	base := int64(0)
	s, seeker := r.(io.Seeker)
	if seeker {
		cur, err := s.Seek(0, io.SeekCurrent)
		seeker = err == nil // a pipe (os.Stdin) is an io.Seeker that cannot seek
		base = cur
		if seeker && size < 0 {
			end, err := s.Seek(0, io.SeekEnd)
			if _, err2 := s.Seek(cur, io.SeekStart); err != nil || err2 != nil {
				seeker = false
			} else {
				size = end - cur
			}
		}
	}
	if ra, ok := r.(io.ReaderAt); ok && size >= 0 && (seeker || !isSeekerType(r)) {
		// A section reader keeps io.ReaderAt, which minio-go uses to upload parts in parallel.
		return func() io.Reader { return &sectionSource{io.NewSectionReader(ra, base, size)} }, size, true
	}
	if seeker && size >= 0 {
		return func() io.Reader {
			if _, err := s.Seek(base, io.SeekStart); err != nil {
				return errReader{sourceErr(err)}
			}
			return &countingReader{r: io.LimitReader(r, size)}
		}, size, true
	}
	return nil, size, false
}

func isSeekerType(r io.Reader) bool { _, ok := r.(io.Seeker); return ok }

// sectionSource marks read failures as the source's.
type sectionSource struct{ s *io.SectionReader }

func (s *sectionSource) Read(p []byte) (int, error) {
	n, err := s.s.Read(p)
	return n, sourceErr(err)
}

func (s *sectionSource) ReadAt(p []byte, off int64) (int, error) {
	n, err := s.s.ReadAt(p, off)
	return n, sourceErr(err)
}

func (s *sectionSource) Seek(off int64, whence int) (int64, error) { return s.s.Seek(off, whence) }
func (s *sectionSource) Size() int64                               { return s.s.Size() }

// countingReader counts what was consumed from a stream and marks its read failures.
type countingReader struct {
	r io.Reader
	n atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, sourceErr(err)
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// progressReader is minio-go's progress hook: it is "read" with the bytes as they are sent.
type progressReader struct {
	fn   func(int64)
	sent atomic.Int64
}

func (p *progressReader) Read(b []byte) (int, error) {
	p.fn(p.sent.Add(int64(len(b))))
	return len(b), nil
}

// StatObject returns an object's metadata (HEAD).
func (c *Client) StatObject(ctx context.Context, bucket, key string) (minio.ObjectInfo, error) {
	info, _, release, err := run(c, ctx, op{name: "stat", bucket: bucket, key: key, idempotent: true, read: true}, func(ctx context.Context, ep *endpoint) (minio.ObjectInfo, error) {
		return ep.mc.StatObject(ctx, bucket, key, minio.StatObjectOptions{})
	}, nil)
	if release != nil {
		release()
	}
	return info, err
}

// RemoveObject deletes an object; deleting one that does not exist succeeds (S3).
func (c *Client) RemoveObject(ctx context.Context, bucket, key string) error {
	_, err := c.do(ctx, op{name: "remove", bucket: bucket, key: key, idempotent: true}, func(ctx context.Context, ep *endpoint) error {
		return ep.mc.RemoveObject(ctx, bucket, key, minio.RemoveObjectOptions{})
	})
	return err
}

// MakeBucket creates a bucket. It is retried too: if an earlier attempt created the bucket
// but its answer was lost, the retry's BucketAlreadyOwnedByYou counts as success.
func (c *Client) MakeBucket(ctx context.Context, bucket string) error {
	attempts := 0
	_, err := c.do(ctx, op{name: "make bucket", bucket: bucket, idempotent: true}, func(ctx context.Context, ep *endpoint) error {
		attempts++
		err := ep.mc.MakeBucket(ctx, bucket, minio.MakeBucketOptions{Region: c.cfg.Region})
		if attempts > 1 && minio.ToErrorResponse(err).Code == "BucketAlreadyOwnedByYou" {
			return nil
		}
		return err
	})
	return err
}

// EnsureBucket creates a bucket unless the caller already owns it.
func (c *Client) EnsureBucket(ctx context.Context, bucket string) error {
	err := c.MakeBucket(ctx, bucket)
	if IsCode(err, "BucketAlreadyOwnedByYou") {
		return nil
	}
	return err
}

// BucketExists reports whether the bucket exists.
func (c *Client) BucketExists(ctx context.Context, bucket string) (bool, error) {
	ok, _, release, err := run(c, ctx, op{name: "head bucket", bucket: bucket, idempotent: true, read: true}, func(ctx context.Context, ep *endpoint) (bool, error) {
		return ep.mc.BucketExists(ctx, bucket)
	}, nil)
	if release != nil {
		release()
	}
	return ok, err
}

// ListBuckets lists the caller's buckets.
func (c *Client) ListBuckets(ctx context.Context) ([]minio.BucketInfo, error) {
	out, _, release, err := run(c, ctx, op{name: "list buckets", idempotent: true, read: true}, func(ctx context.Context, ep *endpoint) ([]minio.BucketInfo, error) {
		return ep.mc.ListBuckets(ctx)
	}, nil)
	if release != nil {
		release()
	}
	return out, err
}

// ListOptions select what ListObjects returns.
type ListOptions struct {
	Prefix string
	// Recursive lists every key; otherwise keys are grouped at the next "/" after the prefix
	// into entries whose Key ends in "/" (common prefixes).
	Recursive bool
}

// ListObjects yields the objects (and, when not recursive, common prefixes: entries with only
// a Key ending in "/"), page by page. The first page is raced between endpoints like any read;
// a listing that breaks resumes on the next endpoint.
func (c *Client) ListObjects(ctx context.Context, bucket string, opts ListOptions) iter.Seq2[minio.ObjectInfo, error] {
	return func(yield func(minio.ObjectInfo, error) bool) {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		o := op{name: "list", bucket: bucket, key: opts.Prefix, idempotent: true, read: true}
		// minio-go yields a page's objects, then its common prefixes: not in key order, but
		// every entry of the pages yielded sorts before the next page. A listing that broke
		// resumes after the greatest key yielded, skipping what the next endpoint repeats.
		greatest := ""
		for resumes := 0; ; {
			after := greatest
			l, ep, release, err := run(c, ctx, o, func(ctx context.Context, ep *endpoint) (listing, error) {
				ch := ep.mc.ListObjects(ctx, bucket, minio.ListObjectsOptions{Prefix: opts.Prefix, Recursive: opts.Recursive, StartAfter: after})
				first, ok := <-ch
				if ok && first.Err != nil {
					go drainList(ch)
					return listing{}, first.Err
				}
				return listing{first: first, more: ok, rest: ch}, nil
			}, func(l listing) { go drainList(l.rest) })
			if err != nil {
				yield(minio.ObjectInfo{}, err)
				return
			}
			err = nil
			for e, ok := l.first, l.more; ok; e, ok = <-l.rest {
				if e.Err != nil {
					err = e.Err
					break
				}
				if after != "" && e.Key <= after {
					continue // a common prefix yielded before the break comes again
				}
				greatest = max(greatest, e.Key)
				if !yield(e, nil) {
					release() // stops minio-go's listing goroutine
					go drainList(l.rest)
					return
				}
			}
			release()
			go drainList(l.rest)
			if err == nil {
				return
			}
			fault := endpointFault(ctx, err)
			if fault {
				c.markDown(ep)
			}
			resumes++
			retry := fault && resumes <= c.maxRetries
			c.report(o, ep, resumes, err, retry)
			if !retry {
				yield(minio.ObjectInfo{}, fmt.Errorf("list%s: broke %d times, last via %s: %w", o.target(), resumes, ep.url, err))
				return
			}
		}
	}
}

// listing is a listing under way: its first entry (when more) and the rest.
type listing struct {
	first minio.ObjectInfo
	more  bool
	rest  <-chan minio.ObjectInfo
}

// drainList empties a cancelled listing's channel so that minio-go's goroutine can end.
func drainList(ch <-chan minio.ObjectInfo) {
	if ch == nil {
		return
	}
	for range ch {
	}
}

// IsCode reports whether err carries the S3 error code (NoSuchKey, NoSuchBucket...).
func IsCode(err error, code string) bool {
	var er minio.ErrorResponse
	return errors.As(err, &er) && er.Code == code
}
