// Package browsertest starts Debian's chromium, headless, for tests that drive the web UI with
// chromedp: the web UI's own browser test and the lab's.
package browsertest

import (
	"context"
	"os"
	"os/exec"
	"slices"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// Chromium finds Debian's chromium, installing it with apt-get when it is missing and this
// process may (as `make deps` does); the test is skipped only when it cannot be had.
func Chromium(t testing.TB) string {
	t.Helper()
	if p, err := exec.LookPath("chromium"); err == nil {
		return p
	}
	if os.Getuid() == 0 {
		if _, err := exec.LookPath("apt-get"); err == nil {
			out, err := exec.Command("sh", "-c", "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium").CombinedOutput()
			if p, lerr := exec.LookPath("chromium"); lerr == nil {
				return p
			}
			t.Skipf("chromium is not installed and apt-get could not install it: %v\n%s", err, out)
		}
	}
	t.Skip("chromium is not installed and this process cannot install it (not root, or no apt-get): run `make deps` as root")
	return ""
}

// Start starts a headless chromium that accepts the test cluster's certificates and returns
// its context, which ends after timeout or with the test.
func Start(t testing.TB, timeout time.Duration) context.Context {
	t.Helper()
	opts := append(slices.Clone(chromedp.DefaultExecAllocatorOptions[:]), chromedp.ExecPath(Chromium(t)), chromedp.NoSandbox,
		chromedp.Flag("ignore-certificate-errors", true), chromedp.WindowSize(1360, 900), chromedp.Flag("disable-gpu", true))
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelA)
	bctx, cancelB := chromedp.NewContext(actx)
	t.Cleanup(cancelB)
	if err := chromedp.Do(bctx); err != nil { // starts the browser; its context has no deadline
		t.Fatalf("start chromium: %v", err)
	}
	ctx, cancel := context.WithTimeout(bctx, timeout)
	t.Cleanup(cancel)
	return ctx
}
