// Package etcdauth gives every machine of the cluster only the etcd access its roles need.
//
// etcd's authentication is on, and with client-certificate authentication etcd takes the
// certificate's CommonName — the machine name — as the user. Controllers' users hold etcd's
// root role; every other machine's user holds the shared role of each hanode role in its
// certificate (datanode, coordinator, proxy), the role every machine shares (reading the
// registrations) and a role of its own (writing its own registrations and agent state). A
// certificate whose machine has no user (removed, or never admitted) is refused every key.
//
// The controllers manage the users: the active master creates the roles and the users of the
// machines it knows before it turns authentication on (Enable), the join and renewal endpoints
// and POST /v1/pki/etcd-access admit a machine as its certificate says (Admit), and node remove
// deletes a machine's user (Remove). Every call needs etcd root (a controller's client).
package etcdauth

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"go.etcd.io/etcd/api/v3/authpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/hanode/hanode/config"
	"github.com/hanode/hanode/internal/keyspace"
)

// RootUser is etcd's root user: etcd refuses to turn authentication on without it. It has no
// password and no machine may be named so (join refuses the name), so nobody can act as it.
const RootUser = "root"

// rootRole is etcd's built-in role with every permission.
const rootRole = "root"

// Names of the etcd roles hanode keeps. Machine names are [A-Za-z0-9._-], so a role named
// with a ':' can never be mistaken for anything a machine is called.
const (
	roleCommon  = "hanode:machine"
	rolePrefix  = "hanode:role:"
	machineRole = "hanode:machine:"
)

// Perm is one permission of a role: Type on the keys [Key, End) (End empty: Key alone).
type Perm struct {
	Key, End string
	Type     clientv3.PermissionType
}

func prefix(p string, t clientv3.PermissionType) Perm {
	return Perm{Key: p, End: clientv3.GetPrefixRangeEnd(p), Type: t}
}

const (
	read  = clientv3.PermissionType(clientv3.PermRead)
	write = clientv3.PermissionType(clientv3.PermReadWrite)
)

// CommonPerms is what every machine may do: read the role registrations and drain marks (to
// find controllers, datanodes, coordinators) and the revoked machines (to refuse their
// certificates on its own listeners).
func CommonPerms() []Perm {
	return []Perm{prefix(keyspace.Nodes, read), prefix(keyspace.Drain, read), prefix(keyspace.Revoked, read)}
}

// MachinePerms is what machine may write about itself: its role registrations and its
// agent's desired and actual state.
func MachinePerms(machine string) []Perm {
	return []Perm{prefix(keyspace.Nodes+machine+"/", write), prefix(keyspace.Agents+machine+"/", write)}
}

// RolePerms is what a hanode role needs beyond CommonPerms and MachinePerms, by role. The
// controller role is etcd root; the agent needs nothing more.
func RolePerms() map[string][]Perm {
	users := keyspace.S3Users
	return map[string][]Perm{
		// A scrub records the replicas it found damaged (keyed chunk/machine).
		config.RoleDatanode: {prefix(keyspace.S3Bad, write)},
		// The object store's metadata, and the S3 users' public index read only (their
		// secrets come from the admin API).
		config.RoleCoordinator: {
			prefix(keyspace.S3, read),
			{Key: keyspace.S3, End: users, Type: write},
			{Key: clientv3.GetPrefixRangeEnd(users), End: clientv3.GetPrefixRangeEnd(keyspace.S3), Type: write},
		},
		// certmagic's storage, locks and the shared ticket and pin keys.
		config.RoleProxy: {prefix(keyspace.Proxy, write)},
	}
}

// rolesFor is the etcd roles of a machine with hanode roles roles (a controller: root).
func rolesFor(machine string, roles []string) []string {
	if slices.Contains(roles, config.RoleController) {
		return []string{rootRole}
	}
	out := []string{roleCommon, machineRole + machine}
	perms := RolePerms()
	for _, r := range roles {
		if _, ok := perms[r]; ok {
			out = append(out, rolePrefix+r)
		}
	}
	sort.Strings(out)
	return slices.Compact(out)
}

// Enabled reports whether etcd's authentication is on.
func Enabled(ctx context.Context, cli *clientv3.Client) (bool, error) {
	st, err := cli.AuthStatus(ctx)
	if err != nil {
		return false, fmt.Errorf("etcd auth status: %w", err)
	}
	return st.Enabled, nil
}

// EnsureRoles creates the shared roles and brings their permissions to what this version says.
func EnsureRoles(ctx context.Context, cli *clientv3.Client) error {
	if err := ensureRole(ctx, cli, roleCommon, CommonPerms()); err != nil {
		return err
	}
	for r, perms := range RolePerms() {
		if err := ensureRole(ctx, cli, rolePrefix+r, perms); err != nil {
			return err
		}
	}
	return nil
}

// ensureRole creates role if needed and grants exactly perms.
func ensureRole(ctx context.Context, cli *clientv3.Client, role string, perms []Perm) error {
	got, err := cli.RoleGet(ctx, role)
	if errors.Is(err, rpctypes.ErrRoleNotFound) {
		if _, err = cli.RoleAdd(ctx, role); err != nil && !errors.Is(err, rpctypes.ErrRoleAlreadyExist) {
			return fmt.Errorf("add etcd role %s: %w", role, err)
		}
		got, err = cli.RoleGet(ctx, role)
	}
	if err != nil {
		return fmt.Errorf("read etcd role %s: %w", role, err)
	}
	want := map[Perm]bool{}
	for _, p := range perms {
		want[p] = true
	}
	have := map[Perm]bool{}
	for _, p := range got.Perm {
		have[fromPB(p)] = true
	}
	for p := range have {
		if !want[p] {
			if _, err := cli.RoleRevokePermission(ctx, role, p.Key, p.End); err != nil && !errors.Is(err, rpctypes.ErrPermissionNotGranted) {
				return fmt.Errorf("etcd role %s: revoke [%q, %q): %w", role, p.Key, p.End, err)
			}
		}
	}
	for p := range want {
		if !have[p] {
			if _, err := cli.RoleGrantPermission(ctx, role, p.Key, p.End, p.Type); err != nil {
				return fmt.Errorf("etcd role %s: grant %v on [%q, %q): %w", role, p.Type, p.Key, p.End, err)
			}
		}
	}
	return nil
}

