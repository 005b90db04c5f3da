package pipelines

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// Secret is a string that must not be shown: a connection string that may
// hold a password. Every way of printing it — String, fmt's verbs
// (%v %s %q %+v %#v …), GoString, JSON, text marshalling and slog — shows
// it redacted; Reveal returns the real value.
//
// Redaction treats the value as a PostgreSQL connection string and
// replaces the password (and sslpassword) with xxxxx, in URL form
// (postgres://user:xxxxx@host/db, ?password=xxxxx) and in key=value form
// (password=xxxxx, quoted values included). It errs on the side of hiding:
// in a URL it takes the userinfo to end at the last "@", so an "@" inside a
// query value hides the host too; and a value it cannot parse as either
// form is shown as xxxxx whole.
type Secret string

// redacted is what a password is replaced with.
const redacted = "xxxxx"

// Reveal returns the secret's real value, for handing to a driver. Never
// log or print it.
func (s Secret) Reveal() string { return string(s) }

// String returns the redacted value.
func (s Secret) String() string { return redactDSN(string(s)) }

// GoString returns the redacted value as a Go string literal.
func (s Secret) GoString() string { return strconv.Quote(s.String()) }

// Format formats the redacted value with any verb and flags fmt accepts for
// a string.
func (s Secret) Format(f fmt.State, verb rune) {
	fmt.Fprintf(f, fmt.FormatString(f, verb), s.String())
}

// MarshalJSON returns the redacted value as a JSON string.
func (s Secret) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }

// MarshalText returns the redacted value (used by YAML, XML and others).
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// LogValue returns the redacted value for log/slog.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// uriSchemeRE matches the start of a URL-form connection string.
var uriSchemeRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.-]*://`)

// passwordKeys are the connection-string keys whose values are hidden.
func isPasswordKey(k string) bool {
	k = strings.ToLower(k)
	return k == "password" || k == "sslpassword"
}

// redactDSN returns the connection string with its passwords hidden.
func redactDSN(s string) string {
	out, _ := redact(s)
	return out
}

// redact returns s with its passwords replaced by xxxxx, and the hidden
// parts of s.
func redact(s string) (out string, hidden []string) {
	if s == "" {
		return "", nil
	}
	var b strings.Builder
	hide := func(v string) {
		b.WriteString(redacted)
		hidden = append(hidden, v)
	}
	if m := uriSchemeRE.FindString(s); m != "" {
		b.WriteString(m)
		redactURLRest(&b, s[len(m):], hide)
		return b.String(), hidden
	}
	spans, ok := keywordValueSpans(s)
	if !ok {
		// Not parsable: hide everything after the first password key, or
		// everything if there is none.
		if i := strings.Index(strings.ToLower(s), "password"); i >= 0 {
			if j := strings.IndexByte(s[i:], '='); j >= 0 {
				b.WriteString(s[:i+j+1])
				hide(s[i+j+1:])
				return b.String(), hidden
			}
		}
		hide(s)
		return b.String(), hidden
	}
	last := 0
	for _, sp := range spans {
		if isPasswordKey(s[sp.key[0]:sp.key[1]]) {
			b.WriteString(s[last:sp.value[0]])
			hide(s[sp.value[0]:sp.value[1]])
			last = sp.value[1]
		}
	}
	b.WriteString(s[last:])
	return b.String(), hidden
}

// redactURLRest writes what follows "scheme://" to b, passing to hide the
// password of user:password@ (the userinfo taken to end at the last "@")
// and the values of password= and sslpassword= in the query.
func redactURLRest(b *strings.Builder, rest string, hide func(string)) {
	if at := strings.LastIndexByte(rest, '@'); at >= 0 {
		userinfo := rest[:at]
		if colon := strings.IndexByte(userinfo, ':'); colon >= 0 {
			b.WriteString(userinfo[:colon+1])
			hide(userinfo[colon+1:])
		} else {
			b.WriteString(userinfo)
		}
		b.WriteByte('@')
		rest = rest[at+1:]
	}
	q := strings.IndexByte(rest, '?')
	if q < 0 {
		b.WriteString(rest)
		return
	}
	b.WriteString(rest[:q+1])
	query, frag, hasFrag := strings.Cut(rest[q+1:], "#")
	for i, pair := range strings.Split(query, "&") {
		if i > 0 {
			b.WriteByte('&')
		}
		k, v, hasValue := strings.Cut(pair, "=")
		uk, err := url.QueryUnescape(k)
		if err != nil {
			uk = k
		}
		if hasValue && isPasswordKey(uk) {
			b.WriteString(k + "=")
			hide(v)
			continue
		}
		b.WriteString(pair)
	}
	if hasFrag {
		b.WriteString("#" + frag)
	}
}

