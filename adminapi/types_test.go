package adminapi_test

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hanode/hanode/adminapi"
	"github.com/hanode/hanode/cluster"
	"github.com/hanode/hanode/security/s3users"
	"github.com/hanode/hanode/security/secrets"
	"github.com/hanode/hanode/security/tokens"
)

// The answers that embed another package's record must stay flat JSON objects holding both the
// record's fields and their own (the CLI reads the token and the secret key from them), and
// every answer must decode to what was encoded.
func TestJSONRoundTrip(t *testing.T) {
	at := time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)
	for _, c := range []struct {
		name   string
		v, out any
		fields []string
	}{
		{"token created", &adminapi.TokenCreated{
			Record: tokens.Record{ID: "2pduqk", SecretHash: "ab", Roles: []string{"datanode"}, Created: at, Expires: at.Add(time.Hour), MaxUses: 2},
			Token:  "K10ab::2pduqk.ayxy4st401si562i",
		}, &adminapi.TokenCreated{}, []string{`"token":`, `"id":`, `"roles":`, `"max_uses":`}},
		{"user created", &adminapi.UserCreated{
			User:      s3users.User{AccessKey: "HNK7Q2M4ZX9PLW3RT8VB", Description: "backups", Created: at},
			SecretKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
		}, &adminapi.UserCreated{}, []string{`"access_key":`, `"secret_key":`, `"description":`}},
		{"status", &adminapi.Status{
			Cluster: "prod", AnsweredBy: "m1",
			Leader:      &adminapi.LeaderInfo{Name: "m2", Address: "https://10.0.0.2:8900", Epoch: 7, Since: at},
			Controllers: []adminapi.ControllerStatus{{Name: "m1", ID: "8e9e05c52164694d", PeerURLs: []string{"https://10.0.0.1:2380"}, RaftLeader: true, Healthy: true}},
			Machines: []cluster.Machine{{Name: "m1", Roles: []string{"controller", "datanode"},
				Members: []cluster.Registration{{Machine: "m1", Role: "datanode", Address: "https://10.0.0.1:8911", Started: at, Free: 1 << 30}}}},
			Replication: &adminapi.Replication{Replicas: 2, DatanodesLive: 3, GarbageRecords: 5},
			Problems:    []string{"m3: datanode not registered"},
		}, &adminapi.Status{}, []string{`"leader":`, `"processes":`, `"datanodes_live":`}},
		{"locate", &adminapi.Locate{Bucket: "b", Key: "k", Size: 9, ETag: "e", Modified: at,
			Chunks:   []adminapi.LocatedChunk{{ID: "w-0", Size: 9, SHA256: "ff", Replicas: []string{"m1", "m2"}}},
			Machines: map[string]bool{"m1": true, "m2": false}}, &adminapi.Locate{}, []string{`"chunks":`, `"machines":`}},
	} {
		t.Run(c.name, func(t *testing.T) {
			b, err := json.Marshal(c.v)
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range c.fields {
				if !strings.Contains(string(b), f) {
					t.Errorf("%s has no %s", b, f)
				}
			}
			if err := json.Unmarshal(b, c.out); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(c.out, c.v) {
				t.Fatalf("round trip:\n got %+v\nwant %+v", c.out, c.v)
			}
		})
	}
}

// The proxy keyring travels inside ProxyKeyringResponse with its key material: a value sealed
// before the trip opens after it.
func TestProxyKeyringRoundTrip(t *testing.T) {
	ring, err := secrets.NewKeyring()
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := ring.Seal([]byte("pin key"), []byte("aad"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(adminapi.ProxyKeyringResponse{Keyring: ring})
	if err != nil {
		t.Fatal(err)
	}
	var got adminapi.ProxyKeyringResponse
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if got.Keyring == nil || got.Keyring.PrimaryID() != ring.PrimaryID() {
		t.Fatalf("keyring after the trip: %+v", got.Keyring)
	}
	if pt, err := got.Keyring.Open(sealed, []byte("aad")); err != nil || string(pt) != "pin key" {
		t.Fatalf("open after the trip: %q, %v", pt, err)
	}
}
