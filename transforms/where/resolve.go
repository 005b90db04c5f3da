package where

import (
	"fmt"
	"math"
	"math/big"
	"sort"
	"strings"
)

// exprKind is the kind of a typed expression node.
type exprKind uint8

const (
	eColumn  exprKind = iota // col
	eConst                   // val (unk: an untyped string literal or NULL)
	eCast                    // args[0] converted to typ
	eCmp                     // args[0] op args[1], compared as opt
	eIn                      // args[0] IN (args[1:]), compared as opt
	eArith                   // args[0] op args[1] in typ
	eNeg                     // -args[0]
	eAnd                     // args...
	eOr                      // args...
	eNot                     // NOT args[0]
	eIsNull                  // args[0] IS [NOT] NULL
	eIsBool                  // args[0] IS [NOT] TRUE/FALSE/UNKNOWN (op: isTrue...)
	eLike                    // args[0] [NOT] LIKE/ILIKE pattern
	eFunc                    // name(args...)
	eCollate                 // args[0] COLLATE name
)

// IS TRUE / FALSE / UNKNOWN.
const (
	isTrue = iota
	isFalse
	isUnknown
)

// expr is a typed expression: the parsed one with PostgreSQL's type
// resolution applied (implicit casts made explicit, untyped literals
// converted). SQL() renders it and the program evaluates it, so the two
// agree by construction.
type texpr struct {
	kind exprKind
	typ  typ
	pos  int
	coll coll
	col  int  // eColumn: index into the filter's referenced columns
	val  any  // eConst
	unk  bool // eConst: untyped (string literal, or NULL when val is nil)
	op   int  // eCmp: opEq...; eArith: the operator byte; eIsBool: isTrue...
	opt  typ  // eCmp, eIn: the type the operands are compared as
	not  bool
	utc  bool   // eCast: written AT TIME ZONE 'UTC'
	name string // eFunc: function; eCollate: collation
	args []*texpr
	// eLike
	like    *likePattern
	pattern string
	escape  *string // nil: the default escape (\)
	ilike   bool
}

// coll is the collation state of a string expression, as PostgreSQL
// derives it: a column's collation is implicit, a COLLATE clause
// explicit, a literal has the database default (name "", implicit); an
// operator's inputs are merged.
type coll struct {
	name     string // "" is the database's default collation
	strength int8   // collNone, collImplicit, collExplicit, collConflict
	nondet   bool   // a nondeterministic collation
	other    string // collConflict: the second collation
}

const (
	collNone int8 = iota
	collImplicit
	collExplicit
	collConflict
)

// mergeColl combines the collations of two inputs as PostgreSQL's
// merge_collation_state does.
func mergeColl(a, b coll) (coll, error) {
	switch {
	case a.strength == collNone:
		return b, nil
	case b.strength == collNone:
		return a, nil
	case a.strength == collConflict:
		return a, nil
	case b.strength == collConflict:
		return b, nil
	case a.strength > b.strength:
		return a, nil
	case b.strength > a.strength:
		return b, nil
	case a.name == b.name:
		return a, nil
	case a.strength == collExplicit:
		return coll{}, fmt.Errorf("collation mismatch between explicit collations %s and %s", showColl(a.name), showColl(b.name))
	case a.name == "":
		return b, nil
	case b.name == "":
		return a, nil
	}
	return coll{name: a.name, other: b.name, strength: collConflict}, nil
}

func showColl(name string) string {
	if name == "" {
		return "default"
	}
	return quoteIdent(name)
}

// byteOrderCollation reports whether a collation orders strings by their
// bytes and folds case in ASCII only: C and POSIX (and ucs_basic, whose
// locale is C). Only these give the same order and case mapping in the
// engine as in the database.
func byteOrderCollation(name string) bool {
	return name == "C" || name == "POSIX" || name == "ucs_basic"
}

// resolver types a parsed expression against a table's columns.
type resolver struct {
	cols   []Column
	byName map[string]int
	refs   []int       // columns referenced, by index into cols, in order
	refIdx map[int]int // index into cols → index into refs
}

func newResolver(cols []Column) *resolver {
	r := &resolver{cols: cols, byName: map[string]int{}, refIdx: map[int]int{}}
	for i, c := range cols {
		if _, dup := r.byName[c.Name]; !dup {
			r.byName[c.Name] = i
		}
	}
	return r
}

func errAt(pos int, format string, args ...any) *Error {
	return &Error{Pos: pos, Msg: fmt.Sprintf(format, args...)}
}

// describe names an expression for messages: a column by name, else its
// type.
func (r *resolver) describe(e *texpr) string {
	switch {
	case e.kind == eColumn:
		return fmt.Sprintf("column %s (%s)", quoteIdent(r.cols[r.refs[e.col]].Name), r.typeName(e))
	case e.kind == eConst && e.unk && e.val == nil:
		return "NULL"
	case e.kind == eConst && e.unk:
		return "a string literal"
	}
	return "an expression of type " + e.typ.String()
}

