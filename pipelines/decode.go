package pipelines

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// maxNodes bounds the tree after aliases are expanded, against alias bombs.
const maxNodes = 100_000

// decoder reads one pipeline file: it checks the YAML tree against the Go
// types (keys, kinds, duplicates), substitutes variables, remembers where
// each key path is, and collects the problems found.
type decoder struct {
	file     string
	env      func(string) (string, bool)
	nodes    map[string]entry    // key path → where it is in the file
	fromEnv  map[string][]string // key path → variables substituted into its value
	reported map[string]bool     // key paths with a reported problem
	errs     []*Error
	count    int // nodes seen while expanding aliases
}

// entry is where a key path is: the key (nil for a list item) and the value.
type entry struct{ key, value *yaml.Node }

func newDecoder(file string, env func(string) (string, bool)) *decoder {
	if file == "" {
		file = "pipeline"
	}
	return &decoder{
		file:     file,
		env:      env,
		nodes:    map[string]entry{},
		fromEnv:  map[string][]string{},
		reported: map[string]bool{},
	}
}

// line is the line of the key path, or of the nearest key above it that
// is in the file; 0 if none is.
func (d *decoder) line(path string) int {
	for p := path; p != ""; {
		if e, ok := d.nodes[p]; ok {
			if e.key != nil {
				return e.key.Line
			}
			return e.value.Line
		}
		i := strings.LastIndexAny(p, ".[")
		if i < 0 {
			break
		}
		p = p[:i]
	}
	return 0
}

// yamlErrRE splits yaml.v3's "yaml: line N: message".
var yamlErrRE = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

// parseYAML parses data into a tree without aliases or merge keys, or
// records why it can't and returns nil.
func (d *decoder) parseYAML(data []byte) *yaml.Node {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			d.add(0, "", "the file is empty; a pipeline needs at least name, source, sink and objects")
		} else {
			d.yamlError(err)
		}
		return nil
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case errors.Is(err, io.EOF):
	case err != nil:
		d.yamlError(err)
		return nil
	default:
		d.add(next.Line, "", "a second YAML document starts here; a pipeline file holds one (remove the ---)")
		return nil
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		d.add(0, "", "the file is empty; a pipeline needs at least name, source, sink and objects")
		return nil
	}
	root, ok := d.unalias(doc.Content[0], false)
	if !ok {
		return nil
	}
	if root.Kind == yaml.ScalarNode && root.ShortTag() == "!!null" {
		d.add(0, "", "the file is empty; a pipeline needs at least name, source, sink and objects")
		return nil
	}
	return root
}

// yamlParserErrors are the starts of yaml.v3's parser (not scanner) error
// messages.
var yamlParserErrors = []string{"did not find expected", "found undefined tag handle", "found duplicate %", "found incompatible", "expected <document start>", "found unknown directive"}

func (d *decoder) yamlError(err error) {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	if m := yamlErrRE.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		// yaml.v3 reports scanner errors with 1-based lines but parser
		// errors with the 0-based line of their context mark.
		for _, p := range yamlParserErrors {
			if strings.HasPrefix(m[2], p) {
				line++
				break
			}
		}
		d.add(line, "", "invalid YAML: "+m[2])
		return
	}
	d.add(0, "", "invalid YAML: "+msg)
}

// unalias returns n with every alias replaced by a copy of its anchor's
// value and merge keys (<<) merged, working in place except in copies
// (clone). It returns false, having reported it, if the tree grows too big.
func (d *decoder) unalias(n *yaml.Node, clone bool) (*yaml.Node, bool) {
	if d.count++; d.count > maxNodes {
		if d.count == maxNodes+1 {
			d.add(n.Line, "", fmt.Sprintf("the file expands to more than %d YAML nodes (aliases of aliases?)", maxNodes))
		}
		return nil, false
	}
	if n.Kind == yaml.AliasNode {
		return d.unalias(n.Alias, true)
	}
	if clone {
		c := *n
		c.Anchor = ""
		c.Content = append([]*yaml.Node(nil), n.Content...)
		n = &c
	}
	for i, c := range n.Content {
		r, ok := d.unalias(c, clone)
		if !ok {
			return nil, false
		}
		n.Content[i] = r
	}
	if n.Kind == yaml.MappingNode {
		d.merge(n)
	}
	return n, true
}

// merge applies the merge keys of mapping m: keys given in m win, then
// those of the merged mappings in the order listed.
func (d *decoder) merge(m *yaml.Node) {
	var own []*yaml.Node
	var merged []*yaml.Node
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		if k.Kind != yaml.ScalarNode || k.ShortTag() != "!!merge" {
			own = append(own, k, v)
			continue
		}
		switch v.Kind {
		case yaml.MappingNode:
			merged = append(merged, v)
		case yaml.SequenceNode:
			for _, item := range v.Content {
				if item.Kind != yaml.MappingNode {
					d.add(item.Line, "", "a merge key (<<) must be given mappings")
					continue
				}
				merged = append(merged, item)
			}
		default:
			d.add(v.Line, "", "a merge key (<<) must be given a mapping or a list of mappings")
		}
	}
	if len(merged) == 0 && len(own) == len(m.Content) {
		return
	}
	seen := map[string]bool{}
	for i := 0; i < len(own); i += 2 {
		seen[own[i].Value] = true
	}
	for _, mm := range merged {
		for i := 0; i+1 < len(mm.Content); i += 2 {
			if k := mm.Content[i]; !seen[k.Value] {
				seen[k.Value] = true
				own = append(own, k, mm.Content[i+1])
			}
		}
	}
	m.Content = own
}

