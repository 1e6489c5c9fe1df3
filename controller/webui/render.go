package webui

import (
	"bytes"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"time"

	"github.com/hanode/hanode/adminapi"
	"github.com/hanode/hanode/config"
)

// pageNames are the pages; each is templates/<name>.html on top of templates/layout.html. A page
// that updates itself defines "live", which its /ui/live/ endpoint renders alone.
var pageNames = []string{"signin", "error", "overview", "machine", "objects", "object", "access"}

func parsePages() map[string]*template.Template {
	base := template.Must(template.New("layout.html").Funcs(funcs).ParseFS(assets, "templates/layout.html", "templates/parts.html"))
	out := map[string]*template.Template{}
	for _, name := range pageNames {
		out[name] = template.Must(template.Must(base.Clone()).ParseFS(assets, "templates/"+name+".html"))
	}
	return out
}

// view is what every template gets.
type view struct {
	Cluster  string
	Machine  string // the controller serving the page
	Page     string
	V        *viewer
	D        any
	Now      time.Time
	Poll     int // milliseconds between refreshes of the live part
	Rendered time.Duration
}

func (u *UI) view(page string, v *viewer, d any) view {
	return view{Cluster: u.cfg.Cluster, Machine: u.cfg.Machine, Page: page, V: v, D: d, Now: time.Now().UTC(), Poll: int(PollInterval / time.Millisecond)}
}

func (u *UI) render(w http.ResponseWriter, r *http.Request, status int, page string, v *viewer, d any) {
	var buf bytes.Buffer
	if err := u.pages[page].ExecuteTemplate(&buf, "layout", u.view(page, v, d)); err != nil {
		u.cfg.Log.Error("web UI: render", "page", page, "err", err)
		http.Error(w, "could not render the page: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// fragment renders a page's live part alone.
func (u *UI) fragment(w http.ResponseWriter, page string, v *viewer, d any) {
	var buf bytes.Buffer
	if err := u.pages[page].ExecuteTemplate(&buf, "live", u.view(page, v, d)); err != nil {
		u.cfg.Log.Error("web UI: render", "page", page, "err", err)
		http.Error(w, "could not render: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = w.Write(buf.Bytes())
}

var funcs = template.FuncMap{
	"bytes":  config.HumanBytes,
	"ago":    ago,
	"ts":     func(t time.Time) string { return stamp(t) },
	"capbar": capBar,
	"strip":  machineStrip,
	"gauge":  gauge,
	"q":      url.QueryEscape,
	"path":   url.PathEscape,
	"short":  func(s string, n int) string { return short(s, n) },
	"objurl": func(bucket, key string) string {
		return "/object?" + url.Values{"bucket": {bucket}, "key": {key}}.Encode()
	},
	"dirurl": func(bucket, prefix string) string {
		return "/objects?" + url.Values{"bucket": {bucket}, "prefix": {prefix}}.Encode()
	},
	"rest":    func(s, prefix string) string { return s[min(len(prefix), len(s)):] },
	"used":    func(capacity, free int64) int64 { return capacity - free },
	"running": func(s string) bool { return s == adminapi.RoleRunning },
	"int64":   func(f float64) int64 { return int64(f) },
	"eta":     eta,
	"riskbar": riskBar,
}

// eta says how long seconds is, or "unknown" when negative.
func eta(seconds float64) string {
	if seconds < 0 {
		return "unknown"
	}
	return (time.Duration(seconds) * time.Second).Round(time.Second).String()
}

// riskBar draws the chunks needing repair by priority, plus those waiting and those lost, as
// one stacked bar (nothing when there are none).
func riskBar(classes []adminapi.RepairClass, waiting, lost int64) template.HTML {
	total := waiting + lost
	for _, c := range classes {
		total += c.Chunks
	}
	if total == 0 {
		return ""
	}
	var b bytes.Buffer
	b.WriteString(`<svg class="bar" viewBox="0 0 200 10" width="200" height="10" role="img" aria-label="chunks to repair by priority">`)
	x := 0.0
	seg := func(cls, title string, n int64) {
		if n == 0 {
			return
		}
		w := float64(n) / float64(total) * 200
		fmt.Fprintf(&b, `<rect class="%s" x="%.1f" width="%.1f" height="10"><title>%d %s</title></rect>`, cls, x, w, n, template.HTMLEscapeString(title))
		x += w
	}
	seg("risk-lost", "unrecoverable", lost)
	for _, c := range classes {
		cls := "risk"
		if c.Priority == "critical" {
			cls = "risk-critical"
		}
		seg(cls, c.Priority, c.Chunks)
	}
	seg("risk-waiting", "waiting for repair-grace", waiting)
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2006-01-02 15:04:05Z")
}

// ago says how long before now t was, to the second.
func ago(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	d := time.Since(t).Round(time.Second)
	switch {
	case d < time.Second:
		return "now"
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds ago", int(d.Minutes()), int(d.Seconds())%60)
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%02dm ago", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd ago", int(d.Hours()/24))
}

func short(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// capBar draws a datanode's used space as a bar (SVG; the stylesheet colours its classes).
func capBar(capacity, free int64) template.HTML {
	if capacity <= 0 {
		return ""
	}
	used := float64(capacity-free) / float64(capacity) * 100
	cls := "used"
	if used >= 90 {
		cls = "used full"
	}
	return template.HTML(fmt.Sprintf(`<svg class="bar" viewBox="0 0 100 8" width="100" height="8" role="img" aria-label="%.0f%% used"><title>%.0f%% used</title><rect class="track" width="100" height="8"/><rect class="%s" width="%.1f" height="8"/></svg>`, used, used, cls, used))
}

// machineStrip draws one square per machine, coloured by its state, titled with its name.
func machineStrip(ms []adminapi.MachineState) template.HTML {
	var b bytes.Buffer
	w := max(len(ms)*18, 18)
	fmt.Fprintf(&b, `<svg class="strip" viewBox="0 0 %d 16" width="%d" height="16" role="img" aria-label="machines by state">`, w, w)
	for i, m := range ms {
		fmt.Fprintf(&b, `<rect class="st-%s" x="%d" y="0" width="14" height="14" rx="2"><title>%s: %s</title></rect>`,
			template.HTMLEscapeString(m.State), i*18, template.HTMLEscapeString(m.Name), template.HTMLEscapeString(m.State))
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

// gauge draws have against need (writable datanodes against the replication factor): a row of
// cells, the first need of them marked as the minimum.
func gauge(have, need int) template.HTML {
	n := max(have, need, 1)
	var b bytes.Buffer
	fmt.Fprintf(&b, `<svg class="gauge" viewBox="0 0 %d 14" width="%d" height="14" role="img" aria-label="%d of %d needed">`, n*16, n*16, have, need)
	for i := range n {
		cls := "cell"
		switch {
		case i < have && have >= need:
			cls = "cell ok"
		case i < have:
			cls = "cell low"
		case i < need:
			cls = "cell missing"
		}
		fmt.Fprintf(&b, `<rect class="%s" x="%d" y="0" width="13" height="13" rx="2"/>`, cls, i*16)
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}
