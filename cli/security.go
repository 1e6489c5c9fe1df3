package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hanode/hanode/config"
	"github.com/hanode/hanode/security/access"
	"github.com/hanode/hanode/security/join"
	"github.com/hanode/hanode/security/pki"
	"github.com/hanode/hanode/security/secrets"
	"github.com/hanode/hanode/security/tokens"
)

// ClusterFile records, at join, where the cluster's etcd and controllers are, so that a machine
// that joined through --server finds them again on every later start.
const ClusterFile = "cluster.json"

type clusterFile struct {
	Cluster       string   `json:"cluster"`
	EtcdEndpoints []string `json:"etcd_endpoints"`
	Controllers   []string `json:"controllers"`
}

// ensureKeyring creates the cluster keyring beside the CA on the machine that initialises the
// cluster; joining controllers receive a copy.
func ensureKeyring(pkiDir string) error {
	path := filepath.Join(pkiDir, join.KeyringFile)
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	ring, err := secrets.NewKeyring()
	if err != nil {
		return err
	}
	return ring.Save(path)
}

// joinCluster runs the join flow when this machine has no certificate yet and --server and
// --token are set (on the command line, or as config keys for a unit's first boot).
func joinCluster(ctx context.Context, cfg *config.Config) (*join.Response, error) {
	resp, err := join.Join(ctx, join.Options{
		Server: cfg.Server, Token: cfg.Token, Machine: cfg.Name, Roles: cfg.Roles(),
		Addresses: identityAddresses(cfg), PKIDir: cfg.PKIDir(),
	})
	if err != nil {
		return nil, err
	}
	data, _ := json.MarshalIndent(clusterFile{Cluster: resp.Cluster, EtcdEndpoints: resp.EtcdEndpoints, Controllers: resp.Controllers}, "", "  ")
	if err := os.WriteFile(filepath.Join(cfg.DataDir, ClusterFile), data, 0o644); err != nil {
		return nil, fmt.Errorf("record the cluster's endpoints: %w", err)
	}
	return resp, nil
}

