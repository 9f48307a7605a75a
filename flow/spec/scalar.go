package spec

import (
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// str reads scalar n as a string with ${params.x} replaced. ok is false
// when an error was recorded (or when it refers to a param that has no
// value, whose error is recorded elsewhere).
func (p *parser) str(n *yaml.Node, what, expected string) (string, bool) {
	n = resolve(n)
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		p.errorf(n, "", "%s: expected %s, found %s", what, expected, describe(n))
		return "", false
	}
	return p.interpolate(n, unprotect(n.Value))
}

// literal reads scalar n as a string without interpolation.
func (p *parser) literal(n *yaml.Node, what, expected string) (string, bool) {
	n = resolve(n)
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		p.errorf(n, "", "%s: expected %s, found %s", what, expected, describe(n))
		return "", false
	}
	return unprotect(n.Value), true
}

// interpolate replaces every ${params.NAME} in s, the value of n.
// "$${" stands for a literal "${".
func (p *parser) interpolate(n *yaml.Node, s string) (string, bool) {
	if !strings.Contains(s, "${") {
		return s, true
	}
	var b strings.Builder
	ok := true
	for i := 0; i < len(s); {
		if strings.HasPrefix(s[i:], "$${") {
			b.WriteString("${")
			i += 3
			continue
		}
		if !strings.HasPrefix(s[i:], "${") {
			b.WriteByte(s[i])
			i++
			continue
		}
		line, col := p.offsetPos(n, s, i)
		end := strings.IndexByte(s[i:], '}')
		if end < 0 {
			p.errorAt(line, col, `write ${params.NAME}, or $${ for a literal "${"`, "unterminated %q", s[i:])
			return "", false
		}
		ref := s[i : i+end+1]
		inner := strings.TrimSpace(ref[2 : len(ref)-1])
		i += end + 1
		name, isParam := strings.CutPrefix(inner, "params.")
		if !isParam || !isIdent(name) {
			p.errorAt(line, col, "only ${params.NAME} lookups are allowed: there is no expression language", "bad interpolation %s", ref)
			ok = false
			continue
		}
		v, has := p.params[name]
		if !has {
			if !p.declared[name] {
				p.errorAt(line, col, p.paramHint(name), "unknown param %q in %s", name, ref)
			}
			ok = false
			continue
		}
		b.WriteString(formatValue(v))
	}
	return b.String(), ok
}

// offsetPos is the position of byte offset i of s, the value of n: exact
// for a plain one-line scalar, the node's position otherwise.
func (p *parser) offsetPos(n *yaml.Node, s string, i int) (int, int) {
	if n.Style == 0 && !strings.Contains(s, "\n") {
		return n.Line, n.Column + utf8.RuneCountInString(s[:i])
	}
	return n.Line, n.Column
}

func (p *parser) paramHint(name string) string {
	if len(p.names) == 0 {
		return "no params are declared: declare it under params:"
	}
	if s := closest(name, p.names); s != "" {
		return "did you mean " + strconv.Quote(s) + "? declared params: " + strings.Join(p.names, ", ")
	}
	return "declared params: " + strings.Join(p.names, ", ")
}

func isIdent(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		switch {
		case r == '_', r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z':
		case i > 0 && (r >= '0' && r <= '9' || r == '-'):
		default:
			return false
		}
	}
	return true
}

// formatValue writes a param value the way it reads back.
func formatValue(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case int64:
		return strconv.FormatInt(v, 10)
	case float64:
		return strconv.FormatFloat(v, 'g', -1, 64)
	case bool:
		return strconv.FormatBool(v)
	case time.Duration:
		return v.String()
	}
	return ""
}

// integer reads n as an integer no smaller than min.
func (p *parser) integer(n *yaml.Node, what string, min int) (int, bool) {
	s, ok := p.str(n, what, "an integer")
	if !ok {
		return 0, false
	}
	v, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		p.errorf(n, "", "%s: expected an integer, found %q", what, s)
		return 0, false
	}
	if v < min {
		p.errorf(n, "", "%s: must be at least %d, found %d", what, min, v)
		return 0, false
	}
	return v, true
}

const durationHint = "use Go durations like 2m, 30s, 1h30m, 500ms"

// duration reads n as a Go duration no smaller than zero.
func (p *parser) duration(n *yaml.Node, what string) (time.Duration, bool) {
	s, ok := p.str(n, what, "a duration")
	if !ok {
		return 0, false
	}
	d, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		p.errorf(n, durationHint, "%s: bad duration %q", what, s)
		return 0, false
	}
	if d < 0 {
		p.errorf(n, "", "%s: must not be negative, found %s", what, s)
		return 0, false
	}
	return d, true
}

// boolean reads n as true or false.
func (p *parser) boolean(n *yaml.Node, what string) (bool, bool) {
	s, ok := p.str(n, what, "true or false")
	if !ok {
		return false, false
	}
	switch strings.TrimSpace(s) {
	case "true":
		return true, true
	case "false":
		return false, true
	}
	p.errorf(n, "use true or false", "%s: expected true or false, found %q", what, s)
	return false, false
}

// enum reads n as one of allowed.
func (p *parser) enum(n *yaml.Node, what string, allowed []string) (string, bool) {
	s, ok := p.str(n, what, "one of "+strings.Join(allowed, ", "))
	if !ok {
		return "", false
	}
	s = strings.TrimSpace(s)
	if contains(allowed, s) {
		return s, true
	}
	hint := "use one of " + strings.Join(allowed, ", ")
	if c := closest(s, allowed); c != "" {
		hint = "did you mean " + strconv.Quote(c) + "? " + hint
	}
	p.errorf(n, hint, "%s: unknown value %q", what, s)
	return "", false
}

// convert turns s into a value of type t; a relative path is made
// absolute against dir.
func convert(s string, t ParamType, dir string) (any, string) {
	switch t {
	case ParamString:
		return s, ""
	case ParamPath:
		if s == "" {
			return nil, "expects a path, found an empty string"
		}
		return absPath(dir, s), ""
	case ParamInt:
		v, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
		if err != nil {
			return nil, "expects an int, found " + strconv.Quote(s)
		}
		return v, ""
	case ParamFloat:
		v, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, "expects a float, found " + strconv.Quote(s)
		}
		return v, ""
	case ParamBool:
		switch strings.TrimSpace(s) {
		case "true":
			return true, ""
		case "false":
			return false, ""
		}
		return nil, "expects true or false, found " + strconv.Quote(s)
	case ParamDuration:
		d, err := time.ParseDuration(strings.TrimSpace(s))
		if err != nil {
			return nil, "expects a duration (Go syntax like 2m, 30s), found " + strconv.Quote(s)
		}
		return d, ""
	}
	return nil, "has an unknown type"
}