// field is one key of a struct: a field with a yaml tag.
type field struct {
	name string       // the key
	typ  reflect.Type // the field's type
	def  string       // its default tag
}

// fieldsOf lists the keys of struct type t, in declaration order.
func fieldsOf(t reflect.Type) []field {
	var fs []field
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if !f.IsExported() || name == "" || name == "-" {
			continue
		}
		fs = append(fs, field{name: name, typ: f.Type, def: f.Tag.Get("default")})
	}
	return fs
}

// defaults is the map of default values of t's keys, from their default
// tags, as flat key paths ("copy.parallel").
func defaults(t reflect.Type) map[string]any {
	m := map[string]any{}
	var walk func(t reflect.Type, prefix string)
	walk = func(t reflect.Type, prefix string) {
		for _, f := range fieldsOf(t) {
			switch {
			case f.def != "":
				m[prefix+f.name] = parseDefault(f)
			case f.typ.Kind() == reflect.Struct:
				walk(f.typ, prefix+f.name+".")
			}
		}
	}
	walk(t, "")
	return m
}

// parseDefault converts a default tag to the field's kind. A bad tag is a
// bug in this package, caught by any test that loads a file.
func parseDefault(f field) any {
	var v any
	var err error
	switch f.typ.Kind() {
	case reflect.String:
		v = f.def
	case reflect.Bool:
		v, err = strconv.ParseBool(f.def)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if f.typ == durationType {
			v = f.def // the decode hook converts it
			_, err = time.ParseDuration(f.def)
		} else {
			v, err = strconv.ParseInt(f.def, 10, 64)
		}
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v, err = strconv.ParseUint(f.def, 10, 64)
	case reflect.Float32, reflect.Float64:
		v, err = strconv.ParseFloat(f.def, 64)
	default:
		err = errors.New("no defaults for this kind")
	}
	if err != nil {
		panic(fmt.Sprintf("pipelines: bad default tag %q on key %s: %v", f.def, f.name, err))
	}
	return v
}

var durationType = reflect.TypeFor[time.Duration]()

// keyPath joins a key path and a key.
func keyPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// walk checks value node n at path against type t and prepares it for
// koanf: variables substituted, scalars tagged with the kind t wants,
// unknown keys and bad values removed (and reported). It returns false if
// n itself is unusable and must be dropped by the caller.
func (d *decoder) walk(n *yaml.Node, t reflect.Type, path string) bool {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if tag := n.ShortTag(); !strings.HasPrefix(tag, "!!") {
		d.errorf(n.Line, path, "YAML tag %s is not supported here", tag)
		return false
	}
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!str" && !d.interpolate(n, path) {
		return false
	}
	if t == durationType {
		if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!str" {
			if _, err := time.ParseDuration(n.Value); err == nil {
				n.Style = yaml.DoubleQuotedStyle
				return true
			}
		}
		return d.mismatch(n, path, "a duration such as 30s, 5m or 1h30m")
	}
	switch t.Kind() {
	case reflect.Struct:
		return d.walkStruct(n, t, path)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			return d.mismatch(n, path, "a list")
		}
		var keep []*yaml.Node
		for i, item := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			d.nodes[p] = entry{value: item}
			switch {
			case d.walk(item, t.Elem(), p):
				keep = append(keep, item)
			case t.Elem().Kind() == reflect.Struct:
				// Keep the place, so later items keep their index.
				keep = append(keep, &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: item.Line})
			}
		}
		n.Content = keep
		return true
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			return d.mismatch(n, path, "a mapping")
		}
		var keep []*yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Kind != yaml.ScalarNode {
				d.errorf(k.Line, path, "a key must be a plain name")
				continue
			}
			// A key is a name, as written: 1 stays "1", null "null".
			k.Tag, k.Style = "!!str", yaml.DoubleQuotedStyle
			p := keyPath(path, k.Value)
			d.nodes[p] = entry{key: k, value: v}
			if t.Elem().Kind() == reflect.Pointer && v.Kind == yaml.ScalarNode && v.ShortTag() == "!!null" {
				keep = append(keep, k, v) // a nil value: meaningful in a map
				continue
			}
			if d.walk(v, t.Elem(), p) {
				keep = append(keep, k, v)
			}
		}
		n.Content = keep
		return true
	case reflect.Interface:
		for i, c := range n.Content {
			if n.Kind == yaml.MappingNode && i%2 == 0 {
				continue // a key
			}
			if !d.walk(c, t, path) {
				return false
			}
		}
		return true
	case reflect.String:
		if n.Kind != yaml.ScalarNode {
			return d.mismatch(n, path, "a string")
		}
		// As written: 0x10 stays "0x10", not 16.
		n.Tag, n.Style = "!!str", yaml.DoubleQuotedStyle
		return true
	case reflect.Bool:
		if n.Kind == yaml.ScalarNode && (n.ShortTag() == "!!bool" || n.ShortTag() == "!!str") {
			if b, err := strconv.ParseBool(n.Value); err == nil {
				n.Tag, n.Style, n.Value = "!!bool", 0, strconv.FormatBool(b)
				return true
			}
		}
		return d.mismatch(n, path, "true or false")
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if n.Kind == yaml.ScalarNode && (n.ShortTag() == "!!int" || n.ShortTag() == "!!str") {
			i, err := strconv.ParseInt(strings.TrimSpace(n.Value), 0, 64)
			if err == nil && !reflect.Zero(t).OverflowInt(i) {
				n.Tag, n.Style, n.Value = "!!int", 0, strconv.FormatInt(i, 10)
				return true
			}
			if err == nil || errors.Is(err, strconv.ErrRange) {
				return d.mismatch(n, path, "a whole number that fits in "+t.Kind().String())
			}
		}
		return d.mismatch(n, path, "a whole number")
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if n.Kind == yaml.ScalarNode && (n.ShortTag() == "!!int" || n.ShortTag() == "!!str") {
			u, err := strconv.ParseUint(strings.TrimSpace(n.Value), 0, 64)
			if err == nil && !reflect.Zero(t).OverflowUint(u) {
				n.Tag, n.Style, n.Value = "!!int", 0, strconv.FormatUint(u, 10)
				return true
			}
		}
		return d.mismatch(n, path, "a whole number, 0 or more")
	case reflect.Float32, reflect.Float64:
		if n.Kind == yaml.ScalarNode && (n.ShortTag() == "!!int" || n.ShortTag() == "!!float" || n.ShortTag() == "!!str") {
			f, err := strconv.ParseFloat(strings.TrimSpace(n.Value), 64)
			if err == nil {
				n.Tag, n.Style, n.Value = "!!float", 0, strconv.FormatFloat(f, 'g', -1, 64)
				return true
			}
		}
		return d.mismatch(n, path, "a number")
	}
	panic(fmt.Sprintf("pipelines: key %s has a Go type (%s) the decoder does not handle", path, t))
}