func (r *resolver) typeName(e *texpr) string {
	if e.kind == eColumn && e.typ == tyOther {
		c := r.cols[r.refs[e.col]]
		if c.TypeName != "" {
			return c.TypeName
		}
		return fmt.Sprintf("OID %d", c.TypeOID)
	}
	return e.typ.String()
}

// resolve types one node.
func (r *resolver) resolve(n *node) (*texpr, error) {
	switch n.kind {
	case nColumn:
		return r.column(n)
	case nString:
		return &texpr{kind: eConst, typ: tyUnknown, pos: n.pos, val: n.text, unk: true}, nil
	case nNull:
		return &texpr{kind: eConst, typ: tyUnknown, pos: n.pos, unk: true}, nil
	case nBool:
		return &texpr{kind: eConst, typ: tyBool, pos: n.pos, val: triOf(n.text == "true")}, nil
	case nNumber:
		return numberConst(n)
	case nCast:
		x, err := r.resolve(n.args[0])
		if err != nil {
			return nil, err
		}
		t, err := typeByName(n)
		if err != nil {
			return nil, err
		}
		return r.explicitCast(x, t, n.pos)
	case nNeg:
		return r.neg(n)
	case nBinary:
		if _, ok := cmpOps[n.name]; ok {
			return r.compare(n.pos, cmpOps[n.name], n.args[0], n.args[1])
		}
		return r.arith(n)
	case nAnd, nOr:
		e := &texpr{kind: eAnd, typ: tyBool, pos: n.pos}
		if n.kind == nOr {
			e.kind = eOr
		}
		word := map[exprKind]string{eAnd: "AND", eOr: "OR"}[e.kind]
		for _, a := range n.args {
			x, err := r.resolveBool(a, "argument of "+word)
			if err != nil {
				return nil, err
			}
			e.args = append(e.args, x)
		}
		return e, nil
	case nNot:
		x, err := r.resolveBool(n.args[0], "argument of NOT")
		if err != nil {
			return nil, err
		}
		return &texpr{kind: eNot, typ: tyBool, pos: n.pos, args: []*texpr{x}}, nil
	case nIsNull:
		x, err := r.resolve(n.args[0])
		if err != nil {
			return nil, err
		}
		return &texpr{kind: eIsNull, typ: tyBool, pos: n.pos, not: n.not, args: []*texpr{x}}, nil
	case nIsBool:
		word := "IS " + strings.ToUpper(n.name)
		x, err := r.resolveBool(n.args[0], "argument of "+word)
		if err != nil {
			return nil, err
		}
		op := map[string]int{"true": isTrue, "false": isFalse, "unknown": isUnknown}[n.name]
		return &texpr{kind: eIsBool, typ: tyBool, pos: n.pos, op: op, not: n.not, args: []*texpr{x}}, nil
	case nDistinct:
		op := opDistinct
		if n.not {
			op = opNotDistinct
		}
		return r.compare(n.pos, op, n.args[0], n.args[1])
	case nIn:
		return r.in(n)
	case nBetween:
		return r.between(n)
	case nLike:
		return r.likeExpr(n)
	case nFunc:
		return r.function(n)
	case nCollate:
		return r.collate(n)
	case nAtUTC:
		return r.atUTC(n)
	}
	return nil, errAt(n.pos, "internal error: unknown node")
}

// column resolves a column reference.
func (r *resolver) column(n *node) (*texpr, error) {
	i, ok := r.byName[n.name]
	if !ok {
		return nil, r.unknownColumn(n)
	}
	ref, seen := r.refIdx[i]
	if !seen {
		ref = len(r.refs)
		r.refs = append(r.refs, i)
		r.refIdx[i] = ref
	}
	c := r.cols[i]
	e := &texpr{kind: eColumn, typ: typeOfOID(c.TypeOID), pos: n.pos, col: ref}
	if e.typ.cat() == catString {
		name := c.Collation
		if name == "default" {
			name = ""
		}
		e.coll = coll{name: name, strength: collImplicit, nondet: c.Nondeterministic}
	}
	return e, nil
}

func (r *resolver) unknownColumn(n *node) error {
	for _, c := range r.cols {
		if strings.EqualFold(c.Name, n.name) || foldIdent(c.Name) == n.name {
			return errAt(n.pos, "column %s does not exist; did you mean %s? Unquoted names are folded to lower case: write %s in double quotes", quoteIdent(n.name), quoteIdent(c.Name), quoteIdent(c.Name))
		}
	}
	names := make([]string, 0, len(r.cols))
	for _, c := range r.cols {
		names = append(names, displayName(c.Name))
	}
	sort.Strings(names)
	list := strings.Join(names, ", ")
	if len(names) > 30 {
		list = strings.Join(names[:30], ", ") + fmt.Sprintf(", … (%d more)", len(names)-30)
	}
	if len(names) == 0 {
		return errAt(n.pos, "column %s does not exist: the table has no columns", quoteIdent(n.name))
	}
	return errAt(n.pos, "column %s does not exist (the table has: %s)", quoteIdent(n.name), list)
}

