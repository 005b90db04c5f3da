package where

import (
	"strings"
)

// nodeKind is the kind of a parsed (not yet typed) expression node.
type nodeKind uint8

const (
	nColumn   nodeKind = iota // name
	nString                   // text: an untyped string literal
	nNumber                   // text: a numeric literal, sign folded in
	nBool                     // text: "true" or "false"
	nNull                     //
	nCast                     // args[0]::name
	nNeg                      // -args[0]
	nBinary                   // args[0] name args[1]: comparison or arithmetic
	nAnd                      // args...
	nOr                       // args...
	nNot                      // NOT args[0]
	nIsNull                   // args[0] IS [NOT] NULL
	nIsBool                   // args[0] IS [NOT] name (true, false, unknown)
	nDistinct                 // args[0] IS [NOT] DISTINCT FROM args[1]
	nIn                       // args[0] [NOT] IN (args[1:])
	nBetween                  // args[0] [NOT] BETWEEN args[1] AND args[2]
	nLike                     // args[0] [NOT] name(like, ilike) args[1] [ESCAPE args[2]]
	nFunc                     // name(args...)
	nCollate                  // args[0] COLLATE name
	nAtUTC                    // args[0] AT TIME ZONE 'UTC'
)

// node is one parsed expression node. pos is the 1-based character
// position in the expression, for messages.
type node struct {
	kind nodeKind
	pos  int
	name string
	text string
	not  bool
	args []*node
}

// maxDepth bounds the nesting of an expression, so that a hostile one
// cannot exhaust the stack.
const maxDepth = 200

// maxLen bounds the length of an expression in bytes.
const maxLen = 64 << 10

// parser is a recursive-descent parser for the subset of PostgreSQL's
// expression grammar that the filter supports, with PostgreSQL's operator
// precedence (loosest first): OR, AND, NOT, IS, comparison, BETWEEN/IN/
// LIKE/ILIKE, + -, * / %, AT TIME ZONE, COLLATE, unary + -, ::.
type parser struct {
	lex   lexer
	tok   token
	ahead []token
	depth int
}

// parse parses a whole expression.
func parse(src string) (*node, error) {
	if len(src) > maxLen {
		return nil, &Error{Msg: "the expression is longer than 64 KiB"}
	}
	if strings.TrimSpace(src) == "" {
		return nil, &Error{Msg: "the expression is empty"}
	}
	p := &parser{lex: lexer{src: src}}
	if err := p.advance(); err != nil {
		return nil, err
	}
	n, err := p.expr()
	if err != nil {
		return nil, err
	}
	if p.tok.kind != tEOF {
		if p.isOp(";") {
			return nil, p.errorf(p.tok.pos, "only one expression is allowed (remove the ;)")
		}
		return nil, p.syntax("an operator or the end of the expression")
	}
	return n, nil
}

func (p *parser) errorf(pos int, format string, args ...any) *Error {
	return p.lex.errorf(pos, format, args...)
}

// syntax reports an unexpected token.
func (p *parser) syntax(want string) error {
	return p.errorf(p.tok.pos, "syntax error at %s: expected %s", showTok(p.tok), want)
}

func (p *parser) advance() error {
	if len(p.ahead) > 0 {
		p.tok, p.ahead = p.ahead[0], p.ahead[1:]
		return nil
	}
	t, err := p.lex.next()
	if err != nil {
		return err
	}
	p.tok = t
	return nil
}

// peek returns the token n places after the current one.
func (p *parser) peek(n int) (token, error) {
	for len(p.ahead) < n {
		t, err := p.lex.next()
		if err != nil {
			return token{}, err
		}
		p.ahead = append(p.ahead, t)
		if t.kind == tEOF {
			break
		}
	}
	if n > len(p.ahead) {
		return p.ahead[len(p.ahead)-1], nil
	}
	return p.ahead[n-1], nil
}

func (p *parser) isOp(op string) bool { return p.tok.kind == tOp && p.tok.text == op }
func (p *parser) isKw(kw string) bool { return p.tok.kind == tIdent && p.tok.text == kw }
func (t token) isKw(kw string) bool   { return t.kind == tIdent && t.text == kw }
func (t token) isOp(op string) bool   { return t.kind == tOp && t.text == op }
func (p *parser) expectOp(op, want string) error {
	if !p.isOp(op) {
		return p.syntax(want)
	}
	return p.advance()
}

