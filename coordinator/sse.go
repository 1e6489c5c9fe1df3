package coordinator

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hanode/hanode/adminapi"
	"github.com/hanode/hanode/internal/sealstream"
	"github.com/hanode/hanode/meta"
	"github.com/hanode/hanode/s3"
	"github.com/hanode/hanode/security/kms"
)

// Encryption at rest (docs/security.md). An encrypted object's chunks are sealed here, in the
// coordinator, before they leave for the datanodes (internal/sealstream: AES-256-GCM per 64 KiB
// block, a key per chunk derived from the object key): the datanodes, their checksums, scrub
// and repair see only sealed bytes and need no key. The object key is
//   - SSE-S3: a random data key of the object (of the upload, for multipart), sealed with the
//     cluster keyring, which only controllers hold (DataKeys); the sealed form is in the record;
//   - SSE-KMS: a random data key of the object, sealed under a named key of the built-in KMS
//     (security/kms), whose material only controllers hold (KMSKeys); the record keeps the key's
//     name, the sealed data key and the encryption context. A disabled or deleted KMS key
//     makes its objects unreadable, whatever the other keys;
//   - SSE-C: the customer's key, given with every request and never stored; the record keeps a
//     salted HMAC of it, which tells a right key from a wrong one.

// DataKeys makes and opens SSE-S3 data keys; a controller does it (POST /v1/sse/datakey and
// /v1/sse/open), since only controllers hold the cluster keyring.
type DataKeys interface {
	// New returns a fresh data key and the same key sealed with the keyring's primary key.
	New(ctx context.Context) (plain, sealed []byte, err error)
	// Open returns the data key sealed in sealed.
	Open(ctx context.Context, sealed []byte) ([]byte, error)
}

// KMSKeys makes and opens SSE-KMS data keys under the built-in KMS's keys; a controller does it
// (POST /v1/sse/kms/datakey and /v1/sse/kms/open), since only controllers hold the keys'
// material. Errors wrap kms.ErrNotFound for an unknown key and kms.ErrDisabled for a disabled one.
type KMSKeys interface {
	// NewKMS returns a fresh data key and the same key sealed under KMS key keyID, bound to
	// the encryption context encCtx ("" for none).
	NewKMS(ctx context.Context, keyID, encCtx string) (plain, sealed []byte, err error)
	// OpenKMS returns the data key sealed under keyID with encCtx, if keyID exists and is enabled.
	OpenKMS(ctx context.Context, keyID, encCtx string, sealed []byte) ([]byte, error)
}

// Opened data keys are cached so that reading an encrypted object costs no controller call
// after the first: at most dataKeyCacheSize keys, an SSE-S3 one for dataKeyTTL, an SSE-KMS one
// for KMSKeyTTL (Options.KMSKeyTTL), which bounds how long a disabled KMS key's objects stay
// readable through a coordinator that opened their data key before.
const (
	dataKeyCacheSize = 4096
	dataKeyTTL       = 10 * time.Minute
	KMSKeyTTL        = 30 * time.Second
)

type dataKeyCache struct {
	mu   sync.Mutex
	keys map[string]cachedKey // by sealed form
	// calls counts data-key requests by op (new, open) and result (ok, cached, error): an SSE-S3
	// or SSE-KMS read or write depends on reaching a controller when its key is not cached.
	calls *prometheus.CounterVec
}

func newDataKeyCache(reg prometheus.Registerer) dataKeyCache {
	calls := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hanode_s3_data_key_requests_total",
		Help: "SSE-S3 and SSE-KMS data keys made (op=new) and opened (op=open) for this coordinator, by result (ok, cached, error)."}, []string{"op", "result"})
	if reg != nil {
		reg.MustRegister(calls)
	}
	return dataKeyCache{calls: calls}
}

func (d *dataKeyCache) count(op string, err error) {
	if d.calls == nil {
		return
	}
	r := "ok"
	if err != nil {
		r = "error"
	}
	d.calls.WithLabelValues(op, r).Inc()
}

