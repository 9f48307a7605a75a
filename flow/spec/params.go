package spec

import (
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

var paramFields = []string{"type", "required", "default", "description"}

// placeholder names a value in the "-p name=VALUE" hint.
func placeholder(t ParamType) string {
	switch t {
	case ParamPath:
		return "PATH"
	case ParamInt:
		return "N"
	case ParamFloat:
		return "X"
	case ParamBool:
		return "true"
	case ParamDuration:
		return "DURATION"
	}
	return "VALUE"
}

// parseParams reads the params: section (n may be nil) and resolves every
// param's value from the -p overrides and the declared defaults. Param
// declarations are literal: they are not interpolated.
func (p *parser) parseParams(section, key, root *yaml.Node) []ParamDecl {
	p.params = map[string]any{}
	p.declared = map[string]bool{}
	var decls []ParamDecl
	declNodes := map[string]*yaml.Node{}
	if section != nil {
		section = resolve(section)
		if section.Kind == yaml.ScalarNode && section.Tag == "!!null" {
			section = nil
		}
	}
	if section != nil {
		fs := p.fields(section, "params", nil)
		if fs != nil {
			// file order, from the mapping's keys
			for i := 0; i+1 < len(section.Content); i += 2 {
				k := resolve(section.Content[i])
				f, ok := fs[unprotect(k.Value)]
				if !ok || f.key != k {
					continue
				}
				name := unprotect(k.Value)
				if !isIdent(name) {
					p.errorf(k, "use letters, digits, _ and -, starting with a letter or _", "params: bad param name %q", name)
					continue
				}
				d, ok := p.paramDecl(name, f.val)
				p.declared[name] = true
				p.names = append(p.names, name)
				declNodes[name] = f.key
				if ok {
					decls = append(decls, d)
				}
			}
		}
	}
	// Overrides, in name order so that errors come out the same way.
	names := make([]string, 0, len(p.overrides))
	for name := range p.overrides {
		names = append(names, name)
	}
	sort.Strings(names)
	cwd, err := filepath.Abs(".")
	if err != nil {
		cwd = p.dir
	}
	for _, name := range names {
		if !p.declared[name] {
			at := root
			if key != nil {
				at = key
			}
			hint := "declare it under params:"
			if len(p.names) > 0 {
				hint = "declared params: " + strings.Join(p.names, ", ")
				if c := closest(name, p.names); c != "" {
					hint = "did you mean " + strconv.Quote(c) + "? " + hint
				}
			}
			p.errorf(at, hint, "-p %s=%s: no param %q is declared", name, p.overrides[name], name)
		}
	}
	for _, d := range decls {
		if s, ok := p.overrides[d.Name]; ok {
			// A path given on the command line is relative to where the
			// command runs, not to the pipeline file.
			v, msg := convert(s, d.Type, cwd)
			if msg != "" {
				p.errorf(declNodes[d.Name], "pass it as -p "+d.Name+"="+placeholder(d.Type), "-p %s=%s: param %q %s", d.Name, s, d.Name, msg)
				continue
			}
			p.params[d.Name] = v
			continue
		}
		if d.Default != nil {
			p.params[d.Name] = d.Default
			continue
		}
		if d.Required {
			p.errorf(declNodes[d.Name], "pass it with -p "+d.Name+"="+placeholder(d.Type), "param %q is required and has no value", d.Name)
			continue
		}
		p.params[d.Name] = zeroValue(d.Type)
	}
	return decls
}

// zeroValue is the value of an optional param with neither default nor
// override.
func zeroValue(t ParamType) any {
	switch t {
	case ParamInt:
		return int64(0)
	case ParamFloat:
		return float64(0)
	case ParamBool:
		return false
	case ParamDuration:
		return time.Duration(0)
	}
	return ""
}

func (p *parser) paramDecl(name string, n *yaml.Node) (ParamDecl, bool) {
	d := ParamDecl{Name: name}
	what := "param " + strconv.Quote(name)
	fs := p.fields(n, what, paramFields)
	if fs == nil {
		return d, false
	}
	ok := true
	if f, has := fs["type"]; has {
		s, good := p.literalEnum(f.val, what+": type", paramTypeNames)
		if good {
			for i, tn := range paramTypeNames {
				if tn == s {
					d.Type = ParamType(i)
				}
			}
		} else {
			ok = false
		}
	}
	if f, has := fs["required"]; has {
		s, good := p.literal(f.val, what+": required", "true or false")
		switch {
		case !good:
			ok = false
		case s == "true":
			d.Required = true
		case s == "false":
		default:
			p.errorf(f.val, "use true or false", "%s: required: expected true or false, found %q", what, s)
			ok = false
		}
	}
	if f, has := fs["description"]; has {
		if s, good := p.literal(f.val, what+": description", "a string"); good {
			d.Description = s
		}
	}
	if f, has := fs["default"]; has && ok {
		s, good := p.literal(f.val, what+": default", "a "+d.Type.String())
		if good {
			if strings.Contains(s, "${") {
				p.errorf(f.val, "a param's default is a plain value", "%s: default cannot refer to params", what)
				return d, false
			}
			v, msg := convert(s, d.Type, p.dir)
			if msg != "" {
				p.errorf(f.val, "", "%s: default %s", what, msg)
				return d, false
			}
			d.Default = v
			if d.Required {
				p.errorf(f.key, "drop required: true, or drop the default", "%s: a required param cannot have a default", what)
				return d, false
			}
		} else {
			ok = false
		}
	}
	return d, ok
}

// literalEnum is enum without interpolation.
func (p *parser) literalEnum(n *yaml.Node, what string, allowed []string) (string, bool) {
	s, ok := p.literal(n, what, "one of "+strings.Join(allowed, ", "))
	if !ok {
		return "", false
	}
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

// ParamStrings returns the resolved params as -p values: Load of the same
// file with them gives the same Pipeline from any working directory
// (paths are absolute), which is what resuming a run needs.
func (p *Pipeline) ParamStrings() map[string]string {
	out := make(map[string]string, len(p.Params))
	for name, v := range p.Params {
		s := formatValue(v)
		if s == "" {
			if _, isString := v.(string); !isString {
				continue
			}
			if d, ok := p.paramDecl(name); ok && d.Type == ParamPath {
				continue // an unset optional path: "" is not a path
			}
		}
		out[name] = s
	}
	return out
}

func (p *Pipeline) paramDecl(name string) (ParamDecl, bool) {
	for _, d := range p.ParamDecls {
		if d.Name == name {
			return d, true
		}
	}
	return ParamDecl{}, false
}