// displayName quotes a name for a message only when it needs quotes.
func displayName(s string) string {
	for i, c := range s {
		if !(c >= 'a' && c <= 'z' || c == '_' || i > 0 && (c >= '0' && c <= '9' || c == '$')) {
			return quoteIdent(s)
		}
	}
	if s == "" || reserved[s] {
		return quoteIdent(s)
	}
	return s
}

// numberConst types a numeric literal as PostgreSQL does: an integer that
// fits int4 is integer, one that fits int8 is bigint, anything else
// numeric.
func numberConst(n *node) (*texpr, error) {
	if !strings.ContainsAny(n.text, ".eE") {
		if v, ok := new(big.Int).SetString(n.text, 10); ok {
			if v.IsInt64() {
				i := v.Int64()
				if i >= math.MinInt32 && i <= math.MaxInt32 {
					return &texpr{kind: eConst, typ: tyInt4, pos: n.pos, val: Int{V: i}}, nil
				}
				return &texpr{kind: eConst, typ: tyInt8, pos: n.pos, val: Int{V: i}}, nil
			}
		}
	}
	v, err := parseNumeric(n.text)
	if err != nil {
		return nil, errAt(n.pos, "invalid number %s: %v", n.text, err)
	}
	return &texpr{kind: eConst, typ: tyNumeric, pos: n.pos, val: v}, nil
}

// typeByName looks up the type of a cast.
func typeByName(n *node) (typ, error) {
	if t, ok := typeNames[n.name]; ok {
		return t, nil
	}
	name := strings.TrimPrefix(n.name, `"`)
	switch name {
	case "char", "character":
		return 0, errAt(n.pos, "type %s without a length means character(1), which would cut the value to one character; use bpchar", name)
	case "time", "time with time zone", "time without time zone", "timetz", "interval", "json", "jsonb", "bytea", "money", "inet", "cidr", "xml", "name", "oid":
		return 0, errAt(n.pos, "type %s is not supported (supported: boolean, smallint, integer, bigint, numeric, real, double precision, text, varchar, bpchar, date, timestamp, timestamptz, uuid)", name)
	}
	return 0, errAt(n.pos, "type %s is not supported (supported: boolean, smallint, integer, bigint, numeric, real, double precision, text, varchar, bpchar, date, timestamp, timestamptz, uuid)", quoteIdent(name))
}

// constInput converts an untyped literal to type t.
func (r *resolver) constInput(x *texpr, t typ) (*texpr, error) {
	if x.val == nil {
		return &texpr{kind: eConst, typ: t, pos: x.pos, val: nullOf(t), coll: literalColl(t)}, nil
	}
	if t == tyOther || t == tyUnknown {
		return nil, errAt(x.pos, "internal error: literal of type %s", t)
	}
	v, err := input(t, x.val.(string))
	if err != nil {
		return nil, errAt(x.pos, "%v", err)
	}
	return &texpr{kind: eConst, typ: t, pos: x.pos, val: v, coll: literalColl(t)}, nil
}

func literalColl(t typ) coll {
	if t.cat() == catString {
		return coll{strength: collImplicit}
	}
	return coll{}
}

// coerce converts x to type t implicitly, as PostgreSQL does for operator
// and function arguments: an untyped literal is read as t; a value is
// converted along an implicit cast. Conversions that change nothing at
// run time and that PostgreSQL's cross-type operators make unnecessary
// (integer widening, varchar and text to each other or to bpchar) add no
// node; the others add an eCast.
func (r *resolver) coerce(x *texpr, t typ, what string) (*texpr, error) {
	if x.unk {
		if t == tyVarchar {
			t = tyText // the same value and comparisons; renders as text
		}
		return r.constInput(x, t)
	}
	if x.typ == t {
		return x, nil
	}
	if x.typ == tyOther {
		return nil, r.otherTypeError(x)
	}
	if !implicitCast(x.typ, t) {
		return nil, errAt(x.pos, "%s: %s cannot be converted to %s", what, r.describe(x), t)
	}
	switch {
	case x.typ.isInt() && t.isInt():
		return x, nil
	case x.typ.cat() == catString && x.typ != tyBpchar:
		return x, nil
	}
	return r.castNode(x, t)
}

