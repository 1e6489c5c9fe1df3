package cli

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/hanode/hanode/adminapi"
	"github.com/hanode/hanode/config"
	"github.com/hanode/hanode/security/access"
	"github.com/hanode/hanode/security/pki"
)

// adminTrust is what the CLI trusts and who it is towards the controllers. Each of the CA,
// the client certificate and the credential follows the documented precedence (flag >
// environment > file > default): the data dir's pki (<data-dir>/pki, the default) counts at
// the level data-dir was set at, so HANODE_CA_CERT wins over a ./hanode-data of another cluster
// and --data-dir on the command line wins over a ca-cert in the config file.
type adminTrust struct {
	tls        *tls.Config
	credential string
	// caFile and identity say what was used, for errors.
	caFile, caFrom string
	identity       string
}

func originRank(o config.Origin) int {
	switch o.Kind {
	case "flag":
		return 3
	case "env":
		return 2
	case "file":
		return 1
	}
	return 0
}

func describeOrigin(o config.Origin) string {
	if o.Kind == "" {
		return "default"
	}
	if o.Detail != "" {
		return o.Kind + " " + o.Detail
	}
	return o.Kind
}

// resolveTrust picks the CA, the client certificate and the credential.
func resolveTrust(cfg *config.Config, origins config.Origins) (*adminTrust, error) {
	caO, ddO, credO := origins["ca-cert"], origins["data-dir"], origins["credential"]
	pkiDir := cfg.PKIDir()
	hasPKI := pki.Exists(pkiDir)
	t := &adminTrust{caFile: cfg.CACert, caFrom: describeOrigin(caO)}
	if caO.Kind == "default" || caO.Kind == "" {
		t.caFrom = "the data dir's, data-dir from " + describeOrigin(ddO)
	} else if hasPKI && originRank(ddO) > originRank(caO) {
		t.caFile = filepath.Join(pkiDir, pki.CACertFile)
		t.caFrom = "the data dir's, data-dir from " + describeOrigin(ddO) + " over ca-cert from " + describeOrigin(caO)
	}
	tlsCfg, err := pki.ClientTLSForCA(t.caFile)
	if err != nil {
		return nil, usagef("cannot trust the controllers: CA %s (%s): %v (set --ca-cert or HANODE_CA_CERT)", t.caFile, t.caFrom, err)
	}
	t.tls = tlsCfg
	if cfg.Credential != "" {
		id, _, _ := access.ParseCredential(cfg.Credential)
		t.credential = cfg.Credential
		t.identity = fmt.Sprintf("credential %s (%s)", id, describeOrigin(credO))
	}
	if hasPKI && (cfg.Credential == "" || originRank(ddO) > originRank(credO)) {
		b, err := pki.LoadBundle(pkiDir)
		if err != nil {
			return nil, fmt.Errorf("load the certificate in %s (data-dir from %s): %w", pkiDir, describeOrigin(ddO), err)
		}
		// Only a certificate the chosen CA signed: another cluster's would fail the handshake.
		leaf := b.Leaf()
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: tlsCfg.RootCAs, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err == nil {
			tlsCfg.GetClientCertificate = b.ClientConfig("").GetClientCertificate
			t.credential = ""
			t.identity = fmt.Sprintf("certificate of machine %s (%s, data-dir from %s)", b.Identity().Machine, b.CertFile(), describeOrigin(ddO))
		} else if t.identity == "" {
			t.identity = fmt.Sprintf("none (the certificate %s is not signed by that CA)", b.CertFile())
		}
	}
	if t.identity == "" {
		t.identity = "none (no certificate in " + pkiDir + ", no credential)"
	}
	return t, nil
}

// explain adds to an error about trust (TLS verification, 401, 403) which CA file and which
// identity the CLI used.
func (t *adminTrust) explain(err error) error {
	if err == nil {
		return nil
	}
	var ae *adminapi.APIError
	var unknownCA x509.UnknownAuthorityError
	var verify *tls.CertificateVerificationError
	var host x509.HostnameError
	trust := errors.As(err, &unknownCA) || errors.As(err, &verify) || errors.As(err, &host) ||
		errors.As(err, &ae) && (ae.Status == 401 || ae.Status == 403) ||
		strings.Contains(err.Error(), "x509:") || strings.Contains(err.Error(), "tls:")
	if !trust {
		return err
	}
	return fmt.Errorf("%w [trusted CA: %s (%s); identity: %s]", err, t.caFile, t.caFrom, t.identity)
}
