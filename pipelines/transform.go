package pipelines

import (
	"errors"
	"fmt"
	"path"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/sluicehq/sluice/transforms/rowexpr"
)

// Transform is one item of the transforms list: a stage every record of
// the tables it applies to goes through, in list order, after the
// objects' where conditions and before the renames. Exactly one kind is
// given: Filter, Set, or Type "plugin" with Path.
type Transform struct {
	// Type is the stage's kind: filter, set or plugin. It may be left out
	// for filter and set (the key says it).
	Type string `yaml:"type"`
	// Tables limits the stage to some tables: schema.table patterns
	// written like objects' table names, where an unquoted part may use
	// the wildcards * and ? (crm.* is every table of crm). Empty: every
	// table.
	Tables []string `yaml:"tables"`
	// Filter is an expr-lang boolean expression over the record (op,
	// schema, table, before, after, commit_time, lsn); records for which
	// it is false are dropped.
	Filter string `yaml:"filter"`
	// Set maps columns to expr-lang expressions computing their new value.
	Set map[string]string `yaml:"set"`
	// Path is the plugin executable (type plugin), relative to the
	// pipeline file's directory unless absolute. Load returns it joined to
	// that directory.
	Path string `yaml:"path"`
	// SHA256 pins the plugin executable to the hex SHA-256 of its
	// contents.
	SHA256 string `yaml:"sha256"`
	// Env passes settings to the plugin process as environment variables.
	Env map[string]string `yaml:"env"`
	// Line is the line of this item in the file (0 if unknown).
	Line int `yaml:"-"`
}

// TransformTypes are the stage kinds.
var TransformTypes = []string{"filter", "set", "plugin"}

// Kind returns the stage's kind: Type, or the kind its keys say.
func (t Transform) Kind() string {
	switch {
	case t.Type != "":
		return t.Type
	case t.Filter != "":
		return "filter"
	case t.Set != nil:
		return "set"
	case t.Path != "":
		return "plugin"
	}
	return ""
}

// TablePattern is one parsed item of a stage's tables list.
type TablePattern struct {
	Schema, Name string
	// SchemaGlob and NameGlob are true when the part is a path.Match
	// pattern (unquoted and holding * or ?); otherwise it is a literal
	// name.
	SchemaGlob, NameGlob bool
}

// Match reports whether the pattern covers the table schema.name.
func (p TablePattern) Match(schema, name string) bool {
	return matchPart(p.Schema, p.SchemaGlob, schema) && matchPart(p.Name, p.NameGlob, name)
}

func matchPart(pat string, glob bool, s string) bool {
	if !glob {
		return pat == s
	}
	ok, err := path.Match(pat, s)
	return err == nil && ok
}

// ParseTablePattern parses a schema.table pattern: like a table name of
// objects (a bare name means public.name), but an unquoted part holding
// * or ? is a wildcard pattern (path.Match syntax: * any run of
// characters, ? one character, [abc] a class).
func ParseTablePattern(s string) (TablePattern, error) {
	parts, quoted, err := parsePatternNames(s)
	if err != nil {
		return TablePattern{}, err
	}
	var p TablePattern
	switch len(parts) {
	case 1:
		p.Schema, p.Name = "public", parts[0]
		p.NameGlob = !quoted[0] && strings.ContainsAny(parts[0], "*?[")
	case 2:
		p.Schema, p.Name = parts[0], parts[1]
		p.SchemaGlob = !quoted[0] && strings.ContainsAny(parts[0], "*?[")
		p.NameGlob = !quoted[1] && strings.ContainsAny(parts[1], "*?[")
	default:
		return TablePattern{}, fmt.Errorf("%d dot-separated names where schema.table or table was expected; quote a name that contains a dot", len(parts))
	}
	for _, g := range []struct {
		pat  string
		glob bool
	}{{p.Schema, p.SchemaGlob}, {p.Name, p.NameGlob}} {
		if g.glob {
			if _, err := path.Match(g.pat, ""); err != nil {
				return TablePattern{}, fmt.Errorf("%q is not a valid pattern (* any characters, ? one, [abc] one of a class)", g.pat)
			}
		}
	}
	return p, nil
}

