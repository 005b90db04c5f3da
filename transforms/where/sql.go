package where

import (
	"math"
	"strconv"
	"strings"
)

// The SQL rendering of a typed expression. It writes what the engine
// evaluates, with nothing left for PostgreSQL to decide differently: every
// identifier quoted; every implicit conversion the resolver chose written
// as a cast; every literal with its type; date-to-timestamptz conversions
// pinned to UTC with AT TIME ZONE; all operations parenthesized. Built-in
// type, function and operator names are written unqualified: pg_catalog
// is searched before any other schema unless a search_path names it
// later, and sluice's sessions use an empty search_path.

func renderSQL(e *texpr, cols []string) string {
	var b strings.Builder
	writeSQL(&b, e, cols)
	return b.String()
}

func writeSQL(b *strings.Builder, e *texpr, cols []string) {
	w := func(x *texpr) { writeSQL(b, x, cols) }
	switch e.kind {
	case eColumn:
		b.WriteString(quoteIdent(cols[e.col]))
	case eConst:
		b.WriteString(constSQL(e))
	case eCast:
		if e.utc {
			b.WriteString("(")
			w(e.args[0])
			b.WriteString(" AT TIME ZONE 'UTC')")
			return
		}
		atom(b, e.args[0], cols)
		b.WriteString("::" + e.typ.sqlName())
	case eCmp:
		b.WriteString("(")
		w(e.args[0])
		b.WriteString(" " + cmpNames[e.op] + " ")
		w(e.args[1])
		b.WriteString(")")
	case eIn:
		b.WriteString("(")
		w(e.args[0])
		b.WriteString(" IN (")
		for i, a := range e.args[1:] {
			if i > 0 {
				b.WriteString(", ")
			}
			w(a)
		}
		b.WriteString("))")
	case eArith:
		b.WriteString("(")
		w(e.args[0])
		b.WriteString(" " + string(rune(e.op)) + " ")
		w(e.args[1])
		b.WriteString(")")
	case eNeg:
		b.WriteString("(- ")
		w(e.args[0])
		b.WriteString(")")
	case eAnd, eOr:
		op := " AND "
		if e.kind == eOr {
			op = " OR "
		}
		b.WriteString("(")
		for i, a := range e.args {
			if i > 0 {
				b.WriteString(op)
			}
			w(a)
		}
		b.WriteString(")")
	case eNot:
		b.WriteString("(NOT ")
		w(e.args[0])
		b.WriteString(")")
	case eIsNull:
		b.WriteString("(")
		w(e.args[0])
		if e.not {
			b.WriteString(" IS NOT NULL)")
		} else {
			b.WriteString(" IS NULL)")
		}
	case eIsBool:
		b.WriteString("(")
		w(e.args[0])
		b.WriteString(" IS ")
		if e.not {
			b.WriteString("NOT ")
		}
		b.WriteString([...]string{"TRUE", "FALSE", "UNKNOWN"}[e.op] + ")")
	case eLike:
		b.WriteString("(")
		w(e.args[0])
		if e.not {
			b.WriteString(" NOT")
		}
		if e.ilike {
			b.WriteString(" ILIKE ")
		} else {
			b.WriteString(" LIKE ")
		}
		b.WriteString(quoteString(e.pattern))
		if e.escape != nil {
			b.WriteString(" ESCAPE " + quoteString(*e.escape))
		}
		b.WriteString(")")
	case eFunc:
		name := e.name
		if name == "coalesce" {
			name = "COALESCE"
		}
		b.WriteString(name + "(")
		for i, a := range e.args {
			if i > 0 {
				b.WriteString(", ")
			}
			w(a)
		}
		b.WriteString(")")
	case eCollate:
		b.WriteString("(")
		atom(b, e.args[0], cols)
		b.WriteString(" COLLATE " + collationNames[e.name] + ")")
	}
}

// atom writes e as the operand of a postfix operator (::, COLLATE):
// every rendering is a name, a call, a literal (negative ones in
// parentheses), a cast chain or parenthesized, all of which bind tighter.
func atom(b *strings.Builder, e *texpr, cols []string) { writeSQL(b, e, cols) }

// constSQL renders a constant with its type.
func constSQL(e *texpr) string {
	if e.unk {
		if e.val == nil {
			return "NULL"
		}
		return quoteString(e.val.(string))
	}
	if isNullValue(e.val) {
		return "NULL::" + e.typ.sqlName()
	}
	typed := func(s string) string { return quoteString(s) + "::" + e.typ.sqlName() }
	switch v := e.val.(type) {
	case Tri:
		if v == True {
			return "true"
		}
		return "false"
	case Int:
		s := strconv.FormatInt(v.V, 10)
		if e.typ == tyInt4 {
			if v.V < 0 {
				return "(" + s + ")"
			}
			return s
		}
		return typed(s)
	case Num:
		s := v.String()
		if v.Spec == numFinite && strings.Contains(s, ".") {
			if v.M.Sign() < 0 {
				return "(" + s + ")"
			}
			return s
		}
		return typed(s)
	case Flt:
		return typed(floatText(v.V, e.typ))
	case Str:
		return typed(v.V)
	case Tim:
		switch {
		case v.Inf > 0:
			return typed("infinity")
		case v.Inf < 0:
			return typed("-infinity")
		case e.typ == tyDate:
			return typed(formatDate(v.V))
		}
		return typed(formatTimestamp(v.V, e.typ == tyTimestamptz))
	}
	return "NULL"
}

// floatText renders a float so that PostgreSQL reads back the same value:
// the shortest decimal that round-trips.
func floatText(f float64, t typ) string {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	}
	bits := 64
	if t == tyFloat4 {
		bits = 32
	}
	return strconv.FormatFloat(f, 'g', -1, bits)
}