type cachedKey struct {
	key     []byte
	expires time.Time
}

// openDataKey returns the data key of an SSE-S3 or SSE-KMS object (or upload) encrypted as sse,
// from the cache or a controller.
func (c *Coordinator) openDataKey(ctx context.Context, sse *meta.SSE) ([]byte, error) {
	if sse.Algorithm == meta.SSEKMS {
		if c.o.KMS == nil {
			return nil, errNoKMS
		}
		id := "kms\x00" + sse.KMSKeyID + "\x00" + sse.KMSContext + "\x00" + string(sse.SealedKey)
		return c.cachedDataKey(id, c.o.KMSKeyTTL, func() ([]byte, error) {
			key, err := c.o.KMS.OpenKMS(ctx, sse.KMSKeyID, sse.KMSContext, sse.SealedKey)
			c.dataKeys.count("open", err)
			if err != nil {
				return nil, c.kmsError(sse.KMSKeyID, err)
			}
			return key, nil
		})
	}
	if c.o.DataKeys == nil {
		return nil, errNoDataKeys
	}
	return c.cachedDataKey(string(sse.SealedKey), dataKeyTTL, func() ([]byte, error) {
		key, err := c.o.DataKeys.Open(ctx, sse.SealedKey)
		c.dataKeys.count("open", err)
		if err != nil {
			c.log.Warn("a controller did not open an SSE-S3 data key", "err", err)
			return nil, errKeysUnavailable
		}
		return key, nil
	})
}

// cachedDataKey returns the data key cached under id, or opens it and caches it for ttl.
func (c *Coordinator) cachedDataKey(id string, ttl time.Duration, open func() ([]byte, error)) ([]byte, error) {
	now := time.Now()
	dk := &c.dataKeys
	dk.mu.Lock()
	e, ok := dk.keys[id]
	dk.mu.Unlock()
	if ok && now.Before(e.expires) {
		if dk.calls != nil {
			dk.calls.WithLabelValues("open", "cached").Inc()
		}
		return e.key, nil
	}
	key, err := open()
	if err != nil {
		return nil, err
	}
	if len(key) != sealstream.KeySize {
		return nil, fmt.Errorf("open the object's data key: %d bytes, want %d", len(key), sealstream.KeySize)
	}
	dk.mu.Lock()
	defer dk.mu.Unlock()
	if dk.keys == nil {
		dk.keys = map[string]cachedKey{}
	}
	for k, v := range dk.keys { // when full: the expired ones, then any (map order)
		if len(dk.keys) < dataKeyCacheSize {
			break
		}
		if now.After(v.expires) {
			delete(dk.keys, k)
		}
	}
	for k := range dk.keys {
		if len(dk.keys) < dataKeyCacheSize {
			break
		}
		delete(dk.keys, k)
	}
	dk.keys[id] = cachedKey{key: key, expires: now.Add(ttl)}
	return key, nil
}

// kmsError is the S3 answer for a KMS call about key keyID that failed with err: AWS's errors
// for an unknown or disabled key, else 503 (the cause logged).
func (c *Coordinator) kmsError(keyID string, err error) error {
	switch {
	case errors.Is(err, kms.ErrNotFound):
		return s3.ErrKMSNotFound(keyID)
	case errors.Is(err, kms.ErrDisabled):
		return s3.ErrKMSDisabled(keyID)
	}
	c.log.Warn("a controller did not make or open an SSE-KMS data key", "kms_key", keyID, "err", err)
	return errKeysUnavailable
}

// errKeysUnavailable: no controller made or opened a data key (503; the cause is logged).
var errKeysUnavailable = s3.ErrorFor(s3.CodeServiceUnavailable, "no controller could be reached for the object's SSE-S3 data key; retry shortly")

