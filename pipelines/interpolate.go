package pipelines

import (
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"
)

// varNameRE is the form of a variable name in ${NAME}.
var varNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// expand replaces ${VAR}, ${VAR:-default} and $$ in s. It returns the
// result and the names of the variables whose values went into it. Its
// errors never quote s or a variable's value, only variable names.
func expand(s string, env func(string) (string, bool)) (string, []string, error) {
	if !strings.Contains(s, "$") {
		return s, nil, nil
	}
	var b strings.Builder
	var used []string
	for i := 0; i < len(s); {
		c := s[i]
		if c != '$' {
			b.WriteByte(c)
			i++
			continue
		}
		switch {
		case i+1 < len(s) && s[i+1] == '$':
			b.WriteByte('$')
			i += 2
			continue
		case i+1 >= len(s) || s[i+1] != '{':
			return "", nil, fmt.Errorf(`"$" at character %d must start ${VAR} or be written $$ for a literal "$"`, utf8.RuneCountInString(s[:i])+1)
		}
		end := strings.IndexByte(s[i+2:], '}')
		if end < 0 {
			return "", nil, fmt.Errorf(`"${" at character %d has no closing "}"`, utf8.RuneCountInString(s[:i])+1)
		}
		ref := s[i+2 : i+2+end]
		i += 2 + end + 1
		name, def, hasDef := strings.Cut(ref, ":-")
		if !varNameRE.MatchString(name) {
			return "", nil, fmt.Errorf(`"${...}" must hold a variable name (letters, digits and _, not starting with a digit), optionally followed by ":-default"`)
		}
		v, ok := env(name)
		switch {
		case hasDef && v == "":
			b.WriteString(def)
			continue
		case !ok:
			return "", nil, fmt.Errorf("environment variable %s is not set: export it (export %s=...) or give a default (${%s:-default})", name, name, name)
		case !utf8.ValidString(v):
			return "", nil, fmt.Errorf("environment variable %s is not valid UTF-8", name)
		}
		b.WriteString(v)
		used = append(used, name)
	}
	return b.String(), used, nil
}
