package cli

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hanode/hanode/config"
	"github.com/hanode/hanode/internal/appliance"
	"github.com/hanode/hanode/security/pki"
)

// Issue 16 part 4: in a directory holding another cluster's ./hanode-data, HANODE_CA_CERT
// names the CA to trust (flag > environment > file > default, for the CA, the client
// certificate and the credential alike), and a refusal names the CA file and the identity.
func TestTrustPrecedence(t *testing.T) {
	a := appliance.Start(t, "127.0.52.1", nil)
	for _, v := range []string{"HANODE_CONFIG", "HANODE_DATA_DIR", "HANODE_CA_CERT", "HANODE_CREDENTIAL", "HANODE_CONTROLLERS"} {
		t.Setenv(v, "")
		os.Unsetenv(v)
	}
	ctrl := a.Endpoints[config.RoleController]
	code, cred, errOut := run(t, "credential", "create", "--level", "admin", "--data-dir", a.Config.DataDir, "--controllers", ctrl)
	cred = strings.TrimSpace(cred)
	if code != 0 || !strings.HasPrefix(cred, "hnc_") {
		t.Fatalf("credential create: exit %d: %q %s", code, cred, errOut)
	}

	// Another cluster's data dir in the working directory, as after `make run` in a checkout.
	dir := t.TempDir()
	otherPKI := filepath.Join(dir, "hanode-data", "pki")
	if _, err := pki.EnsureSelfSigned(otherPKI, "other", pki.Identity{Machine: "elsewhere", Roles: []string{"controller"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}},
		pki.DefaultCAValidity, pki.DefaultNodeValidity); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)
	t.Setenv("HANODE_CONTROLLERS", ctrl)

	status := func(args ...string) (int, string) {
		t.Helper()
		code, _, errOut := run(t, append([]string{"status"}, args...)...)
		return code, errOut
	}
	// The default: ./hanode-data's CA and certificate, of the other cluster: refused, and the
	// error says which CA file and which identity.
	code, errOut = status()
	if code != 1 || !strings.Contains(errOut, "x509") || !strings.Contains(errOut, filepath.Join("hanode-data", "pki", "ca.crt")) ||
		!strings.Contains(errOut, "certificate of machine elsewhere") {
		t.Fatalf("status with another cluster's ./hanode-data: exit %d: %s", code, errOut)
	}
	t.Logf("the refusal: %s", errOut)

	// The environment over the default: the lab's CA and credential.
	t.Setenv("HANODE_CA_CERT", a.CAFile)
	t.Setenv("HANODE_CREDENTIAL", cred)
	if code, errOut := status(); code != 0 {
		t.Fatalf("status with HANODE_CA_CERT and HANODE_CREDENTIAL in a directory of another cluster: exit %d: %s", code, errOut)
	}
	// The CA from the environment, no credential: the other cluster's certificate is not
	// presented (that CA did not sign it), and the 401 names the CA and the identity.
	os.Unsetenv("HANODE_CREDENTIAL")
	code, errOut = status()
	if code != 1 || !strings.Contains(errOut, "401") || !strings.Contains(errOut, a.CAFile) || !strings.Contains(errOut, "env HANODE_CA_CERT") ||
		!strings.Contains(errOut, "identity: none") {
		t.Fatalf("status with HANODE_CA_CERT and no credential: exit %d: %s", code, errOut)
	}
	t.Setenv("HANODE_CREDENTIAL", cred)

	// A flag over the environment: --ca-cert naming the other CA is used, and named.
	otherCA := filepath.Join(otherPKI, pki.CACertFile)
	code, errOut = status("--ca-cert", otherCA)
	if code != 1 || !strings.Contains(errOut, "x509") || !strings.Contains(errOut, otherCA) || !strings.Contains(errOut, "flag --ca-cert") {
		t.Fatalf("status --ca-cert OTHER with HANODE_CA_CERT set: exit %d: %s", code, errOut)
	}
	// --data-dir on the command line over HANODE_CA_CERT: its CA and its certificate.
	t.Setenv("HANODE_CA_CERT", otherCA)
	os.Unsetenv("HANODE_CREDENTIAL")
	if code, errOut := status("--data-dir", a.Config.DataDir); code != 0 {
		t.Fatalf("status --data-dir with HANODE_CA_CERT of another cluster: exit %d: %s", code, errOut)
	}
}