func (p *parser) enter() error {
	p.depth++
	if p.depth > maxDepth {
		return p.errorf(p.tok.pos, "the expression is nested more than %d levels deep", maxDepth)
	}
	return nil
}

func (p *parser) leave() { p.depth-- }

func (p *parser) expr() (*node, error) {
	if err := p.enter(); err != nil {
		return nil, err
	}
	defer p.leave()
	return p.or()
}

func (p *parser) or() (*node, error) {
	first, err := p.and()
	if err != nil {
		return nil, err
	}
	if !p.isKw("or") {
		return first, nil
	}
	n := &node{kind: nOr, pos: first.pos, args: []*node{first}}
	for p.isKw("or") {
		if err := p.advance(); err != nil {
			return nil, err
		}
		x, err := p.and()
		if err != nil {
			return nil, err
		}
		n.args = append(n.args, x)
	}
	return n, nil
}

func (p *parser) and() (*node, error) {
	first, err := p.not()
	if err != nil {
		return nil, err
	}
	if !p.isKw("and") {
		return first, nil
	}
	n := &node{kind: nAnd, pos: first.pos, args: []*node{first}}
	for p.isKw("and") {
		if err := p.advance(); err != nil {
			return nil, err
		}
		x, err := p.not()
		if err != nil {
			return nil, err
		}
		n.args = append(n.args, x)
	}
	return n, nil
}

func (p *parser) not() (*node, error) {
	if !p.isKw("not") {
		return p.is()
	}
	pos := p.tok.pos
	if err := p.advance(); err != nil {
		return nil, err
	}
	if err := p.enter(); err != nil {
		return nil, err
	}
	defer p.leave()
	x, err := p.not()
	if err != nil {
		return nil, err
	}
	return &node{kind: nNot, pos: pos, args: []*node{x}}, nil
}

// is parses the postfix IS tests, which bind looser than comparisons.
func (p *parser) is() (*node, error) {
	x, err := p.comparison()
	if err != nil {
		return nil, err
	}
	for {
		switch {
		case p.isKw("isnull"), p.isKw("notnull"):
			x = &node{kind: nIsNull, pos: p.tok.pos, not: p.tok.text == "notnull", args: []*node{x}}
			if err := p.advance(); err != nil {
				return nil, err
			}
			continue
		case !p.isKw("is"):
			return x, nil
		}
		pos := p.tok.pos
		if err := p.advance(); err != nil {
			return nil, err
		}
		not := false
		if p.isKw("not") {
			not = true
			if err := p.advance(); err != nil {
				return nil, err
			}
		}
		switch {
		case p.isKw("null"):
			x = &node{kind: nIsNull, pos: pos, not: not, args: []*node{x}}
		case p.isKw("true"), p.isKw("false"), p.isKw("unknown"):
			x = &node{kind: nIsBool, pos: pos, not: not, name: p.tok.text, args: []*node{x}}
		case p.isKw("distinct"):
			if err := p.advance(); err != nil {
				return nil, err
			}
			if !p.isKw("from") {
				return nil, p.syntax("FROM after IS DISTINCT")
			}
			if err := p.advance(); err != nil {
				return nil, err
			}
			y, err := p.comparison()
			if err != nil {
				return nil, err
			}
			x = &node{kind: nDistinct, pos: pos, not: not, args: []*node{x, y}}
			continue
		case p.isKw("document"), p.isKw("normalized"), p.isKw("json"), p.isKw("of"):
			return nil, p.errorf(pos, "IS %s is not supported (supported: IS [NOT] NULL, TRUE, FALSE, UNKNOWN, DISTINCT FROM)", strings.ToUpper(p.tok.text))
		default:
			return nil, p.syntax("NULL, TRUE, FALSE, UNKNOWN or DISTINCT FROM after IS")
		}
		if err := p.advance(); err != nil {
			return nil, err
		}
	}
}

// comparisonOps are PostgreSQL's comparison operators; != is <>.
var comparisonOps = map[string]bool{"=": true, "<>": true, "!=": true, "<": true, "<=": true, ">": true, ">=": true}

