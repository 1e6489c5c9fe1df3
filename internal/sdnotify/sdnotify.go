// Package sdnotify speaks systemd's notify protocol (sd_notify(3)): it sends state lines such
// as READY=1 as one datagram to the unix socket named by $NOTIFY_SOCKET. A unit with
// Type=notify is "started" only once READY=1 arrives, so `systemctl start` and units ordered
// after hanode wait until it really serves.
//
// Outside systemd (NOTIFY_SOCKET unset) every call is a no-op returning nil, so callers need
// no special case for the lab, tests or a shell.
package sdnotify

import (
	"fmt"
	"net"
	"os"
	"strings"
)

// EnvSocket is the environment variable systemd sets for Type=notify services.
const EnvSocket = "NOTIFY_SOCKET"

// Ready tells systemd that start-up is finished.
func Ready() error { return Notify("READY=1") }

// Stopping tells systemd that a graceful shutdown has begun, so it reports "deactivating"
// rather than treating the drain as a hang.
func Stopping() error { return Notify("STOPPING=1") }

// Status sets the one-line status `systemctl status` shows. Newlines would start new
// assignments in the protocol, so they are replaced by spaces.
func Status(s string) error {
	return Notify("STATUS=" + strings.NewReplacer("\r\n", " ", "\n", " ", "\r", " ").Replace(s))
}

// Notify sends state (one or more newline-separated VAR=VALUE assignments) to $NOTIFY_SOCKET.
// It returns nil without doing anything when the variable is unset.
func Notify(state string) error {
	name := os.Getenv(EnvSocket)
	if name == "" {
		return nil
	}
	// systemd passes either a filesystem path or an abstract socket written "@name"; Go's net
	// package maps a leading '@' to the abstract namespace itself. Anything else (such as the
	// vsock: form used for VMs) is not supported here.
	if !strings.HasPrefix(name, "/") && !strings.HasPrefix(name, "@") {
		return fmt.Errorf("sdnotify: %s=%q: want an absolute socket path or an @abstract name", EnvSocket, name)
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("sdnotify: connect to %s %q: %w", EnvSocket, name, err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(state)); err != nil {
		return fmt.Errorf("sdnotify: send %q to %q: %w", state, name, err)
	}
	return nil
}
