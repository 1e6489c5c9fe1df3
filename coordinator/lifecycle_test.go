package coordinator

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/minio/minio-go/v7/pkg/lifecycle"

	"github.com/hanode/hanode/s3"
)

func TestLifecycleConfiguration(t *testing.T) {
	tc := newTestCluster(t, clusterOpts{machines: 1, replicas: 1, etcdHost: "127.0.105.32"})
	ctx := context.Background()
	mc := tc.minio()
	mustBucket(t, mc, "lcb")
	if r := tc.do(http.MethodGet, "/lcb?lifecycle", nil, nil); r.status != http.StatusNotFound || r.code() != s3.CodeNoSuchLifecycleConfiguration {
		t.Fatalf("GET without a configuration: %d %s", r.status, r.body)
	}
	// minio-go's configuration: a filter, expiration, noncurrent expiration, upload abort.
	cfg := lifecycle.NewConfiguration()
	cfg.Rules = []lifecycle.Rule{{
		ID: "r1", Status: "Enabled", RuleFilter: lifecycle.Filter{Prefix: "logs/"},
		Expiration:                     lifecycle.Expiration{Days: 30},
		NoncurrentVersionExpiration:    lifecycle.NoncurrentVersionExpiration{NoncurrentDays: 7, NewerNoncurrentVersions: 2},
		AbortIncompleteMultipartUpload: lifecycle.AbortIncompleteMultipartUpload{DaysAfterInitiation: 3},
	}}
	if err := mc.SetBucketLifecycle(ctx, "lcb", cfg); err != nil {
		t.Fatal(err)
	}
	got, err := mc.GetBucketLifecycle(ctx, "lcb")
	if err != nil || len(got.Rules) != 1 {
		t.Fatalf("get: %+v %v", got, err)
	}
	r := got.Rules[0]
	if r.ID != "r1" || r.RuleFilter.Prefix != "logs/" || r.Expiration.Days != 30 || r.NoncurrentVersionExpiration.NoncurrentDays != 7 ||
		r.NoncurrentVersionExpiration.NewerNoncurrentVersions != 2 || r.AbortIncompleteMultipartUpload.DaysAfterInitiation != 3 {
		t.Fatalf("rule read back: %+v", r)
	}
	for _, c := range []struct {
		name, rule string
		status     int
		code       string
	}{
		{"a transition is not implemented", `<ID>t</ID><Prefix>a</Prefix><Status>Enabled</Status><Transition><Days>1</Days><StorageClass>GLACIER</StorageClass></Transition>`, 501, s3.CodeNotImplemented},
		{"status in lower case", `<ID>s</ID><Prefix>a</Prefix><Status>enabled</Status><Expiration><Days>1</Days></Expiration>`, 400, s3.CodeMalformedXML},
		{"zero days", `<ID>z</ID><Prefix>a</Prefix><Status>Enabled</Status><Expiration><Days>0</Days></Expiration>`, 400, s3.CodeInvalidArgument},
		{"a date not at midnight", `<ID>d</ID><Prefix>a</Prefix><Status>Enabled</Status><Expiration><Date>2030-01-01T10:00:00Z</Date></Expiration>`, 400, s3.CodeInvalidArgument},
		{"an ID too long", `<ID>` + strings.Repeat("a", 256) + `</ID><Prefix>a</Prefix><Status>Enabled</Status><Expiration><Days>1</Days></Expiration>`, 400, s3.CodeInvalidArgument},
		{"no action", `<ID>n</ID><Prefix>a</Prefix><Status>Enabled</Status>`, 400, s3.CodeMalformedXML},
	} {
		body := `<LifecycleConfiguration><Rule>` + c.rule + `</Rule></LifecycleConfiguration>`
		if r := tc.do(http.MethodPut, "/lcb?lifecycle", nil, []byte(body)); r.status != c.status || r.code() != c.code {
			t.Fatalf("%s: %d %s", c.name, r.status, r.body)
		}
	}
	// A refused configuration left the stored one as it was.
	if got, err := mc.GetBucketLifecycle(ctx, "lcb"); err != nil || len(got.Rules) != 1 || got.Rules[0].ID != "r1" {
		t.Fatalf("after refusals: %+v %v", got, err)
	}
	// Two rules with one ID are refused; the legacy Prefix form is given back as it was set.
	dup := `<LifecycleConfiguration><Rule><ID>x</ID><Prefix>a</Prefix><Status>Enabled</Status><Expiration><Days>1</Days></Expiration></Rule>` +
		`<Rule><ID>x</ID><Prefix>b</Prefix><Status>Enabled</Status><Expiration><Days>1</Days></Expiration></Rule></LifecycleConfiguration>`
	if r := tc.do(http.MethodPut, "/lcb?lifecycle", nil, []byte(dup)); r.status != 400 || r.code() != s3.CodeInvalidArgument {
		t.Fatalf("duplicate ids: %d %s", r.status, r.body)
	}
	legacy := `<LifecycleConfiguration><Rule><ID>x</ID><Prefix>a/</Prefix><Status>Disabled</Status><Expiration><Days>2</Days></Expiration></Rule></LifecycleConfiguration>`
	if r := tc.do(http.MethodPut, "/lcb?lifecycle", nil, []byte(legacy)); r.status != 200 {
		t.Fatalf("legacy prefix: %d %s", r.status, r.body)
	}
	if r := tc.do(http.MethodGet, "/lcb?lifecycle", nil, nil); !strings.Contains(string(r.body), "<Prefix>a/</Prefix><Status>Disabled</Status>") || strings.Contains(string(r.body), "<Filter>") {
		t.Fatalf("legacy rule read back: %s", r.body)
	}
	for range 2 { // deleting is 204 whether or not there is a configuration
		if r := tc.do(http.MethodDelete, "/lcb?lifecycle", nil, nil); r.status != http.StatusNoContent {
			t.Fatalf("delete: %d %s", r.status, r.body)
		}
	}
	if r := tc.do(http.MethodGet, "/lcb?lifecycle", nil, nil); r.status != http.StatusNotFound {
		t.Fatalf("GET after delete: %d %s", r.status, r.body)
	}
}