func (p *parser) comparison() (*node, error) {
	x, err := p.predicate()
	if err != nil {
		return nil, err
	}
	if !(p.tok.kind == tOp && comparisonOps[p.tok.text]) {
		return x, nil
	}
	op, pos := p.tok.text, p.tok.pos
	if op == "!=" {
		op = "<>"
	}
	if err := p.advance(); err != nil {
		return nil, err
	}
	y, err := p.predicate()
	if err != nil {
		return nil, err
	}
	if p.tok.kind == tOp && comparisonOps[p.tok.text] {
		return nil, p.errorf(p.tok.pos, "syntax error at %s: comparisons cannot be chained (a < b < c); write a < b AND b < c", showTok(p.tok))
	}
	return &node{kind: nBinary, pos: pos, name: op, args: []*node{x, y}}, nil
}

// predicate parses [NOT] BETWEEN, IN, LIKE and ILIKE, which bind tighter
// than comparisons and are not associative.
func (p *parser) predicate() (*node, error) {
	x, err := p.additive()
	if err != nil {
		return nil, err
	}
	pos := p.tok.pos
	not := false
	if p.isKw("not") {
		t, err := p.peek(1)
		if err != nil {
			return nil, err
		}
		if !(t.isKw("between") || t.isKw("in") || t.isKw("like") || t.isKw("ilike") || t.isKw("similar")) {
			return x, nil
		}
		not = true
		if err := p.advance(); err != nil {
			return nil, err
		}
	}
	var n *node
	switch {
	case p.isKw("between"):
		if err := p.advance(); err != nil {
			return nil, err
		}
		if p.isKw("symmetric") || p.isKw("asymmetric") {
			return nil, p.errorf(p.tok.pos, "BETWEEN %s is not supported; write the bounds in order", strings.ToUpper(p.tok.text))
		}
		lo, err := p.additive()
		if err != nil {
			return nil, err
		}
		if !p.isKw("and") {
			return nil, p.syntax("AND in BETWEEN ... AND ...")
		}
		if err := p.advance(); err != nil {
			return nil, err
		}
		hi, err := p.additive()
		if err != nil {
			return nil, err
		}
		n = &node{kind: nBetween, pos: pos, not: not, args: []*node{x, lo, hi}}
	case p.isKw("in"):
		if err := p.advance(); err != nil {
			return nil, err
		}
		if !p.isOp("(") {
			return nil, p.syntax("( after IN")
		}
		if t, err := p.peek(1); err != nil {
			return nil, err
		} else if t.isKw("select") || t.isKw("values") || t.isKw("with") {
			return nil, p.errorf(t.pos, "subqueries are not supported: a streamed change is filtered on its own row only")
		}
		if err := p.advance(); err != nil {
			return nil, err
		}
		n = &node{kind: nIn, pos: pos, not: not, args: []*node{x}}
		for {
			item, err := p.expr()
			if err != nil {
				return nil, err
			}
			n.args = append(n.args, item)
			if p.isOp(",") {
				if err := p.advance(); err != nil {
					return nil, err
				}
				continue
			}
			if err := p.expectOp(")", ", or ) in the IN list"); err != nil {
				return nil, err
			}
			break
		}
	case p.isKw("like"), p.isKw("ilike"):
		name := p.tok.text
		if err := p.advance(); err != nil {
			return nil, err
		}
		pat, err := p.additive()
		if err != nil {
			return nil, err
		}
		n = &node{kind: nLike, pos: pos, not: not, name: name, args: []*node{x, pat}}
		if p.isKw("escape") {
			if err := p.advance(); err != nil {
				return nil, err
			}
			esc, err := p.additive()
			if err != nil {
				return nil, err
			}
			n.args = append(n.args, esc)
		}
	case p.isKw("similar"):
		return nil, p.errorf(p.tok.pos, "SIMILAR TO is not supported; use LIKE")
	default:
		return x, nil
	}
	if p.isKw("between") || p.isKw("in") || p.isKw("like") || p.isKw("ilike") {
		return nil, p.errorf(p.tok.pos, "syntax error at %s: %s cannot follow another BETWEEN, IN, LIKE or ILIKE without parentheses", showTok(p.tok), strings.ToUpper(p.tok.text))
	}
	return n, nil
}

func (p *parser) additive() (*node, error) {
	x, err := p.multiplicative()
	if err != nil {
		return nil, err
	}
	for p.isOp("+") || p.isOp("-") {
		op, pos := p.tok.text, p.tok.pos
		if err := p.advance(); err != nil {
			return nil, err
		}
		y, err := p.multiplicative()
		if err != nil {
			return nil, err
		}
		x = &node{kind: nBinary, pos: pos, name: op, args: []*node{x, y}}
	}
	if p.isOp("||") {
		return nil, p.errorf(p.tok.pos, "operator || is not supported (supported: = <> != < <= > >= + - * / %% AND OR NOT IS IN BETWEEN LIKE ILIKE)")
	}
	return x, nil
}

