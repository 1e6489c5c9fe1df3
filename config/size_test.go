package config

import (
	"os"
	"strings"
	"testing"
)

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Size
		str  string
	}{
		{"1048576", 1 << 20, "1MiB"},
		{"100MiB", 100 << 20, "100MiB"},
		{"512KiB", 512 << 10, "512KiB"},
		{" 2GiB ", 2 << 30, "2GiB"},
		{"100MB", 100e6, "100000000"}, {"1MB", 1e6, "1000000"},
		{"1000", 1000, "1000"},
		{"0", 0, "0"},
	} {
		got, err := ParseSize(tc.in)
		if err != nil || got != tc.want || got.String() != tc.str {
			t.Errorf("ParseSize(%q) = %d (%s), %v; want %d (%s)", tc.in, got, got, err, tc.want, tc.str)
		}
	}
	for _, bad := range []string{"", "MiB", "-1", "1.5GiB", "10XB", "99999999999TiB"} {
		if _, err := ParseSize(bad); err == nil {
			t.Errorf("ParseSize(%q) accepted", bad)
		}
	}
}

// repair-rate reads from the file and the environment like any key, and a bad value names it.
func TestRepairKeys(t *testing.T) {
	dir := t.TempDir()
	good, bad := dir+"/good.yaml", dir+"/bad.yaml"
	if err := os.WriteFile(good, []byte("repair-rate: 8MiB\nrepair-grace: 2s\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte("repair-rate: fast\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, _, err := Load(Sources{File: good})
	if err != nil {
		t.Fatal(err)
	}
	if c.RepairRate != 8<<20 || c.RepairGrace.Seconds() != 2 {
		t.Fatalf("repair-rate %v, repair-grace %v", c.RepairRate, c.RepairGrace)
	}
	_, _, err = Load(Sources{File: bad})
	if err == nil || !strings.Contains(err.Error(), "repair-rate") {
		t.Fatalf("bad repair-rate: %v", err)
	}
}

// capacity: a size from the file, 0 by default; below 1MiB (but not 0) it is refused by name.
func TestCapacityKey(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		yaml string
		want Size
		err  bool
	}{
		{"", 0, false},
		{"capacity: 2GiB\n", 2 << 30, false},
		{"capacity: 0\n", 0, false},
		{"capacity: 512KiB\n", 0, true},
		{"capacity: lots\n", 0, true},
	} {
		f := dir + "/c.yaml"
		if err := os.WriteFile(f, []byte("name: m1\n"+tc.yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		c, _, err := Load(Sources{File: f})
		if tc.err {
			if err == nil || !strings.Contains(err.Error(), "capacity") {
				t.Errorf("%q: %v", tc.yaml, err)
			}
			continue
		}
		if err != nil || c.Capacity != tc.want {
			t.Errorf("%q: capacity %v, %v", tc.yaml, c.Capacity, err)
		}
	}
}

// inline-max: 4KiB by default, from the file or HANODE_INLINE_MAX, 0 to 64KiB; beyond, refused
// by name.
func TestInlineMaxKey(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		yaml, env string
		want      Size
		err       bool
	}{
		{"", "", 4 << 10, false},
		{"inline-max: 0\n", "", 0, false},
		{"inline-max: 64KiB\n", "", 64 << 10, false},
		{"inline-max: 1KiB\n", "3KiB", 3 << 10, false},
		{"inline-max: 65537\n", "", 0, true},
		{"", "1MiB", 0, true},
	} {
		f := dir + "/c.yaml"
		if err := os.WriteFile(f, []byte("name: m1\n"+tc.yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		env := func(k string) (string, bool) {
			if k == "HANODE_INLINE_MAX" && tc.env != "" {
				return tc.env, true
			}
			return "", false
		}
		c, _, err := Load(Sources{File: f, Env: env})
		if tc.err {
			if err == nil || !strings.Contains(err.Error(), "inline-max") {
				t.Errorf("%q %q: %v", tc.yaml, tc.env, err)
			}
			continue
		}
		if err != nil || c.InlineMax != tc.want {
			t.Errorf("%q %q: inline-max %v, %v", tc.yaml, tc.env, c.InlineMax, err)
		}
	}
}
