package where

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// tokKind is the kind of a lexical token.
type tokKind uint8

const (
	tEOF    tokKind = iota
	tIdent          // unquoted identifier or keyword, folded to lower case
	tQIdent         // "quoted identifier", kept as written
	tNumber         // numeric literal, as written
	tString         // string literal, escapes resolved
	tOp             // operator or punctuation
)

// token is one lexical token; pos is the 1-based character (not byte)
// position of its first character, as PostgreSQL reports positions.
type token struct {
	kind tokKind
	text string // identifier (folded), literal value, or operator
	raw  string // the token as written (for messages)
	pos  int
	// escape is true for an E'...' string literal.
	escape bool
}

// maxIdentLen is PostgreSQL's limit on an identifier in bytes
// (NAMEDATALEN-1): a longer one is truncated, as the server does.
const maxIdentLen = 63

// lexer splits an expression into tokens.
type lexer struct {
	src  string
	off  int // byte offset
	char int // characters before off
}

func (l *lexer) errorf(pos int, format string, args ...any) *Error {
	return &Error{Pos: pos, Msg: fmt.Sprintf(format, args...)}
}

// next returns the next token.
func (l *lexer) next() (token, error) {
	if err := l.skipSpace(); err != nil {
		return token{}, err
	}
	if l.off >= len(l.src) {
		return token{kind: tEOF, pos: l.char + 1}, nil
	}
	start, pos := l.off, l.char+1
	c := l.src[l.off]
	switch {
	case (c == 'e' || c == 'E') && l.peekByte(1) == '\'':
		l.advance(1)
		s, err := l.str(pos, true)
		return token{kind: tString, text: s, raw: l.src[start:l.off], pos: pos, escape: true}, err
	case (c == 'u' || c == 'U') && l.peekByte(1) == '&':
		return token{}, l.errorf(pos, "Unicode escapes (U&'...' or U&\"...\") are not supported; write the characters themselves")
	case (c == 'b' || c == 'B' || c == 'x' || c == 'X' || c == 'n' || c == 'N') && l.peekByte(1) == '\'':
		return token{}, l.errorf(pos, "bit-string and national-character literals (%c'...') are not supported", c)
	case isIdentStart(c):
		for l.off < len(l.src) && isIdentPart(l.src[l.off]) {
			l.advance(1)
		}
		raw := l.src[start:l.off]
		return token{kind: tIdent, text: truncIdent(foldIdent(raw)), raw: raw, pos: pos}, nil
	case c == '"':
		s, err := l.quotedIdent(pos)
		return token{kind: tQIdent, text: s, raw: l.src[start:l.off], pos: pos}, err
	case c == '\'':
		s, err := l.str(pos, false)
		return token{kind: tString, text: s, raw: l.src[start:l.off], pos: pos}, err
	case c >= '0' && c <= '9' || c == '.' && isDigit(l.peekByte(1)):
		return l.number(pos)
	case c == '$':
		if isDigit(l.peekByte(1)) {
			return token{}, l.errorf(pos, "parameters ($1) are not supported: write the value itself")
		}
		return token{}, l.errorf(pos, "dollar-quoted strings are not supported: use '...' and double the quotes inside")
	}
	// Operators: PostgreSQL reads the longest run of operator characters
	// as one operator; the ones we know are listed, anything else is
	// refused with its spelling.
	for _, op := range []string{"::", "<=", ">=", "<>", "!=", "||"} {
		if strings.HasPrefix(l.src[l.off:], op) {
			l.advance(len(op))
			// A trailing + or - is not part of the operator (as in
			// PostgreSQL: "<=-1" is "<=" then "-1").
			if l.off < len(l.src) && strings.IndexByte("*/<>=~!@#%^&|`?", l.src[l.off]) >= 0 && op != "::" {
				return l.badOperator(start, pos)
			}
			return token{kind: tOp, text: op, raw: op, pos: pos}, nil
		}
	}
	switch c {
	case '(', ')', ',', '[', ']', ';', '.':
		l.advance(1)
		return token{kind: tOp, text: string(c), raw: string(c), pos: pos}, nil
	case '=', '<', '>', '+', '-', '*', '/', '%', '^':
		l.advance(1)
		// "-" or "+" directly before an operator character would make a
		// longer operator in PostgreSQL (e.g. "=-" is one operator).
		if l.off < len(l.src) && strings.IndexByte("*/<>=~!@#%^&|`?", l.src[l.off]) >= 0 {
			return l.badOperator(start, pos)
		}
		return token{kind: tOp, text: string(c), raw: string(c), pos: pos}, nil
	case '~', '!', '@', '#', '&', '|', '`', '?':
		return l.badOperator(start, pos)
	}
	r, _ := utf8.DecodeRuneInString(l.src[l.off:])
	return token{}, l.errorf(pos, "unexpected character %q", r)
}