func (p *parser) multiplicative() (*node, error) {
	x, err := p.at()
	if err != nil {
		return nil, err
	}
	for p.isOp("*") || p.isOp("/") || p.isOp("%") {
		op, pos := p.tok.text, p.tok.pos
		if err := p.advance(); err != nil {
			return nil, err
		}
		y, err := p.at()
		if err != nil {
			return nil, err
		}
		x = &node{kind: nBinary, pos: pos, name: op, args: []*node{x, y}}
	}
	if p.isOp("^") {
		return nil, p.errorf(p.tok.pos, "operator ^ is not supported (supported: = <> != < <= > >= + - * / %% AND OR NOT IS IN BETWEEN LIKE ILIKE)")
	}
	return x, nil
}

// at parses x AT TIME ZONE 'UTC'; other zones are refused: only UTC means
// the same in the copy, the stream and every session.
func (p *parser) at() (*node, error) {
	x, err := p.collate()
	if err != nil {
		return nil, err
	}
	for p.isKw("at") {
		pos := p.tok.pos
		if err := p.advance(); err != nil {
			return nil, err
		}
		if p.isKw("local") {
			return nil, p.errorf(pos, "AT LOCAL is not supported: it depends on the session's time zone; use AT TIME ZONE 'UTC'")
		}
		if !p.isKw("time") {
			return nil, p.syntax("TIME ZONE after AT")
		}
		if err := p.advance(); err != nil {
			return nil, err
		}
		if !p.isKw("zone") {
			return nil, p.syntax("ZONE after AT TIME")
		}
		if err := p.advance(); err != nil {
			return nil, err
		}
		zpos := p.tok.pos
		z, err := p.collate()
		if err != nil {
			return nil, err
		}
		if z.kind != nString || !strings.EqualFold(z.text, "UTC") {
			return nil, p.errorf(zpos, "only AT TIME ZONE 'UTC' is supported: another zone's rules can change between the copy and the stream")
		}
		x = &node{kind: nAtUTC, pos: pos, args: []*node{x}}
	}
	return x, nil
}

func (p *parser) collate() (*node, error) {
	x, err := p.unary()
	if err != nil {
		return nil, err
	}
	for p.isKw("collate") {
		pos := p.tok.pos
		if err := p.advance(); err != nil {
			return nil, err
		}
		name, err := p.qualifiedName("a collation name")
		if err != nil {
			return nil, err
		}
		x = &node{kind: nCollate, pos: pos, name: name, args: []*node{x}}
	}
	return x, nil
}

// qualifiedName reads a name, optionally qualified by pg_catalog (as in
// pg_catalog."C").
func (p *parser) qualifiedName(want string) (string, error) {
	if p.tok.kind != tIdent && p.tok.kind != tQIdent {
		return "", p.syntax(want)
	}
	if err := p.skipCatalog(); err != nil {
		return "", err
	}
	if p.tok.kind != tIdent && p.tok.kind != tQIdent {
		return "", p.syntax(want)
	}
	name := p.tok.text
	if p.tok.kind == tIdent {
		name = strings.ToLower(name)
	}
	return name, p.advance()
}

// skipCatalog skips a "pg_catalog." qualifier; any other qualifier is
// refused.
func (p *parser) skipCatalog() error {
	next, err := p.peek(1)
	if err != nil || !next.isOp(".") {
		return err
	}
	if p.tok.text != "pg_catalog" {
		return p.errorf(p.tok.pos, "qualified names (%s.…) are not supported: write the column name alone", quoteIdent(p.tok.text))
	}
	if err := p.advance(); err != nil {
		return err
	}
	return p.advance()
}

