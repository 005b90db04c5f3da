// Package rowexpr compiles the expr-lang expressions of a pipeline's
// `filter` and `set` transform stages for one table, type-checks them
// against the table's columns, and evaluates them on records.
//
// An expression sees one record as these names:
//
//	op           "insert", "update" or "delete" (snapshot rows are inserts)
//	schema       the source schema of the table
//	table        the source table name
//	before       the old row (a map of column → value), nil when the source
//	             sent none (inserts; updates of tables whose key did not change)
//	after        the new row, nil for deletes
//	commit_time  the source transaction's commit time (nil for snapshot rows)
//	lsn          the source transaction's commit position as text, e.g.
//	             "0/16B3748" (nil for snapshot rows)
//
// Column values have the expression type of their column's type:
// smallint, integer, bigint and oid are int; real and double precision
// are float64; numeric is Numeric, an exact decimal that also holds NaN
// and ±Infinity (numeric.go says how +, -, *, /, %, comparisons and
// mixing with int and float work, operators.go how they reach expr-lang);
// boolean is bool; every other type is its PostgreSQL text form as a
// string. A NULL is nil.
//
// Numeric functions: abs, ceil, floor, round(x[, digits]) (half away from
// zero), trunc(x[, digits]) (toward zero), int(x) (truncates), float(x),
// numeric(x) (from an int, a float through its shortest decimal text, or
// a text such as "12.50" or "NaN"); `x in [...]` compares numerically;
// ** and ^ are PostgreSQL 15's numeric power (numeric_pow.go); max, min,
// sum, mean and median work on numerics as greatest, least, sum and avg
// do, and greatest and least are there too, leaving nil out
// (aggregates.go). A numeric beside a double precision value is
// converted to double precision, as PostgreSQL does (numeric_float.go).
//
// Compile errors are *Error values with the position (1-based character
// in the expression) and the reason: a syntax error, an unknown column
// (after.emial), a type clash (after.amount + 'x'), a filter that is not
// boolean, a set whose result does not fit its column. Runtime errors
// (division by zero, an operation on nil, a value the source did not
// send) are *EvalError values with the position: the engine stops the
// pipeline on them, never skipping the record.
package rowexpr

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/parser"
	"github.com/expr-lang/expr/types"
	"github.com/expr-lang/expr/vm"

	"github.com/sluicehq/sluice/engine/record"
)

// Column is a column of the table an expression runs on, as the source's
// catalog has it.
type Column struct {
	Name string
	// TypeOID is the column's type; pass a domain's base type.
	TypeOID uint32
	// TypeName is the type's name, for messages.
	TypeName string
	// Key is true for a column of the table's key (primary key or
	// identity index).
	Key bool
}

// Table is the table an expression is compiled for.
type Table struct {
	Name    record.TableName
	Columns []Column
}

// Error is a problem found when compiling an expression. Pos is the
// 1-based character position in the expression (0: the expression as a
// whole).
type Error struct {
	Pos int
	Msg string
}

func (e *Error) Error() string {
	if e.Pos > 0 {
		return fmt.Sprintf("position %d: %s", e.Pos, e.Msg)
	}
	return e.Msg
}

// EvalError is a problem found when evaluating an expression on a record:
// the position (1-based, 0 unknown) and the reason.
type EvalError struct {
	Pos int
	Msg string
}

func (e *EvalError) Error() string {
	if e.Pos > 0 {
		return fmt.Sprintf("position %d: %s", e.Pos, e.Msg)
	}
	return e.Msg
}

// kind is how a column's values appear in expressions.
type kind uint8

const (
	kindString kind = iota
	kindInt
	kindFloat
	kindBool
	kindNumeric
)

func (k kind) String() string {
	switch k {
	case kindInt:
		return "int"
	case kindFloat:
		return "float64"
	case kindBool:
		return "bool"
	case kindNumeric:
		return "numeric"
	}
	return "string"
}

// PostgreSQL type OIDs with a non-string expression type.
const (
	oidBool    = 16
	oidInt8    = 20
	oidInt2    = 21
	oidInt4    = 23
	oidOID     = 26
	oidFloat4  = 700
	oidFloat8  = 701
	oidNumeric = 1700
)

