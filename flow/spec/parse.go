package spec

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Load reads and validates the pipeline file at path; params are -p
// name=value overrides, converted to their declared types. Errors from
// the file's content are *Error, or an errors.Join of several *Error
// sorted by position (see Errors); an unreadable file gives the
// *fs.PathError of os.ReadFile.
func Load(path string, params map[string]string) (*Pipeline, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(data, path, params)
}

// Parse is Load on data read from file. file names the file in errors,
// and its directory becomes Pipeline.Dir (made absolute against the
// working directory); a relative -p value of a path param is made
// absolute against the working directory too.
func Parse(data []byte, file string, params map[string]string) (*Pipeline, error) {
	dir := filepath.Dir(file)
	if file == "" {
		dir = "."
	}
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	p := &parser{file: file, dir: dir, overrides: params}
	pl := p.parse(data)
	if len(p.errs) == 0 {
		if err := pl.Validate(); err != nil {
			for _, e := range Errors(err) {
				e.File = file
				p.errs = append(p.errs, e)
			}
		}
	}
	if len(p.errs) > 0 {
		return nil, p.err()
	}
	return pl, nil
}

// Errors returns the *Error values in err: err itself, or those of an
// errors.Join. It returns nil when err holds none.
func Errors(err error) []*Error {
	if err == nil {
		return nil
	}
	var out []*Error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			out = append(out, Errors(e)...)
		}
		return out
	}
	var e *Error
	if errors.As(err, &e) {
		out = append(out, e)
	}
	return out
}

// parser holds the state of one Parse.
type parser struct {
	file      string
	dir       string
	overrides map[string]string
	errs      []*Error

	params   map[string]any  // resolved param values
	declared map[string]bool // declared params, resolved or not
	names    []string        // declared param names, in file order

	info map[*Stage]*stageInfo // positions for the cross-stage checks
}

func (p *parser) err() error {
	sort.SliceStable(p.errs, func(i, j int) bool {
		a, b := p.errs[i], p.errs[j]
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		if a.Column != b.Column {
			return a.Column < b.Column
		}
		return a.Msg < b.Msg
	})
	if len(p.errs) == 1 {
		return p.errs[0]
	}
	errs := make([]error, len(p.errs))
	for i, e := range p.errs {
		errs[i] = e
	}
	return errors.Join(errs...)
}

// errorAt records an error at a line and column.
func (p *parser) errorAt(line, col int, hint, format string, args ...any) {
	if line < 1 {
		line = 1
	}
	if col < 1 {
		col = 1
	}
	p.errs = append(p.errs, &Error{File: p.file, Line: line, Column: col, Msg: fmt.Sprintf(format, args...), Hint: hint})
}

// errorf records an error at node n.
func (p *parser) errorf(n *yaml.Node, hint, format string, args ...any) {
	line, col := 1, 1
	if n != nil {
		line, col = n.Line, n.Column
	}
	p.errorAt(line, col, hint, format, args...)
}

// Interpolations inside YAML flow collections ({ count: ${params.n} })
// would end the plain scalar at the "}" and fail to parse. Before parsing,
// the braces of every ${...} on one line are swapped for two private-use
// runes, one rune each so that columns do not move, and swapped back in
// every scalar the parser reads.
const (
	openMark  = "\ue001"
	closeMark = "\ue002"
)

var interpRef = regexp.MustCompile(`\$\{[^{}\n]*\}`)

func protect(data []byte) []byte {
	if bytes.Contains(data, []byte(openMark)) || bytes.Contains(data, []byte(closeMark)) {
		return data
	}
	return interpRef.ReplaceAllFunc(data, func(m []byte) []byte {
		out := make([]byte, 0, len(m)+4)
		out = append(out, '$')
		out = append(out, openMark...)
		out = append(out, m[2:len(m)-1]...)
		return append(out, closeMark...)
	})
}

