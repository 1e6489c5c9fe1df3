package s3

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	minio "github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// These tests check the wire format against a real client: minio-go talks
// to a small in-memory S3 built only from this package's pieces. Object and
// part bodies are planted directly in the store, so request-body framing
// (aws-chunked, signatures) stays out of scope here.

type fakeObject struct {
	data []byte
	etag string // quoted
	mod  time.Time
}

type fakeUpload struct {
	bucket, key string
	initiated   time.Time
	parts       map[int]*fakeObject
}

type fakeS3 struct {
	domains []string

	mu       sync.Mutex
	vhosts   int // requests addressed virtual-host style
	buckets  map[string]map[string]*fakeObject
	location map[string]string
	uploads  map[string]*fakeUpload
	nextID   int
}

func newFakeS3(domains []string) *fakeS3 {
	return &fakeS3{
		domains:  domains,
		buckets:  map[string]map[string]*fakeObject{},
		location: map[string]string{},
		uploads:  map[string]*fakeUpload{},
	}
}

func (f *fakeS3) put(bucket, key string, data []byte) *fakeObject {
	f.mu.Lock()
	defer f.mu.Unlock()
	sum := md5.Sum(data)
	o := &fakeObject{data: data, etag: ETagFromMD5(sum[:]), mod: time.Now()}
	f.buckets[bucket][key] = o
	return o
}

func (f *fakeS3) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if strings.HasPrefix(r.Host, "bucket-") {
		f.vhosts++
	}
	err := f.serve(w, r)
	if err != nil {
		WriteError(w, r, err, "REQ")
	}
}

