package testenv

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/hanode/hanode/adminapi"
)

// Small objects kept inline in their etcd record (inline-max, 4 KiB by default) are as durable
// as etcd: acknowledged once a majority of the controllers logged them, they read back after
// the active master's controller is killed, from another machine's coordinator, with every
// datanode frozen (no read touches one), and after the killed controller rejoins.
func TestLabInlineSurvivesFailover(t *testing.T) {
	l, drv := startLab(t, "127.0.138", 3)
	st := healthy(t, l)
	ctx := context.Background()
	mc := labS3(t, l, l.Endpoints.S3[0])
	if err := mc.MakeBucket(ctx, "inline", minio.MakeBucketOptions{}); err != nil {
		t.Fatal(err)
	}
	const objects = 24
	want := map[string][]byte{}
	for i := range objects {
		key := fmt.Sprintf("o%02d", i)
		want[key] = labData(1+i*4095/(objects-1), uint64(300+i)) // 1 byte to 4 KiB
		if _, err := mc.PutObject(ctx, "inline", key, bytes.NewReader(want[key]), int64(len(want[key])), minio.PutObjectOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	ac, err := l.AdminClient(l.Endpoints.Controllers)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"o00", fmt.Sprintf("o%02d", objects-1)} {
		var loc adminapi.Locate
		if _, err := ac.Do(ctx, "GET", "/v1/locate/inline/"+key, nil, &loc); err != nil {
			t.Fatal(err)
		}
		if !loc.Inline || len(loc.Chunks) != 0 {
			t.Fatalf("%s (%d bytes): inline %v, %d chunks; want inline", key, loc.Size, loc.Inline, len(loc.Chunks))
		}
	}
	old := st.Leader
	if err := l.Signal(drv, old.Name+"/controller", "KILL"); err != nil {
		t.Fatal(err)
	}
	newLeaderOtherThan(t, l, old)
	for _, m := range l.Machines {
		if err := l.Signal(drv, m.Name+"/datanode", "STOP"); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = l.Signal(drv, m.Name+"/datanode", "CONT") })
	}
	// A coordinator on a machine whose controller still runs.
	var other *minio.Client
	for i, m := range l.Machines {
		if m.Name != old.Name {
			other = labS3(t, l, l.Endpoints.S3[i])
			break
		}
	}
	check := func(when string) {
		t.Helper()
		for key, data := range want {
			rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			o, err := other.GetObject(rctx, "inline", key, minio.GetObjectOptions{})
			var got bytes.Buffer
			if err == nil {
				_, err = got.ReadFrom(o)
				o.Close()
			}
			cancel()
			if err != nil || !bytes.Equal(got.Bytes(), data) {
				t.Fatalf("%s: %s: %d bytes, %v; want %d bytes", when, key, got.Len(), err, len(data))
			}
		}
	}
	check("the active master's controller killed, every datanode frozen")
	if err := l.Restart(ctx, drv, old.Name+"/controller", 60*time.Second); err != nil {
		t.Fatal(err)
	}
	check("the killed controller back, every datanode frozen")
}
