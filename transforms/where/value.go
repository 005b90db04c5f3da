package where

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// The values the compiled program works on, one Go type per family of
// SQL types, each with its own NULL. They are what the expr-lang
// environment holds for the row's columns and what the program's
// functions take and return, so expr-lang type-checks the translation.

// Tri is a SQL boolean: true, false or NULL (unknown).
type Tri uint8

const (
	False Tri = iota
	True
	Null
)

func triOf(b bool) Tri {
	if b {
		return True
	}
	return False
}

// Int is a smallint, integer or bigint.
type Int struct {
	V    int64
	Null bool
}

// Flt is a real or double precision; a real holds a float32 value.
type Flt struct {
	V    float64
	Null bool
}

// Str is a text, character varying, character(n) or uuid (in its
// canonical lower-case text form, whose byte order is uuid order).
type Str struct {
	V    string
	Null bool
}

// Tim is a date (V in days) or a timestamp (V in microseconds), both
// counted from 2000-01-01 (UTC for timestamptz), PostgreSQL's epoch; Inf
// is -1 or +1 for -infinity and infinity.
type Tim struct {
	V    int64
	Inf  int8
	Null bool
}

// Raw is a value of a type the filter does not look into: only whether
// it is NULL.
type Raw struct{ Null bool }

// decode turns a value in PostgreSQL's text format into the filter's value
// for type t. The text is what sluice's sessions produce (DateStyle ISO,
// TimeZone UTC, extra_float_digits 3).
func decode(t typ, v []byte) (any, error) {
	s := string(v)
	switch t {
	case tyBool:
		switch s {
		case "t":
			return True, nil
		case "f":
			return False, nil
		}
		return nil, fmt.Errorf("invalid boolean %q", truncateText(s, 40))
	case tyInt2, tyInt4, tyInt8:
		n, err := strconv.ParseInt(s, 10, intBits(t))
		if err != nil {
			return nil, fmt.Errorf("invalid %s %q", t, truncateText(s, 40))
		}
		return Int{V: n}, nil
	case tyNumeric:
		n, err := parseNumeric(s)
		if err != nil {
			return nil, fmt.Errorf("invalid numeric %q: %v", truncateText(s, 40), err)
		}
		return n, nil
	case tyFloat4, tyFloat8:
		f, err := parseFloat(s, t)
		if err != nil {
			return nil, err
		}
		return Flt{V: f}, nil
	case tyText, tyVarchar, tyBpchar:
		return Str{V: s}, nil
	case tyUUID:
		u, err := parseUUID(s)
		if err != nil {
			return nil, err
		}
		return Str{V: u}, nil
	case tyDate:
		d, err := parseDate(s)
		if err != nil {
			return nil, err
		}
		return d, nil
	case tyTimestamp, tyTimestamptz:
		ts, err := parseTimestamp(s, t == tyTimestamptz, false)
		if err != nil {
			return nil, err
		}
		return ts, nil
	}
	return Raw{}, nil
}

// nullOf is the NULL value of type t.
func nullOf(t typ) any {
	switch t {
	case tyBool:
		return Null
	case tyInt2, tyInt4, tyInt8:
		return Int{Null: true}
	case tyNumeric:
		return Num{Null: true}
	case tyFloat4, tyFloat8:
		return Flt{Null: true}
	case tyText, tyVarchar, tyBpchar, tyUUID:
		return Str{Null: true}
	case tyDate, tyTimestamp, tyTimestamptz:
		return Tim{Null: true}
	}
	return Raw{Null: true}
}

func intBits(t typ) int {
	switch t {
	case tyInt2:
		return 16
	case tyInt4:
		return 32
	}
	return 64
}