// errNoDataKeys: a coordinator built without DataKeys (no controller to seal keys) serves no SSE-S3.
var errNoDataKeys = s3.ErrorFor(s3.CodeNotImplemented, "SSE-S3 needs the cluster keyring, which this coordinator cannot reach")

// errNoKMS: a coordinator built without KMS (no controller) serves no SSE-KMS.
var errNoKMS = s3.ErrorFor(s3.CodeNotImplemented, "SSE-KMS needs the built-in KMS, which this coordinator cannot reach")

// errNoKMSKey: aws:kms asked for without a key id, in a bucket without a default KMS key.
var errNoKMSKey = s3.ErrorFor(s3.CodeInvalidArgument, "aws:kms needs x-amz-server-side-encryption-aws-kms-key-id (or a bucket default encryption with a KMSMasterKeyID): hanode has no AWS managed key")

// sealer seals the chunks of one write under an object key, and says what the record keeps.
type sealer struct {
	sse      *meta.SSE
	key      []byte
	customer *s3.SSECustomer // SSE-C: echoed in responses
}

// seal encrypts chunk id, buf[:len(buf)], in place (buf has the capacity: bufferPool).
func (s *sealer) seal(id string, buf []byte) ([]byte, error) {
	aead, err := sealstream.ChunkCipher(s.key, id)
	if err != nil {
		return nil, err
	}
	return sealstream.Seal(aead, buf[:cap(buf)], len(buf)), nil
}

// etag is the ETag of bytes whose MD5 is sum. SSE-C's is not the MD5 of the plaintext (as in
// AWS): a keyed digest of it, so the ETag tells nothing about the content to one without the key.
func (s *sealer) etag(sum []byte) string {
	if s == nil || s.sse.Algorithm != meta.SSEC {
		return hex.EncodeToString(sum)
	}
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte("hanode sse-c etag"))
	m.Write(sum)
	return hex.EncodeToString(m.Sum(nil)[:16])
}

// record is what the object's (or upload's) record keeps of the encryption; nil for none.
func (s *sealer) record() *meta.SSE {
	if s == nil {
		return nil
	}
	return s.sse
}

// respond sets the response headers that tell the client how the object is encrypted.
func respondSSE(h http.Header, sse *meta.SSE, customer *s3.SSECustomer) {
	switch {
	case sse == nil:
	case sse.Algorithm == meta.SSES3:
		h.Set(s3.HeaderSSE, s3.SSEAlgorithmAES256)
	case sse.Algorithm == meta.SSEKMS:
		h.Set(s3.HeaderSSE, s3.SSEAlgorithmKMS)
		h.Set(s3.HeaderSSEKMSKeyID, sse.KMSKeyID)
		if sse.KMSContext != "" {
			h.Set(s3.HeaderSSEKMSContext, sse.KMSContext)
		}
	case sse.Algorithm == meta.SSEC:
		h.Set(s3.HeaderSSECAlgorithm, s3.SSEAlgorithmAES256)
		if customer != nil {
			h.Set(s3.HeaderSSECKeyMD5, customer.KeyMD5)
		}
	}
}

func (s *sealer) respond(h http.Header) {
	if s != nil {
		respondSSE(h, s.sse, s.customer)
	}
}

// keyCheck is a random salt followed by HMAC-SHA256(key, salt): stored for SSE-C instead of
// the key, it proves a key given later right or wrong, and reveals nothing else about it.
func keyCheck(key []byte) []byte {
	salt := make([]byte, 16)
	_, _ = rand.Read(salt)
	m := hmac.New(sha256.New, key)
	m.Write([]byte("hanode sse-c key check"))
	m.Write(salt)
	return m.Sum(salt)
}

func keyMatches(check, key []byte) bool {
	if len(check) != 16+sha256.Size {
		return false
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte("hanode sse-c key check"))
	m.Write(check[:16])
	return hmac.Equal(m.Sum(nil), check[16:])
}

