package webui_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/hanode/hanode/agent/state"
)

// TestMachinePageAgentRoles: a machine whose roles an agent recorded shows them on its page
// with start, stop and restart buttons for operators; a button changes the desired state through
// the audited admin API; readonly viewers get no buttons and their POST changes nothing.
func TestMachinePageAgentRoles(t *testing.T) {
	c := startCluster(t, "127.0.47.", 2)
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{"https://127.0.47.1:2379"}, TLS: c.machines[0].bundle.ClientConfig(""), DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// m2's roles as its agent records them when it first reaches etcd (no agent runs here, so
	// the page says so and nothing acts on the changes).
	if _, err := state.Seed(ctx, cli, "m2", []string{"datanode"}); err != nil {
		t.Fatal(err)
	}
	base, hc := c.controller(), c.anonClient()

	ck := session(t, c, c.credential(t, "operator"))
	p := get(t, hc, base+"/machines/m2", ck, nil)
	m := csrfRE.FindStringSubmatch(p.body)
	if p.status != http.StatusOK || m == nil || !strings.Contains(p.body, `id="agent-roles"`) || !strings.Contains(p.body, `id="stop-datanode"`) ||
		!strings.Contains(p.body, `id="agent-down"`) {
		t.Fatalf("m2's page for an operator: %d\n%s", p.status, p.body)
	}
	if p := get(t, hc, base+"/machines/m1", ck, nil); strings.Contains(p.body, `id="agent-roles"`) {
		t.Fatal("m1, whose roles no agent recorded, shows supervised roles")
	}
	post := func(ck *http.Cookie, path string) page {
		return do(t, hc, http.MethodPost, base+path, "csrf="+url.QueryEscape(m[1]), ck, map[string]string{"Sec-Fetch-Site": "same-origin"})
	}
	if p := post(ck, "/machines/m2/roles/datanode/stop"); p.status != http.StatusSeeOther {
		t.Fatalf("stop button: %d %s", p.status, p.body)
	}
	d, _, err := state.ReadDesired(ctx, cli, "m2")
	if err != nil {
		t.Fatal(err)
	}
	if d.Version != 2 || d.Role("datanode").Run || !strings.HasPrefix(d.By, "credential:") {
		t.Fatalf("after the stop button: %+v", d)
	}
	p = get(t, hc, base+"/machines/m2?done=stop-datanode", ck, nil)
	if !strings.Contains(p.body, `id="start-datanode"`) || !strings.Contains(p.body, "Asked the agent to stop the datanode") {
		t.Fatalf("m2's page after the stop:\n%s", p.body)
	}
	if p := post(ck, "/machines/m2/roles/proxy/stop"); p.status != http.StatusNotFound || !strings.Contains(p.body, "no proxy role") {
		t.Fatalf("stop of a role m2 does not have: %d", p.status)
	}
	if p := post(ck, "/machines/m2/roles/datanode/explode"); p.status != http.StatusNotFound {
		t.Fatalf("an unknown action: %d", p.status)
	}
	var audit struct {
		Entries []struct{ Action, Target string } `json:"entries"`
	}
	c.api(t, http.MethodGet, "/v1/audit", nil, &audit)
	found := false
	for _, e := range audit.Entries {
		found = found || (e.Action == "POST /v1/nodes/m2/roles/datanode/stop" && e.Target == "m2")
	}
	if !found {
		t.Fatalf("the stop is not in the audit trail: %+v", audit.Entries)
	}

	ro := session(t, c, c.credential(t, "readonly"))
	p = get(t, hc, base+"/machines/m2", ro, nil)
	if !strings.Contains(p.body, `id="agent-roles"`) || strings.Contains(p.body, `id="start-datanode"`) {
		t.Fatal("a readonly viewer should see the roles and no button")
	}
	m = csrfRE.FindStringSubmatch(p.body)
	if m == nil {
		t.Fatal("no csrf token on the readonly page")
	}
	if p := post(ro, "/machines/m2/roles/datanode/start"); p.status != http.StatusForbidden {
		t.Fatalf("readonly start: %d", p.status)
	}
	if d, _, _ := state.ReadDesired(ctx, cli, "m2"); d.Version != 2 || d.Role("datanode").Run {
		t.Fatalf("a refused start changed the desired state: %+v", d)
	}
}