// input converts a string literal to type t as the type's input function
// would, for the forms the filter accepts; anything it cannot read exactly
// as PostgreSQL does is refused.
func input(t typ, s string) (any, error) {
	switch t {
	case tyBool:
		b, ok := parseBool(s)
		if !ok {
			return nil, fmt.Errorf("invalid input syntax for type boolean: %q", s)
		}
		return triOf(b), nil
	case tyInt2, tyInt4, tyInt8:
		str := trimSpace(s)
		n, err := strconv.ParseInt(str, 10, intBits(t))
		if err != nil || strings.HasPrefix(str, "+-") {
			if errors.Is(err, strconv.ErrRange) {
				return nil, fmt.Errorf("value %q is out of range for type %s", s, t)
			}
			return nil, fmt.Errorf("invalid input syntax for type %s: %q", t, s)
		}
		return Int{V: n}, nil
	case tyNumeric:
		n, err := parseNumeric(s)
		if err != nil {
			return nil, fmt.Errorf("%v: %q", err, s)
		}
		return n, nil
	case tyFloat4, tyFloat8:
		f, err := parseFloat(trimSpace(s), t)
		if err != nil {
			return nil, err
		}
		return Flt{V: f}, nil
	case tyText, tyVarchar, tyBpchar:
		return Str{V: s}, nil
	case tyUUID:
		u, err := parseUUID(s)
		if err != nil {
			return nil, err
		}
		return Str{V: u}, nil
	case tyDate:
		d, err := parseDate(trimSpace(s))
		if err != nil {
			return nil, fmt.Errorf("%v (write dates as YYYY-MM-DD)", err)
		}
		return d, nil
	case tyTimestamp, tyTimestamptz:
		ts, err := parseTimestamp(trimSpace(s), t == tyTimestamptz, true)
		if err != nil {
			return nil, fmt.Errorf("%v (write timestamps as YYYY-MM-DD HH:MM:SS[.ffffff]%s)", err, map[bool]string{true: "[+HH:MM]", false: ""}[t == tyTimestamptz])
		}
		return ts, nil
	}
	return nil, fmt.Errorf("type %s has no literals here", t)
}

// parseBool is PostgreSQL's parse_bool: a unique prefix of true, false,
// yes, no, on, off, or 1, 0, case-insensitive, surrounding white space
// ignored.
func parseBool(s string) (bool, bool) {
	s = strings.ToLower(trimSpace(s))
	if s == "" {
		return false, false
	}
	prefix := func(word string, min int) bool {
		return len(s) >= min && len(s) <= len(word) && word[:len(s)] == s
	}
	switch s[0] {
	case 't':
		return true, prefix("true", 1)
	case 'f':
		return false, prefix("false", 1)
	case 'y':
		return true, prefix("yes", 1)
	case 'n':
		return false, prefix("no", 1)
	case 'o':
		if prefix("on", 2) {
			return true, true
		}
		return false, prefix("off", 2)
	case '1':
		return true, s == "1"
	case '0':
		return false, s == "0"
	}
	return false, false
}

// parseFloat reads a real or double precision in decimal notation or as
// NaN, Infinity, inf (any case, optional sign). Hexadecimal and other
// forms C's strtod would read are refused; a value out of the type's range
// is an error, as in PostgreSQL.
func parseFloat(s string, t typ) (float64, error) {
	bits := 64
	if t == tyFloat4 {
		bits = 32
	}
	lower := strings.ToLower(s)
	switch strings.TrimLeft(lower, "+-") {
	case "nan":
		if lower != "nan" && lower != "+nan" && lower != "-nan" {
			break
		}
		return math.NaN(), nil
	case "infinity", "inf":
		if strings.Count(lower, "-")+strings.Count(lower, "+") > 1 {
			break
		}
		if lower[0] == '-' {
			return math.Inf(-1), nil
		}
		return math.Inf(1), nil
	}
	if !decimalSyntax(s) {
		return 0, fmt.Errorf("invalid input syntax for type %s: %q", t, s)
	}
	f, err := strconv.ParseFloat(s, bits)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return 0, fmt.Errorf("invalid input syntax for type %s: %q", t, s)
	}
	if math.IsInf(f, 0) || f == 0 && hasNonZeroDigit(s) {
		return 0, fmt.Errorf("%q is out of range for type %s", s, t)
	}
	return f, nil
}