// bucketDefault is a bucket's default encryption: meta.SSES3, meta.SSEKMS with its KMS key, or
// none ("").
type bucketDefault struct{ algo, kmsKeyID string }

// sseForWrite returns the sealer a write (PutObject, CopyObject's target, CreateMultipartUpload,
// a POST upload) asks for with its headers, or its bucket's default encryption (def); nil to
// store the bytes as sent.
func (c *Coordinator) sseForWrite(ctx context.Context, h http.Header, def bucketDefault) (*sealer, error) {
	req, err := s3.ParseSSE(h)
	if err != nil {
		return nil, err
	}
	cust, err := s3.ParseSSECustomer(h, false)
	if err != nil {
		return nil, err
	}
	switch {
	case cust != nil && req.Algorithm != "":
		return nil, s3.ErrorFor(s3.CodeInvalidArgument, "Server Side Encryption with Customer provided key is incompatible with the encryption method specified")
	case cust != nil:
		return &sealer{sse: &meta.SSE{Algorithm: meta.SSEC, KeyCheck: keyCheck(cust.Key)}, key: cust.Key, customer: cust}, nil
	case req.Algorithm == "" && def.algo == "":
		return nil, nil
	case req.Algorithm == s3.SSEAlgorithmKMS || req.Algorithm == "" && def.algo == meta.SSEKMS:
		keyID := req.KMSKeyID
		if keyID == "" && def.algo == meta.SSEKMS {
			keyID = def.kmsKeyID
		}
		return c.kmsSealer(ctx, keyID, req.KMSContext)
	}
	if c.o.DataKeys == nil {
		return nil, errNoDataKeys
	}
	plain, sealed, err := c.o.DataKeys.New(ctx)
	c.dataKeys.count("new", err)
	if err != nil {
		c.log.Warn("a controller did not make an SSE-S3 data key", "err", err)
		return nil, errKeysUnavailable
	}
	if len(plain) != sealstream.KeySize {
		return nil, fmt.Errorf("a data key for SSE-S3 is %d bytes, want %d", len(plain), sealstream.KeySize)
	}
	return &sealer{sse: &meta.SSE{Algorithm: meta.SSES3, SealedKey: sealed}, key: plain}, nil
}

// kmsSealer makes an SSE-KMS object's data key under KMS key keyID with encryption context encCtx.
func (c *Coordinator) kmsSealer(ctx context.Context, keyID, encCtx string) (*sealer, error) {
	switch {
	case c.o.KMS == nil:
		return nil, errNoKMS
	case keyID == "":
		return nil, errNoKMSKey
	}
	plain, sealed, err := c.o.KMS.NewKMS(ctx, keyID, encCtx)
	c.dataKeys.count("new", err)
	if err != nil {
		return nil, c.kmsError(keyID, err)
	}
	if len(plain) != sealstream.KeySize {
		return nil, fmt.Errorf("a data key for SSE-KMS is %d bytes, want %d", len(plain), sealstream.KeySize)
	}
	return &sealer{sse: &meta.SSE{Algorithm: meta.SSEKMS, SealedKey: sealed, KMSKeyID: keyID, KMSContext: encCtx}, key: plain}, nil
}

// objectKey returns the key that opens an object (or an upload's parts) encrypted as sse,
// checking the SSE-C headers (the copy source's, with copySource) a request brings: an SSE-C
// object needs them and the right key (else 400, or 403 for a wrong key, as AWS), any other
// object must not be given them. nil: not encrypted, or an SSE-S3 or SSE-KMS key not asked
// for (!open: a HEAD needs no data key, and costs no controller call).
func (c *Coordinator) objectKey(ctx context.Context, h http.Header, sse *meta.SSE, copySource, open bool) ([]byte, *s3.SSECustomer, error) {
	cust, err := s3.ParseSSECustomer(h, copySource)
	if err != nil {
		return nil, nil, err
	}
	if sse == nil || sse.Algorithm != meta.SSEC {
		if cust != nil {
			return nil, nil, s3.ErrorFor(s3.CodeInvalidRequest, "The encryption parameters are not applicable to this object.")
		}
		if sse == nil || !open {
			return nil, nil, nil
		}
		key, err := c.openDataKey(ctx, sse)
		return key, nil, err
	}
	if cust == nil {
		return nil, nil, s3.ErrorFor(s3.CodeInvalidRequest, "The object was stored using a form of Server Side Encryption. The correct parameters must be provided to retrieve the object.")
	}
	if !keyMatches(sse.KeyCheck, cust.Key) {
		return nil, nil, s3.ErrorFor(s3.CodeAccessDenied, "The SSE-C key provided does not match the key the object was stored with.")
	}
	return cust.Key, cust, nil
}