// castNode converts x (of a type that casts implicitly to t) to t. A
// constant is converted at once (an error, such as a date beyond the
// range of timestamps, is a compile error, as in PostgreSQL). A date
// becomes a timestamptz through timestamp AT TIME ZONE 'UTC', which pins
// the conversion to UTC whatever the session's TimeZone.
func (r *resolver) castNode(x *texpr, t typ) (*texpr, error) {
	if x.kind == eConst {
		v, err := convertConst(x, t)
		if err != nil {
			return nil, errAt(x.pos, "%v", err)
		}
		return &texpr{kind: eConst, typ: t, pos: x.pos, val: v, coll: literalColl(t)}, nil
	}
	if x.typ == tyDate && t == tyTimestamptz {
		var err error
		if x, err = r.castNode(x, tyTimestamp); err != nil {
			return nil, err
		}
	}
	e := &texpr{kind: eCast, typ: t, pos: x.pos, args: []*texpr{x}, coll: x.coll}
	if x.typ == tyTimestamp && t == tyTimestamptz {
		e.utc = true
	}
	if t.cat() != catString {
		e.coll = coll{}
	}
	return e, nil
}

// convertConst folds a conversion of a constant, for the conversions whose
// result the engine computes exactly as PostgreSQL does.
func convertConst(x *texpr, t typ) (any, error) {
	from := x.typ
	switch v := x.val.(type) {
	case Int:
		if v.Null {
			return nullOf(t), nil
		}
		switch {
		case t.isInt():
			if !inRange(v.V, intBits(t)) {
				return nil, intRangeError(intBits(t))
			}
			return v, nil
		case t == tyNumeric:
			return numFromInt(v.V), nil
		case t == tyFloat8:
			return Flt{V: float64(v.V)}, nil
		case t == tyFloat4:
			return Flt{V: float64(float32(v.V))}, nil
		}
	case Num:
		if v.Null {
			return nullOf(t), nil
		}
		switch {
		case t == tyNumeric:
			return v, nil
		case t.isFloat():
			bits := 64
			if t == tyFloat4 {
				bits = 32
			}
			f, err := numToFloat(v, bits)
			if err != nil {
				return nil, err
			}
			return Flt{V: f}, nil
		case t.isInt():
			// numeric to integer rounds half away from zero.
			if v.Spec != numFinite {
				return nil, fmt.Errorf("cannot convert %s to %s", v, t)
			}
			q := numRound0(v)
			if !q.IsInt64() || !inRange(q.Int64(), intBits(t)) {
				return nil, intRangeError(intBits(t))
			}
			return Int{V: q.Int64()}, nil
		}
	case Flt:
		if v.Null {
			return nullOf(t), nil
		}
		if from == tyFloat4 && t == tyFloat8 || from == t {
			return v, nil
		}
	case Str:
		if v.Null {
			return nullOf(t), nil
		}
		if from == tyBpchar && t.cat() == catString {
			return Str{V: trimBpchar(v.V)}, nil
		}
		if from.cat() == catString && t.cat() == catString {
			return v, nil
		}
	case Tim:
		if v.Null {
			return nullOf(t), nil
		}
		switch {
		case from == tyDate && (t == tyTimestamp || t == tyTimestamptz):
			return dateToTimestamp(v)
		case from == tyTimestamp && t == tyTimestamptz, from == t:
			return v, nil
		}
	case Tri:
		if t == tyBool {
			return v, nil
		}
	}
	return nil, fmt.Errorf("cannot convert %s to %s", from, t)
}

// numRound0 rounds a finite numeric to an integer, half away from zero.
func numRound0(v Num) *big.Int {
	if v.Scale == 0 {
		return new(big.Int).Set(v.M)
	}
	p := pow10(v.Scale)
	q, rem := new(big.Int).QuoRem(v.M, p, new(big.Int))
	rem.Abs(rem).Lsh(rem, 1)
	if rem.Cmp(p) >= 0 {
		if v.M.Sign() < 0 {
			q.Sub(q, big.NewInt(1))
		} else {
			q.Add(q, big.NewInt(1))
		}
	}
	return q
}

// explicitCast applies a cast written in the expression (x::t, t 'lit',
// CAST(x AS t)): a literal is read as t, a constant is converted, a
// column or expression only along an implicit (widening, exact) cast.
func (r *resolver) explicitCast(x *texpr, t typ, pos int) (*texpr, error) {
	switch {
	case x.unk:
		return r.constInput(x, t)
	case x.typ == tyOther:
		return nil, r.otherTypeError(x)
	case x.typ == t:
		return x, nil
	case x.kind == eConst:
		v, err := convertConst(x, t)
		if err != nil {
			return nil, errAt(pos, "%v", err)
		}
		return &texpr{kind: eConst, typ: t, pos: x.pos, val: v, coll: literalColl(t)}, nil
	case x.typ == tyTimestamptz && t == tyTimestamp:
		return nil, errAt(pos, "a cast from timestamptz to timestamp depends on the session's time zone; write (... AT TIME ZONE 'UTC') instead")
	case !implicitCast(x.typ, t):
		return nil, errAt(pos, "cannot cast %s to %s: only casts that keep the value exactly (widening) are supported", r.describe(x), t)
	}
	if x.typ.isInt() && t.isInt() || x.typ.cat() == catString && t.cat() == catString {
		// no change at run time, but the type changes (integer
		// arithmetic width, string comparison rules)
		return &texpr{kind: eCast, typ: t, pos: x.pos, args: []*texpr{x}, coll: x.coll}, nil
	}
	return r.castNode(x, t)
}

