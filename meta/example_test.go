package meta_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/hanode/hanode/internal/etcdtest"
	"github.com/hanode/hanode/meta"
)

// A coordinator's write, as far as the metadata goes: announce the write (its intent), store
// the chunks on datanodes (not shown), then commit the object record in one transaction that
// also ends the intent. Readers and listings see the object from that commit on.
func Example() {
	cli, stop, err := etcdtest.Run("127.0.85.20") // a real single-member etcd for the example
	if err != nil {
		log.Fatal(err)
	}
	defer stop()
	ctx := context.Background()
	s := meta.New(cli)

	if err := s.CreateBucket(ctx, meta.Bucket{Name: "photos", Created: time.Now()}); err != nil {
		log.Fatal(err)
	}
	for _, key := range []string{"2024/cat.jpg", "2024/dog.jpg", "readme.txt"} {
		w := meta.NewWriteID()
		if err := s.BeginWrite(ctx, meta.Intent{ID: w, Bucket: "photos", Key: key, Writer: "m1", Started: time.Now()}); err != nil {
			log.Fatal(err)
		}
		o := &meta.Object{Size: 5, Modified: time.Now(), ETag: "5d41402abc4b2a76b9719d911017c592",
			Headers: map[string]string{"content-type": "image/jpeg"},
			Chunks:  []meta.Chunk{{ID: meta.ChunkID(w, 0), Size: 5, Replicas: []string{"m1", "m2"}}}}
		if err := s.PutObject(ctx, "photos", key, o, w, time.Minute); err != nil {
			log.Fatal(err)
		}
	}

	o, err := s.GetObject(ctx, "photos", "2024/cat.jpg")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("cat.jpg:", o.Size, "bytes in", len(o.Chunks), "chunk on", o.Chunks[0].Replicas)

	// One page of a delimited listing, as ListObjectsV2 with delimiter "/" asks for it.
	page, err := s.ListObjects(ctx, "photos", "", "/", "", false, 1000)
	if err != nil {
		log.Fatal(err)
	}
	for _, e := range page.Objects {
		fmt.Println("object:", e.Key)
	}
	fmt.Println("prefixes:", page.Prefixes, "truncated:", page.Truncated)
	// Output:
	// cat.jpg: 5 bytes in 1 chunk on [m1 m2]
	// object: readme.txt
	// prefixes: [2024/] truncated: false
}