func (p *parser) unary() (*node, error) {
	if !p.isOp("-") && !p.isOp("+") {
		return p.cast()
	}
	op, pos := p.tok.text, p.tok.pos
	if err := p.advance(); err != nil {
		return nil, err
	}
	if err := p.enter(); err != nil {
		return nil, err
	}
	defer p.leave()
	x, err := p.unary()
	if err != nil {
		return nil, err
	}
	if op == "+" {
		if x.kind == nNumber {
			return x, nil
		}
		return &node{kind: nNeg, pos: pos, name: "+", args: []*node{x}}, nil
	}
	// PostgreSQL folds a minus into a numeric constant (-5 is one
	// constant, typed by its signed value).
	if x.kind == nNumber {
		if strings.HasPrefix(x.text, "-") {
			x.text = x.text[1:]
		} else {
			x.text = "-" + x.text
		}
		x.pos = pos
		return x, nil
	}
	return &node{kind: nNeg, pos: pos, name: "-", args: []*node{x}}, nil
}

func (p *parser) cast() (*node, error) {
	x, err := p.primary()
	if err != nil {
		return nil, err
	}
	for p.isOp("::") {
		pos := p.tok.pos
		if err := p.advance(); err != nil {
			return nil, err
		}
		typ, err := p.typeName()
		if err != nil {
			return nil, err
		}
		x = &node{kind: nCast, pos: pos, name: typ, args: []*node{x}}
	}
	if p.isOp("[") {
		return nil, p.errorf(p.tok.pos, "array subscripts are not supported")
	}
	return x, nil
}

// typeName reads a type name as written after :: or AS, including the
// multi-word ones (double precision, timestamp with time zone, character
// varying), and returns it normalized (lower case, single spaces).
// Modifiers (varchar(10), numeric(10,2)) and arrays are refused.
func (p *parser) typeName() (string, error) {
	if p.tok.kind != tIdent && p.tok.kind != tQIdent {
		return "", p.syntax("a type name")
	}
	if err := p.skipCatalog(); err != nil {
		return "", err
	}
	if p.tok.kind != tIdent && p.tok.kind != tQIdent {
		return "", p.syntax("a type name")
	}
	words := []string{p.tok.text}
	quoted := p.tok.kind == tQIdent
	if err := p.advance(); err != nil {
		return "", err
	}
	if !quoted {
		switch words[0] {
		case "double":
			if !p.isKw("precision") {
				return "", p.syntax("PRECISION after DOUBLE")
			}
			words = append(words, "precision")
			if err := p.advance(); err != nil {
				return "", err
			}
		case "character", "char":
			if p.isKw("varying") {
				words = append(words, "varying")
				if err := p.advance(); err != nil {
					return "", err
				}
			}
		case "timestamp", "time":
			if p.isKw("with") || p.isKw("without") {
				words = append(words, p.tok.text)
				if err := p.advance(); err != nil {
					return "", err
				}
				if !p.isKw("time") {
					return "", p.syntax("TIME ZONE")
				}
				if err := p.advance(); err != nil {
					return "", err
				}
				if !p.isKw("zone") {
					return "", p.syntax("ZONE")
				}
				if err := p.advance(); err != nil {
					return "", err
				}
				words = append(words, "time", "zone")
			}
		}
	}
	if p.isOp("(") {
		return "", p.errorf(p.tok.pos, "type modifiers such as %s(...) are not supported: write the type without them", strings.Join(words, " "))
	}
	if p.isOp("[") {
		return "", p.errorf(p.tok.pos, "array types are not supported")
	}
	if quoted {
		return "\"" + words[0], nil // marks a quoted (case-sensitive) type name
	}
	return strings.Join(words, " "), nil
}

// reserved are the words that cannot be a column name unless quoted: the
// keywords of this grammar and PostgreSQL's reserved words that could
// appear in a condition.
var reserved = map[string]bool{
	"and": true, "or": true, "not": true, "is": true, "null": true, "true": true, "false": true,
	"in": true, "between": true, "like": true, "ilike": true, "similar": true, "escape": true,
	"cast": true, "as": true, "at": true, "collate": true, "isnull": true, "notnull": true,
	"distinct": true, "from": true, "select": true, "where": true, "case": true, "when": true,
	"then": true, "else": true, "end": true, "array": true, "any": true, "all": true, "some": true,
	"exists": true, "unique": true, "with": true, "table": true, "order": true, "group": true,
	"having": true, "limit": true, "union": true, "values": true, "default": true, "symmetric": true,
	"asymmetric": true, "both": true, "leading": true, "trailing": true, "only": true, "using": true,
}