// readRequestSSE checks the encryption headers of a GET or HEAD: a read names no encryption
// method (the object's record knows it), only an SSE-C key.
func readRequestSSE(h http.Header) error {
	if h.Get(s3.HeaderSSE) != "" {
		return s3.ErrorFor(s3.CodeInvalidArgument, "x-amz-server-side-encryption is not valid on a read: the object's encryption is known")
	}
	return nil
}

// sseRequested reports whether a request asks for encryption of what it writes (a copy of an
// object onto itself that changes its encryption is a legal copy).
func sseRequested(h http.Header) bool {
	return h.Get(s3.HeaderSSE) != "" || h.Get(s3.HeaderSSECAlgorithm) != ""
}

// uploadCustomerKey checks the SSE-C headers of a request on upload u (a part, a completion)
// against the upload's key, as AWS does: an SSE-C upload needs its key, and only it (400 for
// another or none); any other upload, none.
func uploadCustomerKey(h http.Header, u *meta.Upload) (*s3.SSECustomer, error) {
	cust, err := s3.ParseSSECustomer(h, false)
	if err != nil {
		return nil, err
	}
	if u.SSE == nil || u.SSE.Algorithm != meta.SSEC {
		if cust != nil {
			return nil, s3.ErrorFor(s3.CodeInvalidRequest, "The multipart upload was not initiated with SSE-C: its parts cannot be.")
		}
		return nil, nil
	}
	if cust == nil {
		return nil, s3.ErrorFor(s3.CodeInvalidRequest, "The multipart upload was initiated with SSE-C: its parts and its completion must carry the same customer key.")
	}
	if !keyMatches(u.SSE.KeyCheck, cust.Key) {
		return nil, s3.ErrorFor(s3.CodeInvalidArgument, "The SSE-C key does not match the one the multipart upload was initiated with.")
	}
	return cust, nil
}

// partSealer returns the sealer of a part of upload u (uploadCustomerKey's checks first).
func (c *Coordinator) partSealer(ctx context.Context, h http.Header, u *meta.Upload) (*sealer, error) {
	cust, err := uploadCustomerKey(h, u)
	switch {
	case err != nil:
		return nil, err
	case cust != nil:
		return &sealer{sse: u.SSE, key: cust.Key, customer: cust}, nil
	case u.SSE == nil:
		return nil, nil
	}
	key, err := c.openDataKey(ctx, u.SSE)
	if err != nil {
		return nil, err
	}
	return &sealer{sse: u.SSE, key: key}, nil
}

