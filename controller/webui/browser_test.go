package webui_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	cdpruntime "github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/hanode/hanode/adminapi"
	"github.com/hanode/hanode/internal/browsertest"
	"github.com/hanode/hanode/security/s3users"
)

// shots is where screenshots go: HANODE_UI_SCREENSHOTS=docs (relative to the repository) when
// set, else the test's temporary directory.
func shots(t *testing.T) string {
	if d := os.Getenv("HANODE_UI_SCREENSHOTS"); d != "" {
		if !filepath.IsAbs(d) {
			d = filepath.Join("..", "..", d)
		}
		return d
	}
	return t.TempDir()
}

func TestBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster and a browser")
	}
	exe := browsertest.Chromium(t)
	c := startCluster(t, "127.0.60.", 3)
	adminCred := c.credential(t, "admin")
	var readCred string
	base := c.controller()

	// An object of three 64 KiB chunks, two copies each, written through the S3 API.
	var ak, sk string
	eventually(t, 15*time.Second, "the S3 root user's credentials file", func() bool {
		var err error
		ak, sk, err = s3users.ReadCredentials(filepath.Join(c.machines[0].cfg.DataDir, s3users.CredentialsFile))
		return err == nil
	})
	s3 := mustS3(t, c, ak, sk)
	ctx := context.Background()
	eventually(t, 15*time.Second, "bucket photos created", func() bool { return s3.MakeBucket(ctx, "photos", minio.MakeBucketOptions{}) == nil })
	body := make([]byte, 3*65536-100)
	_, _ = rand.Read(body)
	if _, err := s3.PutObject(ctx, "photos", "2026/summer/beach.jpg", bytes.NewReader(body), int64(len(body)), minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	var loc adminapi.Locate
	if st := c.api(t, http.MethodGet, "/v1/locate/photos/2026/summer/beach.jpg", nil, &loc); st != http.StatusOK || len(loc.Chunks) != 3 {
		t.Fatalf("locate: %d, %d chunks", st, len(loc.Chunks))
	}

	// A page on another site that posts a drain of m2 to the controller as soon as it loads.
	evil := evilSite(t, "127.0.60.9:8080", base+"/machines/m2/drain")

	opts := append(slices.Clone(chromedp.DefaultExecAllocatorOptions[:]), chromedp.ExecPath(exe), chromedp.NoSandbox,
		chromedp.Flag("ignore-certificate-errors", true), chromedp.WindowSize(1360, 900), chromedp.Flag("disable-gpu", true))
	actx, cancelA := chromedp.NewExecAllocator(ctx, opts...)
	defer cancelA()
	bctx, cancelB := chromedp.NewContext(actx)
	defer cancelB()
	if err := chromedp.Do(bctx); err != nil { // starts the browser; its context has no deadline
		t.Fatalf("start chromium: %v", err)
	}
	bctx, cancelT := context.WithTimeout(bctx, 3*time.Minute)
	defer cancelT()
	b := &browser{t: t, ctx: bctx, dir: shots(t)}
	// The browser's own complaints: CSP violations, failed loads, script errors.
	var mu sync.Mutex
	var complaints []string
	if err := chromedp.Listen(bctx, func(ev any) {
		mu.Lock()
		defer mu.Unlock()
		switch e := ev.(type) {
		case *cdplog.EventEntryAdded:
			if e.Entry.Level == cdplog.EntryLevelError || e.Entry.Level == cdplog.EntryLevelWarning {
				complaints = append(complaints, e.Entry.URL+": "+e.Entry.Text)
			}
		case *cdpruntime.EventExceptionThrown:
			complaints = append(complaints, "exception: "+e.ExceptionDetails.Text)
		}
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(bctx, cdplog.Enable, cdp.Empty{}); err != nil {
		t.Fatal(err)
	}
	checkQuiet := func(during string) {
		t.Helper()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range complaints {
			// The forged POST and the readonly POST are refused on purpose (403).
			if !strings.Contains(c, "403") {
				t.Errorf("%s: the browser reported %s", during, c)
			}
		}
		complaints = nil
	}

	// Signing in: the overview redirects to the form, the credential goes in the input named
	// credential, and the overview names the master and every machine, all up.
	b.do("sign in",
		chromedp.Navigate(base+"/"),
		chromedp.WaitVisible(chromedp.CSS(`input[name="credential"]`)),
		b.shot("webui-signin.png"),
		chromedp.SendKeys(chromedp.CSS(`input[name="credential"]`), adminCred),
		chromedp.Click(chromedp.ID("signin")),
		chromedp.WaitVisible(chromedp.ID("master-name")),
	)
	if master, level := b.text("#master-name"), b.text("#level"); master != "m1" || level != "admin" {
		t.Fatalf("overview: master %q, level %q; want m1, admin", master, level)
	}
	for _, m := range []string{"m1", "m2", "m3"} {
		b.do("machine "+m+" up", chromedp.WaitVisible(chromedp.CSS(`tr[data-machine="`+m+`"][data-state="up"]`)))
	}
	// The scrub line sums every live datanode's background verification.
	b.do("scrub line", chromedp.WaitVisible(chromedp.ID("scrub")))
	if s := b.text("#scrub"); !strings.Contains(s, "3 datanodes") || !strings.Contains(s, "0 corrupt chunks found") {
		t.Errorf("overview scrub line %q: want the 3 datanodes and 0 corrupt chunks", s)
	}
	cookies, err := chromedp.Call(bctx, network.GetCookies, network.GetCookiesParams{})
	if err != nil {
		t.Fatal(err)
	}
	var sess *network.Cookie
	for _, ck := range cookies.Cookies {
		if ck.Name == "__Host-hanode-session" {
			sess = ck
		}
	}
	if sess == nil || !sess.HTTPOnly || !sess.Secure || sess.SameSite != network.CookieSameSiteStrict || sess.Session || sess.Expires <= float64(time.Now().Unix()) {
		t.Fatalf("session cookie %+v: want HttpOnly, Secure, SameSite=Strict, expiring", sess)
	}
	pageBudget(t, c, sess.Value)

	// A datanode stops: without a reload, the overview shows m3 down within its lease time.
	c.machines[2].stop(t)
	stopped := time.Now()
	b.do("m3 turns down", chromedp.WaitVisible(chromedp.CSS(`tr[data-machine="m3"][data-state="down"]`)))
	t.Logf("m3 shown down %s after it stopped", time.Since(stopped).Round(100*time.Millisecond))
	b.do("overview screenshot", b.shot("webui-overview.png"))

	checkQuiet("signing in and the live overview")

	// The forged cross-site POST changes nothing.
	b.do("forged cross-site POST", chromedp.Navigate(evil))
	var evilText string
	eventually(t, 10*time.Second, "the forged POST answered", func() bool {
		evilText, _ = chromedp.Run(bctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
		return strings.Contains(evilText, "cross-origin")
	})
	var ms adminapi.MachineState
	if ms = (adminapi.MachineState{}); c.api(t, http.MethodGet, "/v1/machines/m2", nil, &ms) != http.StatusOK || ms.Draining != nil {
		t.Fatalf("a cross-site POST drained m2: %+v (page said %q)", ms.Draining, evilText)
	}

	// Drain and undrain m2 from its page; each goes through the audited API.
	b.do("drain m2",
		chromedp.Navigate(base+"/machines/m2"),
		chromedp.Click(chromedp.ID("drain")),
		chromedp.WaitVisible(chromedp.ID("done")),
		chromedp.WaitVisible(chromedp.ID("undrain")),
		b.shot("webui-machine.png"),
	)
	if ms = (adminapi.MachineState{}); c.api(t, http.MethodGet, "/v1/machines/m2", nil, &ms) != http.StatusOK || ms.Draining == nil || !strings.HasPrefix(ms.Draining.By, "credential:") {
		t.Fatalf("after the drain button: %+v", ms.Draining)
	}
	b.do("undrain m2", chromedp.Click(chromedp.ID("undrain")), chromedp.WaitVisible(chromedp.ID("drain")))
	var audit struct {
		Entries []struct {
			Who, Action, Target string
			Result              int
			Time                time.Time
		} `json:"entries"`
	}
	c.api(t, http.MethodGet, "/v1/audit?limit=50", nil, &audit)
	if ms = (adminapi.MachineState{}); c.api(t, http.MethodGet, "/v1/machines/m2", nil, &ms) != http.StatusOK || ms.Draining != nil {
		t.Fatalf("after the undrain button m2 still drains: %+v; audit %+v", ms.Draining, audit.Entries)
	}
	credID := strings.TrimPrefix(strings.SplitN(adminCred, ".", 2)[0], "hnc_")
	var audited []string
	for _, e := range audit.Entries {
		if e.Who == "credential:"+credID && e.Target == "m2" {
			audited = append(audited, e.Action)
		}
	}
	if !slices.Contains(audited, "POST /v1/nodes/m2/drain") || !slices.Contains(audited, "POST /v1/nodes/m2/undrain") {
		t.Fatalf("audit trail of the buttons: %v", audited)
	}

	// The object explorer: bucket, prefixes, object, and each chunk's sites as locate has them,
	// the replicas on the stopped m3 marked down.
	b.do("objects",
		chromedp.Navigate(base+"/objects"),
		chromedp.Click(chromedp.CSS(`tr[data-bucket="photos"] a`)),
		chromedp.WaitVisible(chromedp.CSS(`tr.prefix a[href*="2026%2F"]`)),
		chromedp.Click(chromedp.CSS(`tr.prefix a`)),
		chromedp.WaitVisible(chromedp.CSS(`tr.prefix a[href*="summer"]`)),
		chromedp.Click(chromedp.CSS(`tr.prefix a`)),
		chromedp.WaitVisible(chromedp.CSS(`tr.object[data-key="2026/summer/beach.jpg"]`)),
		b.shot("webui-objects.png"),
		chromedp.Click(chromedp.CSS(`tr.object a`)),
		chromedp.WaitVisible(chromedp.ID("chunks")),
		b.shot("webui-object.png"),
	)
	for _, ch := range loc.Chunks {
		sites := b.strings(fmt.Sprintf(`Array.from(document.querySelectorAll('tr[data-chunk="%s"] a.site')).map(a => a.dataset.site + "=" + (a.classList.contains("st-up") ? "live" : "down"))`, ch.ID))
		var want []string
		for _, m := range ch.Replicas {
			state := "live"
			if m == "m3" {
				state = "down"
			}
			want = append(want, m+"="+state)
		}
		sort.Strings(sites)
		sort.Strings(want)
		if !slices.Equal(sites, want) {
			t.Errorf("chunk %s: page shows sites %v, want %v", ch.ID, sites, want)
		}
	}

	// The access page lists the credentials and, filtered, the drain and the undrain.
	b.do("access",
		chromedp.Navigate(base+"/access?target=m2"),
		chromedp.WaitVisible(chromedp.ID("credentials")),
	)
	if n := b.int(`document.querySelectorAll('#audit tbody tr code').length`); n < 2 {
		t.Errorf("access page, audit filtered on m2: %d rows, want the drain and the undrain", n)
	}
	// The readonly credential used below is created from the access page, shown once.
	b.do("create a readonly credential",
		chromedp.SetValue(chromedp.CSS(`#credential-level`), "readonly"),
		chromedp.SetValue(chromedp.CSS(`#credential-create input[name="description"]`), "made in the web UI"),
		chromedp.Click(chromedp.CSS(`#credential-create button`)),
		chromedp.WaitVisible(chromedp.ID("secret")),
	)
	readCred = b.text("#secret")
	if !strings.HasPrefix(readCred, "hnc_") {
		t.Fatalf("the access page showed %q as the new credential", readCred)
	}
	// A join token created and revoked there.
	// The page still shows the credential's secret until the answer to this form replaces it.
	b.do("create a join token", chromedp.Click(chromedp.CSS(`#token-create button`)))
	b.until(`(document.querySelector('#secret') || {textContent: ''}).textContent.trim().startsWith('K10')`)
	if tok := b.text("#secret"); !strings.HasPrefix(tok, "K10") {
		t.Fatalf("the access page showed %q as the new join token", tok)
	}
	b.do("revoke it",
		chromedp.Click(chromedp.CSS(`#tokens form[action="/access/tokens/revoke"] button`)),
		chromedp.WaitVisible(chromedp.ID("outcome")),
		chromedp.WaitVisible(chromedp.CSS(`#tokens .st-down`)),
	)

	// An S3 user added there, granted read on photos, and the grant revoked.
	b.do("add an S3 user and grant it",
		chromedp.SetValue(chromedp.CSS(`#user-create input[name="access_key"]`), "alice-reader"),
		chromedp.Click(chromedp.CSS(`#user-create button`)),
		chromedp.WaitVisible(chromedp.ID("secret")),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-user="alice-reader"]`)),
		chromedp.SetValue(chromedp.CSS(`#grant-set input[name="bucket"]`), "photos"),
		chromedp.SetValue(chromedp.CSS(`#grant-set input[name="user"]`), "alice-reader"),
		chromedp.Click(chromedp.CSS(`#grant-set button`)),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-grant="photos/alice-reader"]`)),
		b.shot("webui-access.png"),
		chromedp.Click(chromedp.CSS(`tr[data-grant="photos/alice-reader"] button`)),
		chromedp.WaitVisible(chromedp.ID("outcome")),
	)
	// #outcome was already on the page (the grant's): wait for the revocation's answer itself.
	if !b.until(`document.querySelectorAll('tr[data-grant="photos/alice-reader"]').length === 0`) {
		t.Errorf("the revoked grant is still listed")
	}
	checkQuiet("the machine, objects and access pages")

	// A readonly credential sees the same cluster and no action at all.
	b.do("sign out and in as readonly",
		chromedp.Click(chromedp.ID("signout")),
		chromedp.WaitVisible(chromedp.CSS(`input[name="credential"]`)),
		chromedp.SendKeys(chromedp.CSS(`input[name="credential"]`), readCred),
		chromedp.Click(chromedp.ID("signin")),
		chromedp.WaitVisible(chromedp.ID("master-name")),
		chromedp.Navigate(base+"/machines/m2"),
		chromedp.WaitVisible(chromedp.ID("roles")),
	)
	buttons := b.int(`document.querySelectorAll('main button, main form[method="post"]').length`)
	links := b.int(`document.querySelectorAll('nav a[href="/access"]').length`)
	b.do("readonly access page", chromedp.Navigate(base+"/access"), chromedp.WaitVisible(chromedp.ID("error")))
	if accessText := b.text("#error"); buttons != 0 || links != 0 || !strings.Contains(accessText, "admin") {
		t.Fatalf("readonly: %d buttons/forms on the machine page, %d access links, access page says %q", buttons, links, accessText)
	}
	// A readonly session's POST with its own valid CSRF token is still refused by the API.
	b.do("readonly overview", chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.ID("signout")))
	status, err := chromedp.Run(bctx, chromedp.Evaluate[int](`(async () => {
		const csrf = document.querySelector('input[name="csrf"]').value;
		const r = await fetch('/machines/m2/drain', {method: 'POST', body: new URLSearchParams({csrf})});
		return r.status;
	})()`, chromedp.EvalAwaitPromise))
	if err != nil || status != http.StatusForbidden {
		t.Fatalf("readonly drain POST: %d %v, want 403", status, err)
	}
	if ms = (adminapi.MachineState{}); c.api(t, http.MethodGet, "/v1/machines/m2", nil, &ms) != http.StatusOK || ms.Draining != nil {
		t.Fatal("a readonly session drained m2")
	}
	checkQuiet("the readonly session")
}

// browser runs steps in one chromium tab.
type browser struct {
	t   *testing.T
	ctx context.Context
	dir string
}

func (b *browser) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, steps...); err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
}

func (b *browser) text(css string) string {
	b.t.Helper()
	s, err := chromedp.Run(b.ctx, chromedp.Text(chromedp.CSS(css)))
	if err != nil {
		b.t.Fatalf("text of %s: %v", css, err)
	}
	return strings.TrimSpace(s)
}

// until polls the JavaScript condition expr for up to 10 s and reports whether it held: for a
// page that a form's answer replaces, where a selector may still match the page before it.
func (b *browser) until(expr string) bool {
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if ok, err := chromedp.Run(b.ctx, chromedp.Evaluate[bool](expr)); err == nil && ok {
			return true
		}
	}
	return false
}

func (b *browser) int(expr string) int {
	b.t.Helper()
	n, err := chromedp.Run(b.ctx, chromedp.Evaluate[int](expr))
	if err != nil {
		b.t.Fatalf("%s: %v", expr, err)
	}
	return n
}

func (b *browser) strings(expr string) []string {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[[]string](expr))
	if err != nil {
		b.t.Fatalf("%s: %v", expr, err)
	}
	return v
}

// shot saves a PNG of the whole page as name.
func (b *browser) shot(name string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		png, err := chromedp.FullScreenshot(100)(ctx, t)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(b.dir, name), png, 0o644)
	})
}

// pageBudget checks the overview's size and speed as a browser loads it: the HTML under 100 ms
// (the fastest of 7) and the page with its assets under 150 KB.
func pageBudget(t *testing.T, c *testCluster, session string) {
	t.Helper()
	hc := c.anonClient()
	get := func(path string) (int, time.Duration) {
		req, _ := http.NewRequest(http.MethodGet, c.controller()+path, nil)
		req.AddCookie(&http.Cookie{Name: "__Host-hanode-session", Value: session})
		start := time.Now()
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d", path, resp.StatusCode)
		}
		return len(b), time.Since(start)
	}
	get("/") // the connection's TLS handshake is not the page's time
	var times []time.Duration
	size := 0
	for range 7 {
		n, d := get("/")
		size, times = n, append(times, d)
	}
	slices.Sort(times)
	total := size
	for _, a := range []string{"/ui/static/ui.css", "/ui/static/ui.js", "/ui/static/icon.svg"} {
		n, _ := get(a)
		total += n
	}
	// The fastest of seven is the page's own cost: the others include waits for a CPU that the
	// rest of a parallel test run shares (the median is logged for the record).
	t.Logf("overview: HTML %d bytes, fastest %s, median %s (%v); with assets %d bytes", size, times[0], times[3], times, total)
	if times[0] > 100*time.Millisecond {
		t.Errorf("overview HTML took at least %s (fastest of 7), budget 100ms", times[0])
	}
	if total > 150<<10 {
		t.Errorf("overview with its assets is %d bytes, budget 150 KB", total)
	}
}

// evilSite serves, on another origin, a page whose form posts to target as soon as it loads.
func evilSite(t *testing.T, addr, target string) string {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `<!doctype html><body><form id="f" method="post" action="%s"><input name="csrf" value="guessed"></form><script>document.getElementById("f").submit()</script></body>`, target)
	}), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + addr + "/"
}

func mustS3(t *testing.T, c *testCluster, ak, sk string) *minio.Client {
	t.Helper()
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: c.machines[0].bundle.Pool()}}
	cl, err := minio.New(c.machines[0].addr+":9000", &minio.Options{Creds: credentials.NewStaticV4(ak, sk, ""), Secure: true, Transport: tr, Region: "us-east-1"})
	if err != nil {
		t.Fatal(err)
	}
	return cl
}
