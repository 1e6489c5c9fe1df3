package packaging

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"
)

// ManPage renders hanode(1) from the binary's own --help output (kong has no man page
// generator): the top-level help, then every command the Commands sections list, found
// recursively, without the global flags each of them repeats. It returns the page gzipped.
// bin must run on this machine; the text is the same for every architecture.
func ManPage(bin, version string, date time.Time) ([]byte, error) {
	// The help runs in a scratch directory, so a relative path would not resolve.
	bin, err := filepath.Abs(bin)
	if err != nil {
		return nil, fmt.Errorf("man page: binary %s: %w", bin, err)
	}
	top, err := runHelp(bin)
	if err != nil {
		return nil, err
	}
	root := parseHelp(top)
	global := root.section("Flags")
	var cmds []helpCommand
	seen := map[string]bool{}
	var walk func(h help, depth int) error
	walk = func(h help, depth int) error {
		for _, path := range h.commands() {
			key := strings.Join(path, " ")
			if seen[key] || depth > 4 {
				continue
			}
			seen[key] = true
			out, err := runHelp(bin, path...)
			if err != nil {
				return err
			}
			sub := parseHelp(out)
			if len(sub.commands()) > 0 { // a group such as "token": document its commands
				if err := walk(sub, depth+1); err != nil {
					return err
				}
				continue
			}
			cmds = append(cmds, helpCommand{key, sub.without(global)})
		}
		return nil
	}
	if err := walk(root, 1); err != nil {
		return nil, err
	}
	if len(cmds) == 0 {
		return nil, fmt.Errorf("man page: %s --help lists no commands", bin)
	}
	page := renderMan(version, date, root, cmds)
	gz, err := gzipBytes(page)
	if err != nil {
		return nil, fmt.Errorf("man page: %w", err)
	}
	return gz, nil
}

type helpCommand struct {
	name string
	help help
}

// runHelp runs `bin args... --help` in an empty directory with a minimal environment, so that
// neither a HANODE_* variable nor the terminal width changes the text.
func runHelp(bin string, args ...string) (string, error) {
	dir, err := os.MkdirTemp("", "hanode-help-")
	if err != nil {
		return "", fmt.Errorf("man page: %w", err)
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	argv := append(slices.Clone(args), "--help")
	cmd := exec.CommandContext(ctx, bin, argv...)
	cmd.Dir = dir
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + dir, "LANG=C", "COLUMNS=80"}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("man page: %s %s: %w: %s", bin, strings.Join(argv, " "), err, strings.TrimSpace(stderr.String()))
	}
	return string(out), nil
}

// help is kong's help text split into its sections: the untitled head (usage and description),
// then "Flags", "Arguments", "Commands", ... in order.
type help []helpSection

type helpSection struct {
	title string
	lines []string
}

var sectionRE = regexp.MustCompile(`^([A-Z][A-Za-z ]*):$`)

func parseHelp(text string) help {
	h := help{{}}
	for _, line := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
		if m := sectionRE.FindStringSubmatch(line); m != nil {
			h = append(h, helpSection{title: m[1]})
			continue
		}
		last := &h[len(h)-1]
		last.lines = append(last.lines, strings.TrimRight(line, " "))
	}
	for i := range h {
		h[i].lines = trimBlank(h[i].lines)
	}
	return h
}

func (h help) section(title string) []string {
	for _, s := range h {
		if s.title == title {
			return s.lines
		}
	}
	return nil
}

// commandRE matches a command line of a Commands section: two spaces, the command path, then
// two or more spaces and its help (or the end of the line when the path is long).
var commandRE = regexp.MustCompile(`^  ([a-z][a-z0-9-]*(?: [a-z][a-z0-9-]*)*)(?:  |$)`)

func (h help) commands() [][]string {
	var out [][]string
	for _, line := range h.section("Commands") {
		if m := commandRE.FindStringSubmatch(line); m != nil {
			out = append(out, strings.Fields(m[1]))
		}
	}
	return out
}