// walkStruct checks mapping n against the keys of struct type t.
func (d *decoder) walkStruct(n *yaml.Node, t reflect.Type, path string) bool {
	fields := fieldsOf(t)
	names := make([]string, len(fields))
	byName := map[string]field{}
	for i, f := range fields {
		names[i] = f.name
		byName[f.name] = f
	}
	if n.Kind != yaml.MappingNode {
		return d.mismatch(n, path, "a mapping with the keys "+strings.Join(names, ", "))
	}
	seen := map[string]*yaml.Node{}
	var keep []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			d.errorf(k.Line, path, "a key must be a plain name (valid keys: %s)", strings.Join(names, ", "))
			continue
		}
		p := keyPath(path, k.Value)
		f, ok := byName[k.Value]
		if !ok {
			// Not marked as reported: the checks of the keys around it
			// still run (a misspelt dsn also gives "dsn is required").
			msg := fmt.Sprintf("unknown key %q (valid keys: %s)", truncate(k.Value), strings.Join(names, ", "))
			if path != "" {
				msg = path + ": " + msg
			}
			d.errs = append(d.errs, &Error{File: d.file, Line: k.Line, Path: p, Msg: msg})
			continue
		}
		if first, dup := seen[k.Value]; dup {
			d.errorf(k.Line, p, "given twice, first at line %d; remove one", first.Line)
			continue
		}
		seen[k.Value] = k
		d.nodes[p] = entry{key: k, value: v}
		if v.Kind == yaml.ScalarNode && v.ShortTag() == "!!null" {
			continue // as if absent: the default applies
		}
		if d.walk(v, f.typ, p) {
			keep = append(keep, k, v)
		}
	}
	n.Content = keep
	return true
}

// mismatch reports that the value at path is not what it should be
// (want) and returns false.
func (d *decoder) mismatch(n *yaml.Node, path, want string) bool {
	var got string
	switch {
	case n.Kind == yaml.MappingNode:
		got = "a mapping"
	case n.Kind == yaml.SequenceNode:
		got = "a list"
	case n.ShortTag() == "!!null":
		got = "nothing"
	default:
		got = d.show(path, n.Value)
	}
	d.errorf(n.Line, path, "must be %s, got %s", want, got)
	return false
}

// interpolate substitutes the variables in scalar n, or reports why it
// can't and returns false.
func (d *decoder) interpolate(n *yaml.Node, path string) bool {
	v, used, err := expand(n.Value, d.env)
	if err != nil {
		d.errorf(n.Line, path, "%v", err)
		return false
	}
	if v != n.Value {
		// Whatever the value, it stays one string scalar.
		n.Value, n.Tag, n.Style = v, "!!str", yaml.DoubleQuotedStyle
	}
	if len(used) > 0 {
		d.fromEnv[path] = append(d.fromEnv[path], used...)
	}
	return true
}