func (r *resolver) otherTypeError(x *texpr) error {
	c := r.cols[r.refs[x.col]]
	return errAt(x.pos, "column %s has type %s, which the filter cannot evaluate on streamed changes; it can only be tested with IS [NOT] NULL (supported types: boolean, smallint, integer, bigint, numeric, real, double precision, text, varchar, char(n), date, timestamp, timestamptz, uuid)", quoteIdent(c.Name), r.typeName(x))
}

// resolveBool resolves a node that must be boolean.
func (r *resolver) resolveBool(n *node, what string) (*texpr, error) {
	x, err := r.resolve(n)
	if err != nil {
		return nil, err
	}
	return r.toBool(x, what)
}

func (r *resolver) toBool(x *texpr, what string) (*texpr, error) {
	if x.unk {
		return r.constInput(x, tyBool)
	}
	if x.typ == tyBool {
		return x, nil
	}
	if x.typ == tyOther {
		return nil, r.otherTypeError(x)
	}
	return nil, errAt(x.pos, "%s must be boolean, not %s", what, r.describe(x))
}

// compareType is the type two operands of a comparison are compared as,
// following PostgreSQL's operator resolution: integers compare across
// widths exactly; real with real as real; any other float mix as double
// precision; integers with numeric as numeric; text wins over bpchar,
// which wins over varchar; dates and timestamps as the wider one.
func compareType(a, b typ) (typ, bool) {
	if a == b {
		return a, true
	}
	if a.cat() != b.cat() {
		return 0, false
	}
	switch a.cat() {
	case catNumber:
		switch {
		case a.isInt() && b.isInt():
			return max(a, b), true
		case a.isFloat() || b.isFloat():
			return tyFloat8, true
		}
		return tyNumeric, true
	case catString:
		switch {
		case a == tyText || b == tyText:
			return tyText, true
		case a == tyBpchar || b == tyBpchar:
			return tyBpchar, true
		}
		return tyVarchar, true
	case catDatetime:
		return max(a, b), true
	}
	return 0, false
}

// compare resolves a comparison (or IS [NOT] DISTINCT FROM).
func (r *resolver) compare(pos, op int, ln, rn *node) (*texpr, error) {
	l, err := r.resolve(ln)
	if err != nil {
		return nil, err
	}
	rr, err := r.resolve(rn)
	if err != nil {
		return nil, err
	}
	return r.compareExprs(pos, op, l, rr)
}

func (r *resolver) compareExprs(pos, op int, l, rr *texpr) (*texpr, error) {
	for _, x := range []*texpr{l, rr} {
		if x.typ == tyOther {
			return nil, r.otherTypeError(x)
		}
	}
	var t typ
	switch {
	case l.unk && rr.unk:
		t = tyText
	case l.unk:
		t = rr.typ
	case rr.unk:
		t = l.typ
	default:
		var ok bool
		if t, ok = compareType(l.typ, rr.typ); !ok {
			return nil, errAt(pos, "cannot compare %s with %s (operator does not exist: %s %s %s)", r.describe(l), r.describe(rr), l.typ, cmpNames[op], rr.typ)
		}
	}
	what := "comparison " + cmpNames[op]
	l, err := r.coerce(l, t, what)
	if err != nil {
		return nil, err
	}
	if rr, err = r.coerce(rr, t, what); err != nil {
		return nil, err
	}
	e := &texpr{kind: eCmp, typ: tyBool, pos: pos, op: op, opt: t, args: []*texpr{l, rr}}
	if t.cat() == catString {
		c, err := mergeColl(l.coll, rr.coll)
		if err != nil {
			return nil, errAt(pos, "%v", err)
		}
		ordering := op == opLt || op == opLe || op == opGt || op == opGe
		if err := r.needColl(pos, c, ordering, cmpNames[op]); err != nil {
			return nil, err
		}
	}
	return e, nil
}

// needColl checks that a string operation evaluates in the engine exactly
// as in PostgreSQL under collation c: always a single, deterministic
// collation; for ordering and case mapping also a byte-order one.
func (r *resolver) needColl(pos int, c coll, byteOrder bool, what string) error {
	switch {
	case c.strength == collConflict:
		return errAt(pos, "%s: the operands have different collations (%s and %s), so PostgreSQL cannot choose one; add COLLATE \"C\" to one of them", what, showColl(c.name), showColl(c.other))
	case c.nondet:
		return errAt(pos, "%s: collation %s is nondeterministic, so equal strings need not have equal bytes; the engine cannot evaluate it identically on streamed changes", what, showColl(c.name))
	case byteOrder && !byteOrderCollation(c.name):
		return errAt(pos, "%s on text under collation %s cannot be evaluated identically on streamed changes: the database orders strings and maps case by its locale, the engine only by bytes and ASCII; give the column the collation \"C\", or write COLLATE \"C\" after the operand (e.g. name COLLATE \"C\" < 'm'), which means the same in the copy and the stream", what, showColl(c.name))
	}
	return nil
}