func (l *lexer) badOperator(start, pos int) (token, error) {
	end := start
	for end < len(l.src) && strings.IndexByte("+-*/<>=~!@#%^&|`?", l.src[end]) >= 0 {
		end++
	}
	return token{}, l.errorf(pos, "operator %s is not supported (supported: = <> != < <= > >= + - * / %% AND OR NOT IS IN BETWEEN LIKE ILIKE)", l.src[start:end])
}

func (l *lexer) peekByte(n int) byte {
	if l.off+n < len(l.src) {
		return l.src[l.off+n]
	}
	return 0
}

// advance moves n bytes forward, counting characters.
func (l *lexer) advance(n int) {
	for _, b := range []byte(l.src[l.off : l.off+n]) {
		if b&0xC0 != 0x80 {
			l.char++
		}
	}
	l.off += n
}

// skipSpace skips white space and comments (-- to end of line, and
// nested /* */ as in PostgreSQL).
func (l *lexer) skipSpace() error {
	for l.off < len(l.src) {
		c := l.src[l.off]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v':
			l.advance(1)
		case c == '-' && l.peekByte(1) == '-':
			for l.off < len(l.src) && l.src[l.off] != '\n' && l.src[l.off] != '\r' {
				l.advance(1)
			}
		case c == '/' && l.peekByte(1) == '*':
			pos := l.char + 1
			depth := 0
			for {
				if l.off >= len(l.src) {
					return l.errorf(pos, "unterminated /* comment")
				}
				if strings.HasPrefix(l.src[l.off:], "/*") {
					depth++
					l.advance(2)
				} else if strings.HasPrefix(l.src[l.off:], "*/") {
					depth--
					l.advance(2)
					if depth == 0 {
						break
					}
				} else {
					l.advance(1)
				}
			}
		default:
			return nil
		}
	}
	return nil
}

// str reads a string literal starting at the opening quote. In an E”
// string backslash escapes are resolved as PostgreSQL does.
func (l *lexer) str(pos int, escapes bool) (string, error) {
	l.advance(1) // the opening quote
	var b strings.Builder
	for {
		if l.off >= len(l.src) {
			return "", l.errorf(pos, "unterminated quoted string")
		}
		c := l.src[l.off]
		switch {
		case c == '\'':
			if l.peekByte(1) == '\'' {
				b.WriteByte('\'')
				l.advance(2)
				continue
			}
			l.advance(1)
			s := b.String()
			if !utf8.ValidString(s) {
				return "", l.errorf(pos, "the string is not valid UTF-8")
			}
			if strings.IndexByte(s, 0) >= 0 {
				return "", l.errorf(pos, "a string cannot contain a NUL character")
			}
			return s, nil
		case c == '\\' && escapes:
			if err := l.escape(&b); err != nil {
				return "", err
			}
		default:
			b.WriteByte(c)
			l.advance(1)
		}
	}
}

// escape resolves one backslash escape of an E” string.
func (l *lexer) escape(b *strings.Builder) error {
	pos := l.char + 1
	l.advance(1) // the backslash
	if l.off >= len(l.src) {
		return l.errorf(pos, "unterminated quoted string")
	}
	c := l.src[l.off]
	switch c {
	case 'b':
		b.WriteByte('\b')
	case 'f':
		b.WriteByte('\f')
	case 'n':
		b.WriteByte('\n')
	case 'r':
		b.WriteByte('\r')
	case 't':
		b.WriteByte('\t')
	case 'x':
		n, v := 0, 0
		for n < 2 && isHex(l.peekByte(1+n)) {
			v = v*16 + hexVal(l.peekByte(1+n))
			n++
		}
		if n == 0 {
			b.WriteByte('x')
			break
		}
		b.WriteByte(byte(v))
		l.advance(n)
	case 'u', 'U':
		n := 4
		if c == 'U' {
			n = 8
		}
		v := 0
		for i := 1; i <= n; i++ {
			if !isHex(l.peekByte(i)) {
				return l.errorf(pos, "invalid Unicode escape: \\%c needs %d hexadecimal digits", c, n)
			}
			v = v*16 + hexVal(l.peekByte(i))
		}
		if v == 0 || v > utf8.MaxRune || v >= 0xD800 && v <= 0xDFFF {
			return l.errorf(pos, "invalid Unicode escape value")
		}
		b.WriteRune(rune(v))
		l.advance(n)
	default:
		if c >= '0' && c <= '7' {
			n, v := 1, int(c-'0')
			for n < 3 && l.peekByte(n) >= '0' && l.peekByte(n) <= '7' {
				v = v*8 + int(l.peekByte(n)-'0')
				n++
			}
			b.WriteByte(byte(v))
			l.advance(n)
			return nil
		}
		// Any other character stands for itself (\\, \', ...).
		_, size := utf8.DecodeRuneInString(l.src[l.off:])
		b.WriteString(l.src[l.off : l.off+size])
		l.advance(size)
		return nil
	}
	l.advance(1)
	return nil
}

