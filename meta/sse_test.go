package meta

import (
	"errors"
	"reflect"
	"testing"
	"time"
)

func TestEncodeSSE(t *testing.T) {
	for _, s := range []*SSE{
		{Algorithm: SSES3, SealedKey: []byte("hns1\x08sealed-key-bytes")},
		{Algorithm: SSEC, KeyCheck: []byte("salt-and-hmac")},
		{Algorithm: SSEKMS, KMSKeyID: "testkey-1", SealedKey: []byte("nonce-and-sealed-key"), KMSContext: "eyJhIjoiYiJ9"},
		{Algorithm: SSEKMS, KMSKeyID: "k", SealedKey: []byte("s")},
	} {
		o := sampleObject(2)
		o.Checksum = "crc32:AAAAAA=="
		o.SSE = s
		got, err := DecodeObject(EncodeObject(o))
		if err != nil || !reflect.DeepEqual(got, o) {
			t.Fatalf("object with %s: %v\n got %+v\nwant %+v", s.Algorithm, err, got, o)
		}
		u := &Upload{Bucket: "b", Key: "k", ID: "id", Initiated: time.Unix(9, 0).UTC(), Tags: map[string]string{"t": "v"}, SSE: s}
		if got, err := DecodeUpload(EncodeUpload(u)); err != nil || !reflect.DeepEqual(got, u) {
			t.Fatalf("upload with %s: %v %+v", s.Algorithm, err, got)
		}
	}
	// A record of an object without encryption has exactly the bytes it had before SSE existed.
	o := sampleObject(1)
	b := EncodeObject(o)
	o.SSE = &SSE{Algorithm: SSEC, KeyCheck: []byte("x")}
	if len(EncodeObject(o)) <= len(b) {
		t.Fatal("the SSE field took no bytes")
	}
	bad := append(b, tagSSE, 9)
	if _, err := DecodeObject(bad); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("an unknown encryption kind decoded: %v", err)
	}
}