// numericType is the type of arithmetic on a and b: the wider integer;
// real with real stays real; any other float mix is double precision;
// else numeric.
func numericType(a, b typ) typ {
	switch {
	case a.isInt() && b.isInt():
		return max(a, b)
	case a == tyFloat4 && b == tyFloat4:
		return tyFloat4
	case a.isFloat() || b.isFloat():
		return tyFloat8
	}
	return tyNumeric
}

var arithNames = map[string]byte{"+": '+', "-": '-', "*": '*', "/": '/', "%": '%'}

func (r *resolver) arith(n *node) (*texpr, error) {
	op, ok := arithNames[n.name]
	if !ok {
		return nil, errAt(n.pos, "operator %s is not supported", n.name)
	}
	l, err := r.resolve(n.args[0])
	if err != nil {
		return nil, err
	}
	rr, err := r.resolve(n.args[1])
	if err != nil {
		return nil, err
	}
	if l.unk && rr.unk {
		return nil, errAt(n.pos, "operator %s is not unique for two untyped literals; give one a type, e.g. '1'::integer", n.name)
	}
	lt, rt := l.typ, rr.typ
	if l.unk {
		lt = rt
	}
	if rr.unk {
		rt = lt
	}
	for _, x := range []*texpr{l, rr} {
		if x.typ == tyOther {
			return nil, r.otherTypeError(x)
		}
	}
	if lt.cat() != catNumber || rt.cat() != catNumber {
		bad := l
		if lt.cat() == catNumber {
			bad = rr
		}
		return nil, errAt(n.pos, "operator %s needs numbers, not %s (arithmetic is supported on numbers only)", n.name, r.describe(bad))
	}
	t := numericType(lt, rt)
	if op == '%' && t.isFloat() {
		return nil, errAt(n.pos, "operator %% is not defined for %s (PostgreSQL has no %% for floating-point numbers)", t)
	}
	if l, err = r.coerce(l, t, "operator "+n.name); err != nil {
		return nil, err
	}
	if rr, err = r.coerce(rr, t, "operator "+n.name); err != nil {
		return nil, err
	}
	e := &texpr{kind: eArith, typ: t, pos: n.pos, op: int(op), args: []*texpr{l, rr}}
	return foldConst(e)
}

// foldConst evaluates an operation on constants at compile time (so that
// SQL() renders the constant, as PostgreSQL folds it); an error there is
// a compile error.
func foldConst(e *texpr) (*texpr, error) {
	for _, a := range e.args {
		if a.kind != eConst || a.unk {
			return e, nil
		}
	}
	var v any
	var err error
	switch e.kind {
	case eArith:
		v, err = arithValue(byte(e.op), e.typ, e.args[0].val, e.args[1].val)
	case eNeg:
		v, err = negValue(e.typ, e.args[0].val)
	default:
		return e, nil
	}
	if err != nil {
		return nil, errAt(e.pos, "%v", err)
	}
	return &texpr{kind: eConst, typ: e.typ, pos: e.pos, val: v}, nil
}

func (r *resolver) neg(n *node) (*texpr, error) {
	x, err := r.resolve(n.args[0])
	if err != nil {
		return nil, err
	}
	switch {
	case x.unk:
		return nil, errAt(n.pos, "unary %s of an untyped literal is ambiguous; give it a type, e.g. '1'::integer", n.name)
	case x.typ == tyOther:
		return nil, r.otherTypeError(x)
	case x.typ.cat() != catNumber:
		return nil, errAt(n.pos, "unary %s needs a number, not %s", n.name, r.describe(x))
	case n.name == "+":
		return x, nil
	}
	return foldConst(&texpr{kind: eNeg, typ: x.typ, pos: n.pos, args: []*texpr{x}})
}