var unprotector = strings.NewReplacer(openMark, "{", closeMark, "}")

func unprotect(s string) string {
	if !strings.Contains(s, openMark) && !strings.Contains(s, closeMark) {
		return s
	}
	return unprotector.Replace(s)
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

var yamlParserErrors = []string{
	"did not find expected key",
	"did not find expected ','",
	"did not find expected node content",
	"did not find expected '-'",
	"did not find expected <",
}

// yamlError records a syntax error reported by the YAML decoder.
func (p *parser) yamlError(err error) {
	msg := unprotect(err.Error())
	line := 1
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		if n, err := strconv.Atoi(m[1]); err == nil {
			line = n
		}
		msg = m[2]
		// yaml.v3 counts lines from 1 in scanner errors but from 0 in
		// parser errors, which all start "did not find expected" and
		// name a token.
		for _, prefix := range yamlParserErrors {
			if strings.HasPrefix(msg, prefix) {
				line++
				break
			}
		}
	} else {
		msg = strings.TrimPrefix(msg, "yaml: ")
	}
	p.errorAt(line, 1, "the file is not valid YAML", "%s", msg)
}

// decode parses data into its single YAML document's root node.
func (p *parser) decode(data []byte) (root *yaml.Node) {
	defer func() {
		// The YAML decoder is third-party code fed with user input: a
		// panic in it becomes an error here, not a crash of the caller.
		if r := recover(); r != nil {
			root = nil
			p.errorAt(1, 1, "the file is not valid YAML", "cannot parse YAML: %v", r)
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(protect(data)))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if err == io.EOF {
			p.errorAt(1, 1, "start with version: 1, name: and stages:", "the pipeline file is empty")
		} else {
			p.yamlError(err)
		}
		return nil
	}
	var next yaml.Node
	if err := dec.Decode(&next); err == nil {
		p.errorf(&next, "split the documents into separate files", "a pipeline file holds one YAML document")
	} else if err != io.EOF {
		p.yamlError(err)
	}
	if len(doc.Content) == 0 {
		p.errorAt(1, 1, "start with version: 1, name: and stages:", "the pipeline file is empty")
		return nil
	}
	return doc.Content[0]
}

// resolve follows aliases.
func resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 100; i++ {
		n = n.Alias
	}
	return n
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "nothing"
		}
		return strconv.Quote(unprotect(n.Value))
	}
	return "something else"
}

// field is one key: value of a mapping.
type field struct {
	key, val *yaml.Node
}

// fields reads mapping n, whose keys must be among allowed: unknown and
// duplicate keys are errors. It returns nil when n is not a mapping.
func (p *parser) fields(n *yaml.Node, what string, allowed []string) map[string]field {
	n = resolve(n)
	if n.Kind != yaml.MappingNode {
		p.errorf(n, "", "%s: expected a mapping, found %s", what, describe(n))
		return nil
	}
	out := make(map[string]field, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			p.errorf(k, "", "%s: expected a field name, found %s", what, describe(k))
			continue
		}
		name := unprotect(k.Value)
		if prev, dup := out[name]; dup {
			p.errorf(k, "", "%s: duplicate field %q (first at line %d)", what, name, prev.key.Line)
			continue
		}
		if name == "<<" {
			p.errorf(k, "repeat the fields, or put shared settings under defaults:", "%s: YAML merge keys (<<) are not supported", what)
			continue
		}
		if allowed != nil && !contains(allowed, name) {
			p.errorf(k, suggest(name, allowed), "%s: unknown field %q", what, name)
			continue
		}
		out[name] = field{key: k, val: resolve(v)}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// require reports each of names missing from fs, at mapping n.
func (p *parser) require(n *yaml.Node, fs map[string]field, what string, names ...string) {
	for _, name := range names {
		if _, ok := fs[name]; !ok {
			p.errorf(n, "", "%s: missing required field %q", what, name)
		}
	}
}