func kindOf(oid uint32) kind {
	switch oid {
	case oidBool:
		return kindBool
	case oidInt2, oidInt4, oidInt8, oidOID:
		return kindInt
	case oidFloat4, oidFloat8:
		return kindFloat
	case oidNumeric:
		return kindNumeric
	}
	return kindString
}

func (k kind) typ() types.Type {
	switch k {
	case kindInt:
		return types.Int
	case kindFloat:
		return types.Float64
	case kindBool:
		return types.Bool
	case kindNumeric:
		return types.TypeOf(Numeric{})
	}
	return types.String
}

// Parse checks an expression's syntax only (column names and types are
// checked by CompileFilter and CompileSet, once the catalog is known).
func Parse(src string) error {
	if strings.TrimSpace(src) == "" {
		return &Error{Msg: "the expression is empty"}
	}
	if _, err := parser.Parse(src); err != nil {
		return compileError(err)
	}
	return nil
}

// compileError turns expr-lang's error into an *Error with the position.
func compileError(err error) error {
	var fe *file.Error
	if errors.As(err, &fe) {
		return &Error{Pos: fe.Column + 1, Msg: numericNames(fe.Message)}
	}
	return &Error{Msg: numericNames(err.Error())}
}

// numericNames writes numeric for the Go name of its type in expr-lang's
// messages.
func numericNames(msg string) string {
	return strings.ReplaceAll(msg, numericType.String(), "numeric")
}

func evalError(err error) error {
	var fe *file.Error
	if errors.As(err, &fe) {
		return &EvalError{Pos: fe.Column + 1, Msg: numericNames(fe.Message)}
	}
	return &EvalError{Msg: numericNames(err.Error())}
}

// program is one compiled expression for one table.
type program struct {
	src  string
	prog *vm.Program
	cols map[string]int // column name → index in Table.Columns
	kind []kind         // per column of Table.Columns
	// after and before list the columns the expression reads from each
	// row; allAfter/allBefore mean it reads the row as a whole (or by
	// computed names), so every column is decoded.
	after, before         []string
	allAfter, allBefore   bool
	usesAfter, usesBefore bool
	// change lists the names about the change rather than the row that
	// the expression reads (op, before, commit_time, lsn).
	change []string
	// envs and vms recycle the per-record environment maps and virtual
	// machines, which would otherwise be most of a record's allocations.
	envs sync.Pool // *env
	vms  sync.Pool // *vm.VM
}

// env is one evaluation's environment: the record's names and its rows.
type env struct {
	top           map[string]any
	after, before map[string]any
}

func typeName(v any) string {
	if v == nil {
		return "nil"
	}
	if _, ok := v.(Numeric); ok {
		return "numeric"
	}
	return reflect.TypeOf(v).String()
}

// compile type-checks src over t's columns.
func compile(src string, t Table) (*program, error) {
	if strings.TrimSpace(src) == "" {
		return nil, &Error{Msg: "the expression is empty"}
	}
	row := types.Map{}
	p := &program{src: src, cols: map[string]int{}, kind: make([]kind, len(t.Columns))}
	for i, c := range t.Columns {
		k := kindOf(c.TypeOID)
		p.kind[i] = k
		p.cols[c.Name] = i
		row[c.Name] = k.typ()
	}
	env := types.Map{
		"op":          types.String,
		"schema":      types.String,
		"table":       types.String,
		"before":      row,
		"after":       row,
		"commit_time": types.TypeOf(time.Time{}),
		"lsn":         types.String,
	}
	prog, err := expr.Compile(src, append([]expr.Option{expr.Env(env)}, numericOptions(src)...)...)
	if err != nil {
		return nil, compileError(err)
	}
	p.prog = prog
	p.reads(prog.Node())
	return p, nil
}

// reads records which columns of before and after the expression reads.
func (p *program) reads(root ast.Node) {
	v := &readVisitor{static: map[string]int{}, uses: map[string]int{}, cols: map[string]map[string]bool{"after": {}, "before": {}}, change: map[string]bool{}}
	ast.Walk(&root, v)
	for _, n := range []string{"op", "before", "commit_time", "lsn"} {
		if v.change[n] {
			p.change = append(p.change, n)
		}
	}
	for _, row := range []string{"after", "before"} {
		cols := make([]string, 0, len(v.cols[row]))
		for c := range v.cols[row] {
			cols = append(cols, c)
		}
		sort.Strings(cols)
		all := v.uses[row] > v.static[row]
		if row == "after" {
			p.after, p.allAfter, p.usesAfter = cols, all, v.uses[row] > 0
		} else {
			p.before, p.allBefore, p.usesBefore = cols, all, v.uses[row] > 0
		}
	}
}