// in resolves x [NOT] IN (items) as PostgreSQL's transformAExprIn does:
// when two or more items contain no column, they become one list compared
// after converting them to the common type of x and those items; every
// item with a column is compared on its own; the comparisons are ORed.
func (r *resolver) in(n *node) (*texpr, error) {
	var plain, withCols []*node
	for _, it := range n.args[1:] {
		if hasColumn(it) {
			withCols = append(withCols, it)
		} else {
			plain = append(plain, it)
		}
	}
	var parts []*texpr
	if len(plain) > 1 {
		e, err := r.inList(n, plain)
		if err != nil {
			return nil, err
		}
		if e != nil {
			parts = append(parts, e)
		} else {
			withCols = append(plain, withCols...)
		}
	} else {
		withCols = append(plain, withCols...)
	}
	for _, it := range withCols {
		e, err := r.compare(n.pos, opEq, n.args[0], it)
		if err != nil {
			return nil, err
		}
		parts = append(parts, e)
	}
	var e *texpr
	if len(parts) == 1 {
		e = parts[0]
	} else {
		e = &texpr{kind: eOr, typ: tyBool, pos: n.pos, args: parts}
	}
	if n.not {
		e = &texpr{kind: eNot, typ: tyBool, pos: n.pos, args: []*texpr{e}}
	}
	return e, nil
}

// inList builds the list part of an IN; nil when the items and x have no
// common type (PostgreSQL then compares item by item).
func (r *resolver) inList(n *node, items []*node) (*texpr, error) {
	x, err := r.resolve(n.args[0])
	if err != nil {
		return nil, err
	}
	if x.typ == tyOther {
		return nil, r.otherTypeError(x)
	}
	all := []*texpr{x}
	types := []typ{x.typ}
	for _, it := range items {
		e, err := r.resolve(it)
		if err != nil {
			return nil, err
		}
		if e.typ == tyOther {
			return nil, r.otherTypeError(e)
		}
		all = append(all, e)
		types = append(types, e.typ)
	}
	common, ok := commonType(types)
	if !ok {
		return nil, nil
	}
	lt := x.typ
	if x.unk {
		lt = common
	}
	t, ok := compareType(lt, common)
	if !ok {
		return nil, nil
	}
	e := &texpr{kind: eIn, typ: tyBool, pos: n.pos, opt: t}
	for i, a := range all {
		if i > 0 {
			// items are first converted to the common type, then to the
			// comparison type
			if a, err = r.coerce(a, common, "IN list"); err != nil {
				return nil, err
			}
		}
		if a, err = r.coerce(a, t, "IN list"); err != nil {
			return nil, err
		}
		e.args = append(e.args, a)
	}
	if t.cat() == catString {
		c := coll{}
		for _, a := range e.args {
			if c, err = mergeColl(c, a.coll); err != nil {
				return nil, errAt(n.pos, "%v", err)
			}
		}
		if err := r.needColl(n.pos, c, false, "IN"); err != nil {
			return nil, err
		}
	}
	return e, nil
}

// hasColumn reports whether a node refers to a column.
func hasColumn(n *node) bool {
	if n.kind == nColumn {
		return true
	}
	for _, a := range n.args {
		if hasColumn(a) {
			return true
		}
	}
	return false
}

// between resolves x [NOT] BETWEEN lo AND hi as PostgreSQL does: x >= lo
// AND x <= hi (NOT: x < lo OR x > hi), each comparison resolved on its
// own.
func (r *resolver) between(n *node) (*texpr, error) {
	op1, op2, kind := opGe, opLe, eAnd
	if n.not {
		op1, op2, kind = opLt, opGt, eOr
	}
	a, err := r.compare(n.pos, op1, n.args[0], n.args[1])
	if err != nil {
		return nil, err
	}
	b, err := r.compare(n.pos, op2, n.args[0], n.args[2])
	if err != nil {
		return nil, err
	}
	return &texpr{kind: kind, typ: tyBool, pos: n.pos, args: []*texpr{a, b}}, nil
}

