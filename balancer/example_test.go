package balancer_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"

	"github.com/hanode/hanode/balancer"
)

// A Proxy in front of two coordinators keeps each session on one of them: here sessions are
// named by a request header; without one, by the client's address. Every response carries a
// signed pin (a cookie and the Hanode-Affinity header) that keeps the session in place even
// through another proxy.
func Example() {
	var ups []balancer.Upstream
	for _, name := range []string{"coord-a", "coord-b"} {
		coord := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, name) // a stand-in coordinator answers with its name
		}))
		defer coord.Close()
		u, _ := url.Parse(coord.URL)
		ups = append(ups, balancer.Upstream{ID: name, URL: u})
	}

	p, err := balancer.New(balancer.Config{
		AffinityHeader: "X-Session-Id",
		SlowStart:      -1, // no ramp for new coordinators: placement depends on the sessions alone
		Logger:         slog.New(slog.DiscardHandler),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := p.SetUpstreams(ups); err != nil {
		fmt.Println(err)
		return
	}
	if err := p.Start(context.Background()); err != nil { // health checks and session expiry
		fmt.Println(err)
		return
	}
	defer p.Close()
	front := httptest.NewServer(p)
	defer front.Close()

	get := func(session string) (coordinator string, pinned bool) {
		req, _ := http.NewRequest(http.MethodGet, front.URL+"/bucket/key", nil)
		req.Header.Set("X-Session-Id", session)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err.Error(), false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b), resp.Header.Get(balancer.PinHeader) != ""
	}
	for _, session := range []string{"alice", "bob", "carol", "dave"} {
		first, pinned := get(session)
		second, _ := get(session)
		third, _ := get(session)
		fmt.Println(session, first, second, third, "pinned:", pinned)
	}

	// coord-b leaves: its sessions move to coord-a. When it is back, they stay where they are
	// (the session table and their pins keep them), so a recovering coordinator does not pull
	// its old clients back.
	if err := p.SetUpstreams(ups[:1]); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("without coord-b:")
	for _, session := range []string{"alice", "bob"} {
		c, _ := get(session)
		fmt.Println(session, c)
	}
	if err := p.SetUpstreams(ups); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("coord-b back:")
	for _, session := range []string{"alice", "bob"} {
		c, _ := get(session)
		fmt.Println(session, c)
	}
	// Output:
	// alice coord-a coord-a coord-a pinned: true
	// bob coord-b coord-b coord-b pinned: true
	// carol coord-b coord-b coord-b pinned: true
	// dave coord-b coord-b coord-b pinned: true
	// without coord-b:
	// alice coord-a
	// bob coord-a
	// coord-b back:
	// alice coord-a
	// bob coord-a
}
