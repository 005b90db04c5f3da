package pipelines

import (
	"fmt"
	"regexp"
	"strings"
)

// Rename holds the pipeline-wide naming rules: bulk renames of the tables
// of a schema and the case policy of sink names. The objects' own rename
// and columns keys win over them (see package transforms/rename for the
// precedence).
type Rename struct {
	// Case is the case policy for sink names no rule gives: source (as
	// at the source, the default), lower or upper. It applies to schema,
	// table and column names.
	Case string `yaml:"case"`
	// Tables lists bulk rules; for each table the first rule of its
	// schema that matches decides its sink name.
	Tables []BulkRename `yaml:"tables"`
	// CaseLine is the line of the case key in the file (0 if absent).
	CaseLine int `yaml:"-"`
}

// BulkRename renames the tables of one source schema: the sink name is
// Prefix + name + Suffix, where name is the source name, or with Pattern
// (a Go regular expression that must match the whole name) the name with
// Pattern replaced by Replacement ($1 or ${1} for a group, written $$1 in
// the file since ${...} is a variable there).
type BulkRename struct {
	Schema      string `yaml:"schema"`
	Prefix      string `yaml:"prefix"`
	Suffix      string `yaml:"suffix"`
	Pattern     string `yaml:"pattern"`
	Replacement string `yaml:"replacement"`
	// Line is the line of this rule in the file (0 if unknown).
	Line int `yaml:"-"`
}

// CasePolicies are the values rename.case accepts.
var CasePolicies = []string{"source", "lower", "upper"}

func (r Rename) validate(d *decoder, path string) {
	switch r.Case {
	case "", "source", "lower", "upper":
	default:
		d.problem(path+".case", "%s is not a case policy (valid: %s)", d.show(path+".case", r.Case), strings.Join(CasePolicies, ", "))
	}
	for i, b := range r.Tables {
		p := fmt.Sprintf("%s.tables[%d]", path, i)
		if b.Schema == "" {
			d.required(p+".schema", "the source schema whose tables the rule renames")
		} else if _, err := (Object{Schema: b.Schema}).SchemaName(); err != nil {
			d.problem(p+".schema", "%s is not a valid schema name: %v", d.show(p+".schema", b.Schema), err)
		}
		switch {
		case b.Prefix == "" && b.Suffix == "" && b.Pattern == "":
			d.problem(p, "give a prefix, a suffix, or a pattern with its replacement")
		case b.Replacement != "" && b.Pattern == "":
			d.problem(p+".replacement", "a replacement needs a pattern")
		}
		if b.Pattern != "" {
			if _, err := regexp.Compile(b.Pattern); err != nil {
				d.problem(p+".pattern", "%s is not a valid regular expression: %v", d.show(p+".pattern", b.Pattern), err)
			}
		}
	}
}