// volatile are functions and SQL value keywords whose value depends on
// when or where they are evaluated.
var volatile = map[string]bool{
	"now": true, "current_date": true, "current_time": true, "current_timestamp": true,
	"localtime": true, "localtimestamp": true, "clock_timestamp": true, "statement_timestamp": true,
	"transaction_timestamp": true, "timeofday": true, "random": true, "random_normal": true,
	"setseed": true, "nextval": true, "currval": true, "lastval": true, "gen_random_uuid": true,
	"uuid_generate_v4": true, "txid_current": true, "pg_current_xact_id": true, "current_user": true,
	"session_user": true, "user": true, "current_role": true, "current_schema": true,
	"current_catalog": true, "current_setting": true, "pg_backend_pid": true, "inet_client_addr": true,
	"age": true, "current_database": true, "version": true, "system_user": true,
}

// sqlValueKeywords are the volatile names PostgreSQL reads without
// parentheses.
var sqlValueKeywords = map[string]bool{
	"current_date": true, "current_time": true, "current_timestamp": true, "localtime": true,
	"localtimestamp": true, "current_user": true, "session_user": true, "user": true,
	"current_role": true, "current_schema": true, "current_catalog": true, "system_user": true,
}

func (p *parser) primary() (*node, error) {
	t := p.tok
	switch t.kind {
	case tNumber:
		return &node{kind: nNumber, pos: t.pos, text: t.text}, p.advance()
	case tString:
		return &node{kind: nString, pos: t.pos, text: t.text}, p.advance()
	case tQIdent:
		if err := p.advance(); err != nil {
			return nil, err
		}
		if p.isOp("(") {
			return nil, p.errorf(t.pos, "function %s() is not supported (supported: lower, upper, length, coalesce, abs)", quoteIdent(t.text))
		}
		if p.tok.kind == tString {
			return nil, p.errorf(t.pos, "type %s is not supported", quoteIdent(t.text))
		}
		if p.isOp(".") {
			return nil, p.errorf(t.pos, "qualified names (%s.…) are not supported: write the column name alone", quoteIdent(t.text))
		}
		return &node{kind: nColumn, pos: t.pos, name: t.text}, nil
	case tOp:
		if t.text == "(" {
			if n, err := p.peek(1); err != nil {
				return nil, err
			} else if n.isKw("select") || n.isKw("values") || n.isKw("with") {
				return nil, p.errorf(n.pos, "subqueries are not supported: a streamed change is filtered on its own row only")
			}
			if err := p.advance(); err != nil {
				return nil, err
			}
			x, err := p.expr()
			if err != nil {
				return nil, err
			}
			if p.isOp(",") {
				return nil, p.errorf(p.tok.pos, "row constructors (a, b) are not supported")
			}
			return x, p.expectOp(")", ")")
		}
		return nil, p.syntax("a column, a literal, a function call or (")
	case tEOF:
		return nil, p.syntax("a column, a literal, a function call or (")
	}
	// An unquoted word: keyword, column, function or typed literal.
	switch t.text {
	case "true", "false":
		return &node{kind: nBool, pos: t.pos, text: t.text}, p.advance()
	case "null":
		return &node{kind: nNull, pos: t.pos}, p.advance()
	case "not":
		// NOT inside an operand (a = NOT b) binds like a prefix NOT.
		return p.not()
	case "cast":
		return p.castCall()
	case "case":
		return nil, p.errorf(t.pos, "CASE is not supported; write the condition with AND, OR and NOT")
	case "exists":
		return nil, p.errorf(t.pos, "subqueries are not supported: a streamed change is filtered on its own row only")
	case "array":
		return nil, p.errorf(t.pos, "arrays are not supported")
	case "interval":
		return nil, p.errorf(t.pos, "type interval is not supported")
	}
	if sqlValueKeywords[t.text] {
		return nil, p.errorf(t.pos, "%s is not supported for streamed changes: its value differs between the copy and the stream", t.text)
	}
	if reserved[t.text] {
		return nil, p.errorf(t.pos, "syntax error at %s: %s is a reserved word; write it in double quotes if it is a column name", showTok(t), strings.ToUpper(t.text))
	}
	// pg_catalog.name: a function or a type.
	if err := p.skipCatalog(); err != nil {
		return nil, err
	}
	qualified := p.tok.pos != t.pos
	if qualified {
		if p.tok.kind != tIdent {
			return nil, p.syntax("a function or type name after pg_catalog.")
		}
		t = p.tok
	}
	next, err := p.peek(1)
	if err != nil {
		return nil, err
	}
	switch {
	case next.isOp("("):
		return p.call()
	case next.kind == tString:
		// type 'literal'
		typ, err := p.typeName()
		if err != nil {
			return nil, err
		}
		s := p.tok
		if s.kind != tString {
			return nil, p.syntax("a string literal after the type name")
		}
		if err := p.advance(); err != nil {
			return nil, err
		}
		return &node{kind: nCast, pos: t.pos, name: typ, args: []*node{{kind: nString, pos: s.pos, text: s.text}}}, nil
	case isMultiWordType(t.text, next):
		typ, err := p.typeName()
		if err != nil {
			return nil, err
		}
		s := p.tok
		if s.kind != tString {
			return nil, p.syntax("a string literal after the type name " + typ)
		}
		if err := p.advance(); err != nil {
			return nil, err
		}
		return &node{kind: nCast, pos: t.pos, name: typ, args: []*node{{kind: nString, pos: s.pos, text: s.text}}}, nil
	}
	if qualified {
		return nil, p.errorf(t.pos, "syntax error at %s: expected a function call or a typed literal after pg_catalog.", showTok(t))
	}
	return &node{kind: nColumn, pos: t.pos, name: t.text}, p.advance()
}

