package webui_test

import (
	"bytes"
	"context"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/hanode/hanode/adminapi"
	"github.com/hanode/hanode/security/s3users"
)

// A small object is kept inline in its record (inline-max, 4 KiB by default): the listing says
// "inline" where a chunk count goes, the object page says where it is instead of a chunk table,
// and the admin API's locate names no chunk.
func TestInlineObjectPages(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster")
	}
	c := startCluster(t, "127.0.139.", 2)
	var ak, sk string
	eventually(t, 15*time.Second, "the S3 root user's credentials file", func() bool {
		var err error
		ak, sk, err = s3users.ReadCredentials(filepath.Join(c.machines[0].cfg.DataDir, s3users.CredentialsFile))
		return err == nil
	})
	s3 := mustS3(t, c, ak, sk)
	ctx := context.Background()
	eventually(t, 15*time.Second, "bucket notes created", func() bool { return s3.MakeBucket(ctx, "notes", minio.MakeBucketOptions{}) == nil })
	body := []byte("a note small enough to live in its metadata record")
	if _, err := s3.PutObject(ctx, "notes", "todo.txt", bytes.NewReader(body), int64(len(body)), minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	var loc adminapi.Locate
	if st := c.api(t, http.MethodGet, "/v1/locate/notes/todo.txt", nil, &loc); st != http.StatusOK || !loc.Inline || len(loc.Chunks) != 0 || loc.InlineBytes != int64(len(body)) || len(loc.InlineSHA256) != 64 {
		t.Fatalf("locate: %d %+v", st, loc)
	}
	ck := session(t, c, c.credential(t, "readonly"))
	hc := c.anonClient()
	list := get(t, hc, c.controller()+"/objects?bucket=notes", ck, nil)
	if list.status != http.StatusOK || !strings.Contains(list.body, "<td>inline</td>") {
		t.Fatalf("listing: %d\n%s", list.status, list.body)
	}
	p := get(t, hc, c.controller()+"/object?bucket=notes&key=todo.txt", ck, nil)
	if p.status != http.StatusOK || !strings.Contains(p.body, `id="inline"`) || !strings.Contains(p.body, loc.InlineSHA256) || strings.Contains(p.body, `id="chunks"`) {
		t.Fatalf("object page: %d\n%s", p.status, p.body)
	}
}