// span is where a key and its value (without quotes) are in a key=value
// connection string: [start, end) byte offsets.
type span struct{ key, value [2]int }

// keywordValueSpans splits a key=value connection string the way libpq
// does: values are single-quoted or run to the next space, and a backslash
// escapes the next character. ok is false if s is not of that form.
func keywordValueSpans(s string) (spans []span, ok bool) {
	isSpace := func(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v' }
	i := 0
	for {
		for i < len(s) && isSpace(s[i]) {
			i++
		}
		if i == len(s) {
			return spans, len(spans) > 0
		}
		var sp span
		sp.key[0] = i
		for i < len(s) && s[i] != '=' && !isSpace(s[i]) {
			i++
		}
		sp.key[1] = i
		for i < len(s) && isSpace(s[i]) {
			i++
		}
		if sp.key[0] == sp.key[1] || i == len(s) || s[i] != '=' {
			return nil, false
		}
		i++
		for i < len(s) && isSpace(s[i]) {
			i++
		}
		if i < len(s) && s[i] == '\'' {
			i++
			sp.value[0] = i
			for {
				if i >= len(s) {
					return nil, false // unterminated quote
				}
				if s[i] == '\\' {
					i += 2
					continue
				}
				if s[i] == '\'' {
					break
				}
				i++
			}
			sp.value[1] = i
			i++
		} else {
			sp.value[0] = i
			for i < len(s) && !isSpace(s[i]) {
				if s[i] == '\\' {
					i++
				}
				i++
			}
			if i > len(s) {
				i = len(s)
			}
			sp.value[1] = i
		}
		spans = append(spans, sp)
	}
}

// checkDSN parses dsn as pgconn does when connecting and returns what is
// wrong with it, or "". The message never holds the connection string nor
// a part of it that could be the password.
func checkDSN(dsn Secret) string {
	_, err := pgconn.ParseConfig(dsn.Reveal())
	if err == nil {
		return ""
	}
	var pce *pgconn.ParseConfigError
	if !errors.As(err, &pce) {
		return "pgconn could not parse it"
	}
	// pce.Error() is "cannot parse `<redacted dsn>`: <msg>[ (<cause>)]";
	// keep <msg> only. The cause is left out for the two parse failures:
	// it can quote a fragment of a malformed URL or key=value string,
	// which may be a piece of the password.
	full := pce.Error()
	if cause := errors.Unwrap(pce); cause != nil {
		full = strings.TrimSuffix(full, " ("+cause.Error()+")")
	}
	msg := full
	if i := strings.LastIndex(full, "`: "); i >= 0 {
		msg = full[i+3:]
	}
	switch msg {
	case "failed to parse as URL":
		msg += "; check that special characters in the user name and password are percent-encoded (space as %20, @ as %40, : as %3A, / as %2F, ? as %3F, # as %23)"
	case "failed to parse as keyword/value":
		msg += "; the form is key=value pairs separated by spaces, with values holding spaces or quotes written in single quotes ('...') and \\' for a quote"
	default:
		if cause := errors.Unwrap(pce); cause != nil {
			msg += " (" + cause.Error() + ")"
		}
	}
	if leaksSecret(msg, dsn.Reveal()) {
		return "pgconn could not parse it"
	}
	return msg
}

// leaksSecret reports whether msg holds a password of dsn, or dsn itself.
func leaksSecret(msg, dsn string) bool {
	if strings.Contains(msg, dsn) {
		return true
	}
	_, hidden := redact(dsn)
	for _, pw := range hidden {
		if len(pw) >= 3 && strings.Contains(msg, pw) {
			return true
		}
	}
	return false
}