type readVisitor struct {
	static map[string]int // row → member accesses by a literal name
	uses   map[string]int // row → identifier uses
	cols   map[string]map[string]bool
	change map[string]bool // op, before, commit_time, lsn: used
}

func (v *readVisitor) Visit(n *ast.Node) {
	switch x := (*n).(type) {
	case *ast.IdentifierNode:
		if _, ok := v.cols[x.Value]; ok {
			v.uses[x.Value]++
		}
		switch x.Value {
		case "op", "before", "commit_time", "lsn":
			v.change[x.Value] = true
		}
	case *ast.MemberNode:
		id, ok := x.Node.(*ast.IdentifierNode)
		if !ok {
			return
		}
		if _, ok := v.cols[id.Value]; !ok {
			return
		}
		if s, ok := x.Property.(*ast.StringNode); ok {
			v.static[id.Value]++
			v.cols[id.Value][s.Value] = true
		}
	}
}

// Columns returns the columns the expression reads from the old or the
// new row; all is true when it reads a row as a whole.
func (p *program) Columns() (cols []string, all bool) {
	seen := map[string]bool{}
	for _, c := range append(append([]string(nil), p.after...), p.before...) {
		if !seen[c] {
			seen[c] = true
			cols = append(cols, c)
		}
	}
	sort.Strings(cols)
	return cols, p.allAfter || p.allBefore
}

// ReadsAfter reports whether the expression reads the new row.
func (p *program) ReadsAfter() bool { return p.usesAfter }

// Before returns the columns the expression reads from the old row, and
// whether it reads the old row at all (also as a whole, or by computed
// names, or only to test it against nil).
func (p *program) Before() (cols []string, used bool) {
	return p.before, p.usesBefore
}

// run evaluates the program on rec. after, when non-nil, replaces the new
// row (a Set on an old row evaluates it as the new one).
func (p *program) run(rec *record.Record, after []record.Value, afterSet bool, commitTime time.Time) (any, error) {
	e, _ := p.envs.Get().(*env)
	if e == nil {
		e = &env{top: map[string]any{}, after: map[string]any{}, before: map[string]any{}}
	}
	if err := p.fill(e, rec, after, afterSet, commitTime); err != nil {
		p.envs.Put(e)
		return nil, err
	}
	machine, _ := p.vms.Get().(*vm.VM)
	if machine == nil {
		machine = &vm.VM{}
	}
	out, err := machine.Run(p.prog, e.top)
	p.vms.Put(machine)
	if _, isMap := out.(map[string]any); !isMap {
		// The result does not hold the environment: it can be reused.
		p.envs.Put(e)
	}
	if err != nil {
		return nil, evalError(err)
	}
	return out, nil
}

// fill sets e up for one record.
func (p *program) fill(e *env, rec *record.Record, after []record.Value, afterSet bool, commitTime time.Time) error {
	if rec.Format != record.Text {
		return &EvalError{Msg: "the record is in binary format; transform stages read text-format rows (internal error, please report it)"}
	}
	top := e.top
	top["op"] = rec.Op.String()
	top["schema"] = rec.Rel.Table.Schema
	top["table"] = rec.Rel.Table.Name
	top["before"], top["after"], top["commit_time"], top["lsn"] = nil, nil, nil, nil
	if rec.Position != 0 {
		top["lsn"] = rec.Position.String()
	}
	if !commitTime.IsZero() {
		top["commit_time"] = commitTime
	}
	newVals := rec.New
	if afterSet {
		newVals = after
	}
	if newVals != nil {
		if err := p.row(e.after, rec, newVals, rec.Old, p.after, p.allAfter, "new"); err != nil {
			return err
		}
		top["after"] = e.after
	}
	if rec.Old != nil && !afterSet {
		if err := p.row(e.before, rec, rec.Old, nil, p.before, p.allBefore, "old"); err != nil {
			return err
		}
		top["before"] = e.before
	}
	return nil
}

