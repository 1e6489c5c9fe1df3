package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// EnvPrefix starts every environment variable hanode reads.
const EnvPrefix = "HANODE_"

// key is one configuration key, bound to its struct field.
type key struct {
	name  string
	index int
	field reflect.StructField
}

func keys() []key {
	t := reflect.TypeOf(Config{})
	out := make([]key, 0, t.NumField())
	for i := range t.NumField() {
		f := t.Field(i)
		if n := f.Tag.Get("yaml"); n != "" {
			out = append(out, key{name: n, index: i, field: f})
		}
	}
	return out
}

// Keys lists every key name, in declaration order.
func Keys() []string {
	var out []string
	for _, k := range keys() {
		out = append(out, k.name)
	}
	return out
}

// EnvName is the environment variable for a key: data-dir → HANODE_DATA_DIR.
func EnvName(key string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(key, "-", "_"))
}

func lookupKey(name string) (key, bool) {
	for _, k := range keys() {
		if k.name == name {
			return k, true
		}
	}
	return key{}, false
}

var (
	durationType = reflect.TypeOf(time.Duration(0))
	sizeType     = reflect.TypeOf(Size(0))
)

// setString parses s as the key's type and stores it in c.
func (k key) setString(c *Config, s string) error {
	v := reflect.ValueOf(c).Elem().Field(k.index)
	switch {
	case v.Type() == durationType:
		d, err := time.ParseDuration(strings.TrimSpace(s))
		if err != nil {
			return keyErr(k.name, s, "a duration such as 500ms, 3s or 1m")
		}
		v.SetInt(int64(d))
	case v.Type() == sizeType:
		z, err := ParseSize(s)
		if err != nil {
			return keyErr(k.name, s, "a size such as 1048576, 512KiB, 100MiB or 1GiB")
		}
		v.SetInt(int64(z))
	case v.Kind() == reflect.String:
		v.SetString(s)
	case v.Kind() == reflect.Bool:
		b, err := strconv.ParseBool(strings.TrimSpace(s))
		if err != nil {
			return keyErr(k.name, s, "true or false")
		}
		v.SetBool(b)
	case v.Kind() == reflect.Int || v.Kind() == reflect.Int64:
		n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
		if err != nil {
			return keyErr(k.name, s, "a whole number")
		}
		v.SetInt(n)
	case v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.String:
		var list []string
		for _, part := range strings.Split(s, ",") {
			if part = strings.TrimSpace(part); part != "" {
				list = append(list, part)
			}
		}
		v.Set(reflect.ValueOf(list))
	default:
		return fmt.Errorf("config: key %s has unsupported type %s", k.name, v.Type())
	}
	return nil
}

// Origin says where a key's effective value came from.
type Origin struct {
	Kind   string // default, file, env, flag
	Detail string // the file path, variable name or flag
}

func (o Origin) String() string {
	if o.Detail == "" {
		return o.Kind
	}
	return o.Kind + " " + o.Detail
}

// Origins maps each key to where its value came from.
type Origins map[string]Origin

// Sources are the inputs to Load besides the defaults.
type Sources struct {
	// File is the YAML file to read; empty reads none.
	File string
	// Env looks up an environment variable (os.LookupEnv in production).
	Env func(string) (string, bool)
	// Flags holds values parsed from the command line; only the keys named in FlagsSet are used.
	Flags    *Config
	FlagsSet []string
}