func fromPB(p *authpb.Permission) Perm {
	return Perm{Key: string(p.Key), End: string(p.RangeEnd), Type: clientv3.PermissionType(p.PermType)}
}

// ErrReservedName is returned for a machine named as etcd's root user.
var ErrReservedName = errors.New(`the machine name "root" is reserved (etcd's root user)`)

// Admit makes machine's etcd user hold exactly the etcd roles of its hanode roles: root for a
// controller, else the shared roles (made or brought up to date here) and its own.
func Admit(ctx context.Context, cli *clientv3.Client, machine string, roles []string) error {
	if machine == RootUser {
		return ErrReservedName
	}
	want := rolesFor(machine, roles)
	if !slices.Contains(want, rootRole) {
		perms := RolePerms()
		for _, r := range want {
			var err error
			switch {
			case r == roleCommon:
				err = ensureRole(ctx, cli, r, CommonPerms())
			case r == machineRole+machine:
				err = ensureRole(ctx, cli, r, MachinePerms(machine))
			default:
				err = ensureRole(ctx, cli, r, perms[strings.TrimPrefix(r, rolePrefix)])
			}
			if err != nil {
				return err
			}
		}
	}
	return ensureUser(ctx, cli, machine, want)
}

// ensureUser creates user (without a password: it authenticates by certificate only) and
// grants exactly roles.
func ensureUser(ctx context.Context, cli *clientv3.Client, user string, roles []string) error {
	got, err := cli.UserGet(ctx, user)
	if errors.Is(err, rpctypes.ErrUserNotFound) {
		_, err = cli.UserAddWithOptions(ctx, user, "", &clientv3.UserAddOptions{NoPassword: true})
		if err != nil && !errors.Is(err, rpctypes.ErrUserAlreadyExist) {
			return fmt.Errorf("add etcd user %s: %w", user, err)
		}
		got, err = cli.UserGet(ctx, user)
	}
	if err != nil {
		return fmt.Errorf("read etcd user %s: %w", user, err)
	}
	for _, r := range roles {
		if !slices.Contains(got.Roles, r) {
			if _, err := cli.UserGrantRole(ctx, user, r); err != nil {
				return fmt.Errorf("etcd user %s: grant role %s: %w", user, r, err)
			}
		}
	}
	for _, r := range got.Roles {
		if !slices.Contains(roles, r) {
			if _, err := cli.UserRevokeRole(ctx, user, r); err != nil && !errors.Is(err, rpctypes.ErrRoleNotGranted) {
				return fmt.Errorf("etcd user %s: revoke role %s: %w", user, r, err)
			}
		}
	}
	return nil
}

// Remove deletes machine's etcd user and its own role: every request its certificates make
// to etcd is refused from then on. It reports whether the user existed.
func Remove(ctx context.Context, cli *clientv3.Client, machine string) (bool, error) {
	if machine == RootUser {
		return false, ErrReservedName
	}
	existed := true
	if _, err := cli.UserDelete(ctx, machine); errors.Is(err, rpctypes.ErrUserNotFound) {
		existed = false
	} else if err != nil {
		return false, fmt.Errorf("delete etcd user %s: %w", machine, err)
	}
	if _, err := cli.RoleDelete(ctx, machineRole+machine); err != nil && !errors.Is(err, rpctypes.ErrRoleNotFound) {
		return existed, fmt.Errorf("delete etcd role %s: %w", machineRole+machine, err)
	}
	return existed, nil
}

// Users lists the etcd users (machine names, and root).
func Users(ctx context.Context, cli *clientv3.Client) ([]string, error) {
	resp, err := cli.UserList(ctx)
	if err != nil {
		return nil, fmt.Errorf("list etcd users: %w", err)
	}
	return resp.Users, nil
}

// Enable turns etcd's authentication on, unless it is on already, after making the shared
// roles, the root user, a root user for each of controllers — the caller among them, or it
// would lock itself out — and a user for each machine of others (machine → hanode roles) that
// has none yet. It reports whether it turned authentication on.
func Enable(ctx context.Context, cli *clientv3.Client, controllers []string, others map[string][]string) (bool, error) {
	on, err := Enabled(ctx, cli)
	if err != nil || on {
		return false, err
	}
	if err := EnsureRoles(ctx, cli); err != nil {
		return false, err
	}
	if err := ensureUser(ctx, cli, RootUser, []string{rootRole}); err != nil {
		return false, err
	}
	for _, c := range controllers {
		if c == RootUser {
			continue // it is root already
		}
		if err := ensureUser(ctx, cli, c, []string{rootRole}); err != nil {
			return false, err
		}
	}
	existing, err := Users(ctx, cli)
	if err != nil {
		return false, err
	}
	for m, roles := range others {
		if m == RootUser || slices.Contains(existing, m) || slices.Contains(controllers, m) {
			continue
		}
		if err := Admit(ctx, cli, m, roles); err != nil {
			return false, err
		}
	}
	if _, err := cli.AuthEnable(ctx); err != nil {
		return false, fmt.Errorf("turn etcd authentication on: %w", err)
	}
	return true, nil
}
