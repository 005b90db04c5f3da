package postgres

import (
	"net/url"
	"strings"
)

// SplitPassword returns dsn without its password and the password, so a
// child process (pg_dump) can get the password through its environment
// (PGPASSWORD) instead of its command line, where `ps` would show it. It
// handles URLs (postgres://user:pw@host/db?password=pw) and key=value
// strings with quoted values.
func SplitPassword(dsn string) (rest, password string) {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return dsn, ""
		}
		if u.User != nil {
			if pw, ok := u.User.Password(); ok {
				password = pw
				u.User = url.User(u.User.Username())
			}
		}
		q := u.Query()
		if pw := q.Get("password"); pw != "" {
			password = pw
			q.Del("password")
			u.RawQuery = q.Encode()
		}
		return u.String(), password
	}
	var out []string
	for _, kv := range splitKeyValues(dsn) {
		k, v, _ := strings.Cut(kv, "=")
		if strings.TrimSpace(k) == "password" {
			password = unquoteValue(strings.TrimSpace(v))
			continue
		}
		out = append(out, kv)
	}
	return strings.Join(out, " "), password
}

// splitKeyValues splits a key=value connection string into its pairs,
// keeping quoted values ('a b', 'it\'s') whole.
func splitKeyValues(s string) []string {
	var pairs []string
	var cur strings.Builder
	inQuote, escaped := false, false
	for _, r := range s {
		switch {
		case escaped:
			cur.WriteRune(r)
			escaped = false
		case r == '\\':
			cur.WriteRune(r)
			escaped = true
		case r == '\'':
			cur.WriteRune(r)
			inQuote = !inQuote
		case (r == ' ' || r == '\t' || r == '\n') && !inQuote:
			if cur.Len() > 0 {
				pairs = append(pairs, cur.String())
				cur.Reset()
			}
		default:
			cur.WriteRune(r)
		}
	}
	if cur.Len() > 0 {
		pairs = append(pairs, cur.String())
	}
	// "key = value" with spaces around '=' comes out as three tokens.
	var joined []string
	for i := 0; i < len(pairs); i++ {
		p := pairs[i]
		switch {
		case p == "=" && len(joined) > 0 && i+1 < len(pairs):
			joined[len(joined)-1] += "=" + pairs[i+1]
			i++
		case strings.HasSuffix(p, "=") && !strings.Contains(strings.TrimSuffix(p, "="), "=") && i+1 < len(pairs) && !strings.Contains(pairs[i+1], "="):
			joined = append(joined, p+pairs[i+1])
			i++
		case strings.HasPrefix(p, "=") && len(joined) > 0:
			joined[len(joined)-1] += p
		default:
			joined = append(joined, p)
		}
	}
	return joined
}

func unquoteValue(v string) string {
	if len(v) >= 2 && v[0] == '\'' && v[len(v)-1] == '\'' {
		v = v[1 : len(v)-1]
	}
	var b strings.Builder
	escaped := false
	for _, r := range v {
		if !escaped && r == '\\' {
			escaped = true
			continue
		}
		escaped = false
		b.WriteRune(r)
	}
	return b.String()
}
