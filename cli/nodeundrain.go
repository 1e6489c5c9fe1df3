package cli

import (
	"fmt"
	"net/http"
	"net/url"
)

type nodeUndrainCmd struct {
	Machine string `arg:"" help:"Machine name."`
}

// Run removes the machine's drain mark (POST /v1/nodes/{id}/undrain).
func (c nodeUndrainCmd) Run(e *Env) error {
	if err := adminCall(e, http.MethodPost, "/v1/nodes/"+url.PathEscape(c.Machine)+"/undrain", nil, nil); err != nil {
		return err
	}
	fmt.Fprintf(e.Stdout, "%s is no longer draining\n", c.Machine)
	return nil
}
