package meta

import (
	"context"
	"fmt"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/hanode/hanode/internal/etcdtest"
)

// BenchmarkEtcdBytesPerObject measures what one small object costs in etcd: the backend
// database growth per object (after compaction and defragmentation), for a one-chunk object
// with R = 2, a content type and one user metadata header, under keys like
// "photos/2026/11/22/IMG_00001234.jpg". Run with -benchtime=20000x for a stable figure.
func BenchmarkEtcdBytesPerObject(b *testing.B) {
	cli := etcdtest.Start(b, "127.0.85.9")
	ctx := context.Background()
	s := New(cli)
	if err := s.CreateBucket(ctx, Bucket{Name: "photos"}); err != nil {
		b.Fatal(err)
	}
	ep := cli.Endpoints()[0]
	size := func() int64 {
		resp, err := cli.Get(ctx, "x")
		if err != nil {
			b.Fatal(err)
		}
		if _, err := cli.Compact(ctx, resp.Header.Revision, clientv3.WithCompactPhysical()); err != nil {
			b.Fatal(err)
		}
		if _, err := cli.Defragment(ctx, ep); err != nil {
			b.Fatal(err)
		}
		st, err := cli.Status(ctx, ep)
		if err != nil {
			b.Fatal(err)
		}
		return st.DbSize
	}
	before := size()
	obj := sampleObject(1)
	obj.Size = 48213
	b.ResetTimer()
	for i := range b.N {
		obj.Modified = time.Now()
		if err := s.PutObject(ctx, "photos", fmt.Sprintf("2026/11/22/IMG_%08d.jpg", i), obj, "", 0); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	after := size()
	b.ReportMetric(float64(after-before)/float64(b.N), "dbbytes/object")
	b.ReportMetric(float64(len(EncodeObject(obj))), "recordbytes/object")
}
