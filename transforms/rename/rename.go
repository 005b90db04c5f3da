// Package rename maps source names to sink names: tables, schemas and
// columns, one by one or in bulk, with a case policy for the names no rule
// gives. The mapping applies to everything the sink does (creating
// tables, the copy, streamed changes, truncates, verification), so a
// pipeline builds one Rules and every stage asks it.
//
// # Precedence
//
// A sink table name has two parts, and each is decided by the first rule
// in this order that applies to it; the name a rule gives is used exactly
// as written:
//
//	schema part: explicit table rename > schema rename > case policy
//	name part:   explicit table rename > bulk rule     > case policy
//
// So an explicit rename of one table beats a rename of its schema, which
// beats bulk rules (they only ever decide the name part, and match on the
// source schema), which beat the case policy; the case policy applies to
// the parts no rule decided. Bulk rules of a schema are tried in order;
// the first that matches the table decides. A column is renamed or dropped
// by an explicit column rule, else the case policy applies to it.
//
// Names are plain strings, case and all (sluice always quotes them at the
// sink): "Orders" and "orders" are different names, and a name may hold
// quotes, dots or any character. Parsing a pipeline file's quoted and
// dotted spelling is the pipelines package's business.
//
// New refuses inconsistent rules (the same source named twice, an invalid
// pattern); Check refuses a mapping that would lose data at the sink: two
// source tables (or two columns of one table) on one sink name, a sink
// name PostgreSQL would truncate, a rule about a table or column that does
// not exist, a table mapped into sluice's own schema.
package rename

import (
	"errors"
	"fmt"
	"regexp"
	"regexp/syntax"
	"sort"
	"strings"

	"github.com/sluicehq/sluice/engine/record"
)

// Case is the case policy for sink names that no rule gives.
type Case uint8

const (
	// CaseSource keeps the source's spelling (the default).
	CaseSource Case = iota
	// CaseLower lower-cases names (Unicode lower case).
	CaseLower
	// CaseUpper upper-cases names (Unicode upper case).
	CaseUpper
)

// ParseCase reads a case policy as written in a pipeline file: source
// (or empty), lower, upper.
func ParseCase(s string) (Case, error) {
	switch s {
	case "", "source":
		return CaseSource, nil
	case "lower":
		return CaseLower, nil
	case "upper":
		return CaseUpper, nil
	}
	return 0, fmt.Errorf("%q is not a case policy (valid: source, lower, upper)", s)
}

func (c Case) String() string {
	switch c {
	case CaseLower:
		return "lower"
	case CaseUpper:
		return "upper"
	}
	return "source"
}

func (c Case) apply(s string) string {
	switch c {
	case CaseLower:
		return strings.ToLower(s)
	case CaseUpper:
		return strings.ToUpper(s)
	}
	return s
}

// TableRename renames one table.
type TableRename struct {
	From, To record.TableName
	// Origin says where the rule comes from, for messages, e.g.
	// "pipeline.yaml:12 (objects[2].rename)".
	Origin string
}

// SchemaRename puts every table of a source schema into another sink
// schema, keeping the tables' names (unless another rule renames them).
type SchemaRename struct {
	From, To string
	Origin   string
}

// ColumnRename renames (To) or drops (Drop) one column of one table.
type ColumnRename struct {
	Table    record.TableName // the source table
	From, To string
	Drop     bool
	Origin   string
}

// BulkRename renames the tables of a source schema: the sink name is
// Prefix + name + Suffix, where name is the source name, or, with Pattern,
// the source name with Pattern replaced by Replacement (regexp syntax of
// Go's regexp package, $1 for groups). A rule with a Pattern applies only
// to the tables whose whole name matches it.
type BulkRename struct {
	Schema      string
	Prefix      string
	Suffix      string
	Pattern     string
	Replacement string
	Origin      string
}

// Config is the set of rules a pipeline file gives.
type Config struct {
	Tables  []TableRename
	Schemas []SchemaRename
	Columns []ColumnRename
	Bulk    []BulkRename
	Case    Case
	// CaseOrigin says where the case policy comes from, for messages.
	CaseOrigin string
}

// Rules is the compiled mapping. The zero value and nil map every name to
// itself. A Rules is safe for concurrent use.
type Rules struct {
	tables  map[record.TableName]TableRename
	schemas map[string]SchemaRename
	columns map[record.TableName]map[string]ColumnRename
	bulk    map[string][]bulkRule
	cas     Case
	caseOri string
}

type bulkRule struct {
	BulkRename
	re *regexp.Regexp
}