func (f *fakeS3) serve(w http.ResponseWriter, r *http.Request) error {
	bucket, key, err := ParseRequest(r, f.domains)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	if bucket == "" {
		res := &ListAllMyBucketsResult{Owner: Owner{ID: "owner", DisplayName: "owner"}}
		for _, b := range slices.Sorted(mapKeys(f.buckets)) {
			res.Buckets = append(res.Buckets, Bucket{Name: b, CreationDate: Timestamp{time.Unix(1e9, 0)}})
		}
		return WriteXML(w, 200, res)
	}
	objs, exists := f.buckets[bucket]
	if r.Method == http.MethodPut && key == "" {
		if exists {
			return ErrorFor(CodeBucketAlreadyOwnedByYou, "").WithResource(bucket, "")
		}
		var cfg CreateBucketConfiguration
		if r.ContentLength > 0 {
			if err := DecodeXML(r.Body, MaxXMLBodySize, &cfg); err != nil {
				return err
			}
		}
		f.buckets[bucket] = map[string]*fakeObject{}
		f.location[bucket] = cfg.LocationConstraint
		return nil
	}
	if !exists {
		return ErrorFor(CodeNoSuchBucket, "").WithResource(bucket, "")
	}
	if key == "" {
		return f.serveBucket(w, r, bucket, objs)
	}
	switch {
	case r.Method == http.MethodPost && q.Has("uploads"):
		f.nextID++
		id := "upload-" + strconv.Itoa(f.nextID)
		f.uploads[id] = &fakeUpload{bucket: bucket, key: key, initiated: time.Now(), parts: map[int]*fakeObject{}}
		return WriteXML(w, 200, &InitiateMultipartUploadResult{Bucket: bucket, Key: key, UploadID: id})
	case q.Has("uploadId"):
		up := f.uploads[q.Get("uploadId")]
		if up == nil || up.bucket != bucket || up.key != key {
			return ErrorFor(CodeNoSuchUpload, "")
		}
		return f.serveUpload(w, r, q.Get("uploadId"), up, objs)
	case r.Method == http.MethodPut && r.Header.Get("X-Amz-Copy-Source") != "":
		sb, sk, _, err := ParseCopySource(r.Header.Get("X-Amz-Copy-Source"))
		if err != nil {
			return err
		}
		src := f.buckets[sb][sk]
		if src == nil {
			return ErrorFor(CodeNoSuchKey, "").WithResource(sb, sk)
		}
		if err := CheckCopySourcePreconditions(r.Header, src.etag, src.mod); err != nil {
			return err
		}
		o := &fakeObject{data: src.data, etag: src.etag, mod: time.Now()}
		objs[key] = o
		return WriteXML(w, 200, &CopyObjectResult{LastModified: Timestamp{o.mod}, ETag: o.etag})
	case r.Method == http.MethodGet || r.Method == http.MethodHead:
		o := objs[key]
		if o == nil {
			return ErrorFor(CodeNoSuchKey, "").WithResource(bucket, key)
		}
		h := w.Header()
		h.Set("ETag", o.etag)
		h.Set("Last-Modified", o.mod.UTC().Format(http.TimeFormat))
		h.Set("Accept-Ranges", "bytes")
		if st := CheckPreconditions(r.Header, o.etag, o.mod); st == http.StatusNotModified {
			w.WriteHeader(st)
			return nil
		} else if st != 0 {
			return ErrorFor(CodePreconditionFailed, "")
		}
		off, length, err := ParseRange(r.Header.Get("Range"), int64(len(o.data)))
		status := http.StatusPartialContent
		switch {
		case errors.Is(err, ErrRangeIgnored):
			off, length, status = 0, int64(len(o.data)), http.StatusOK
		case err != nil:
			h.Set("Content-Range", ContentRangeUnsatisfied(int64(len(o.data))))
			return err
		default:
			h.Set("Content-Range", ContentRange(off, length, int64(len(o.data))))
		}
		h.Set("Content-Length", strconv.FormatInt(length, 10))
		w.WriteHeader(status)
		if r.Method == http.MethodGet {
			_, _ = w.Write(o.data[off : off+length])
		}
		return nil
	case r.Method == http.MethodDelete:
		delete(objs, key)
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	return ErrorFor(CodeNotImplemented, "")
}

func (f *fakeS3) serveBucket(w http.ResponseWriter, r *http.Request, bucket string, objs map[string]*fakeObject) error {
	q := r.URL.Query()
	switch {
	case r.Method == http.MethodHead:
		return nil
	case r.Method == http.MethodGet && q.Has("location"):
		return WriteXML(w, 200, &LocationConstraint{Location: f.location[bucket]})
	case r.Method == http.MethodGet && q.Has("uploads"):
		enc, err := ParseEncodingType(q.Get("encoding-type"))
		if err != nil {
			return err
		}
		res := &ListMultipartUploadsResult{Bucket: bucket, Prefix: q.Get("prefix"), MaxUploads: 1000, EncodingType: enc}
		for _, id := range slices.Sorted(mapKeys(f.uploads)) {
			up := f.uploads[id]
			if up.bucket == bucket && strings.HasPrefix(up.key, res.Prefix) {
				res.Uploads = append(res.Uploads, Upload{
					Key: up.key, UploadID: id, StorageClass: "STANDARD", Initiated: Timestamp{up.initiated},
					Initiator: &Owner{ID: "owner", DisplayName: "owner"}, Owner: &Owner{ID: "owner", DisplayName: "owner"},
				})
			}
		}
		res.URLEncodeKeys()
		return WriteXML(w, 200, res)
	case r.Method == http.MethodGet:
		return f.list(w, r, bucket, objs)
	case r.Method == http.MethodPost && q.Has("delete"):
		var d Delete
		if err := DecodeXML(r.Body, MaxXMLBodySize, &d); err != nil {
			return err
		}
		if err := d.Validate(); err != nil {
			return err
		}
		var res DeleteResult
		for _, o := range d.Objects {
			if o.Key == "protected" {
				res.Errors = append(res.Errors, DeleteError{Key: o.Key, Code: CodeAccessDenied, Message: "Access Denied"})
				continue
			}
			delete(objs, o.Key)
			if !d.Quiet {
				res.Deleted = append(res.Deleted, Deleted{Key: o.Key})
			}
		}
		return WriteXML(w, 200, &res)
	}
	return ErrorFor(CodeNotImplemented, "")
}

// list serves ListObjects V1 and V2 with prefix, delimiter, max-keys and
// markers; the continuation token is the last key returned, base64.
func (f *fakeS3) list(w http.ResponseWriter, r *http.Request, bucket string, objs map[string]*fakeObject) error {
	q := r.URL.Query()
	enc, err := ParseEncodingType(q.Get("encoding-type"))
	if err != nil {
		return err
	}
	prefix, delim := q.Get("prefix"), q.Get("delimiter")
	maxKeys := 1000
	if v := q.Get("max-keys"); v != "" {
		if maxKeys, err = strconv.Atoi(v); err != nil || maxKeys < 0 {
			return ErrorFor(CodeInvalidArgument, "")
		}
	}
	v2 := q.Get("list-type") == "2"
	after := q.Get("marker")
	if v2 {
		after = q.Get("start-after")
		if tok := q.Get("continuation-token"); tok != "" {
			b, err := base64.StdEncoding.DecodeString(tok)
			if err != nil {
				return ErrorFor(CodeInvalidArgument, "The continuation token provided is incorrect")
			}
			after = string(b)
		}
	}
	var contents []Object
	var prefixes []CommonPrefix
	last, truncated := "", false
	for _, k := range slices.Sorted(mapKeys(objs)) {
		if !strings.HasPrefix(k, prefix) || k <= after {
			continue
		}
		entry := k
		if delim != "" {
			if i := strings.Index(k[len(prefix):], delim); i >= 0 {
				entry = k[:len(prefix)+i+len(delim)]
				if entry <= after || (len(prefixes) > 0 && prefixes[len(prefixes)-1].Prefix == entry) {
					continue
				}
			}
		}
		if len(contents)+len(prefixes) == maxKeys {
			truncated = true
			break
		}
		if entry != k {
			prefixes = append(prefixes, CommonPrefix{Prefix: entry})
			last = entry + "\xff" // skip the rest of the group
		} else {
			o := objs[k]
			contents = append(contents, Object{Key: k, LastModified: Timestamp{o.mod}, ETag: o.etag, Size: int64(len(o.data)), StorageClass: "STANDARD"})
			last = k
		}
	}
	if v2 {
		res := &ListBucketResult{
			Name: bucket, Prefix: prefix, Delimiter: delim, MaxKeys: maxKeys, EncodingType: enc,
			ContinuationToken: ptr(q.Get("continuation-token")), StartAfter: q.Get("start-after"),
			KeyCount: len(contents) + len(prefixes), IsTruncated: truncated, Contents: contents, CommonPrefixes: prefixes,
		}
		if truncated {
			res.NextContinuationToken = base64.StdEncoding.EncodeToString([]byte(last))
		}
		res.URLEncodeKeys()
		return WriteXML(w, 200, res)
	}
	res := &ListBucketResultV1{
		Name: bucket, Prefix: prefix, Marker: q.Get("marker"), Delimiter: delim, MaxKeys: maxKeys, EncodingType: enc,
		IsTruncated: truncated, Contents: contents, CommonPrefixes: prefixes,
	}
	if truncated && delim != "" {
		res.NextMarker = strings.TrimSuffix(last, "\xff")
	}
	res.URLEncodeKeys()
	return WriteXML(w, 200, res)
}

func (f *fakeS3) serveUpload(w http.ResponseWriter, r *http.Request, id string, up *fakeUpload, objs map[string]*fakeObject) error {
	switch r.Method {
	case http.MethodGet:
		res := &ListPartsResult{
			Bucket: up.bucket, Key: up.key, UploadID: id, StorageClass: "STANDARD", MaxParts: 1000,
			Initiator: &Owner{ID: "owner", DisplayName: "owner"}, Owner: &Owner{ID: "owner", DisplayName: "owner"},
		}
		for _, n := range slices.Sorted(mapKeys(up.parts)) {
			p := up.parts[n]
			res.Parts = append(res.Parts, Part{PartNumber: n, LastModified: Timestamp{p.mod}, ETag: p.etag, Size: int64(len(p.data))})
		}
		return WriteXML(w, 200, res)
	case http.MethodPost:
		var c CompleteMultipartUpload
		if err := DecodeXML(r.Body, MaxXMLBodySize, &c); err != nil {
			return err
		}
		if err := c.Validate(); err != nil {
			return err
		}
		var data []byte
		var sums [][]byte
		for _, cp := range c.Parts {
			p := up.parts[cp.PartNumber]
			if p == nil || !ETagsEqual(p.etag, cp.ETag) {
				return ErrorFor(CodeInvalidPart, "")
			}
			data = append(data, p.data...)
			sum := md5.Sum(p.data)
			sums = append(sums, sum[:])
		}
		o := &fakeObject{data: data, etag: MultipartETag(sums), mod: time.Now()}
		objs[up.key] = o
		delete(f.uploads, id)
		return WriteXML(w, 200, &CompleteMultipartUploadResult{
			Location: "http://" + r.Host + "/" + up.bucket + "/" + up.key, Bucket: up.bucket, Key: up.key, ETag: o.etag,
		})
	case http.MethodDelete:
		delete(f.uploads, id)
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	return ErrorFor(CodeNotImplemented, "")
}

func mapKeys[K comparable, V any](m map[K]V) func(func(K) bool) {
	return func(yield func(K) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// TestMinioClient runs the same client scenario with path-style and
// virtual-host-style addressing.
func TestMinioClient(t *testing.T) {
	for _, style := range []string{"path", "vhost"} {
		t.Run(style, func(t *testing.T) {
			f := newFakeS3([]string{"s3.hanode.test"})
			srv := httptest.NewServer(f)
			defer srv.Close()
			addr := srv.Listener.Addr().String()
			_, port, _ := net.SplitHostPort(addr)
			opts := &minio.Options{
				Creds:      credentials.NewStaticV4("AKIDEXAMPLE", "secret", ""),
				MaxRetries: 1,
				Transport: &http.Transport{
					// Every host name (bucket.s3.hanode.test) reaches the test server.
					DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
						return (&net.Dialer{}).DialContext(ctx, network, addr)
					},
				},
			}
			endpoint := addr
			if style == "vhost" {
				endpoint = "s3.hanode.test:" + port
				opts.BucketLookup = minio.BucketLookupDNS
			} else {
				opts.BucketLookup = minio.BucketLookupPath
			}
			cl, err := minio.New(endpoint, opts)
			if err != nil {
				t.Fatal(err)
			}
			runMinioScenario(t, f, cl)
			if (style == "vhost") != (f.vhosts > 0) {
				t.Errorf("%s: %d virtual-host requests", style, f.vhosts)
			}
		})
	}
}

func runMinioScenario(t *testing.T, f *fakeS3, cl *minio.Client) {
	ctx := context.Background()
	core := &minio.Core{Client: cl}

	// CreateBucketConfiguration, LocationConstraint and BucketAlreadyOwnedByYou.
	if err := cl.MakeBucket(ctx, "bucket-one", minio.MakeBucketOptions{Region: "eu-west-1"}); err != nil {
		t.Fatalf("MakeBucket: %v", err)
	}
	if got := f.location["bucket-one"]; got != "eu-west-1" {
		t.Errorf("location constraint = %q", got)
	}
	if err := cl.MakeBucket(ctx, "bucket-two", minio.MakeBucketOptions{}); err != nil {
		t.Fatalf("MakeBucket: %v", err)
	}
	err := cl.MakeBucket(ctx, "bucket-two", minio.MakeBucketOptions{})
	if minio.ToErrorResponse(err).Code != CodeBucketAlreadyOwnedByYou {
		t.Errorf("second MakeBucket: %v", err)
	}
	if ok, err := cl.BucketExists(ctx, "bucket-nope"); ok || err != nil {
		t.Errorf("BucketExists(nope) = %v, %v", ok, err)
	}

	// ListAllMyBucketsResult.
	bs, err := cl.ListBuckets(ctx)
	if err != nil || len(bs) != 2 || bs[0].Name != "bucket-one" || bs[1].Name != "bucket-two" || !bs[0].CreationDate.Equal(time.Unix(1e9, 0)) {
		t.Fatalf("ListBuckets = %+v, %v", bs, err)
	}

	// Listings with keys that need encoding-type=url.
	keys := []string{"a.txt", "dir/x y.txt", "dir/sub/z+1.txt", "dir/é&<>.txt", "dir2/q?.txt", "top%41", "tab\tkey"}
	for i, k := range keys {
		f.put("bucket-one", k, []byte(strings.Repeat("x", i+1)))
	}
	for _, v1 := range []bool{false, true} {
		var got []string
		for o := range cl.ListObjectsIter(ctx, "bucket-one", minio.ListObjectsOptions{Recursive: true, UseV1: v1, MaxKeys: 2}) {
			if o.Err != nil {
				t.Fatalf("ListObjects(v1=%v): %v", v1, o.Err)
			}
			if o.ETag == "" || o.Size == 0 || o.LastModified.IsZero() {
				t.Errorf("ListObjects(v1=%v) entry %+v", v1, o)
			}
			got = append(got, o.Key)
		}
		if want := slices.Sorted(slices.Values(keys)); !slices.Equal(got, want) {
			t.Errorf("ListObjects(v1=%v, recursive) = %q, want %q", v1, got, want)
		}
		got = nil
		for o := range cl.ListObjectsIter(ctx, "bucket-one", minio.ListObjectsOptions{Prefix: "dir/", UseV1: v1}) {
			if o.Err != nil {
				t.Fatalf("ListObjects(v1=%v, dir/): %v", v1, o.Err)
			}
			got = append(got, o.Key)
		}
		slices.Sort(got) // minio-go yields a page's objects before its prefixes
		if want := []string{"dir/sub/", "dir/x y.txt", "dir/é&<>.txt"}; !slices.Equal(got, want) {
			t.Errorf("ListObjects(v1=%v, dir/) = %q, want %q", v1, got, want)
		}
	}

	// GET with a range, 206 and Content-Range; HEAD.
	obj := f.put("bucket-one", "dir/x y.txt", []byte("0123456789"))
	opts := minio.GetObjectOptions{}
	_ = opts.SetRange(2, 5)
	rd, err := cl.GetObject(ctx, "bucket-one", "dir/x y.txt", opts)
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(rd)
	rd.Close()
	if err != nil || string(data) != "2345" {
		t.Errorf("ranged GetObject = %q, %v", data, err)
	}
	st, err := cl.StatObject(ctx, "bucket-one", "dir/x y.txt", minio.StatObjectOptions{})
	if err != nil || st.Size != 10 || "\""+st.ETag+"\"" != obj.etag {
		t.Errorf("StatObject = %+v, %v", st, err)
	}

	// Errors: HEAD (status only) and GET (XML body) of a missing key, 412.
	_, err = cl.StatObject(ctx, "bucket-one", "missing", minio.StatObjectOptions{})
	if er := minio.ToErrorResponse(err); er.Code != CodeNoSuchKey || er.StatusCode != 404 {
		t.Errorf("StatObject(missing) = %+v", er)
	}
	rd, err = cl.GetObject(ctx, "bucket-one", "missing", minio.GetObjectOptions{})
	if err == nil {
		_, err = io.ReadAll(rd)
		rd.Close()
	}
	if er := minio.ToErrorResponse(err); er.Code != CodeNoSuchKey || er.Key != "missing" || er.BucketName != "bucket-one" || er.RequestID != "REQ" {
		t.Errorf("GetObject(missing) = %+v", er)
	}
	opts = minio.GetObjectOptions{}
	_ = opts.SetMatchETag("nope")
	rd, err = cl.GetObject(ctx, "bucket-one", "a.txt", opts)
	if err == nil {
		_, err = io.ReadAll(rd)
		rd.Close()
	}
	if er := minio.ToErrorResponse(err); er.Code != CodePreconditionFailed {
		t.Errorf("GetObject(If-Match nope) = %v", err)
	}
	_, err = cl.StatObject(ctx, "bucket-nope", "k", minio.StatObjectOptions{})
	if er := minio.ToErrorResponse(err); er.Code != CodeNoSuchBucket {
		t.Errorf("StatObject(no bucket) = %+v", er)
	}

	// CopyObject: x-amz-copy-source with an escaped key, CopyObjectResult,
	// and a failing copy-source precondition.
	info, err := cl.CopyObject(ctx,
		minio.CopyDestOptions{Bucket: "bucket-two", Object: "copy/é y"},
		minio.CopySrcOptions{Bucket: "bucket-one", Object: "dir/é&<>.txt", MatchETag: UnquoteETag(f.buckets["bucket-one"]["dir/é&<>.txt"].etag)})
	if err != nil || string(f.buckets["bucket-two"]["copy/é y"].data) != string(f.buckets["bucket-one"]["dir/é&<>.txt"].data) {
		t.Fatalf("CopyObject = %+v, %v", info, err)
	}
	_, err = cl.CopyObject(ctx,
		minio.CopyDestOptions{Bucket: "bucket-two", Object: "copy2"},
		minio.CopySrcOptions{Bucket: "bucket-one", Object: "a.txt", MatchETag: "nope"})
	if er := minio.ToErrorResponse(err); er.Code != CodePreconditionFailed {
		t.Errorf("CopyObject(If-Match nope) = %v", err)
	}

	// Multipart: Initiate, ListMultipartUploads, ListParts, Complete.
	id, err := core.NewMultipartUpload(ctx, "bucket-two", "big object", minio.PutObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	up := f.uploads[id]
	var want []byte
	var sums [][]byte
	var cparts []minio.CompletePart
	for n := 1; n <= 3; n++ {
		p := bytes.Repeat([]byte{byte('a' + n)}, n*100)
		sum := md5.Sum(p)
		up.parts[n] = &fakeObject{data: p, etag: ETagFromMD5(sum[:]), mod: time.Now()}
		want = append(want, p...)
		sums = append(sums, sum[:])
		cparts = append(cparts, minio.CompletePart{PartNumber: n, ETag: UnquoteETag(up.parts[n].etag)})
	}
	var ups []string
	for u := range cl.ListIncompleteUploads(ctx, "bucket-two", "big", true) {
		if u.Err != nil {
			t.Fatal(u.Err)
		}
		ups = append(ups, u.Key+" "+u.UploadID)
	}
	if !slices.Equal(ups, []string{"big object " + id}) {
		t.Errorf("ListIncompleteUploads = %q", ups)
	}
	lp, err := core.ListObjectParts(ctx, "bucket-two", "big object", id, 0, 1000)
	if err != nil || len(lp.ObjectParts) != 3 || lp.ObjectParts[2].PartNumber != 3 || lp.ObjectParts[2].Size != 300 || lp.UploadID != id {
		t.Fatalf("ListObjectParts = %+v, %v", lp, err)
	}
	ui, err := core.CompleteMultipartUpload(ctx, "bucket-two", "big object", id, cparts, minio.PutObjectOptions{})
	if err != nil {
		t.Fatalf("CompleteMultipartUpload: %v", err)
	}
	if "\""+ui.ETag+"\"" != MultipartETag(sums) || !bytes.Equal(f.buckets["bucket-two"]["big object"].data, want) {
		t.Errorf("CompleteMultipartUpload = %+v", ui)
	}
	_, err = core.CompleteMultipartUpload(ctx, "bucket-two", "big object", id, cparts, minio.PutObjectOptions{})
	if er := minio.ToErrorResponse(err); er.Code != CodeNoSuchUpload {
		t.Errorf("second Complete = %v", err)
	}

	// DeleteObjects: Delete body (quiet) and an Error entry in DeleteResult.
	f.put("bucket-one", "protected", []byte("p"))
	ch := make(chan minio.ObjectInfo, len(keys)+1)
	for _, k := range append(slices.Clone(keys), "protected") {
		ch <- minio.ObjectInfo{Key: k}
	}
	close(ch)
	var failed []string
	for e := range cl.RemoveObjects(ctx, "bucket-one", ch, minio.RemoveObjectsOptions{}) {
		failed = append(failed, e.ObjectName+" "+minio.ToErrorResponse(e.Err).Code)
	}
	if !slices.Equal(failed, []string{"protected AccessDenied"}) {
		t.Errorf("RemoveObjects errors = %q", failed)
	}
	if n := len(f.buckets["bucket-one"]); n != 1 {
		t.Errorf("%d objects left, want 1", n)
	}
}

// TestMinioDecodesErrors: minio-go's own parser reads our error body.
func TestMinioDecodesErrors(t *testing.T) {
	r := httptest.NewRequest(http.MethodGet, "/b/k", nil)
	w := httptest.NewRecorder()
	WriteError(w, r, ErrorFor(CodeSlowDown, "").WithResource("bkt", "k"), "RID")
	var er minio.ErrorResponse
	if err := DecodeXML(w.Body, 1<<10, &er); err != nil {
		t.Fatal(err)
	}
	if er.Code != CodeSlowDown || er.BucketName != "bkt" || er.Key != "k" || er.Resource != "/b/k" || er.RequestID != "RID" {
		t.Errorf("%+v", er)
	}
}