// readObject writes bytes [off, off+n) of o's plaintext to w: readRange for an object stored
// as sent; for an encrypted one, the whole sealed blocks holding the range are read (through
// the same replica failover) and opened with key, and only the range is written.
func (c *Coordinator) readObject(ctx context.Context, w io.Writer, ref objectRef, o *meta.Object, key []byte, off, n int64) error {
	if o.Inline != nil {
		return c.readInline(w, ref, o, key, off, n)
	}
	if o.SSE == nil {
		return c.readRange(ctx, w, ref, o, off, n)
	}
	if key == nil {
		return errors.New("an encrypted object read without its key") // callers check: a programming error
	}
	var pos int64
	for _, ch := range o.Chunks {
		if n <= 0 {
			break
		}
		size, err := sealstream.PlainSize(ch.Size)
		if err != nil {
			return fmt.Errorf("chunk %s of %s/%s: %w", ch.ID, ref.bucket, ref.key, err)
		}
		if off >= pos+size {
			pos += size
			continue
		}
		cOff := off - pos
		cN := min(size-cOff, n)
		aead, err := sealstream.ChunkCipher(key, ch.ID)
		if err != nil {
			return err
		}
		span := sealstream.SpanOf(cOff, cN, ch.Size)
		op := sealstream.NewOpener(w, aead, span, cN)
		if err := c.readChunk(ctx, op, ref, ch, span.Off, span.N); err != nil {
			return err
		}
		if !op.Done() {
			return fmt.Errorf("chunk %s: %w", ch.ID, io.ErrUnexpectedEOF)
		}
		off += cN
		n -= cN
		pos += size
	}
	return nil
}

// controllerDataKeys asks a controller for data keys, through the process's admin client (the
// controller that answered last first, failing over to the others).
type controllerDataKeys struct{ r *Role }

func (d controllerDataKeys) New(ctx context.Context) ([]byte, []byte, error) {
	var out adminapi.DataKey
	if _, err := d.r.m.Controllers(ctx, d.r.member.Etcd).DoIdempotent(ctx, http.MethodPost, "/v1/sse/datakey", struct{}{}, &out); err != nil {
		return nil, nil, fmt.Errorf("ask a controller for a data key: %w", err)
	}
	return out.Key, out.Sealed, nil
}

// kmsCall posts body to a KMS endpoint of a controller: 404 is kms.ErrNotFound, 409
// kms.ErrDisabled.
func (d controllerDataKeys) kmsCall(ctx context.Context, path string, body adminapi.KMSDataKey) (*adminapi.DataKey, error) {
	var out adminapi.DataKey
	_, err := d.r.m.Controllers(ctx, d.r.member.Etcd).DoIdempotent(ctx, http.MethodPost, path, body, &out)
	var ae *adminapi.APIError
	switch {
	case errors.As(err, &ae) && ae.Status == http.StatusNotFound:
		return nil, fmt.Errorf("KMS key %s: %w", body.KeyID, kms.ErrNotFound)
	case errors.As(err, &ae) && ae.Status == http.StatusConflict:
		return nil, fmt.Errorf("KMS key %s: %w", body.KeyID, kms.ErrDisabled)
	case err != nil:
		return nil, fmt.Errorf("ask a controller for an SSE-KMS data key under %s: %w", body.KeyID, err)
	}
	return &out, nil
}

func (d controllerDataKeys) NewKMS(ctx context.Context, keyID, encCtx string) ([]byte, []byte, error) {
	out, err := d.kmsCall(ctx, "/v1/sse/kms/datakey", adminapi.KMSDataKey{KeyID: keyID, Context: encCtx})
	if err != nil {
		return nil, nil, err
	}
	return out.Key, out.Sealed, nil
}

func (d controllerDataKeys) OpenKMS(ctx context.Context, keyID, encCtx string, sealed []byte) ([]byte, error) {
	out, err := d.kmsCall(ctx, "/v1/sse/kms/open", adminapi.KMSDataKey{KeyID: keyID, Context: encCtx, Sealed: sealed})
	if err != nil {
		return nil, err
	}
	return out.Key, nil
}

func (d controllerDataKeys) Open(ctx context.Context, sealed []byte) ([]byte, error) {
	var out adminapi.DataKey
	if _, err := d.r.m.Controllers(ctx, d.r.member.Etcd).DoIdempotent(ctx, http.MethodPost, "/v1/sse/open", adminapi.DataKeyOpen{Sealed: sealed}, &out); err != nil {
		return nil, fmt.Errorf("ask a controller to open a data key: %w", err)
	}
	return out.Key, nil
}
