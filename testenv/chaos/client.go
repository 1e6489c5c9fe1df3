package chaos

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/hanode/hanode/testenv"
)

// endpoint is one S3 entry point (a coordinator or the proxy) as a minio-go client.
type endpoint struct {
	url string
	s3  minio.Core
}

// endpoints makes a minio-go client for each of the lab's coordinators and its proxy. The
// clients never retry on their own (MaxRetries 1): a retried PUT could apply twice around
// another client's write, which is not one operation of the history; failing over to the next
// endpoint is the recording client's decision, between operations.
func endpoints(l *testenv.Lab) ([]endpoint, error) {
	ca, err := os.ReadFile(l.CACert)
	if err != nil {
		return nil, fmt.Errorf("lab CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		return nil, fmt.Errorf("no certificate in %s", l.CACert)
	}
	ak, sk := l.S3Credentials()
	if ak == "" {
		return nil, fmt.Errorf("the lab in %s has no S3 credentials in its env file", l.Dir)
	}
	urls := append([]string(nil), l.Endpoints.S3...)
	if l.Endpoints.Proxy != "" {
		urls = append(urls, l.Endpoints.Proxy)
	}
	var out []endpoint
	for _, raw := range urls {
		u, err := url.Parse(raw)
		if err != nil {
			return nil, fmt.Errorf("S3 endpoint %q: %w", raw, err)
		}
		tr := &http.Transport{
			TLSClientConfig:     &tls.Config{RootCAs: pool},
			DialContext:         (&net.Dialer{Timeout: 3 * time.Second}).DialContext,
			TLSHandshakeTimeout: 5 * time.Second,
			MaxIdleConnsPerHost: 16,
			IdleConnTimeout:     30 * time.Second,
		}
		c, err := minio.New(u.Host, &minio.Options{Creds: credentials.NewStaticV4(ak, sk, ""), Secure: true,
			Region: "us-east-1", Transport: tr, MaxRetries: 1})
		if err != nil {
			return nil, fmt.Errorf("S3 client for %s: %w", raw, err)
		}
		out = append(out, endpoint{url: raw, s3: minio.Core{Client: c}})
	}
	return out, nil
}

// recorder performs S3 operations on one bucket and records each in the history. It uses one
// endpoint at a time and moves to the next after an operation whose outcome is unknown.
type recorder struct {
	h       *History
	eps     []endpoint
	cur     int
	bucket  string
	timeout time.Duration
	proc    int
}

func newRecorder(h *History, eps []endpoint, first int, bucket string, timeout time.Duration) *recorder {
	return &recorder{h: h, eps: eps, cur: first % len(eps), bucket: bucket, timeout: timeout, proc: h.NewProcess()}
}

// do runs one operation and records it.
func (r *recorder) do(ctx context.Context, in Input) Output {
	ep := r.eps[r.cur]
	octx, cancel := context.WithTimeout(ctx, r.timeout)
	call := r.h.Now()
	var out Output
	switch in.Op {
	case OpPut:
		out = r.put(octx, ep, in)
	case OpDelete:
		out = r.delete(octx, ep, in)
	default:
		out = r.get(octx, ep, in)
	}
	ret := r.h.Now()
	cancel()
	r.h.Add(Op{Process: r.proc, Input: in, Output: out, Call: call, Return: ret, Endpoint: ep.url})
	if out.Result == ResultUnknown {
		// The old process may still be acting (its request in flight): the next operation
		// belongs to a new one. And this endpoint may be down: try the next.
		r.proc = r.h.NewProcess()
		r.cur = (r.cur + 1) % len(r.eps)
	}
	return out
}

func (r *recorder) put(ctx context.Context, ep endpoint, in Input) Output {
	body := Body(in.Key, in.Version)
	sum := md5.Sum(body)
	_, err := ep.s3.PutObject(ctx, r.bucket, in.Key, bytes.NewReader(body), int64(len(body)),
		base64.StdEncoding.EncodeToString(sum[:]), "", minio.PutObjectOptions{UserMetadata: map[string]string{"version": in.Version}})
	if err != nil {
		return Output{Result: ResultUnknown, Detail: err.Error()}
	}
	return Output{Result: ResultOK}
}

func (r *recorder) delete(ctx context.Context, ep endpoint, in Input) Output {
	if err := ep.s3.RemoveObject(ctx, r.bucket, in.Key, minio.RemoveObjectOptions{}); err != nil {
		return Output{Result: ResultUnknown, Detail: err.Error()}
	}
	return Output{Result: ResultOK}
}

func (r *recorder) get(ctx context.Context, ep endpoint, in Input) Output {
	var opts minio.GetObjectOptions
	switch in.Op {
	case OpGetIfMatch:
		_ = opts.SetMatchETag(ETag(in.Key, in.Version))
	case OpGetIfNoneMatch:
		_ = opts.SetMatchETagExcept(ETag(in.Key, in.Version))
	}
	body, info, hdr, err := ep.s3.GetObject(ctx, r.bucket, in.Key, opts)
	if err != nil {
		var er minio.ErrorResponse
		if errors.As(err, &er) {
			switch {
			case er.StatusCode == http.StatusNotFound && er.Code == "NoSuchKey":
				return Output{Result: ResultNotFound}
			case er.StatusCode == http.StatusPreconditionFailed && in.Op == OpGetIfMatch:
				return Output{Result: ResultPreconditionFailed}
			case er.StatusCode == http.StatusNotModified && in.Op == OpGetIfNoneMatch:
				return Output{Result: ResultNotModified}
			}
		}
		return Output{Result: ResultUnknown, Detail: err.Error()}
	}
	defer body.Close()
	return verifyBody(in.Key, hdr.Get(VersionHeader), info.ETag, body)
}