// maxIdentLen is PostgreSQL's limit on an identifier in bytes
// (NAMEDATALEN-1): a longer name is silently truncated, which could make
// two names one.
const maxIdentLen = 63

// ReservedSchema is the sink schema that holds sluice's own state; no
// table may be mapped into it.
const ReservedSchema = "sluice"

// New compiles the rules. It refuses a source table, schema or column
// named by two rules of the same kind, empty names, and invalid patterns;
// every problem found is reported, each with its rule's origin.
func New(c Config) (*Rules, error) {
	r := &Rules{
		tables:  map[record.TableName]TableRename{},
		schemas: map[string]SchemaRename{},
		columns: map[record.TableName]map[string]ColumnRename{},
		bulk:    map[string][]bulkRule{},
		cas:     c.Case,
		caseOri: c.CaseOrigin,
	}
	var errs []error
	bad := func(origin, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s%s", at(origin), fmt.Sprintf(format, args...)))
	}
	for _, t := range c.Tables {
		switch {
		case t.From.Schema == "" || t.From.Name == "":
			bad(t.Origin, "a table rename needs the source table as schema.table")
		case t.To.Schema == "" || t.To.Name == "":
			bad(t.Origin, "the new name of %s needs a schema and a table name", t.From)
		default:
			if prev, dup := r.tables[t.From]; dup {
				bad(t.Origin, "table %s is renamed twice: to %s here and to %s %s", t.From, t.To, prev.To, at2(prev.Origin))
				continue
			}
			r.tables[t.From] = t
		}
	}
	for _, s := range c.Schemas {
		switch {
		case s.From == "" || s.To == "":
			bad(s.Origin, "a schema rename needs the source schema and the new name")
		default:
			if prev, dup := r.schemas[s.From]; dup {
				bad(s.Origin, "schema %s is renamed twice: to %s here and to %s %s", ident(s.From), ident(s.To), ident(prev.To), at2(prev.Origin))
				continue
			}
			r.schemas[s.From] = s
		}
	}
	for _, col := range c.Columns {
		switch {
		case col.Table.Schema == "" || col.Table.Name == "" || col.From == "":
			bad(col.Origin, "a column rule needs the table and the column")
		case !col.Drop && col.To == "":
			bad(col.Origin, "column %s of %s: give a new name, or null to drop it", ident(col.From), col.Table)
		case col.Drop && col.To != "":
			bad(col.Origin, "column %s of %s is both renamed and dropped", ident(col.From), col.Table)
		default:
			m := r.columns[col.Table]
			if m == nil {
				m = map[string]ColumnRename{}
				r.columns[col.Table] = m
			}
			if prev, dup := m[col.From]; dup {
				bad(col.Origin, "column %s of %s has two rules: %s here and %s %s", ident(col.From), col.Table, colAction(col), colAction(prev), at2(prev.Origin))
				continue
			}
			m[col.From] = col
		}
	}
	for _, b := range c.Bulk {
		br := bulkRule{BulkRename: b}
		switch {
		case b.Schema == "":
			bad(b.Origin, "a bulk rename needs the schema whose tables it renames")
			continue
		case b.Prefix == "" && b.Suffix == "" && b.Pattern == "":
			bad(b.Origin, "a bulk rename of schema %s needs a prefix, a suffix or a pattern", ident(b.Schema))
			continue
		case b.Replacement != "" && b.Pattern == "":
			bad(b.Origin, "a replacement needs a pattern")
			continue
		}
		if b.Pattern != "" {
			re, err := regexp.Compile(`^(?:` + b.Pattern + `)$`)
			if err != nil {
				bad(b.Origin, "invalid pattern %q: %v", b.Pattern, regexpReason(err))
				continue
			}
			br.re = re
		}
		r.bulk[b.Schema] = append(r.bulk[b.Schema], br)
	}
	if c.Case > CaseUpper {
		bad(c.CaseOrigin, "unknown case policy %d", c.Case)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return r, nil
}

func regexpReason(err error) string {
	var re *syntax.Error
	if errors.As(err, &re) {
		return fmt.Sprintf("%s: %q", re.Code, re.Expr)
	}
	return err.Error()
}

func at(origin string) string {
	if origin == "" {
		return ""
	}
	return origin + ": "
}

func at2(origin string) string {
	if origin == "" {
		return ""
	}
	return "(" + origin + ")"
}

func colAction(c ColumnRename) string {
	if c.Drop {
		return "drop"
	}
	return "rename to " + ident(c.To)
}

// ident renders a name for a message as record.TableName.String does:
// quoted when it is not all lower-case letters, digits and underscores.
func ident(s string) string {
	if s == "" {
		return `""`
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return record.QuoteIdent(s)
		}
	}
	return s
}