// decimalSyntax reports whether s is [+-]digits[.digits][e[+-]digits].
func decimalSyntax(s string) bool {
	i := 0
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		i++
	}
	digits := 0
	for i < len(s) && isDigit(s[i]) {
		i++
		digits++
	}
	if i < len(s) && s[i] == '.' {
		i++
		for i < len(s) && isDigit(s[i]) {
			i++
			digits++
		}
	}
	if digits == 0 {
		return false
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if i == len(s) {
			return false
		}
		for i < len(s) && isDigit(s[i]) {
			i++
		}
	}
	return i == len(s)
}

func hasNonZeroDigit(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == 'e' || s[i] == 'E' {
			return false
		}
		if s[i] >= '1' && s[i] <= '9' {
			return true
		}
	}
	return false
}

// parseUUID reads a uuid as PostgreSQL's uuid_in does (32 hex digits, a
// hyphen allowed after any group of four, optionally in braces) and
// returns its canonical text.
func parseUUID(s string) (string, error) {
	in := s
	if strings.HasPrefix(s, "{") {
		if !strings.HasSuffix(s, "}") {
			return "", fmt.Errorf("invalid input syntax for type uuid: %q", in)
		}
		s = s[1 : len(s)-1]
	}
	var hex [32]byte
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case isHex(c) && n < 32:
			hex[n] = c | 0x20 // lower case (digits unaffected)
			n++
		case c == '-' && n > 0 && n%4 == 0 && n < 32 && i+1 < len(s) && s[i+1] != '-':
		default:
			return "", fmt.Errorf("invalid input syntax for type uuid: %q", in)
		}
	}
	if n != 32 {
		return "", fmt.Errorf("invalid input syntax for type uuid: %q", in)
	}
	h := string(hex[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32], nil
}

// Dates and timestamps, in PostgreSQL's own representation.

const (
	postgresEpochJDate = 2451545 // date2j(2000, 1, 1)
	usecsPerDay        = 86_400_000_000
	// dateEndJulian is date2j(5874898, 1, 1): dates are before it.
	dateEndJulian = 2147483494
	// timestampEndJulian is date2j(294277, 1, 1): timestamps are before it.
	timestampEndJulian = 109203528
	minTimestamp       = -211813488000000000 // 4714-11-24 00:00:00 BC
	endTimestamp       = 9223371331200000000 // 294277-01-01 00:00:00
)

// date2j is PostgreSQL's date2j: the Julian day number of a proleptic
// Gregorian date, year 0 being 1 BC.
func date2j(year, month, day int64) int64 {
	if month > 2 {
		month++
		year += 4800
	} else {
		month += 13
		year += 4799
	}
	century := year / 100
	julian := year*365 - 32167
	julian += year/4 - century + century/4
	julian += 7834*month/256 + day
	return julian
}

// j2date is PostgreSQL's j2date.
func j2date(jd int64) (year, month, day int64) {
	julian := uint64(jd) + 32044
	quad := julian / 146097
	extra := (julian-quad*146097)*4 + 3
	julian += 60 + quad*3 + extra/146097
	quad = julian / 1461
	julian -= quad * 1461
	y := julian * 4 / 1461
	if y != 0 {
		julian = (julian+305)%365 + 123
	} else {
		julian = (julian+306)%366 + 123
	}
	y += quad * 4
	year = int64(y) - 4800
	quad = julian * 2141 / 65536
	day = int64(julian - 7834*quad/256)
	month = int64((quad+10)%12 + 1)
	return year, month, day
}

func isLeap(y int64) bool { return y%4 == 0 && (y%100 != 0 || y%400 == 0) }

var daysIn = [2][12]int64{
	{31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31},
	{31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31},
}

