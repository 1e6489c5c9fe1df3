package etcdauth

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/hanode/hanode/internal/etcdtest"
	"github.com/hanode/hanode/internal/keyspace"
)

// TestPermissions turns authentication on in a real etcd and checks the privilege table with
// the machines' roles. The machines' users have no password (they authenticate by certificate:
// testenv's TestLabLeastPrivilege), so here a twin user with a password holds the same roles.
func TestPermissions(t *testing.T) {
	cli := etcdtest.Start(t, "127.0.100.20")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, m := range []struct {
		name  string
		roles []string
	}{{"dn", []string{"datanode", "agent"}}, {"co", []string{"coordinator"}}, {"px", []string{"proxy"}}} {
		if err := Admit(ctx, cli, m.name, m.roles); err != nil {
			t.Fatal(err)
		}
		twin(ctx, t, cli, m.name)
	}
	if _, err := cli.UserAdd(ctx, RootUser+"-pw", "pw-root"); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.UserGrantRole(ctx, RootUser+"-pw", rootRole); err != nil {
		t.Fatal(err)
	}
	if err := Admit(ctx, cli, RootUser, nil); !errors.Is(err, ErrReservedName) {
		t.Fatalf("admitting a machine named root: %v", err)
	}
	on, err := Enable(ctx, cli, []string{"c1"}, map[string][]string{"old": {"datanode"}})
	if err != nil || !on {
		t.Fatalf("enable: %v %v", on, err)
	}
	if on, err := Enable(ctx, cli, nil, nil); err != nil || on {
		t.Fatalf("enable again: %v %v, want a no-op", on, err)
	}
	as := func(user string) *clientv3.Client {
		c, err := clientv3.New(clientv3.Config{Endpoints: cli.Endpoints(), Username: user + "-pw", Password: "pw-" + user, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	root, dn, co, px := as(RootUser), as("dn"), as("co"), as("px")
	// The migration gave the machine it was told of a user, and the controller root.
	for user, want := range map[string][]string{"old": {roleCommon, machineRole + "old", rolePrefix + "datanode"}, "c1": {rootRole}} {
		u, err := root.UserGet(ctx, user)
		if err != nil || len(u.Roles) != len(want) {
			t.Fatalf("user %s: %v %v, want roles %v", user, u, err, want)
		}
	}
	put := func(c *clientv3.Client, key string) error { _, err := c.Put(ctx, key, "v"); return err }
	get := func(c *clientv3.Client, key string) error {
		_, err := c.Get(ctx, key, clientv3.WithPrefix())
		return err
	}
	for _, tc := range []struct {
		who   string
		c     *clientv3.Client
		op    func(*clientv3.Client, string) error
		key   string
		allow bool
	}{
		{"dn", dn, put, "/hanode/nodes/dn/datanode", true},
		{"dn", dn, put, "/hanode/agents/dn/actual", true},
		{"dn", dn, get, "/hanode/nodes/", true},
		{"dn", dn, get, "/hanode/drain/", true},
		{"dn", dn, get, "/hanode/pki/revoked/", true},
		{"dn", dn, put, "/hanode/s3/bad/c/dn", true},
		{"dn", dn, put, "/hanode/nodes/dn2/datanode", false}, // a machine named with dn's name as prefix
		{"dn", dn, put, "/hanode/nodes/co/coordinator", false},
		{"dn", dn, put, "/hanode/agents/co/desired", false},
		{"dn", dn, get, "/hanode/secrets/", false},
		{"dn", dn, put, "/hanode/credentials/x", false},
		{"dn", dn, put, "/hanode/tokens/x", false},
		{"dn", dn, get, "/hanode/s3/o/", false},
		{"dn", dn, put, "/hanode/pki/revoked/dn", false},
		{"co", co, put, "/hanode/s3/o/b/k", true},
		{"co", co, put, "/hanode/s3/access/b/policy", true},
		{"co", co, get, "/hanode/s3/", true},
		{"co", co, put, "/hanode/s3/users/x", false},
		{"co", co, put, "/hanode/s3/usersx", true}, // outside the users prefix
		{"co", co, get, "/hanode/secrets/s3/", false},
		{"co", co, get, keyspace.KMSKeys, false}, // the KMS keys' material: controllers only
		{"co", co, put, keyspace.KMSKeys + "testkey-1", false},
		{"dn", dn, get, keyspace.KMSKeys, false},
		{"px", px, get, keyspace.KMSKeys, false},
		{"co", co, put, "/hanode/proxy/keys/pins", false},
		{"co", co, put, "/hanode/repair/status", false},
		{"px", px, put, "/hanode/proxy/certmagic/data/x", true},
		{"px", px, get, "/hanode/s3/", false},
		{"px", px, get, "/hanode/secrets/proxy-keyring", false},
	} {
		err := tc.op(tc.c, tc.key)
		if tc.allow && err != nil {
			t.Errorf("%s on %s: %v, want allowed", tc.who, tc.key, err)
		}
		if !tc.allow && !errors.Is(err, rpctypes.ErrPermissionDenied) {
			t.Errorf("%s on %s: %v, want permission denied", tc.who, tc.key, err)
		}
	}
	// A machine admitted again with other roles holds exactly those.
	if err := Admit(ctx, root, "dn", []string{"proxy"}); err != nil {
		t.Fatal(err)
	}
	if _, err := root.UserRevokeRole(ctx, "dn-pw", rolePrefix+"datanode"); err != nil {
		t.Fatal(err)
	}
	twin(ctx, t, root, "dn")
	if err := put(dn, "/hanode/s3/bad/c/dn"); !errors.Is(err, rpctypes.ErrPermissionDenied) {
		t.Errorf("dn re-admitted as a proxy still writes bad replicas: %v", err)
	}
	if err := put(dn, "/hanode/proxy/keys/pins"); err != nil {
		t.Errorf("dn re-admitted as a proxy: %v", err)
	}
	// Removed, a machine's user is gone and every request is refused.
	if existed, err := Remove(ctx, root, "dn"); err != nil || !existed {
		t.Fatalf("remove dn: %v %v", existed, err)
	}
	if _, err := root.UserGet(ctx, "dn"); !errors.Is(err, rpctypes.ErrUserNotFound) {
		t.Errorf("the removed machine's user: %v, want not found", err)
	}
	if err := put(dn, "/hanode/nodes/dn/datanode"); !errors.Is(err, rpctypes.ErrPermissionDenied) {
		t.Errorf("the removed machine's own role survived: %v", err)
	}
	if existed, err := Remove(ctx, root, "dn"); err != nil || existed {
		t.Fatalf("remove dn again: %v %v, want not found", existed, err)
	}
}

// TestRevocationRecords checks Revoke, Revoked and CheckRevoked against a real etcd.
func TestRevocationRecords(t *testing.T) {
	cli := etcdtest.Start(t, "127.0.100.21")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	before := time.Now().Add(-time.Minute)
	if err := CheckRevoked(ctx, cli, "m4", before); err != nil {
		t.Fatalf("a machine never removed: %v", err)
	}
	rec, err := Revoke(ctx, cli, "m4", "certificate:m1", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckRevoked(ctx, cli, "m4", before); err == nil {
		t.Error("a certificate issued before the removal is not revoked")
	}
	if err := CheckRevoked(ctx, cli, "m4", rec.Removed.Add(time.Second)); err != nil {
		t.Errorf("a certificate issued after the removal: %v", err)
	}
	if err := CheckRevoked(ctx, cli, "m5", before); err != nil {
		t.Errorf("another machine: %v", err)
	}
}

// twin makes user-pw, with a password, hold the roles of user.
func twin(ctx context.Context, t *testing.T, cli *clientv3.Client, user string) {
	t.Helper()
	u, err := cli.UserGet(ctx, user)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.UserAdd(ctx, user+"-pw", "pw-"+user); err != nil && !errors.Is(err, rpctypes.ErrUserAlreadyExist) {
		t.Fatal(err)
	}
	for _, r := range u.Roles {
		if _, err := cli.UserGrantRole(ctx, user+"-pw", r); err != nil {
			t.Fatal(err)
		}
	}
}