// Table returns the sink name of a source table.
func (r *Rules) Table(src record.TableName) record.TableName {
	dst, _ := r.table(src)
	return dst
}

// table maps src and says which rules decided it.
func (r *Rules) table(src record.TableName) (record.TableName, string) {
	if r == nil {
		return src, "no rule"
	}
	if t, ok := r.tables[src]; ok {
		return t.To, "table rename" + spaceAt(t.Origin)
	}
	var why []string
	dst := src
	cased := false
	if s, ok := r.schemas[src.Schema]; ok {
		dst.Schema = s.To
		why = append(why, "schema rename"+spaceAt(s.Origin))
	} else if r.cas != CaseSource {
		dst.Schema = r.cas.apply(src.Schema)
		cased = true
	}
	if name, origin, ok := r.bulkName(src); ok {
		dst.Name = name
		why = append(why, "bulk rule"+spaceAt(origin))
	} else if r.cas != CaseSource {
		dst.Name = r.cas.apply(src.Name)
		cased = true
	}
	if cased {
		why = append(why, "case policy "+r.cas.String()+spaceAt(r.caseOri))
	}
	if len(why) == 0 {
		return dst, "no rule"
	}
	return dst, strings.Join(why, " and ")
}

// bulkName applies the first bulk rule of the table's schema that matches
// it.
func (r *Rules) bulkName(src record.TableName) (name, origin string, ok bool) {
	for _, b := range r.bulk[src.Schema] {
		name := src.Name
		if b.re != nil {
			if !b.re.MatchString(src.Name) {
				continue
			}
			if b.Replacement != "" {
				name = b.re.ReplaceAllString(src.Name, b.Replacement)
			}
		}
		return b.Prefix + name + b.Suffix, b.Origin, true
	}
	return "", "", false
}

func spaceAt(origin string) string {
	if origin == "" {
		return ""
	}
	return " at " + origin
}

// Column returns the sink name of a column of a source table, or dropped
// true when the column is not copied.
func (r *Rules) Column(table record.TableName, col string) (name string, dropped bool) {
	name, dropped, _ = r.column(table, col)
	return name, dropped
}

func (r *Rules) column(table record.TableName, col string) (string, bool, string) {
	if r == nil {
		return col, false, "no rule"
	}
	if c, ok := r.columns[table][col]; ok {
		if c.Drop {
			return "", true, "column drop" + spaceAt(c.Origin)
		}
		return c.To, false, "column rename" + spaceAt(c.Origin)
	}
	if r.cas != CaseSource {
		return r.cas.apply(col), false, "case policy " + r.cas.String() + spaceAt(r.caseOri)
	}
	return col, false, "no rule"
}

// Relation maps a source relation to the sink's: its table and columns
// renamed, dropped columns removed. keep[i] is the index in src.Columns
// of the result's column i, to line values up. The result is a new
// Relation; src is not modified.
func (r *Rules) Relation(src *record.Relation) (dst *record.Relation, keep []int) {
	dst = &record.Relation{ID: src.ID, Table: r.Table(src.Table)}
	for i, c := range src.Columns {
		name, dropped := r.Column(src.Table, c.Name)
		if dropped {
			continue
		}
		c.Name = name
		dst.Columns = append(dst.Columns, c)
		keep = append(keep, i)
	}
	return dst, keep
}