// applyClusterFile fills etcd endpoints and controllers from DATA/cluster.json where the
// operator did not set them.
func applyClusterFile(cfg *config.Config, origins config.Origins) error {
	data, err := os.ReadFile(filepath.Join(cfg.DataDir, ClusterFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var cf clusterFile
	if err := json.Unmarshal(data, &cf); err != nil {
		return fmt.Errorf("%s: %w", filepath.Join(cfg.DataDir, ClusterFile), err)
	}
	if origins["etcd-endpoints"].Kind == "default" && !cfg.Has(config.RoleController) && len(cf.EtcdEndpoints) > 0 {
		cfg.EtcdEndpoints = cf.EtcdEndpoints
	}
	if origins["controllers"].Kind == "default" && len(cf.Controllers) > 0 {
		cfg.Controllers = cf.Controllers
	}
	// A controller that joined through --server joins etcd through the endpoints it was given
	// (etcd ignores them once the member has data); so does one that rejoins after data loss.
	if cfg.Has(config.RoleController) && len(cfg.Join) == 0 && origins["initial-cluster"].Kind == "default" {
		cfg.Join = cf.EtcdEndpoints
	}
	return nil
}

type joinCmd struct{}

func (joinCmd) Run(e *Env) error {
	cfg, _, err := e.Config()
	if err != nil {
		return err
	}
	if cfg.Server == "" || cfg.Token == "" {
		return usagef("join needs --server https://CONTROLLER:8900 and --token K10...")
	}
	if pki.Exists(cfg.PKIDir()) {
		return usagef("%s already holds this machine's certificate: it has joined a cluster", cfg.PKIDir())
	}
	ctx, cancel := interruptible()
	defer cancel()
	resp, err := joinCluster(ctx, cfg)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.Stdout, "joined cluster %q as %s (roles %s); certificates in %s\n", resp.Cluster, cfg.Name, strings.Join(cfg.Roles(), ","), cfg.PKIDir())
	return nil
}

// adminCall sends one admin API request with the configured controllers and credentials.
func adminCall(e *Env, method, path string, body, out any) error {
	cfg, origins, err := e.Config()
	if err != nil {
		return err
	}
	cl, trust, err := adminClient(cfg, origins)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err = cl.Do(ctx, method, path, body, out)
	return trust.explain(err)
}

type tokenCmd struct {
	Create tokenCreateCmd `cmd:"" help:"Create a join token; it is printed once."`
	List   tokenListCmd   `cmd:"" help:"List join tokens (never their secrets)."`
	Revoke tokenRevokeCmd `cmd:"" help:"Revoke a join token by id."`
}

type tokenCreateCmd struct {
	Roles       []string      `sep:"," help:"Roles a machine joining with it may take (default: any)."`
	TTL         time.Duration `name:"ttl" default:"24h" help:"Lifetime; 0 never expires."`
	Uses        int           `default:"0" help:"How many joins it allows; 0 is unlimited."`
	Description string        `help:"A note shown by token list."`
}

func (c tokenCreateCmd) Run(e *Env) error {
	var out struct {
		tokens.Record
		Token string `json:"token"`
	}
	ttl := c.TTL.String()
	if c.TTL == 0 {
		ttl = "0"
	}
	if err := adminCall(e, http.MethodPost, "/v1/tokens", map[string]any{"roles": c.Roles, "ttl": ttl, "uses": c.Uses, "description": c.Description}, &out); err != nil {
		return err
	}
	fmt.Fprintln(e.Stdout, out.Token)
	return nil
}

type tokenListCmd struct{}

func (tokenListCmd) Run(e *Env) error {
	var out struct {
		Tokens []tokens.Record `json:"tokens"`
	}
	if err := adminCall(e, http.MethodGet, "/v1/tokens", nil, &out); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(e.Stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tROLES\tEXPIRES\tUSES\tSTATE\tDESCRIPTION")
	for _, t := range out.Tokens {
		expires, state, uses := "never", "valid", fmt.Sprintf("%d/%d", t.Uses, t.MaxUses)
		if !t.Expires.IsZero() {
			expires = t.Expires.Format(time.RFC3339)
			if time.Now().After(t.Expires) {
				state = "expired"
			}
		}
		if t.MaxUses == 0 {
			uses = fmt.Sprintf("%d/unlimited", t.Uses)
		} else if t.Uses >= t.MaxUses {
			state = "used up"
		}
		if t.Revoked {
			state = "revoked"
		}
		roles := strings.Join(t.Roles, ",")
		if roles == "" {
			roles = "any"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, roles, expires, uses, state, t.Description)
	}
	return tw.Flush()
}

type tokenRevokeCmd struct {
	ID string `arg:"" help:"Token id (the part before the dot)."`
}

func (c tokenRevokeCmd) Run(e *Env) error {
	if err := adminCall(e, http.MethodDelete, "/v1/tokens/"+url.PathEscape(c.ID), nil, nil); err != nil {
		return err
	}
	fmt.Fprintf(e.Stdout, "token %s revoked\n", c.ID)
	return nil
}

type credentialCmd struct {
	Create credentialCreateCmd `cmd:"" help:"Create an admin API bearer credential; it is printed once."`
	List   credentialListCmd   `cmd:"" help:"List credentials (never their secrets)."`
	Revoke credentialRevokeCmd `cmd:"" help:"Revoke a credential by id."`
}

type credentialCreateCmd struct {
	Level       string `default:"readonly" enum:"readonly,operator,admin" help:"readonly, operator or admin."`
	Description string `help:"A note shown by credential list."`
}

func (c credentialCreateCmd) Run(e *Env) error {
	var out struct {
		Credential string `json:"credential"`
	}
	if err := adminCall(e, http.MethodPost, "/v1/credentials", map[string]any{"level": c.Level, "description": c.Description}, &out); err != nil {
		return err
	}
	fmt.Fprintln(e.Stdout, out.Credential)
	return nil
}

type credentialListCmd struct{}

func (credentialListCmd) Run(e *Env) error {
	var out struct {
		Credentials []access.Credential `json:"credentials"`
	}
	if err := adminCall(e, http.MethodGet, "/v1/credentials", nil, &out); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(e.Stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tLEVEL\tCREATED\tBY\tDESCRIPTION")
	for _, c := range out.Credentials {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", c.ID, c.Level, c.Created.Format(time.RFC3339), c.CreatedBy, c.Description)
	}
	return tw.Flush()
}

type credentialRevokeCmd struct {
	ID string `arg:"" help:"Credential id (the 8 characters after hnc_)."`
}

func (c credentialRevokeCmd) Run(e *Env) error {
	if err := adminCall(e, http.MethodDelete, "/v1/credentials/"+url.PathEscape(c.ID), nil, nil); err != nil {
		return err
	}
	fmt.Fprintf(e.Stdout, "credential %s revoked\n", c.ID)
	return nil
}

type auditCmd struct {
	Limit int  `default:"50" help:"How many of the newest entries."`
	JSON  bool `help:"Print JSON."`
}

func (c auditCmd) Run(e *Env) error {
	var out struct {
		Entries []access.AuditEntry `json:"entries"`
	}
	if err := adminCall(e, http.MethodGet, fmt.Sprintf("/v1/audit?limit=%d", c.Limit), nil, &out); err != nil {
		return err
	}
	if c.JSON {
		return writeJSON(e.Stdout, out.Entries)
	}
	tw := tabwriter.NewWriter(e.Stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tWHO\tACTION\tTARGET\tRESULT")
	for _, a := range out.Entries {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\n", a.Time.Format(time.RFC3339), a.Who, a.Action, a.Target, a.Result)
	}
	return tw.Flush()
}

type nodeCmd struct {
	List    nodeListCmd    `cmd:"" help:"List machines and the roles they run."`
	Drain   nodeDrainCmd   `cmd:"" help:"Drain a machine: placement sends it nothing new and repair moves every replica off it (--wait shows the progress)."`
	Undrain nodeUndrainCmd `cmd:"" help:"Stop draining a machine: placement may use it again; what moved stays moved."`
	Remove  nodeRemoveCmd  `cmd:"" help:"Forget a stopped machine for good (its controller leaves etcd); refused while it holds replicas unless --force."`
	// Through the machines' agents (cli/nodeagent.go).
	Start   nodeRoleCmd  `cmd:"" help:"Start a role on a machine (MACHINE/ROLE) through its agent."`
	Stop    nodeRoleCmd  `cmd:"" help:"Stop a role on a machine (MACHINE/ROLE); its agent keeps it stopped."`
	Restart nodeRoleCmd  `cmd:"" help:"Restart a role on a machine (MACHINE/ROLE) through its agent."`
	Roles   nodeRolesCmd `cmd:"" help:"Add (+ROLE) or remove (-ROLE) roles of a machine online, through its agent."`
}

type nodeRemoveCmd struct {
	Machine string `arg:"" help:"Machine name."`
	Force   bool   `help:"Remove it even if it still holds replicas: they count as lost and repair re-creates them from the other copies."`
}

func (c nodeRemoveCmd) Run(e *Env) error {
	var out struct {
		RemovedController bool `json:"removed_controller"`
		Revoked           bool `json:"revoked"`
	}
	path := "/v1/nodes/" + url.PathEscape(c.Machine)
	if c.Force {
		path += "?force=true"
	}
	if err := adminCall(e, http.MethodDelete, path, nil, &out); err != nil {
		return err
	}
	fmt.Fprintf(e.Stdout, "removed %s", c.Machine)
	if out.RemovedController {
		fmt.Fprint(e.Stdout, " (its controller left the etcd cluster)")
	}
	if out.Revoked {
		fmt.Fprint(e.Stdout, "; its certificates are revoked")
	}
	fmt.Fprintln(e.Stdout)
	return nil
}

type nodeListCmd struct{}

func (nodeListCmd) Run(e *Env) error {
	var out struct {
		Machines []struct {
			Name  string   `json:"name"`
			Roles []string `json:"roles"`
		} `json:"machines"`
	}
	if err := adminCall(e, http.MethodGet, "/v1/nodes", nil, &out); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(e.Stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MACHINE\tROLES")
	for _, m := range out.Machines {
		fmt.Fprintf(tw, "%s\t%s\n", m.Name, strings.Join(m.Roles, ", "))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	agentsSection(e, e.Stdout)
	return nil
}

type nodeDrainCmd struct {
	Machine string        `arg:"" help:"Machine name."`
	Wait    bool          `help:"Wait until no replica is left on it, printing replicas left, bytes left, rate and ETA."`
	Every   time.Duration `help:"With --wait: how often to print a line." default:"2s"`
	Timeout time.Duration `help:"With --wait: give up after this long (0: never)." default:"0"`
}

func (c nodeDrainCmd) Run(e *Env) error {
	start := time.Now()
	if err := adminCall(e, http.MethodPost, "/v1/nodes/"+url.PathEscape(c.Machine)+"/drain", nil, nil); err != nil {
		return err
	}
	fmt.Fprintf(e.Stdout, "draining %s\n", c.Machine)
	if !c.Wait {
		return nil
	}
	return waitDrained(e, c.Machine, start, c.Every, c.Timeout)
}

type nodeUndrainCmd struct {
	Machine string `arg:"" help:"Machine name."`
}

func (c nodeUndrainCmd) Run(e *Env) error {
	if err := adminCall(e, http.MethodPost, "/v1/nodes/"+url.PathEscape(c.Machine)+"/undrain", nil, nil); err != nil {
		return err
	}
	fmt.Fprintf(e.Stdout, "%s is no longer draining\n", c.Machine)
	return nil
}

type secretsCmd struct {
	Rotate secretsRotateCmd `cmd:"" help:"Add a new keyring key on every controller, make it primary, and re-seal every secret with it."`
}

type secretsRotateCmd struct{}

func (secretsRotateCmd) Run(e *Env) error {
	var out struct {
		KeyID       string   `json:"key_id"`
		Controllers []string `json:"controllers"`
		Resealed    int      `json:"resealed"`
		DataKeys    int      `json:"data_keys"`
	}
	if err := adminCall(e, http.MethodPost, "/v1/secrets/rotate", nil, &out); err != nil {
		return err
	}
	fmt.Fprintf(e.Stdout, "keyring rotated: primary key %s on controllers %s; %d secrets and %d object data keys re-sealed\n",
		out.KeyID, strings.Join(out.Controllers, ", "), out.Resealed, out.DataKeys)
	return nil
}

type caCmd struct {
	Rotate caRotateCmd `cmd:"" help:"Replace the cluster CA in three phases: start, switch, finish (docs/security.md)."`
}

type caRotateCmd struct {
	Phase string `arg:"" enum:"start,switch,finish" help:"start (trust both CAs), switch (the new CA signs), finish (trust only the new CA)."`
}

func (c caRotateCmd) Run(e *Env) error {
	var out struct {
		Phase   string `json:"phase"`
		Signer  string `json:"signer"`
		Trusted int    `json:"trusted"`
		Next    string `json:"next"`
	}
	if err := adminCall(e, http.MethodPost, "/v1/pki/rotate", map[string]string{"phase": c.Phase}, &out); err != nil {
		return err
	}
	fmt.Fprintf(e.Stdout, "CA rotation %s done: signing CA %s, %d CA(s) trusted\nnext: %s\n", out.Phase, out.Signer, out.Trusted, out.Next)
	return nil
}