// row decodes into m the columns cols (every column when all) of vals; an
// unchanged value is taken from fill (the old row) when it has it.
func (p *program) row(m map[string]any, rec *record.Record, vals, fill []record.Value, cols []string, all bool, which string) error {
	clear(m)
	if all {
		cols = cols[:0:0]
		for _, c := range rec.Rel.Columns {
			cols = append(cols, c.Name)
		}
	}
	for _, name := range cols {
		j := rec.Rel.ColumnIndex(name)
		ci, known := p.cols[name]
		if j < 0 || !known || j >= len(vals) {
			// A column the stream's relation lacks (dropped at the source
			// since the pipeline loaded): nil, like a missing key.
			m[name] = nil
			continue
		}
		v := vals[j]
		if v.Unchanged && j < len(fill) && !fill[j].Unchanged && rec.Rel.Columns[j].Key {
			v = fill[j]
		}
		if v.Unchanged {
			return &EvalError{Msg: fmt.Sprintf("the %s row's column %s is an unchanged TOASTed value the source did not send, so the expression cannot read it; set REPLICA IDENTITY FULL on the source table", which, record.QuoteIdent(name))}
		}
		x, err := decode(p.kind[ci], v)
		if err != nil {
			return &EvalError{Msg: fmt.Sprintf("column %s: %v", record.QuoteIdent(name), err)}
		}
		m[name] = x
	}
	return nil
}

// decode reads a text-format value as its expression type.
func decode(k kind, v record.Value) (any, error) {
	if v.Null {
		return nil, nil
	}
	s := string(v.Data)
	switch k {
	case kindInt:
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%q is not an integer", s)
		}
		return int(n), nil
	case kindFloat:
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			var ne *strconv.NumError
			if errors.As(err, &ne) && errors.Is(ne.Err, strconv.ErrRange) {
				return f, nil // beyond float64: ±Inf, as an approximation
			}
			return nil, fmt.Errorf("%q is not a number", s)
		}
		return f, nil
	case kindNumeric:
		n, err := ParseNumeric(s)
		if err != nil {
			return nil, err
		}
		return n, nil
	case kindBool:
		switch s {
		case "t":
			return true, nil
		case "f":
			return false, nil
		}
		return nil, fmt.Errorf("%q is not a boolean", s)
	}
	return s, nil
}

// Filter is a compiled `filter` expression for one table: records for
// which it is false are dropped. A Filter is safe for concurrent use.
type Filter struct{ *program }

// CompileFilter compiles and type-checks a filter over t: it must be a
// boolean expression over the names the package documents.
func CompileFilter(src string, t Table) (*Filter, error) {
	p, err := compile(src, t)
	if err != nil {
		return nil, err
	}
	if rt := p.prog.Node().Type(); rt != nil && rt.Kind() != reflect.Bool && rt.Kind() != reflect.Interface {
		return nil, &Error{Msg: fmt.Sprintf("a filter must be a boolean expression, but this one gives %s", typeString(rt))}
	}
	return &Filter{p}, nil
}

// Keep evaluates the filter on rec, committed at commitTime at the source
// (zero for snapshot rows). A nil result (e.g. a boolean column
// that is NULL) is an error, not false: say what NULL means with ?? or
// == nil.
func (f *Filter) Keep(rec *record.Record, commitTime time.Time) (bool, error) {
	out, err := f.run(rec, nil, false, commitTime)
	if err != nil {
		return false, err
	}
	b, ok := out.(bool)
	if !ok {
		return false, &EvalError{Msg: fmt.Sprintf("the filter gave %s, not true or false (for a NULL, write e.g. `(after.flag ?? false)`)", describe(out))}
	}
	return b, nil
}

func describe(v any) string {
	if v == nil {
		return "nil"
	}
	return fmt.Sprintf("%v (%s)", v, typeName(v))
}

// Set is a compiled `set` stage for one table: each target column gets
// its expression's value. Every expression sees the record as it came
// in, not the values the other targets get. A Set is safe for concurrent
// use.
type Set struct {
	targets []target
	tbl     Table
}

type target struct {
	col  string
	kind kind
	prog *program
}