// quotedIdent reads a "quoted identifier" ("" inside is one ").
func (l *lexer) quotedIdent(pos int) (string, error) {
	l.advance(1)
	var b strings.Builder
	for {
		if l.off >= len(l.src) {
			return "", l.errorf(pos, "unterminated quoted identifier")
		}
		c := l.src[l.off]
		if c == '"' {
			if l.peekByte(1) == '"' {
				b.WriteByte('"')
				l.advance(2)
				continue
			}
			l.advance(1)
			s := b.String()
			switch {
			case s == "":
				return "", l.errorf(pos, `zero-length quoted identifier ""`)
			case !utf8.ValidString(s):
				return "", l.errorf(pos, "the identifier is not valid UTF-8")
			}
			return truncIdent(s), nil
		}
		b.WriteByte(c)
		l.advance(1)
	}
}

// number reads a numeric literal: digits, an optional fraction and an
// optional exponent.
func (l *lexer) number(pos int) (token, error) {
	start := l.off
	for isDigit(l.peekByte(0)) {
		l.advance(1)
	}
	if l.peekByte(0) == '.' && l.peekByte(1) != '.' {
		l.advance(1)
		for isDigit(l.peekByte(0)) {
			l.advance(1)
		}
	}
	if c := l.peekByte(0); c == 'e' || c == 'E' {
		n := 1
		if s := l.peekByte(1); s == '+' || s == '-' {
			n = 2
		}
		if isDigit(l.peekByte(n)) {
			l.advance(n)
			for isDigit(l.peekByte(0)) {
				l.advance(1)
			}
		}
	}
	raw := l.src[start:l.off]
	if l.off < len(l.src) && (isIdentPart(l.src[l.off]) || l.src[l.off] == '.') {
		return token{}, l.errorf(pos, "trailing junk after numeric literal %s", raw)
	}
	return token{kind: tNumber, text: raw, raw: raw, pos: pos}, nil
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
func isHex(c byte) bool   { return isDigit(c) || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }

func hexVal(c byte) int {
	switch {
	case isDigit(c):
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	}
	return int(c-'A') + 10
}

// isIdentStart and isIdentPart follow PostgreSQL's lexer: letters,
// underscore and any non-ASCII byte start an identifier; digits and $ may
// follow.
func isIdentStart(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || c >= 0x80
}

func isIdentPart(c byte) bool { return isIdentStart(c) || isDigit(c) || c == '$' }

// foldIdent lower-cases an unquoted identifier as PostgreSQL does in a
// UTF-8 database: ASCII letters only.
func foldIdent(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// truncIdent cuts an identifier to PostgreSQL's 63 bytes, on a character
// boundary, as the server does.
func truncIdent(s string) string {
	if len(s) <= maxIdentLen {
		return s
	}
	n := maxIdentLen
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// quoteString renders s as a SQL string literal that means s whatever
// standard_conforming_strings is: E” with backslashes doubled when s has
// one, plain ” otherwise.
func quoteString(s string) string {
	if strings.ContainsRune(s, '\\') {
		return "E'" + strings.ReplaceAll(strings.ReplaceAll(s, `\`, `\\`), `'`, `''`) + "'"
	}
	return "'" + strings.ReplaceAll(s, `'`, `''`) + "'"
}

// showTok renders a token for an error message.
func showTok(t token) string {
	switch t.kind {
	case tEOF:
		return "end of expression"
	case tString:
		return "string " + strconv.Quote(t.text)
	}
	return strconv.Quote(t.raw)
}
