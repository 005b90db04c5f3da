package main

import (
	"context"
	"strings"

	"github.com/sluicehq/sluice/engine/record"
)

// PostgreSQL type OIDs whose values the masker can read in both formats.
const (
	oidText    = 25
	oidVarchar = 1043
	oidBpchar  = 1042
	oidJSON    = 114
	oidJSONB   = 3802
)

// masker masks e-mail addresses and card numbers in the values of a batch.
// It is safe for concurrent use: it holds no state but its configuration.
type masker struct {
	// columns holds the configured names (column, table.column or
	// schema.table.column); empty means detect in every text-like column.
	columns map[string]bool
}

func newMasker(spec string) *masker {
	m := &masker{columns: map[string]bool{}}
	for _, c := range strings.Split(spec, ",") {
		if c = strings.TrimSpace(c); c != "" {
			m.columns[c] = true
		}
	}
	return m
}

// how says what to look for in one column.
type how struct {
	emails, cards bool
	anyDigits     bool // cards: any run of 13-19 digits, not only Luhn-valid ones
	skip          int  // leading bytes to leave alone (jsonb's binary version byte)
	textOnly      bool // only in text-format records
}

// plan returns, per column of rel, what to mask (nil: nothing).
func (m *masker) plan(rel *record.Relation) []how {
	out := make([]how, len(rel.Columns))
	for i, c := range rel.Columns {
		if len(m.columns) > 0 {
			if !m.columns[c.Name] && !m.columns[rel.Table.Name+"."+c.Name] && !m.columns[rel.Table.Schema+"."+rel.Table.Name+"."+c.Name] {
				continue
			}
			h := how{emails: true, cards: true, anyDigits: true}
			switch c.TypeOID {
			case oidText, oidVarchar, oidBpchar:
			case oidJSON, oidJSONB:
				h.cards, h.anyDigits = false, false // digits there may be JSON numbers
				if c.TypeOID == oidJSONB {
					h.skip = 1
				}
			default:
				h.textOnly = true // a type we cannot read in binary
			}
			out[i] = h
			continue
		}
		switch c.TypeOID {
		case oidText, oidVarchar, oidBpchar:
			out[i] = how{emails: true, cards: true}
		case oidJSON:
			out[i] = how{emails: true}
		case oidJSONB:
			out[i] = how{emails: true, skip: 1}
		}
	}
	return out
}

// Process masks the batch's values in place, new and old alike (an old
// key must match what the sink holds, which was masked).
func (m *masker) Process(_ context.Context, b *record.Batch) (*record.Batch, error) {
	plans := map[*record.Relation][]how{}
	for i := range b.Records {
		r := &b.Records[i]
		if r.Rel == nil {
			continue
		}
		p, ok := plans[r.Rel]
		if !ok {
			p = m.plan(r.Rel)
			plans[r.Rel] = p
		}
		for _, vals := range [2][]record.Value{r.New, r.Old} {
			for j := range vals {
				if j >= len(p) {
					break
				}
				h := p[j]
				v := &vals[j]
				if v.Null || v.Unchanged || v.Data == nil || (!h.emails && !h.cards) {
					continue
				}
				skip := 0
				if r.Format == record.Binary {
					if h.textOnly {
						continue
					}
					skip = min(h.skip, len(v.Data))
				}
				v.Data = maskValue(v.Data, skip, h)
			}
		}
	}
	return b, nil
}

// maskValue returns v with its e-mail addresses and card numbers masked:
// a new slice when something changed, v itself otherwise.
func maskValue(v []byte, skip int, h how) []byte {
	var out []byte // copy on first change
	w := func() []byte {
		if out == nil {
			out = append([]byte(nil), v...)
		}
		return out
	}
	if h.emails {
		maskEmails(v, skip, w)
	}
	if h.cards {
		maskCards(v, skip, !h.anyDigits, w)
	}
	if out == nil {
		return v
	}
	return out
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func isAlnum(c byte) bool {
	return isDigit(c) || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

func isLocal(c byte) bool {
	return isAlnum(c) || c == '.' || c == '_' || c == '%' || c == '+' || c == '-'
}

func isDomain(c byte) bool { return isAlnum(c) || c == '.' || c == '-' }

// maskEmails masks the local part of each address in v[skip:] but its
// first character (all of it when it is one character long): the domain
// stays. It reads v and writes through w.
func maskEmails(v []byte, skip int, w func() []byte) {
	for at := skip; at < len(v); at++ {
		if v[at] != '@' {
			continue
		}
		start := at
		for start > skip && isLocal(v[start-1]) {
			start--
		}
		end := at + 1
		dot := false
		for end < len(v) && isDomain(v[end]) {
			dot = dot || v[end] == '.'
			end++
		}
		if start == at || end == at+1 || !dot || !isAlnum(v[at+1]) {
			continue
		}
		keep := start + 1
		if at-start == 1 {
			keep = start
		}
		out := w()
		for i := keep; i < at; i++ {
			out[i] = '*'
		}
		at = end - 1
	}
}

// maskCards masks every digit but the last four of each card number in
// v[skip:]: a run of 13 to 19 digits, single spaces or dashes allowed
// between them, not part of a longer word; with luhn set, only runs that
// pass the Luhn check.
func maskCards(v []byte, skip int, luhn bool, w func() []byte) {
	i := skip
	for i < len(v) {
		if !isDigit(v[i]) || (i > skip && isAlnum(v[i-1])) {
			i++
			continue
		}
		digits, end := 0, i
		for j := i; j < len(v); {
			if isDigit(v[j]) {
				digits++
				j++
				end = j
				continue
			}
			if (v[j] == ' ' || v[j] == '-') && j+1 < len(v) && isDigit(v[j+1]) {
				j++
				continue
			}
			break
		}
		if digits >= 13 && digits <= 19 && (end == len(v) || !isAlnum(v[end])) && (!luhn || luhnValid(v[i:end])) {
			out := w()
			left := digits - 4
			for k := i; k < end && left > 0; k++ {
				if isDigit(out[k]) {
					out[k] = '*'
					left--
				}
			}
		}
		i = end
	}
}

// luhnValid runs the Luhn check over the digits of s.
func luhnValid(s []byte) bool {
	sum, double := 0, false
	for i := len(s) - 1; i >= 0; i-- {
		if !isDigit(s[i]) {
			continue
		}
		d := int(s[i] - '0')
		if double {
			if d *= 2; d > 9 {
				d -= 9
			}
		}
		sum += d
		double = !double
	}
	return sum%10 == 0
}