// parsePatternNames splits a dotted list of names like parseNames and
// says which parts were quoted.
func parsePatternNames(s string) ([]string, []bool, error) {
	var quoted []bool
	for i := 0; i < len(s); {
		quoted = append(quoted, s[i] == '"')
		if s[i] == '"' {
			// Skip to the closing quote ("" is an escaped quote).
			j := i + 1
			for j < len(s) {
				if s[j] == '"' {
					if j+1 < len(s) && s[j+1] == '"' {
						j += 2
						continue
					}
					break
				}
				j++
			}
			i = j + 1
		} else {
			for i < len(s) && s[i] != '.' {
				i++
			}
		}
		if i < len(s) && s[i] == '.' {
			i++
		}
	}
	parts, err := parseNames(s)
	if err != nil {
		return nil, nil, err
	}
	if len(quoted) != len(parts) {
		quoted = make([]bool, len(parts)) // unreachable for names parseNames accepts
	}
	return parts, quoted, nil
}

// transformPath is the key path of the i-th item of transforms.
func transformPath(i int) string { return fmt.Sprintf("transforms[%d]", i) }

var sha256RE = regexp.MustCompile(`^[0-9a-fA-F]{64}$`)

// validateTransforms checks each stage: one kind, its keys, the syntax of
// its expressions (names and types are checked against the source's
// catalog when the pipeline runs), its tables patterns.
func validateTransforms(d *decoder, ts []Transform) {
	for i, t := range ts {
		p := transformPath(i)
		kinds := 0
		if t.Filter != "" {
			kinds++
		}
		if t.Set != nil {
			kinds++
		}
		if t.Path != "" || t.SHA256 != "" || t.Env != nil {
			kinds++
		}
		switch t.Type {
		case "", "filter", "set", "plugin":
		default:
			d.problem(p+".type", "%s is not a transform type (valid: %s)", d.show(p+".type", t.Type), strings.Join(TransformTypes, ", "))
			continue
		}
		switch {
		case kinds == 0:
			d.problem(p, `give one of filter: EXPR, set: {column: EXPR}, or type: plugin with path: (e.g. "- filter: after.amount > 100")`)
			continue
		case kinds > 1:
			d.problem(p, "give only one of filter, set, or a plugin's path/sha256/env: each stage does one thing (use two stages, in the order they should apply)")
			continue
		case t.Type != "" && t.Type != t.Kind() && !(t.Type == "plugin" && t.Kind() == "plugin"):
			d.problem(p+".type", "type %s does not match the stage's keys, which make it a %s stage", t.Type, t.Kind())
			continue
		}
		switch t.Kind() {
		case "filter":
			if err := rowexpr.Parse(t.Filter); err != nil {
				d.problem(p+".filter", "%v", exprProblem(err))
			}
		case "set":
			if len(t.Set) == 0 {
				d.problem(p+".set", "the mapping is empty; give column: expression pairs, e.g. {email: \"'masked'\"}")
			}
			for _, col := range sortedKeys(t.Set) {
				kp := keyPath(p+".set", col)
				if msg := columnNameProblem(col); msg != "" {
					d.problem(kp, "the column name %s %s", d.show(kp, col), msg)
					continue
				}
				if err := rowexpr.Parse(t.Set[col]); err != nil {
					d.problem(kp, "%v", exprProblem(err))
				}
			}
		case "plugin":
			if t.Path == "" {
				d.required(p+".path", "the plugin executable, e.g. ./mask")
			}
			if t.SHA256 != "" && !sha256RE.MatchString(t.SHA256) {
				d.problem(p+".sha256", "%s is not a SHA-256 digest: 64 hex digits, as sha256sum prints them", d.show(p+".sha256", t.SHA256))
			}
			for _, k := range sortedKeys(t.Env) {
				if k == "" || strings.ContainsAny(k, "=\x00") {
					d.problem(keyPath(p+".env", k), "%q is not an environment variable name", k)
				}
			}
		}
		if t.Tables != nil && len(t.Tables) == 0 {
			d.problem(p+".tables", "the list is empty; list the tables the stage applies to, or remove the key for all")
		}
		for j, s := range t.Tables {
			tp := fmt.Sprintf("%s.tables[%d]", p, j)
			if _, err := ParseTablePattern(s); err != nil {
				d.problem(tp, "%s is not a valid table or pattern: %v", d.show(tp, s), err)
			}
		}
	}
}

// exprProblem renders an expression's syntax error.
func exprProblem(err error) string {
	var e *rowexpr.Error
	if errors.As(err, &e) {
		return "invalid expression: " + e.Error()
	}
	return err.Error()
}

// resolvePluginPaths makes the plugins' relative paths relative to the
// pipeline file's directory.
func (p *Pipeline) resolvePluginPaths(file string) {
	for i := range p.Transforms {
		if t := &p.Transforms[i]; t.Path != "" && !filepath.IsAbs(t.Path) {
			t.Path = filepath.Join(filepath.Dir(file), t.Path)
		}
	}
}