// dateParts reads YYYY-MM-DD (the year may have more digits) at the start
// of s and returns the rest.
func dateParts(s string) (y, m, d int64, rest string, err error) {
	i := 0
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	if i < 4 || i > 7 || len(s) < i+6 || s[i] != '-' || s[i+3] != '-' || !isDigit(s[i+1]) || !isDigit(s[i+2]) || !isDigit(s[i+4]) || !isDigit(s[i+5]) {
		return 0, 0, 0, "", errors.New("invalid date")
	}
	y, _ = strconv.ParseInt(s[:i], 10, 64)
	m, _ = strconv.ParseInt(s[i+1:i+3], 10, 64)
	d, _ = strconv.ParseInt(s[i+4:i+6], 10, 64)
	return y, m, d, s[i+6:], nil
}

// julianOf validates a date (year as written, bc for " BC") and returns
// its Julian day.
func julianOf(y, m, d int64, bc bool) (int64, error) {
	if y <= 0 {
		return 0, errors.New("year 0 does not exist (1 BC is followed by 1 AD)")
	}
	if bc {
		y = -(y - 1)
	}
	if m < 1 || m > 12 {
		return 0, errors.New("month out of range")
	}
	leap := 0
	if isLeap(y) {
		leap = 1
	}
	if d < 1 || d > daysIn[leap][m-1] {
		return 0, errors.New("day out of range")
	}
	return date2j(y, m, d), nil
}

// cutBC removes a trailing " BC".
func cutBC(s string) (string, bool) {
	if strings.HasSuffix(s, " BC") {
		return s[:len(s)-3], true
	}
	return s, false
}

// parseDate reads a date in ISO form (YYYY-MM-DD, optional " BC"), or
// infinity, -infinity.
func parseDate(s string) (Tim, error) {
	switch strings.ToLower(s) {
	case "infinity", "+infinity":
		return Tim{Inf: 1}, nil
	case "-infinity":
		return Tim{Inf: -1}, nil
	}
	body, bc := cutBC(s)
	y, m, d, rest, err := dateParts(body)
	if err == nil && rest != "" {
		err = errors.New("invalid date")
	}
	if err != nil {
		return Tim{}, fmt.Errorf("invalid date %q", truncateText(s, 40))
	}
	j, err := julianOf(y, m, d, bc)
	if err != nil {
		return Tim{}, fmt.Errorf("invalid date %q: %v", truncateText(s, 40), err)
	}
	if j < 0 || j >= dateEndJulian {
		return Tim{}, fmt.Errorf("date %q is out of range", truncateText(s, 40))
	}
	return Tim{V: j - postgresEpochJDate}, nil
}

