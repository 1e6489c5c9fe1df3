package cli

import (
	"fmt"
	"net/http"
	"net/url"
	"text/tabwriter"
	"time"

	"github.com/hanode/hanode/adminapi"
	"github.com/hanode/hanode/coordinator"
	"github.com/hanode/hanode/security/kms"
)

type kmsCmd struct {
	Create  kmsCreateCmd  `cmd:"" help:"Create a named KMS key of fresh random material, enabled (SSE-KMS objects name it in x-amz-server-side-encryption-aws-kms-key-id)."`
	List    kmsListCmd    `cmd:"" help:"List the KMS keys and whether each is enabled."`
	Disable kmsDisableCmd `cmd:"" help:"Disable a KMS key: its objects become unreadable and no object can be written under it, until it is enabled again."`
	Enable  kmsEnableCmd  `cmd:"" help:"Enable a disabled KMS key again."`
	Delete  kmsDeleteCmd  `cmd:"" help:"Delete a disabled KMS key for good (--force): every object encrypted under it becomes unreadable, forever."`
}

type kmsCreateCmd struct {
	Name string `arg:"" help:"The key's name: 1-64 of [A-Za-z0-9._-], starting with a letter or digit."`
	JSON bool   `help:"Print JSON."`
}

func (c kmsCreateCmd) Run(e *Env) error {
	var k kms.Key
	if err := adminCall(e, http.MethodPost, "/v1/kms/keys", adminapi.KMSKeyCreate{Name: c.Name}, &k); err != nil {
		return fmt.Errorf("kms create %s: %w", c.Name, err)
	}
	if c.JSON {
		return writeJSON(e.Stdout, k)
	}
	fmt.Fprintf(e.Stdout, "KMS key %s created, enabled\n", k.Name)
	return nil
}

type kmsListCmd struct {
	JSON bool `help:"Print JSON."`
}

func (c kmsListCmd) Run(e *Env) error {
	var out struct {
		Keys []kms.Key `json:"keys"`
	}
	if err := adminCall(e, http.MethodGet, "/v1/kms/keys", nil, &out); err != nil {
		return fmt.Errorf("kms list: %w", err)
	}
	if c.JSON {
		return writeJSON(e.Stdout, out.Keys)
	}
	tw := tabwriter.NewWriter(e.Stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSTATE\tCREATED\tBY\tCHANGED")
	for _, k := range out.Keys {
		state, changed := "enabled", ""
		if !k.Enabled {
			state = "disabled"
		}
		if !k.Changed.IsZero() {
			changed = k.Changed.Local().Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", k.Name, state, k.Created.Local().Format(time.RFC3339), k.CreatedBy, changed)
	}
	return tw.Flush()
}

type kmsDisableCmd struct {
	Name string `arg:"" help:"The key's name."`
}

func (c kmsDisableCmd) Run(e *Env) error {
	if err := adminCall(e, http.MethodPost, "/v1/kms/keys/"+url.PathEscape(c.Name)+"/disable", nil, nil); err != nil {
		return fmt.Errorf("kms disable %s: %w", c.Name, err)
	}
	// A coordinator may still open the key's objects with a data key it opened before, for at
	// most coordinator.KMSKeyTTL.
	fmt.Fprintf(e.Stdout, "KMS key %s disabled: its objects are unreadable (within %s on every coordinator) until it is enabled\n", c.Name, coordinator.KMSKeyTTL)
	return nil
}

type kmsEnableCmd struct {
	Name string `arg:"" help:"The key's name."`
}

func (c kmsEnableCmd) Run(e *Env) error {
	if err := adminCall(e, http.MethodPost, "/v1/kms/keys/"+url.PathEscape(c.Name)+"/enable", nil, nil); err != nil {
		return fmt.Errorf("kms enable %s: %w", c.Name, err)
	}
	fmt.Fprintf(e.Stdout, "KMS key %s enabled\n", c.Name)
	return nil
}

type kmsDeleteCmd struct {
	Name  string `arg:"" help:"The key's name (a disabled key)."`
	Force bool   `help:"Required: deleting the key makes every object encrypted under it unreadable for good."`
}

func (c kmsDeleteCmd) Run(e *Env) error {
	if !c.Force {
		return fmt.Errorf("kms delete %s: every object encrypted under the key would become unreadable for good; disable it instead (hanode kms disable %s), or give --force", c.Name, c.Name)
	}
	if err := adminCall(e, http.MethodDelete, "/v1/kms/keys/"+url.PathEscape(c.Name)+"?force=true", nil, nil); err != nil {
		return fmt.Errorf("kms delete %s: %w", c.Name, err)
	}
	fmt.Fprintf(e.Stdout, "KMS key %s deleted\n", c.Name)
	return nil
}