// Load builds the effective configuration: defaults, then the file, then the environment, then
// the flags that were given; then it derives dependent defaults and validates. Every error names
// the key (and file) at fault.
func Load(src Sources) (*Config, Origins, error) {
	c := Default()
	origins := Origins{}
	for _, k := range Keys() {
		origins[k] = Origin{Kind: "default"}
	}
	if src.File != "" {
		data, err := os.ReadFile(src.File)
		if err != nil {
			return nil, nil, fmt.Errorf("read config file: %w", err)
		}
		set, err := parseYAML(c, data)
		if err != nil {
			return nil, nil, fmt.Errorf("config file %s: %w", src.File, err)
		}
		for _, k := range set {
			origins[k] = Origin{Kind: "file", Detail: src.File}
		}
	}
	if src.Env != nil {
		for _, k := range keys() {
			name := EnvName(k.name)
			if s, ok := src.Env(name); ok {
				if err := k.setString(c, s); err != nil {
					return nil, nil, fmt.Errorf("environment %s: %w", name, err)
				}
				origins[k.name] = Origin{Kind: "env", Detail: name}
			}
		}
	}
	if src.Flags != nil {
		from := reflect.ValueOf(src.Flags).Elem()
		to := reflect.ValueOf(c).Elem()
		for _, name := range src.FlagsSet {
			k, ok := lookupKey(name)
			if !ok {
				continue // a flag that is not a config key (e.g. --config)
			}
			to.Field(k.index).Set(from.Field(k.index))
			origins[name] = Origin{Kind: "flag", Detail: "--" + name}
		}
	}
	c.Derive()
	if err := c.Check(); err != nil {
		return nil, nil, err
	}
	return c, origins, nil
}

// parseYAML decodes a YAML mapping of keys into c, strictly: unknown keys, duplicate keys and
// values of the wrong type are errors naming the key and line. It returns the keys it set.
func parseYAML(c *Config, data []byte) ([]string, error) {
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil // an empty file sets nothing
		}
		return nil, fmt.Errorf("not valid YAML: %w", err)
	}
	if len(doc.Content) == 0 {
		return nil, nil
	}
	m := doc.Content[0]
	if m.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("line %d: expected a mapping of keys to values", m.Line)
	}
	var set []string
	for i := 0; i+1 < len(m.Content); i += 2 {
		kn, vn := m.Content[i], m.Content[i+1]
		k, ok := lookupKey(kn.Value)
		if !ok {
			return nil, fmt.Errorf("line %d: unknown key %q; allowed keys: %s", kn.Line, kn.Value, strings.Join(Keys(), ", "))
		}
		if slices.Contains(set, k.name) {
			return nil, fmt.Errorf("line %d: key %q given twice", kn.Line, kn.Value)
		}
		if err := k.setNode(c, vn); err != nil {
			return nil, fmt.Errorf("line %d: %w", vn.Line, err)
		}
		set = append(set, k.name)
	}
	return set, nil
}

func (k key) setNode(c *Config, n *yaml.Node) error {
	v := reflect.ValueOf(c).Elem().Field(k.index)
	switch {
	case v.Kind() == reflect.Slice && n.Kind == yaml.SequenceNode:
		var list []string
		for _, item := range n.Content {
			if item.Kind != yaml.ScalarNode {
				return keyErr(k.name, "(nested value)", "a list of strings")
			}
			list = append(list, item.Value)
		}
		v.Set(reflect.ValueOf(list))
		return nil
	case n.Kind == yaml.ScalarNode:
		return k.setString(c, n.Value)
	default:
		return keyErr(k.name, "(non-scalar value)", "a single value"+map[bool]string{true: " or a list", false: ""}[v.Kind() == reflect.Slice])
	}
}

// Show writes the effective configuration as YAML-like lines, each with its origin, in key
// order. Keys tagged secret (the join token, credentials) show only whether they are set.
func Show(w io.Writer, c *Config, o Origins) error {
	v := reflect.ValueOf(c).Elem()
	for _, k := range keys() {
		f := v.Field(k.index)
		var val string
		switch {
		case k.field.Tag.Get("secret") == "true":
			val = "(unset)"
			if !f.IsZero() {
				val = "(set, redacted)"
			}
		case f.Type() == durationType:
			val = time.Duration(f.Int()).String()
		case f.Kind() == reflect.Slice:
			val = "[" + strings.Join(f.Interface().([]string), ", ") + "]"
		default:
			val = fmt.Sprint(f.Interface())
		}
		if _, err := fmt.Fprintf(w, "%-26s %-40s # %s\n", k.name+":", val, o[k.name]); err != nil {
			return err
		}
	}
	return nil
}