// likeExpr resolves [NOT] LIKE / ILIKE with a literal pattern. The value
// is matched as PostgreSQL stores it: a character(n) keeps its padding.
func (r *resolver) likeExpr(n *node) (*texpr, error) {
	word := strings.ToUpper(n.name)
	x, err := r.resolve(n.args[0])
	if err != nil {
		return nil, err
	}
	if x.unk {
		if x, err = r.constInput(x, tyText); err != nil {
			return nil, err
		}
	}
	if x.typ == tyOther {
		return nil, r.otherTypeError(x)
	}
	if x.typ.cat() != catString {
		return nil, errAt(n.pos, "%s needs a string, not %s", word, r.describe(x))
	}
	p := n.args[1]
	if p.kind != nString {
		return nil, errAt(p.pos, "the %s pattern must be a string literal", word)
	}
	e := &texpr{kind: eLike, typ: tyBool, pos: n.pos, not: n.not, ilike: n.name == "ilike", pattern: p.text, args: []*texpr{x}}
	esc := `\`
	if len(n.args) > 2 {
		en := n.args[2]
		if en.kind != nString {
			return nil, errAt(en.pos, "the ESCAPE character must be a string literal")
		}
		esc = en.text
		e.escape = &esc
	}
	if e.ilike && strings.ContainsAny(esc, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") {
		return nil, errAt(n.pos, "ILIKE with an upper-case ESCAPE character is not supported")
	}
	if e.like, err = compileLike(p.text, esc, e.ilike); err != nil {
		return nil, errAt(p.pos, "%v", err)
	}
	c, err := mergeColl(x.coll, coll{strength: collImplicit})
	if err != nil {
		return nil, errAt(n.pos, "%v", err)
	}
	if err := r.needColl(n.pos, c, e.ilike, word); err != nil {
		return nil, err
	}
	return e, nil
}

func (r *resolver) function(n *node) (*texpr, error) {
	args := make([]*texpr, len(n.args))
	for i, a := range n.args {
		x, err := r.resolve(a)
		if err != nil {
			return nil, err
		}
		if x.typ == tyOther {
			return nil, r.otherTypeError(x)
		}
		args[i] = x
	}
	e := &texpr{kind: eFunc, pos: n.pos, name: n.name}
	switch n.name {
	case "lower", "upper", "length":
		x := args[0]
		var err error
		if x.unk {
			if x, err = r.constInput(x, tyText); err != nil {
				return nil, err
			}
		}
		if x.typ.cat() != catString {
			return nil, errAt(n.pos, "%s() needs a string, not %s", n.name, r.describe(x))
		}
		if n.name == "length" {
			e.typ = tyInt4
			e.args = []*texpr{x}
			return e, nil
		}
		if x.typ == tyBpchar {
			if x, err = r.castNode(x, tyText); err != nil {
				return nil, err
			}
		}
		if err := r.needColl(n.pos, x.coll, true, n.name+"()"); err != nil {
			return nil, err
		}
		e.typ, e.coll, e.args = tyText, x.coll, []*texpr{x}
		return e, nil
	case "abs":
		x := args[0]
		if x.unk || x.typ.cat() != catNumber {
			return nil, errAt(n.pos, "abs() needs a number, not %s", r.describe(x))
		}
		e.typ, e.args = x.typ, []*texpr{x}
		return e, nil
	case "coalesce":
		types := make([]typ, len(args))
		for i, a := range args {
			types[i] = a.typ
		}
		t, ok := commonType(types)
		if !ok {
			return nil, errAt(n.pos, "COALESCE arguments of types %s cannot be matched", typeList(types))
		}
		e.typ = t
		for _, a := range args {
			x, err := r.coerce(a, t, "COALESCE")
			if err != nil {
				return nil, err
			}
			e.args = append(e.args, x)
			if t.cat() == catString {
				if e.coll, err = mergeColl(e.coll, x.coll); err != nil {
					return nil, errAt(n.pos, "%v", err)
				}
			}
		}
		return e, nil
	}
	return nil, errAt(n.pos, "function %s() is not supported", n.name)
}

func typeList(ts []typ) string {
	var s []string
	for _, t := range ts {
		if t != tyUnknown {
			s = append(s, t.String())
		}
	}
	return strings.Join(s, ", ")
}

// collationNames are the collations a COLLATE clause may name, and how
// SQL() writes them.
var collationNames = map[string]string{
	"C": `pg_catalog."C"`, "POSIX": `pg_catalog."POSIX"`, "ucs_basic": "pg_catalog.ucs_basic", "default": `pg_catalog."default"`,
}

func (r *resolver) collate(n *node) (*texpr, error) {
	x, err := r.resolve(n.args[0])
	if err != nil {
		return nil, err
	}
	if x.unk {
		if x, err = r.constInput(x, tyText); err != nil {
			return nil, err
		}
	}
	if x.typ == tyOther {
		return nil, r.otherTypeError(x)
	}
	if x.typ.cat() != catString {
		return nil, errAt(n.pos, "COLLATE applies to strings, not %s", r.describe(x))
	}
	if _, ok := collationNames[n.name]; !ok {
		return nil, errAt(n.pos, "collation %s is not supported here: only \"C\", \"POSIX\", ucs_basic and \"default\" (the engine compares bytes; other collations depend on a locale)", quoteIdent(n.name))
	}
	name := n.name
	if name == "default" {
		name = ""
	}
	return &texpr{kind: eCollate, typ: x.typ, pos: n.pos, name: n.name, coll: coll{name: name, strength: collExplicit}, args: []*texpr{x}}, nil
}

func (r *resolver) atUTC(n *node) (*texpr, error) {
	x, err := r.resolve(n.args[0])
	if err != nil {
		return nil, err
	}
	switch x.typ {
	case tyTimestamp:
		return &texpr{kind: eCast, typ: tyTimestamptz, pos: n.pos, utc: true, args: []*texpr{x}}, nil
	case tyTimestamptz:
		return &texpr{kind: eCast, typ: tyTimestamp, pos: n.pos, utc: true, args: []*texpr{x}}, nil
	case tyOther:
		return nil, r.otherTypeError(x)
	}
	return nil, errAt(n.pos, "AT TIME ZONE needs a timestamp or timestamptz, not %s (cast a date or a literal to timestamp first)", r.describe(x))
}