// isMultiWordType reports whether word and the token after it start a
// multi-word type name (double precision, character varying, timestamp
// with time zone).
func isMultiWordType(word string, next token) bool {
	switch word {
	case "double":
		return next.isKw("precision")
	case "character", "char":
		return next.isKw("varying")
	case "timestamp", "time":
		return next.isKw("with") || next.isKw("without")
	}
	return false
}

// castCall parses CAST(x AS type).
func (p *parser) castCall() (*node, error) {
	pos := p.tok.pos
	if err := p.advance(); err != nil {
		return nil, err
	}
	if err := p.expectOp("(", "( after CAST"); err != nil {
		return nil, err
	}
	x, err := p.expr()
	if err != nil {
		return nil, err
	}
	if !p.isKw("as") {
		return nil, p.syntax("AS in CAST(... AS type)")
	}
	if err := p.advance(); err != nil {
		return nil, err
	}
	typ, err := p.typeName()
	if err != nil {
		return nil, err
	}
	if err := p.expectOp(")", ") after CAST(... AS type"); err != nil {
		return nil, err
	}
	return &node{kind: nCast, pos: pos, name: typ, args: []*node{x}}, nil
}

// functions are the supported functions with their argument counts
// (-1: one or more).
var functions = map[string]int{"lower": 1, "upper": 1, "length": 1, "char_length": 1, "character_length": 1, "abs": 1, "coalesce": -1}

// call parses name(args...).
func (p *parser) call() (*node, error) {
	t := p.tok
	if volatile[t.text] {
		return nil, p.errorf(t.pos, "function %s() is not supported for streamed changes: its value differs between the copy and the stream", t.text)
	}
	want, ok := functions[t.text]
	if !ok {
		return nil, p.errorf(t.pos, "function %s() is not supported (supported: lower, upper, length, coalesce, abs)", t.text)
	}
	if err := p.advance(); err != nil {
		return nil, err
	}
	if err := p.advance(); err != nil { // (
		return nil, err
	}
	n := &node{kind: nFunc, pos: t.pos, name: t.text}
	if n.name == "char_length" || n.name == "character_length" {
		n.name = "length"
	}
	if p.isKw("distinct") || p.isKw("all") || p.isOp("*") {
		return nil, p.errorf(p.tok.pos, "syntax error at %s in %s()", showTok(p.tok), t.text)
	}
	if !p.isOp(")") {
		for {
			x, err := p.expr()
			if err != nil {
				return nil, err
			}
			n.args = append(n.args, x)
			if !p.isOp(",") {
				break
			}
			if err := p.advance(); err != nil {
				return nil, err
			}
		}
	}
	if err := p.expectOp(")", ", or ) in the argument list of "+t.text+"()"); err != nil {
		return nil, err
	}
	switch {
	case want == -1 && len(n.args) == 0:
		return nil, p.errorf(t.pos, "%s() needs at least one argument", t.text)
	case want > 0 && len(n.args) != want:
		return nil, p.errorf(t.pos, "%s() takes %d argument, not %d", t.text, want, len(n.args))
	}
	return n, nil
}
