package pki

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

// A process reading the node files while renewals replace them (the hot reload, another role
// of the same machine starting) always gets a matching certificate and key. The old two files
// were renamed one after the other, so a reader between the renames found a mismatched pair.
func TestRenewalsNeverTearThePair(t *testing.T) {
	ca := mustCA(t, "tear")
	dir := nodeDir(t, ca, localhost)
	var pairs [2][2][]byte
	for i := range pairs {
		pairs[i][0], pairs[i][1] = mustIssue(t, ca, localhost)
	}
	b := mustBundle(t, dir)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if err := WriteNode(dir, pairs[i%2][0], pairs[i%2][1]); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	deadline := time.Now().Add(3 * time.Second)
	reads := 0
	for ; time.Now().Before(deadline); reads++ {
		if err := b.Reload(); err != nil {
			close(stop)
			wg.Wait()
			t.Fatalf("reload %d during renewals: %v", reads, err)
		}
		if _, err := LoadBundle(dir); err != nil {
			close(stop)
			wg.Wait()
			t.Fatalf("load %d during renewals: %v", reads, err)
		}
	}
	close(stop)
	wg.Wait()
	// What TLS libraries given the certificate file and the key file read (etcd reads both
	// at each handshake) is a matching pair too.
	data, err := os.ReadFile(b.CertFile())
	if err != nil {
		t.Fatal(err)
	}
	key, err := os.ReadFile(b.KeyFile())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tls.X509KeyPair(data, key); err != nil {
		t.Fatalf("the node files as a TLS library reads them: %v", err)
	}
	t.Logf("%d reads during renewals", reads)
}

// A renewal killed at any point (SIGKILL of a process renewing in a loop) leaves a pair that
// loads: the old one or the new one. The old code could leave the new key beside the old
// certificate, and the machine could not start again.
func TestRenewalCrashLeavesUsablePair(t *testing.T) {
	if os.Getenv("HANODE_PKI_RENEW_LOOP") != "" {
		renewForever()
		return
	}
	ca := mustCA(t, "crash")
	dir := nodeDir(t, ca, localhost)
	for i := range 2 {
		c, k := mustIssue(t, ca, localhost)
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("pair%d", i)), append(append(c, '\n'), k...), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 25 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestRenewalCrashLeavesUsablePair$")
		cmd.Env = append(os.Environ(), "HANODE_PKI_RENEW_LOOP="+dir)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(20+rand.IntN(60)) * time.Millisecond)
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_ = cmd.Wait()
		if _, err := LoadBundle(dir); err != nil {
			t.Fatalf("after killing renewal %d: %v", i, err)
		}
	}
}

// renewForever writes the two pairs kept in the directory named by HANODE_PKI_RENEW_LOOP in
// turn, until killed.
func renewForever() {
	dir := os.Getenv("HANODE_PKI_RENEW_LOOP")
	var pairs [2][2][]byte
	for i := range pairs {
		data, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("pair%d", i)))
		if err != nil {
			panic(err)
		}
		i1 := bytes.Index(data, []byte("-----BEGIN PRIVATE KEY"))
		pairs[i][0], pairs[i][1] = data[:i1], data[i1:]
	}
	for i := 0; ; i++ {
		if err := WriteNode(dir, pairs[i%2][0], pairs[i%2][1]); err != nil {
			panic(err)
		}
	}
}

// A directory of an earlier version (node.crt and node.key) loads, gets node.pem written from
// the two files, and the first renewal removes them.
func TestLegacyNodeFiles(t *testing.T) {
	ca := mustCA(t, "legacy")
	dir := filepath.Join(t.TempDir(), DirName)
	if err := WriteCACert(dir, ca.CertPEM); err != nil {
		t.Fatal(err)
	}
	c, k := mustIssue(t, ca, localhost)
	if err := os.WriteFile(filepath.Join(dir, NodeKeyFile), k, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, NodeCertFile), c, 0o644); err != nil {
		t.Fatal(err)
	}
	if !Exists(dir) {
		t.Fatal("Exists = false for an earlier version's directory")
	}
	b := mustBundle(t, dir)
	if filepath.Base(b.CertFile()) != NodePairFile || b.KeyFile() != b.CertFile() {
		t.Fatalf("after loading an earlier version's directory: cert %s, key %s; want %s", b.CertFile(), b.KeyFile(), NodePairFile)
	}
	if b.Leaf().SerialNumber.Cmp(parseOne(t, c).SerialNumber) != 0 {
		t.Fatal("node.pem does not hold the earlier certificate")
	}
	c2, k2 := mustIssue(t, ca, localhost)
	if err := WriteNode(dir, c2, k2); err != nil {
		t.Fatal(err)
	}
	if fileExists(filepath.Join(dir, NodeCertFile)) || fileExists(filepath.Join(dir, NodeKeyFile)) {
		t.Fatal("a renewal left the earlier version's files")
	}
	if err := b.Reload(); err != nil || b.Leaf().SerialNumber.Cmp(parseOne(t, c2).SerialNumber) != 0 {
		t.Fatalf("reload after renewal: %v", err)
	}
}
