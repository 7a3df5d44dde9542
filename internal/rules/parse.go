package rules

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/custos-audit/custos"
	"gopkg.in/yaml.v3"
)

// Bounds of the rules file.
const (
	maxConfigBytes = 1 << 20
	maxWindow      = 31 * 24 * time.Hour // the longest window, lifetime or block
	maxAllowance   = time.Hour
	maxHistoryDays = 366
)

// ConfigError is a rules file refused: the line, the setting (a dotted
// path such as "rules.brute_force.window") and the reason.
type ConfigError struct {
	Line   int // 1-based; 0 when the file could not be read as YAML at all
	Field  string
	Reason string
}

func (e *ConfigError) Error() string {
	var b strings.Builder
	b.WriteString("rules file")
	if e.Line > 0 {
		fmt.Fprintf(&b, ", line %d", e.Line)
	}
	if e.Field != "" {
		b.WriteString(": " + e.Field)
	}
	b.WriteString(": " + e.Reason)
	return b.String()
}

// ParseConfig reads a rules file: the defaults of DefaultConfig, changed by
// what the file sets. It refuses, naming the line and the reason, anything
// that is not a known setting with a sane value: an unknown rule or field, a
// duplicate name, a zero or negative window, a threshold below one, an
// unknown severity, an invalid CIDR range, a block wider than the limits.
func ParseConfig(data []byte) (Config, error) {
	cfg := DefaultConfig()
	if len(data) > maxConfigBytes {
		return Config{}, &ConfigError{Reason: fmt.Sprintf("the file is larger than %d bytes", maxConfigBytes)}
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return Config{}, yamlError(err)
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return cfg, nil // an empty file: the defaults
	}
	d := decoder{lines: map[string]int{}}
	if err := d.mapping(doc.Content[0], "", d.top(&cfg)); err != nil {
		return Config{}, err
	}
	if err := d.check(&cfg); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

var yamlLine = regexp.MustCompile(`line (\d+)`)

// yamlError turns a YAML syntax error into a ConfigError with its line.
func yamlError(err error) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	e := &ConfigError{Reason: "not valid YAML: " + msg}
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		e.Line, _ = strconv.Atoi(m[1])
	}
	return e
}

// decoder walks the YAML nodes; lines remembers where each setting was
// written, for the checks that span several settings.
type decoder struct {
	lines map[string]int
}

// setter decodes one value node into its setting; path names the setting.
type setter func(n *yaml.Node, path string) error

func errAt(n *yaml.Node, path, format string, args ...any) error {
	return &ConfigError{Line: n.Line, Field: path, Reason: fmt.Sprintf(format, args...)}
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// mapping decodes a mapping whose keys must each be one of fields, once.
func (d *decoder) mapping(n *yaml.Node, path string, fields map[string]setter) error {
	if err := plain(n, path); err != nil {
		return err
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil // "rules:" with nothing under it changes nothing
	}
	if n.Kind != yaml.MappingNode {
		return errAt(n, path, "must be a mapping")
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		p := join(path, k.Value)
		if k.Kind != yaml.ScalarNode {
			return errAt(k, path, "keys must be plain names")
		}
		if first, dup := seen[k.Value]; dup {
			return errAt(k, p, "duplicate name (first set at line %d)", first)
		}
		seen[k.Value] = k.Line
		set, ok := fields[k.Value]
		if !ok {
			what := "unknown field"
			if path == "rules" {
				what = "unknown rule"
			}
			return errAt(k, p, "%s; expected one of %s", what, strings.Join(sortedKeys(fields), ", "))
		}
		d.lines[p] = v.Line
		if err := set(v, p); err != nil {
			return err
		}
	}
	return nil
}

// plain refuses aliases and anchors: a rules file says everything once.
func plain(n *yaml.Node, path string) error {
	if n.Kind == yaml.AliasNode || n.Anchor != "" {
		return errAt(n, path, "anchors and aliases are not allowed")
	}
	return nil
}

func scalar(n *yaml.Node, path, want string) (string, error) {
	if err := plain(n, path); err != nil {
		return "", err
	}
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		return "", errAt(n, path, "must be %s", want)
	}
	return n.Value, nil
}

func sortedKeys(m map[string]setter) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	// insertion sort: a handful of keys
	for i := 1; i < len(keys); i++ {
		for j := i; j > 0 && keys[j] < keys[j-1]; j-- {
			keys[j], keys[j-1] = keys[j-1], keys[j]
		}
	}
	return keys
}

