package coordinator

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/lifecycle"
	miniotags "github.com/minio/minio-go/v7/pkg/tags"

	"github.com/hanode/hanode/meta"
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

// TestExpirationHeader: a write, GET and HEAD of an object that a lifecycle rule expires carry
// x-amz-expiration (the expiry day and the rule), as S3 sends it; an object no rule matches,
// and one whose tags stop matching after the rules change, get none.
func TestExpirationHeader(t *testing.T) {
	tc := newTestCluster(t, clusterOpts{machines: 1, replicas: 1, etcdHost: "127.0.134.31"})
	ctx := context.Background()
	mc := tc.minio()
	mustBucket(t, mc, "exp")
	cfg := lifecycle.NewConfiguration()
	cfg.Rules = []lifecycle.Rule{
		{ID: "rule1", Status: "Enabled", RuleFilter: lifecycle.Filter{Prefix: "days1/"}, Expiration: lifecycle.Expiration{Days: 1}},
		{ID: "tagged", Status: "Enabled", RuleFilter: lifecycle.Filter{Tag: lifecycle.Tag{Key: "key1", Value: "tag1"}}, Expiration: lifecycle.Expiration{Days: 3}},
		{ID: "off", Status: "Disabled", RuleFilter: lifecycle.Filter{Prefix: "days1/"}, Expiration: lifecycle.Expiration{Days: 1}},
	}
	if err := mc.SetBucketLifecycle(ctx, "exp", cfg); err != nil {
		t.Fatal(err)
	}
	info, err := mc.PutObject(ctx, "exp", "days1/foo", strings.NewReader("bar"), 3, minio.PutObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	st, err := mc.StatObject(ctx, "exp", "days1/foo", minio.StatObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := meta.ExpiryDay(st.LastModified, 1)
	if info.ExpirationRuleID != "rule1" || !info.Expiration.Equal(want) {
		t.Fatalf("PUT: expiration %v rule %q, want %v rule1", info.Expiration, info.ExpirationRuleID, want)
	}
	if st.ExpirationRuleID != "rule1" || !st.Expiration.Equal(want) {
		t.Fatalf("HEAD: expiration %v rule %q, want %v rule1", st.Expiration, st.ExpirationRuleID, want)
	}
	r := tc.do(http.MethodGet, "/exp/days1/foo", nil, nil)
	if got := r.header.Get("X-Amz-Expiration"); got != `expiry-date="`+want.Format(http.TimeFormat)+`", rule-id="rule1"` {
		t.Fatalf("GET: x-amz-expiration %q", got)
	}
	// No rule matches: no header.
	if _, err := mc.PutObject(ctx, "exp", "other", strings.NewReader("x"), 1, minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	if r := tc.do(http.MethodHead, "/exp/other", nil, nil); r.header.Get("X-Amz-Expiration") != "" {
		t.Fatalf("an object no rule matches: x-amz-expiration %q", r.header.Get("X-Amz-Expiration"))
	}
	// Tagged afterwards: the tag rule matches it now.
	tags, _ := miniotags.NewTags(map[string]string{"key1": "tag1", "key5": "tag5"}, true)
	if err := mc.PutObjectTagging(ctx, "exp", "other", tags, minio.PutObjectTaggingOptions{}); err != nil {
		t.Fatal(err)
	}
	st, err = mc.StatObject(ctx, "exp", "other", minio.StatObjectOptions{})
	if err != nil || st.ExpirationRuleID != "tagged" || !st.Expiration.Equal(meta.ExpiryDay(st.LastModified, 3)) {
		t.Fatalf("tagged: %v rule %q, %v", st.Expiration, st.ExpirationRuleID, err)
	}
	// The rules change (read at once by the coordinator that changed them): the header goes.
	cfg.Rules = cfg.Rules[2:]
	if err := mc.SetBucketLifecycle(ctx, "exp", cfg); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"days1/foo", "other"} {
		if r := tc.do(http.MethodHead, "/exp/"+key, nil, nil); r.header.Get("X-Amz-Expiration") != "" {
			t.Fatalf("%s after the rules changed: x-amz-expiration %q", key, r.header.Get("X-Amz-Expiration"))
		}
	}
	// Changed elsewhere (as through another coordinator): the watch evicts the cached rules.
	err = meta.New(tc.etcd).UpdateBucketConfig(ctx, "exp", func(c *meta.BucketConfig) error {
		c.Lifecycle = append(c.Lifecycle, meta.LifecycleRule{ID: "elsewhere", Enabled: true, ExpireDays: 2})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "the rule set elsewhere in x-amz-expiration", func() error {
		if got := tc.do(http.MethodHead, "/exp/other", nil, nil).header.Get("X-Amz-Expiration"); !strings.Contains(got, `rule-id="elsewhere"`) {
			return fmt.Errorf("x-amz-expiration %q", got)
		}
		return nil
	})
}