// parseTimestamp reads YYYY-MM-DD HH:MM:SS[.ffffff] with, for timestamptz,
// a zone offset [+-]HH[:MM[:SS]] (literal: also Z or none, meaning UTC),
// and an optional " BC"; or infinity, -infinity. A literal for timestamp
// must not have a zone (PostgreSQL would silently ignore it); a literal
// may also use T between date and time, omit seconds, or be a date alone.
func parseTimestamp(s string, tz, literal bool) (Tim, error) {
	switch strings.ToLower(s) {
	case "infinity", "+infinity":
		return Tim{Inf: 1}, nil
	case "-infinity":
		return Tim{Inf: -1}, nil
	}
	bad := func(why string) (Tim, error) {
		if why != "" {
			why = ": " + why
		}
		return Tim{}, fmt.Errorf("invalid timestamp %q%s", truncateText(s, 60), why)
	}
	body, bc := cutBC(s)
	y, mo, d, rest, err := dateParts(body)
	if err != nil {
		return bad("")
	}
	var h, mi, sec, usec, off int64
	if rest == "" && literal {
		// a date alone: midnight
	} else {
		if len(rest) < 6 || !(rest[0] == ' ' || literal && (rest[0] == 'T' || rest[0] == 't')) {
			return bad("")
		}
		rest = rest[1:]
		num2 := func() (int64, bool) {
			if len(rest) < 2 || !isDigit(rest[0]) || !isDigit(rest[1]) {
				return 0, false
			}
			v := int64(rest[0]-'0')*10 + int64(rest[1]-'0')
			rest = rest[2:]
			return v, true
		}
		var ok bool
		if h, ok = num2(); !ok || rest == "" || rest[0] != ':' {
			return bad("")
		}
		rest = rest[1:]
		if mi, ok = num2(); !ok {
			return bad("")
		}
		if rest != "" && rest[0] == ':' {
			rest = rest[1:]
			if sec, ok = num2(); !ok {
				return bad("")
			}
			if rest != "" && rest[0] == '.' {
				rest = rest[1:]
				n := 0
				for n < len(rest) && isDigit(rest[n]) {
					n++
				}
				if n == 0 || n > 6 {
					return bad("at most 6 digits of fractional seconds")
				}
				frac, _ := strconv.ParseInt(rest[:n]+strings.Repeat("0", 6-n), 10, 64)
				usec = frac
				rest = rest[n:]
			}
		} else if !literal {
			return bad("")
		}
		if h > 23 || mi > 59 || sec > 59 {
			return bad("time out of range")
		}
		switch {
		case rest == "":
			if tz && !literal {
				return bad("no time zone offset")
			}
		case !tz:
			return bad("a timestamp without time zone takes no zone (PostgreSQL would ignore it); remove it or compare with a timestamptz")
		case literal && (rest == "Z" || rest == "z"):
		case rest[0] == '+' || rest[0] == '-':
			sign := int64(1)
			if rest[0] == '-' {
				sign = -1
			}
			rest = rest[1:]
			oh, ok := num2()
			if !ok {
				return bad("")
			}
			var om, os int64
			if rest != "" && rest[0] == ':' {
				rest = rest[1:]
				if om, ok = num2(); !ok {
					return bad("")
				}
				if rest != "" && rest[0] == ':' {
					rest = rest[1:]
					if os, ok = num2(); !ok {
						return bad("")
					}
				}
			} else if len(rest) == 4 && literal {
				if om, ok = num2(); !ok {
					return bad("")
				}
			}
			if rest != "" || oh > 15 || om > 59 || os > 59 {
				return bad("")
			}
			off = sign * (oh*3600 + om*60 + os)
		default:
			return bad("")
		}
	}
	j, err := julianOf(y, mo, d, bc)
	if err != nil {
		return bad(err.Error())
	}
	if j < 0 || j > timestampEndJulian {
		return bad("out of range")
	}
	days := j - postgresEpochJDate
	t := (days*86400+h*3600+mi*60+sec-off)*1_000_000 + usec
	if t < minTimestamp || t >= endTimestamp {
		return bad("out of range")
	}
	return Tim{V: t}, nil
}

// formatDate renders days since 2000-01-01 as PostgreSQL's ISO output.
func formatDate(days int64) string {
	y, m, d := j2date(days + postgresEpochJDate)
	bc := ""
	if y <= 0 {
		y, bc = -y+1, " BC"
	}
	return fmt.Sprintf("%04d-%02d-%02d%s", y, m, d, bc)
}

// formatTimestamp renders microseconds since 2000-01-01 as PostgreSQL's
// ISO output (with +00 for timestamptz in UTC).
func formatTimestamp(us int64, tz bool) string {
	days := floorDiv64(us, usecsPerDay)
	rem := us - days*usecsPerDay
	y, m, d := j2date(days + postgresEpochJDate)
	bc := ""
	if y <= 0 {
		y, bc = -y+1, " BC"
	}
	secs, frac := rem/1_000_000, rem%1_000_000
	s := fmt.Sprintf("%04d-%02d-%02d %02d:%02d:%02d", y, m, d, secs/3600, secs/60%60, secs%60)
	if frac != 0 {
		s += strings.TrimRight(fmt.Sprintf(".%06d", frac), "0")
	}
	if tz {
		s += "+00"
	}
	return s + bc
}

func floorDiv64(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}