// parseDuration reads a Go duration ("90s", "5m", "24h") or whole days
// ("30d").
func parseDuration(s string) (time.Duration, error) {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n < -1000 || n > 1000 {
			return 0, errors.New("bad days")
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	return time.ParseDuration(s)
}

// duration decodes a duration in (min, max]; zeroOK also allows 0 (none).
func duration(dst *time.Duration, zeroOK bool, max time.Duration) setter {
	return func(n *yaml.Node, path string) error {
		s, err := scalar(n, path, `a duration such as "5m", "24h" or "30d"`)
		if err != nil {
			return err
		}
		v, err := parseDuration(s)
		switch {
		case err != nil:
			return errAt(n, path, `%q is not a duration such as "5m", "24h" or "30d"`, s)
		case v < 0:
			return errAt(n, path, "must not be negative")
		case v == 0 && !zeroOK:
			return errAt(n, path, "must be positive")
		case v > max:
			return errAt(n, path, "must be at most %s", max)
		}
		*dst = v
		return nil
	}
}

func integer(dst *int, min, max int) setter {
	return func(n *yaml.Node, path string) error {
		s, err := scalar(n, path, "an integer")
		if err != nil {
			return err
		}
		v, err := strconv.Atoi(s)
		switch {
		case err != nil:
			return errAt(n, path, "%q is not an integer", s)
		case v < min && min == 1:
			return errAt(n, path, "must be at least 1 (zero would fire on nothing or on everything)")
		case v < min || v > max:
			return errAt(n, path, "must be from %d to %d", min, max)
		}
		*dst = v
		return nil
	}
}

func float(dst *float64, min, max float64) setter {
	return func(n *yaml.Node, path string) error {
		s, err := scalar(n, path, "a number")
		if err != nil {
			return err
		}
		v, err := strconv.ParseFloat(s, 64)
		if err != nil || math.IsNaN(v) || v < min || v > max {
			return errAt(n, path, "must be a number from %g to %g", min, max)
		}
		*dst = v
		return nil
	}
}

func boolean(dst *bool) setter {
	return func(n *yaml.Node, path string) error {
		s, err := scalar(n, path, "true or false")
		if err != nil {
			return err
		}
		switch s {
		case "true":
			*dst = true
		case "false":
			*dst = false
		default:
			return errAt(n, path, "must be true or false")
		}
		return nil
	}
}

func severity(dst *custos.Severity) setter {
	return func(n *yaml.Node, path string) error {
		s, err := scalar(n, path, "a severity")
		if err != nil {
			return err
		}
		if !custos.Severity(s).Valid() {
			return errAt(n, path, "%q is not a severity: LOW, MEDIUM, HIGH or CRITICAL", s)
		}
		*dst = custos.Severity(s)
		return nil
	}
}

// sequence calls each for every item of a sequence; null is an empty one.
func sequence(n *yaml.Node, path string, each func(item *yaml.Node, path string) error) error {
	if err := plain(n, path); err != nil {
		return err
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		return errAt(n, path, "must be a list")
	}
	for i, item := range n.Content {
		if err := each(item, fmt.Sprintf("%s[%d]", path, i)); err != nil {
			return err
		}
	}
	return nil
}

func prefixes(dst *[]netip.Prefix) setter {
	return func(n *yaml.Node, path string) error {
		out := []netip.Prefix{}
		seen := map[netip.Prefix]int{}
		err := sequence(n, path, func(item *yaml.Node, path string) error {
			s, err := scalar(item, path, "a CIDR range")
			if err != nil {
				return err
			}
			p, err := custos.ParseBlockTarget(s)
			if err != nil {
				return errAt(item, path, "%q is not an IP address or CIDR range", s)
			}
			if first, dup := seen[p]; dup {
				return errAt(item, path, "duplicate range %s (first at line %d)", p, first)
			}
			seen[p] = item.Line
			out = append(out, p)
			return nil
		})
		*dst = out
		return err
	}
}

func names(dst *[]string) setter {
	return func(n *yaml.Node, path string) error {
		out := []string{}
		seen := map[string]int{}
		err := sequence(n, path, func(item *yaml.Node, path string) error {
			s, err := scalar(item, path, "a name")
			if err != nil {
				return err
			}
			if s == "" || len(s) > 50 {
				return errAt(item, path, "must be a resource type of 1 to 50 characters")
			}
			if first, dup := seen[s]; dup {
				return errAt(item, path, "duplicate name %q (first at line %d)", s, first)
			}
			seen[s] = item.Line
			out = append(out, s)
			return nil
		})
		*dst = out
		return err
	}
}