// CompileSet compiles the expressions of a set stage (column → expression)
// over t and checks that each result fits its column: int for integer
// columns (or numeric, when integral at run time), int or float64 for
// real and double precision, int, float64 or numeric for numeric and the
// float types, bool for boolean, string for every other type; nil always
// fits. A numeric result written to a numeric column keeps every digit. A target
// that is not a column of t, or is one of its key columns, is refused
// (the sink finds streamed rows by their key). Errors name the column.
func CompileSet(exprs map[string]string, t Table) (*Set, error) {
	s := &Set{tbl: t}
	var errs []error
	names := make([]string, 0, len(exprs))
	for c := range exprs {
		names = append(names, c)
	}
	sort.Strings(names)
	for _, col := range names {
		ci := -1
		for i, c := range t.Columns {
			if c.Name == col {
				ci = i
			}
		}
		if ci < 0 {
			errs = append(errs, fmt.Errorf("set %s: table %s has no column %s (a set stage computes existing columns; add the column at the source or leave it out)", record.QuoteIdent(col), t.Name, record.QuoteIdent(col)))
			continue
		}
		if t.Columns[ci].Key {
			errs = append(errs, fmt.Errorf("set %s: %s is a key column of table %s; changing it would make the sink miss the rows later updates and deletes name (compute another column instead)", record.QuoteIdent(col), record.QuoteIdent(col), t.Name))
			continue
		}
		p, err := compile(exprs[col], t)
		if err != nil {
			errs = append(errs, fmt.Errorf("set %s: %w", record.QuoteIdent(col), err))
			continue
		}
		k := kindOf(t.Columns[ci].TypeOID)
		if rt := p.prog.Node().Type(); rt != nil && !fits(k, rt) {
			errs = append(errs, fmt.Errorf("set %s: %w", record.QuoteIdent(col), &Error{Msg: fmt.Sprintf("the expression gives %s but column %s is %s (an expression of type %s)%s", typeString(rt), record.QuoteIdent(col), typeLabel(t.Columns[ci]), k, conversionHint(k, rt))}))
			continue
		}
		s.targets = append(s.targets, target{col: col, kind: k, prog: p})
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return s, nil
}

func typeLabel(c Column) string {
	if c.TypeName != "" {
		return c.TypeName
	}
	return fmt.Sprintf("of type OID %d", c.TypeOID)
}

func conversionHint(k kind, rt reflect.Type) string {
	switch {
	case k == kindInt && rt.Kind() == reflect.Float64:
		return "; convert with int(...)"
	case k == kindString:
		return "; convert with string(...)"
	case k == kindFloat && rt.Kind() == reflect.String:
		return "; convert with float(...)"
	case k == kindNumeric && rt.Kind() == reflect.String:
		return "; convert with numeric(...)"
	}
	return ""
}

func fits(k kind, rt reflect.Type) bool {
	if rt == numericType {
		return k == kindNumeric || k == kindFloat || k == kindInt
	}
	switch rt.Kind() {
	case reflect.Interface:
		return true
	case reflect.Int, reflect.Int64, reflect.Int32, reflect.Int16, reflect.Int8:
		return k == kindInt || k == kindFloat || k == kindNumeric
	case reflect.Float64, reflect.Float32:
		return k == kindFloat || k == kindNumeric
	case reflect.Bool:
		return k == kindBool
	case reflect.String:
		return k == kindString
	}
	return false
}

// Columns returns the columns the stage's expressions read.
func (s *Set) Columns() (cols []string, all bool) {
	return s.union((*program).Columns)
}

// Before returns the columns the stage's expressions read from the old
// row, and whether any reads the old row at all.
func (s *Set) Before() (cols []string, used bool) {
	return s.union((*program).Before)
}

// union merges what names returns for each target's program: the sorted
// distinct names, and whether any program reported true.
func (s *Set) union(names func(*program) ([]string, bool)) (out []string, found bool) {
	seen := map[string]bool{}
	for _, t := range s.targets {
		c, a := names(t.prog)
		found = found || a
		for _, x := range c {
			if !seen[x] {
				seen[x] = true
				out = append(out, x)
			}
		}
	}
	sort.Strings(out)
	return out, found
}

// ChangeNames returns the names about the change rather than the row
// (op, before, commit_time, lsn) that the stage's expressions read: with
// any, the value computed for a row depends on the change that brought it.
func (s *Set) ChangeNames() []string {
	seen := map[string]bool{}
	var out []string
	for _, t := range s.targets {
		for _, n := range t.prog.change {
			if !seen[n] {
				seen[n] = true
				out = append(out, n)
			}
		}
	}
	return out
}

// Targets returns the columns the stage writes.
func (s *Set) Targets() []string {
	out := make([]string, len(s.targets))
	for i, t := range s.targets {
		out[i] = t.col
	}
	return out
}

// Apply computes the targets on rec's new row (commitTime as for
// Filter.Keep), in place (rec.New is
// replaced by a new slice; the old values are not modified). With old
// true it also computes them on the old row, evaluated as if it were the
// new one: for a table without a key, whose old row is how the sink finds
// the row, and must equal what the sink was given. A record without a new
// row (a delete) is left alone unless old is true.
func (s *Set) Apply(rec *record.Record, old bool, commitTime time.Time) error {
	if rec.New != nil {
		vals, err := s.compute(rec, rec.New, false, commitTime)
		if err != nil {
			return err
		}
		rec.New = vals
	}
	if old && rec.Old != nil {
		vals, err := s.compute(rec, rec.Old, true, commitTime)
		if err != nil {
			return err
		}
		rec.Old = vals
	}
	return nil
}

func (s *Set) compute(rec *record.Record, row []record.Value, asAfter bool, commitTime time.Time) ([]record.Value, error) {
	out := append([]record.Value(nil), row...)
	for _, t := range s.targets {
		j := rec.Rel.ColumnIndex(t.col)
		if j < 0 || j >= len(out) {
			return nil, &EvalError{Msg: fmt.Sprintf("set %s: the record has no column %s (was it dropped at the source?)", record.QuoteIdent(t.col), record.QuoteIdent(t.col))}
		}
		res, err := t.prog.run(rec, row, asAfter, commitTime)
		if err != nil {
			return nil, fmt.Errorf("set %s: %w", record.QuoteIdent(t.col), err)
		}
		v, err := encode(t.kind, res)
		if err != nil {
			return nil, fmt.Errorf("set %s: %w", record.QuoteIdent(t.col), &EvalError{Msg: err.Error()})
		}
		out[j] = v
	}
	return out, nil
}

// encode writes a result as a text-format value of a column of kind k.
func encode(k kind, v any) (record.Value, error) {
	if v == nil {
		return record.Value{Null: true}, nil
	}
	var s string
	switch x := v.(type) {
	case int:
		if k != kindInt && k != kindFloat && k != kindNumeric {
			return record.Value{}, fmt.Errorf("the result %d is an int but the column takes %s", x, k)
		}
		s = strconv.Itoa(x)
	case float64:
		switch {
		case k == kindInt:
			if x != math.Trunc(x) || math.IsInf(x, 0) || math.IsNaN(x) || math.Abs(x) > 1<<63 {
				return record.Value{}, fmt.Errorf("the result %v is not an integer but the column takes int; round it with int(...)", x)
			}
			s = strconv.FormatFloat(x, 'f', -1, 64)
		case k != kindFloat && k != kindNumeric:
			return record.Value{}, fmt.Errorf("the result %v is a float64 but the column takes %s", x, k)
		case math.IsNaN(x):
			s = "NaN"
		case math.IsInf(x, 1):
			s = "Infinity"
		case math.IsInf(x, -1):
			s = "-Infinity"
		default:
			s = strconv.FormatFloat(x, 'g', -1, 64)
		}
	case Numeric:
		switch k {
		case kindNumeric, kindFloat:
			// The float types read the decimal text correctly rounded.
			s = x.String()
		case kindInt:
			var ok bool
			if s, ok = x.integerText(); !ok {
				return record.Value{}, fmt.Errorf("the result %s is not an integer but the column takes int; round it with round(...) or trunc(...)", x)
			}
		default:
			return record.Value{}, fmt.Errorf("the result %s is a numeric but the column takes %s", x, k)
		}
	case bool:
		if k != kindBool {
			return record.Value{}, fmt.Errorf("the result %v is a bool but the column takes %s", x, k)
		}
		s = "f"
		if x {
			s = "t"
		}
	case string:
		if k != kindString {
			return record.Value{}, fmt.Errorf("the result %q is a string but the column takes %s", x, k)
		}
		s = x
	default:
		return record.Value{}, fmt.Errorf("the result %v (%s) is not a value a column can take", v, typeName(v))
	}
	if strings.IndexByte(s, 0) >= 0 {
		return record.Value{}, errors.New("the result contains a NUL character, which PostgreSQL text cannot hold")
	}
	return record.Value{Data: []byte(s)}, nil
}