// Check verifies the mapping of the given source tables and their columns
// (columns may lack a table; its columns are then not checked). It
// reports, all at once:
//
//   - two source tables mapped onto one sink table, naming both and the
//     rules responsible;
//   - two columns of a table mapped onto one sink column, likewise;
//   - a sink name longer than PostgreSQL's 63 bytes (it would be
//     truncated, possibly onto another name);
//   - a table mapped into the reserved schema sluice;
//   - a table or column rule about a table not among tables, or a column
//     rule about a column the table does not have.
func (r *Rules) Check(tables []record.TableName, columns map[record.TableName][]string) error {
	var problems []string
	srcs := append([]record.TableName(nil), tables...)
	sort.Slice(srcs, func(i, j int) bool { return less(srcs[i], srcs[j]) })
	type owner struct {
		src record.TableName
		why string
	}
	seen := map[record.TableName]owner{}
	known := map[record.TableName]bool{}
	for _, src := range srcs {
		if known[src] {
			continue
		}
		known[src] = true
		dst, why := r.table(src)
		if msg := nameProblem(dst.Schema, "schema"); msg != "" {
			problems = append(problems, fmt.Sprintf("table %s: the sink %s (%s)", src, msg, why))
		}
		if msg := nameProblem(dst.Name, "table name"); msg != "" {
			problems = append(problems, fmt.Sprintf("table %s: the sink %s (%s)", src, msg, why))
		}
		if dst.Schema == ReservedSchema {
			problems = append(problems, fmt.Sprintf("table %s maps to %s, in the schema %s that holds sluice's own state at the sink (%s); choose another schema", src, dst, ReservedSchema, why))
		}
		if prev, dup := seen[dst]; dup {
			problems = append(problems, fmt.Sprintf("tables %s and %s both map to %s at the sink (%s: %s; %s: %s); rename one of them", prev.src, src, dst, prev.src, prev.why, src, why))
			continue
		}
		seen[dst] = owner{src, why}
	}
	if r != nil {
		for _, from := range sortedTables(r.tables) {
			if !known[from] {
				problems = append(problems, fmt.Sprintf("%sthe table rename names %s, which the pipeline does not copy", at(r.tables[from].Origin), from))
			}
		}
		for _, tbl := range sortedTables(r.columns) {
			if !known[tbl] {
				for _, c := range sortedCols(r.columns[tbl]) {
					problems = append(problems, fmt.Sprintf("%sthe column rule names table %s, which the pipeline does not copy", at(c.Origin), tbl))
				}
			}
		}
	}
	for _, src := range srcs {
		cols, ok := columns[src]
		if !ok {
			continue
		}
		problems = append(problems, r.checkColumns(src, cols)...)
	}
	if len(problems) == 0 {
		return nil
	}
	errs := make([]error, len(problems))
	for i, p := range problems {
		errs[i] = errors.New("rename: " + p)
	}
	return errors.Join(errs...)
}

func (r *Rules) checkColumns(src record.TableName, cols []string) []string {
	var problems []string
	type owner struct{ col, why string }
	seen := map[string]owner{}
	has := map[string]bool{}
	for _, c := range cols {
		has[c] = true
	}
	for _, c := range cols {
		name, dropped, why := r.column(src, c)
		if dropped {
			continue
		}
		if msg := nameProblem(name, "column name"); msg != "" {
			problems = append(problems, fmt.Sprintf("column %s of %s: the sink %s (%s)", ident(c), src, msg, why))
		}
		if prev, dup := seen[name]; dup {
			problems = append(problems, fmt.Sprintf("columns %s and %s of %s both map to %s at the sink (%s: %s; %s: %s); rename or drop one of them",
				ident(prev.col), ident(c), src, ident(name), ident(prev.col), prev.why, ident(c), why))
			continue
		}
		seen[name] = owner{c, why}
	}
	if r != nil {
		for _, rule := range sortedCols(r.columns[src]) {
			if !has[rule.From] {
				problems = append(problems, fmt.Sprintf("%s%s has no column %s (its columns: %s)", at(rule.Origin), src, ident(rule.From), columnList(cols)))
			}
		}
	}
	return problems
}

// nameProblem describes what is wrong with a sink name, or "".
func nameProblem(name, what string) string {
	switch {
	case name == "":
		return what + " is empty"
	case strings.IndexByte(name, 0) >= 0:
		return what + " " + ident(name) + " contains a NUL byte"
	case len(name) > maxIdentLen:
		return fmt.Sprintf("%s %s is %d bytes long; PostgreSQL would truncate it to %d", what, ident(name), len(name), maxIdentLen)
	}
	return ""
}

func columnList(cols []string) string {
	s := make([]string, len(cols))
	for i, c := range cols {
		s[i] = ident(c)
	}
	if len(s) > 30 {
		return strings.Join(s[:30], ", ") + fmt.Sprintf(", … (%d more)", len(s)-30)
	}
	return strings.Join(s, ", ")
}

func less(a, b record.TableName) bool {
	if a.Schema != b.Schema {
		return a.Schema < b.Schema
	}
	return a.Name < b.Name
}

func sortedTables[V any](m map[record.TableName]V) []record.TableName {
	keys := make([]record.TableName, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return less(keys[i], keys[j]) })
	return keys
}

func sortedCols(m map[string]ColumnRename) []ColumnRename {
	out := make([]ColumnRename, 0, len(m))
	for _, c := range m {
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].From < out[j].From })
	return out
}
