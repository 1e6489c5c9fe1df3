// Package version holds the build's version and commit, stamped by the Makefile with
// -ldflags "-X github.com/hanode/hanode/version.Version=... -X ...Commit=...".
package version

// Stamped at link time; these are the values of an unstamped `go build`.
var (
	Version = "dev"
	Commit  = "unknown"
)
