package sdnotify

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// listen opens a unixgram socket like systemd's and points NOTIFY_SOCKET at it.
func listen(t *testing.T, name string) *net.UnixConn {
	t.Helper()
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatalf("listen %q: %v", name, err)
	}
	t.Cleanup(func() { conn.Close() })
	t.Setenv(EnvSocket, name)
	return conn
}

func receive(t *testing.T, conn *net.UnixConn) string {
	t.Helper()
	if err := conn.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatalf("read datagram: %v", err)
	}
	return string(buf[:n])
}

func TestMessages(t *testing.T) {
	for _, tc := range []struct {
		name string
		send func() error
		want string
	}{
		{"ready", Ready, "READY=1"},
		{"stopping", Stopping, "STOPPING=1"},
		{"status", func() error { return Status("serving 5 roles") }, "STATUS=serving 5 roles"},
		{"status newlines", func() error { return Status("a\nb\r\nc") }, "STATUS=a b c"},
		{"notify", func() error { return Notify("READY=1\nSTATUS=up") }, "READY=1\nSTATUS=up"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn := listen(t, filepath.Join(t.TempDir(), "notify.sock"))
			if err := tc.send(); err != nil {
				t.Fatalf("send: %v", err)
			}
			if got := receive(t, conn); got != tc.want {
				t.Fatalf("datagram = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestAbstractSocket(t *testing.T) {
	conn := listen(t, fmt.Sprintf("@hanode-sdnotify-test-%d-%d", os.Getpid(), time.Now().UnixNano()))
	if err := Ready(); err != nil {
		t.Fatalf("Ready: %v", err)
	}
	if got := receive(t, conn); got != "READY=1" {
		t.Fatalf("datagram = %q, want READY=1", got)
	}
}

func TestUnsetIsNoop(t *testing.T) {
	t.Setenv(EnvSocket, "")
	for _, f := range []func() error{Ready, Stopping, func() error { return Status("x") }} {
		if err := f(); err != nil {
			t.Fatalf("with %s unset: %v", EnvSocket, err)
		}
	}
}

func TestErrorsNameTheSocket(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "gone.sock")
	t.Setenv(EnvSocket, missing)
	if err := Ready(); err == nil || !contains(err.Error(), missing) {
		t.Fatalf("Ready to a missing socket: err = %v, want one naming %s", err, missing)
	}
	t.Setenv(EnvSocket, "relative.sock")
	if err := Ready(); err == nil || !contains(err.Error(), "relative.sock") {
		t.Fatalf("Ready to a relative name: err = %v, want one naming it", err)
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