// without drops the lines a subcommand's Flags section repeats from the global ones.
func (h help) without(global []string) help {
	out := slices.Clone(h)
	for i, s := range out {
		if s.title != "Flags" {
			continue
		}
		lines := s.lines
		if len(global) > 0 && len(lines) >= len(global) && slices.Equal(lines[:len(global)], global) {
			lines = trimBlank(lines[len(global):])
		}
		out[i] = helpSection{title: "Flags (besides the global options)", lines: lines}
	}
	return slices.DeleteFunc(out, func(s helpSection) bool { return s.title != "" && len(s.lines) == 0 })
}

func trimBlank(lines []string) []string {
	for len(lines) > 0 && lines[0] == "" {
		lines = lines[1:]
	}
	for len(lines) > 0 && lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	return lines
}

func renderMan(version string, date time.Time, root help, cmds []helpCommand) []byte {
	var b bytes.Buffer
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	p(`.\" Generated by packaging/manpage.go from "hanode --help"; do not edit.`)
	p(`.TH HANODE 1 "%s" "hanode %s" "User Commands"`, date.UTC().Format("2006-01-02"), roff(version))
	p(".SH NAME")
	p(`hanode \- highly available replicated object store with a built\-in TLS load balancer`)
	p(".SH SYNOPSIS")
	p(`.B hanode`)
	p(`[\fIflags\fR]`)
	p(".br")
	p(`.B hanode`)
	p(`\fIcommand\fR [\fIflags\fR]`)
	p(".SH DESCRIPTION")
	// The head is "Usage: ..." and then the description paragraphs.
	head := root.section("")
	if len(head) > 0 && strings.HasPrefix(head[0], "Usage:") {
		head = trimBlank(head[1:])
	}
	for i, line := range head {
		if line == "" {
			p(".PP")
			continue
		}
		if i > 0 && head[i-1] != "" {
			b.Truncate(b.Len() - 1) // join wrapped lines: the formatter fills paragraphs itself
			b.WriteByte(' ')
		}
		p("%s", roffText(line))
	}
	p(".PP")
	p("Every flag is also a key of the YAML file given with \\fB\\-\\-config\\fR and an environment variable HANODE_\\fIKEY\\fR (upper case, dashes as underscores); precedence is flag, environment, file, default.")
	p(".SH OPTIONS")
	pre(&b, root.section("Flags"))
	p(".SH COMMANDS")
	for _, c := range cmds {
		p(`.SS "hanode %s"`, roff(c.name))
		var lines []string
		for _, s := range c.help {
			if s.title != "" {
				lines = append(lines, "", s.title+":")
			}
			lines = append(lines, s.lines...)
		}
		pre(&b, lines)
	}
	p(".SH FILES")
	p(".TP")
	p(`.I /etc/hanode/hanode.yaml`)
	p("The configuration the systemd unit passes with \\fB\\-\\-config\\fR.")
	p(".TP")
	p(`.I /var/lib/hanode`)
	p("The data directory of the packaged service: certificates, keyring, etcd and role data.")
	p(".TP")
	p(`.I /usr/lib/systemd/system/hanode.service`)
	p("The systemd unit; it runs hanode as the hanode user.")
	p(".SH SEE ALSO")
	p(`.BR systemctl (1),`)
	p(`.BR journalctl (1)`)
	return b.Bytes()
}

// pre writes lines as a no-fill block, which keeps kong's alignment.
func pre(b *bytes.Buffer, lines []string) {
	b.WriteString(".PP\n.nf\n")
	for _, l := range lines {
		b.WriteString(roffText(l) + "\n")
	}
	b.WriteString(".fi\n")
}

// roff escapes text for troff: backslashes and dashes (so that options are copied as ASCII
// hyphen-minus), and a leading dot or apostrophe, which would start a request.
func roff(s string) string {
	return strings.NewReplacer(`\`, `\e`, "-", `\-`).Replace(s)
}

func roffText(s string) string {
	s = roff(s)
	if strings.HasPrefix(s, ".") || strings.HasPrefix(s, "'") {
		s = `\&` + s
	}
	return s
}
