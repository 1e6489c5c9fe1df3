package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/minio/minio-go/v7"
)

// ErrChanged is returned when a download that broke could not resume because the object was
// replaced meanwhile: its ETag is no longer the one the download started with.
var ErrChanged = errors.New("the object changed during the download")

// GetOptions select a byte range; the zero value reads the whole object.
type GetOptions struct {
	Offset int64
	Length int64 // bytes from Offset; 0 or less reads to the end
}

// Reader is an object's body. When the connection breaks mid-body it resumes from the byte it
// reached on the next endpoint, with a Range request conditional on the ETag it started with.
// It is not safe for concurrent use.
type Reader struct {
	c           *Client
	ctx         context.Context
	bucket, key string
	info        minio.ObjectInfo
	pos, end    int64 // next byte to read; end of the range (exclusive), -1 until known
	body        io.ReadCloser
	release     context.CancelFunc // ends the context body lives in
	ep          *endpoint
	served      []string
	resumes     int
	err         error // sticky
}

// GetObject starts a download: it returns once an endpoint has answered with the object's
// metadata, the body following on Read.
func (c *Client) GetObject(ctx context.Context, bucket, key string, opts GetOptions) (*Reader, error) {
	if opts.Offset < 0 {
		return nil, fmt.Errorf("get s3://%s/%s: negative offset %d", bucket, key, opts.Offset)
	}
	r := &Reader{c: c, ctx: ctx, bucket: bucket, key: key, pos: opts.Offset, end: -1}
	if opts.Length > 0 {
		r.end = opts.Offset + opts.Length
	}
	if err := r.open(); err != nil {
		return nil, err
	}
	return r, nil
}

// GetObjectTo copies the object (or range) to w and returns its metadata and the bytes
// written; a broken download resumes on the next endpoint.
func (c *Client) GetObjectTo(ctx context.Context, bucket, key string, w io.Writer, opts GetOptions) (minio.ObjectInfo, int64, error) {
	r, err := c.GetObject(ctx, bucket, key, opts)
	if err != nil {
		return minio.ObjectInfo{}, 0, err
	}
	defer r.Close()
	n, err := io.CopyBuffer(w, r, make([]byte, 256<<10))
	if err != nil {
		return r.Info(), n, err
	}
	return r.Info(), n, nil
}

// Info is the object's metadata from the first answer; Size is the whole object's size.
func (r *Reader) Info() minio.ObjectInfo { return r.info }

// Served lists the endpoints that sent bytes of this download, in order.
func (r *Reader) Served() []string { return r.served }

// Offset is the position of the next byte Read returns, in the object.
func (r *Reader) Offset() int64 { return r.pos }

// Close releases the connection.
func (r *Reader) Close() error {
	var err error
	if r.body != nil {
		err = r.body.Close()
		r.body = nil
	}
	if r.release != nil {
		r.release()
		r.release = nil
	}
	return err
}

func (r *Reader) Read(p []byte) (int, error) {
	for {
		if r.err != nil {
			return 0, r.err
		}
		if r.end >= 0 && r.pos >= r.end {
			r.Close()
			return 0, io.EOF
		}
		if r.body == nil {
			if err := r.open(); err != nil {
				r.err = err
				return 0, err
			}
		}
		n, err := r.body.Read(p)
		r.pos += int64(n)
		switch {
		case err == nil:
			return n, nil
		case err == io.EOF && r.pos >= r.end:
			r.Close()
			return n, io.EOF
		case err == io.EOF:
			err = io.ErrUnexpectedEOF
		}
		r.Close()
		if cerr := r.ctx.Err(); cerr != nil {
			r.err = fmt.Errorf("get s3://%s/%s at byte %d: %w", r.bucket, r.key, r.pos, cerr)
			return n, r.err
		}
		// The body broke: that endpoint goes to the back and the next Read resumes elsewhere.
		r.resumes++
		retry := r.resumes <= r.c.maxRetries
		r.c.markDown(r.ep)
		r.c.report(op{name: "get", bucket: r.bucket, key: r.key}, r.ep, r.resumes, err, retry)
		if !retry {
			r.err = fmt.Errorf("get s3://%s/%s: body broke at byte %d %d times, last via %s: %w", r.bucket, r.key, r.pos, r.resumes, r.ep.url, err)
			return n, r.err
		}
		if n > 0 {
			return n, nil
		}
	}
}

// opened is one endpoint's answer to a GET.
type opened struct {
	body io.ReadCloser
	info minio.ObjectInfo
	end  int64 // end of the range it serves (exclusive)
}

// open sends the GET for what is left of the range, raced between endpoints like any read;
// after a break it requires the ETag the download started with.
func (r *Reader) open() error {
	resuming := len(r.served) > 0
	// The attempts run at once: they read r and return what they found, r is set after.
	pos, end, etag := r.pos, r.end, r.info.ETag
	got, ep, release, err := run(r.c, r.ctx, op{name: "get", bucket: r.bucket, key: r.key, idempotent: true, read: true}, func(ctx context.Context, ep *endpoint) (opened, error) {
		var gopts minio.GetObjectOptions
		var err error
		switch {
		case end >= 0:
			err = gopts.SetRange(pos, end-1)
		case pos > 0:
			err = gopts.SetRange(pos, 0)
		}
		if err != nil {
			return opened{}, err
		}
		if resuming {
			if err := gopts.SetMatchETag(etag); err != nil {
				return opened{}, err
			}
		}
		body, info, hdr, err := ep.core.GetObject(ctx, r.bucket, r.key, gopts)
		if err != nil {
			return opened{}, err
		}
		if resuming && !sameETag(info.ETag, etag) {
			body.Close() // an endpoint that ignored If-Match
			return opened{}, fmt.Errorf("%w: ETag %s, was %s", ErrChanged, info.ETag, etag)
		}
		got := opened{body: body, info: info, end: pos + info.Size} // Content-Length of this answer
		if resuming {
			if got.end != end {
				body.Close()
				return opened{}, fmt.Errorf("%w: the resumed range ends at byte %d, not %d", ErrChanged, got.end, end)
			}
		} else if total, ok := contentRangeTotal(hdr.Get("Content-Range")); ok {
			got.info.Size = total
		}
		return got, nil
	}, func(o opened) { o.body.Close() })
	if err != nil {
		if resuming && IsCode(err, "PreconditionFailed") {
			return fmt.Errorf("%w: %w", ErrChanged, err)
		}
		return err
	}
	if !resuming {
		r.info = got.info
		r.end = got.end // a range past the end of the object is cut to it
	}
	r.body, r.release = got.body, release
	r.ep = ep
	r.served = append(r.served, ep.url)
	return nil
}

func sameETag(a, b string) bool {
	return strings.EqualFold(strings.Trim(a, `"`), strings.Trim(b, `"`))
}

// contentRangeTotal parses the total of "bytes a-b/total".
func contentRangeTotal(h string) (int64, bool) {
	_, total, ok := strings.Cut(h, "/")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(strings.TrimSpace(total), 10, 64)
	return n, err == nil
}
