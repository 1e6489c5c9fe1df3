package config

import (
	"fmt"
	"strconv"
	"strings"
)

// Size is a byte count written as a whole number with an optional unit: 1048576, 512KiB,
// 100MiB, 1GiB (binary) or 100MB, 1GB (decimal). It reads the same from a flag, the
// environment and the YAML file, and prints with the largest binary unit that divides it.
type Size int64

var sizeUnits = []struct {
	suffix string
	mult   int64
}{
	{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10},
	{"TB", 1e12}, {"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3}, {"B", 1},
}

// ParseSize parses s as a Size.
func ParseSize(s string) (Size, error) {
	t := strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range sizeUnits {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 || (mult > 1 && n > (1<<62)/mult) {
		return 0, fmt.Errorf("size %q: want a whole number of bytes with an optional unit (KiB, MiB, GiB, KB, MB, GB)", s)
	}
	return Size(n * mult), nil
}

// UnmarshalText parses a Size (flags, through kong).
func (z *Size) UnmarshalText(b []byte) error {
	v, err := ParseSize(string(b))
	if err != nil {
		return err
	}
	*z = v
	return nil
}

// String prints the size with the largest binary unit that divides it exactly.
func (z Size) String() string {
	for _, u := range sizeUnits[:4] {
		if z != 0 && int64(z)%u.mult == 0 {
			return strconv.FormatInt(int64(z)/u.mult, 10) + u.suffix
		}
	}
	return strconv.FormatInt(int64(z), 10)
}

// HumanBytes prints n bytes for people, rounded to one decimal in the largest binary unit
// below it ("1.5 GiB"); String, by contrast, prints a size exactly, as configuration takes it.
func HumanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatInt(n, 10) + " B"
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return strconv.FormatFloat(float64(n)/float64(div), 'f', 1, 64) + " " + string("KMGTPE"[exp]) + "iB"
}
