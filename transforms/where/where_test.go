package where

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/engine/record"
)

// TestRefusals: what the engine cannot evaluate exactly as PostgreSQL does
// is refused at compile time, with the position and the reason.
func TestRefusals(t *testing.T) {
	cols := append(oracleColumns(), Column{Name: "nd", TypeOID: OIDText, Collation: "und-x-icu-ci", Nondeterministic: true},
		Column{Name: "Amount", TypeOID: OIDNumeric}, Column{Name: "js", TypeOID: 114, TypeName: "json"})
	cases := []struct {
		expr string
		pos  int
		want string
	}{
		{`d < now()`, 5, "function now() is not supported for streamed changes: its value differs between the copy and the stream"},
		{`current_date > d`, 1, "current_date is not supported for streamed changes"},
		{`random() < 0.5`, 1, "function random() is not supported for streamed changes"},
		{`tz > clock_timestamp()`, 6, "clock_timestamp() is not supported"},
		{`amout > 5`, 1, `column "amout" does not exist (the table has: "Amount", "Mixed Case", "we""ird.col", b, c, d, f4, f8, i2, i4, i8, id, j, js, n, nd, t, tc, tp, ts, tz, u, v)`},
		{`amount > 5`, 1, `column "amount" does not exist; did you mean "Amount"?`},
		{`i4 > 1 and "I4" < 5`, 12, `column "I4" does not exist; did you mean "i4"?`},
		{`t < 'x'`, 3, `< on text under collation default cannot be evaluated identically`},
		{`t between 'a' and 'b'`, 3, `>= on text under collation default`},
		{`t ilike 'x%'`, 3, `ILIKE on text under collation default`},
		{`lower(t) = 'x'`, 1, `lower() on text under collation default`},
		{`upper(v) = 'X'`, 1, `upper() on text`},
		{`tc = tp`, 4, `different collations ("C" and "POSIX")`},
		{`t collate "C" = tc collate "POSIX"`, 15, `collation mismatch between explicit collations`},
		{`t collate "en_US" = 'x'`, 3, `collation "en_US" is not supported here`},
		{`nd = 'x'`, 4, `nondeterministic`},
		{`nd like 'x'`, 4, `nondeterministic`},
		{`j = '{}'`, 1, `column "j" has type OID 3802, which the filter cannot evaluate on streamed changes; it can only be tested with IS [NOT] NULL`},
		{`js is null and js::text = ''`, 16, `column "js" has type json`},
		{`i4 > `, 6, `syntax error at end of expression`},
		{`i4 = 1 or`, 10, `syntax error at end of expression`},
		{`(i4 = 1`, 8, `expected )`},
		{`i4 = 'abc'`, 6, `invalid input syntax for type integer: "abc"`},
		{`i2 = 40000`, 0, ``}, // fine: compared as integer
		{`i2 = '40000'`, 6, `out of range for type smallint`},
		{`d = '01/02/2024'`, 5, `invalid date "01/02/2024" (write dates as YYYY-MM-DD)`},
		{`d = '2024-02-30'`, 5, `day out of range`},
		{`d = '2024-01-01 12:00'`, 5, `invalid date`},
		{`d < 'today'`, 5, `invalid date "today"`},
		{`ts = '2024-01-01 12:00:00+02'`, 6, `a timestamp without time zone takes no zone`},
		{`ts = '2024-01-01 12:00:00.1234567'`, 6, `at most 6 digits of fractional seconds`},
		{`u = 'xyz'`, 5, `invalid input syntax for type uuid`},
		{`b = 'maybe'`, 5, `invalid input syntax for type boolean`},
		{`f8 = '0x10'`, 6, `invalid input syntax for type double precision`},
		{`f4 = '1e50'`, 6, `out of range for type real`},
		{`t || 'x' = 'y'`, 3, `operator || is not supported`},
		{`i4 ^ 2 > 1`, 4, `operator ^ is not supported`},
		{`i4 ~ 'x'`, 4, `operator ~ is not supported`},
		{`i4 =* 1`, 4, `operator =* is not supported`},
		{`(select 1) = 1`, 2, `subqueries are not supported`},
		{`i4 in (select 1)`, 8, `subqueries are not supported`},
		{`exists (select 1)`, 1, `subqueries are not supported`},
		{`t = 5`, 3, `cannot compare column "t" (text) with an expression of type integer`},
		{`i4 < 1 < 2`, 8, `comparisons cannot be chained`},
		{`i4 in (1) in (true)`, 11, `cannot follow another BETWEEN, IN, LIKE or ILIKE`},
		{`w.i4 = 1`, 1, `qualified names ("w".…) are not supported`},
		{`case when b then true end`, 1, `CASE is not supported`},
		{`t similar to 'x'`, 3, `SIMILAR TO is not supported`},
		{`f8 % 2 = 0`, 4, `operator % is not defined for double precision`},
		{`i4::text = '1'`, 3, `cannot cast column "i4" (integer) to text: only casts that keep the value exactly (widening) are supported`},
		{`n::integer = 1`, 2, `cannot cast column "n" (numeric) to integer`},
		{`tz::timestamp = ts`, 3, `depends on the session's time zone; write (... AT TIME ZONE 'UTC') instead`},
		{`ts at time zone 'Europe/Paris' = tz`, 17, `only AT TIME ZONE 'UTC' is supported`},
		{`d at time zone 'UTC' = tz`, 3, `AT TIME ZONE needs a timestamp or timestamptz, not column "d" (date)`},
		{`i4 = $1`, 6, `parameters ($1) are not supported`},
		{`i4 > 1; drop table w`, 7, `only one expression is allowed`},
		{``, 0, `the expression is empty`},
		{"  \n ", 0, `the expression is empty`},
		{`b and i4`, 7, `argument of AND must be boolean, not column "i4" (integer)`},
		{`i4`, 1, `the WHERE condition must be boolean, not column "i4" (integer)`},
		{`not i4`, 5, `argument of NOT must be boolean`},
		{`t like t`, 8, `the LIKE pattern must be a string literal`},
		{`t like 'a\'`, 8, `LIKE pattern must not end with escape character`},
		{`t like 'a' escape 'xy'`, 8, `invalid escape string`},
		{`'1' + '2' > 0`, 5, `operator + is not unique for two untyped literals`},
		{`lower(i4) = 'x'`, 1, `lower() needs a string, not column "i4" (integer)`},
		{`abs(t) = 1`, 1, `abs() needs a number`},
		{`abs('1') = 1`, 1, `abs() needs a number, not a string literal`},
		{`coalesce(i4, t) = 1`, 1, `COALESCE arguments of types integer, text cannot be matched`},
		{`coalesce() = 1`, 1, `coalesce() needs at least one argument`},
		{`lower(t, t) = 1`, 1, `lower() takes 1 argument, not 2`},
		{`length(u) = 36`, 1, `length() needs a string`},
		{`foo(i4) = 1`, 1, `function foo() is not supported (supported: lower, upper, length, coalesce, abs)`},
		{`U&'x' = t`, 1, `Unicode escapes`},
		{`t = $$x$$`, 5, `dollar-quoted strings are not supported`},
		{`t = 'abc`, 5, `unterminated quoted string`},
		{`"abc = 1`, 1, `unterminated quoted identifier`},
		{`"" = 1`, 1, `zero-length quoted identifier`},
		{`i4 = 1 /* x`, 8, `unterminated /* comment`},
		{`i4 = 12abc`, 6, `trailing junk after numeric literal 12`},
		{`t = 'x' or select = 1`, 12, `SELECT is a reserved word; write it in double quotes if it is a column name`},
		{`'abc'::char = t`, 6, `type char without a length means character(1)`},
		{`i4::numeric(10,2) > 1`, 12, `type modifiers such as numeric(...) are not supported`},
		{`i4::int[] > 1`, 8, `array types are not supported`},
		{`i4::json > 1`, 3, `type json is not supported`},
		{`interval '1 day' > '0'`, 1, `type interval is not supported`},
		{`i4 between symmetric 1 and 2`, 12, `BETWEEN SYMMETRIC is not supported`},
		{`i4 = any(array[1])`, 6, `ANY is a reserved word`},
		{`-t = 'x'`, 1, `unary - needs a number`},
		{`-'1' = 1`, 1, `unary - of an untyped literal is ambiguous`},
		{`i2 = 32768::smallint`, 11, `smallint out of range`},
		{`i4 = 2147483647 + 1`, 17, `integer out of range`},
		{`n = 1 / 0`, 7, `division by zero`},
		{`d = '5874898-01-01'`, 5, `out of range`},
		{`d::timestamp = '294277-01-01'::date::timestamp`, 36, `date out of range for timestamp`},
		{`t = E'\u0000'`, 7, `invalid Unicode escape value`},
		{`t = E'a\000b'`, 5, `cannot contain a NUL character`},
		{`t = E'\xff'`, 5, `not valid UTF-8`},
		{strings.Repeat("(", 300) + "b" + strings.Repeat(")", 300), 0, `nested more than 200 levels deep`},
		{strings.Repeat("not ", 300) + "b", 0, `nested more than 200 levels deep`},
		{"b and " + strings.Repeat("x", maxLen), 0, `longer than 64 KiB`},
	}
	for _, c := range cases {
		_, err := Compile(c.expr, cols)
		if c.want == "" {
			if err != nil {
				t.Errorf("Compile(%q): unexpected error %v", c.expr, err)
			}
			continue
		}
		var e *Error
		if !errors.As(err, &e) {
			t.Errorf("Compile(%q): want an *Error containing %q, got %v", c.expr, c.want, err)
			continue
		}
		if !strings.Contains(e.Msg, c.want) {
			t.Errorf("Compile(%q):\n  got  %s\n  want …%s…", c.expr, e, c.want)
		}
		if c.pos != 0 && e.Pos != c.pos {
			t.Errorf("Compile(%q): position %d, want %d (%s)", c.expr, e.Pos, c.pos, e)
		}
		if !strings.HasPrefix(err.Error(), "where: ") {
			t.Errorf("Compile(%q): error %q does not start with where:", c.expr, err)
		}
	}
}

func TestParse(t *testing.T) {
	if err := Parse(`amount > 100 AND region IN ('eu','us')`); err != nil {
		t.Errorf("Parse: %v", err)
	}
	var e *Error
	if err := Parse(`amount > 100 AND now() > d`); !errors.As(err, &e) || e.Pos != 18 {
		t.Errorf("Parse(now()): %v", err)
	}
}

// TestErrorText pins the format of a compile error.
func TestErrorText(t *testing.T) {
	_, err := Compile(`amount > 100 AND now() > d`, []Column{{Name: "amount", TypeOID: OIDInt4}, {Name: "d", TypeOID: OIDDate}})
	want := "where: position 18: function now() is not supported for streamed changes: its value differs between the copy and the stream"
	if err == nil || err.Error() != want {
		t.Fatalf("got %v\nwant %s", err, want)
	}
}

// TestSQL pins the rendering of a few expressions.
func TestSQL(t *testing.T) {
	cols := oracleColumns()
	cases := map[string]string{
		`n > 100 AND v IN ('eu','us')`:                `(("n" > '100'::numeric) AND ("v" IN ('eu'::text, 'us'::text)))`,
		`i4 = 1.5`:                                    `("i4"::numeric = 1.5)`,
		`c = 'ab '`:                                   `("c" = 'ab '::bpchar)`,
		`c = t`:                                       `("c"::text = "t")`,
		`d < tz`:                                      `(("d"::timestamp without time zone AT TIME ZONE 'UTC') < "tz")`,
		`tz > '2024-01-01 12:00+02'`:                  `("tz" > '2024-01-01 10:00:00+00'::timestamp with time zone)`,
		`f4 in (1, 0.1)`:                              `("f4" IN ('1'::real, '0.1'::real))`,
		`i4 in (1, i2, 3)`:                            `(("i4" IN (1, 3)) OR ("i4" = "i2"))`,
		`t not like 'a\%' escape '#'`:                 `("t" NOT LIKE E'a\\%' ESCAPE '#')`,
		`"Mixed Case" between -1 and 5`:               `(("Mixed Case" >= (-1)) AND ("Mixed Case" <= 5))`,
		`"we""ird.col" is not null`:                   `("we""ird.col" IS NOT NULL)`,
		`tc collate "C" < 'x' or b is unknown`:        `((("tc" COLLATE pg_catalog."C") < 'x'::text) OR ("b" IS UNKNOWN))`,
		`coalesce(i4, 0) + -5 > 2`:                    `((COALESCE("i4", 0) + (-5)) > 2)`,
		`u = '{A0EEBC99-9C0B4EF8-BB6D6BB9-BD380A11}'`: `("u" = 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid)`,
		`d = '0044-03-15 BC'`:                         `("d" = '0044-03-15 BC'::date)`,
		`i8 = 5 and i2 = '7'`:                         `(("i8" = 5) AND ("i2" = '7'::smallint))`,
	}
	for in, want := range cases {
		f, err := Compile(in, cols)
		if err != nil {
			t.Errorf("Compile(%q): %v", in, err)
			continue
		}
		if f.SQL() != want {
			t.Errorf("Compile(%q).SQL()\n  got  %s\n  want %s", in, f.SQL(), want)
		}
	}
}

func TestColumns(t *testing.T) {
	f, err := Compile(`i4 > 1 and (t = 'x' or i4 < 5) and "Mixed Case" is null`, oracleColumns())
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(f.Columns(), "|"); got != "i4|t|Mixed Case" {
		t.Errorf("Columns() = %s", got)
	}
}

// TestNumericDivision checks division scales against values PostgreSQL
// printed (select_div_scale).
func TestNumericDivision(t *testing.T) {
	cases := []struct{ a, b, want string }{
		{"1", "3", "0.33333333333333333333"},
		{"10", "4", "2.5000000000000000"},
		{"1.0", "7", "0.14285714285714285714"},
		{"2.00", "3", "0.66666666666666666667"},
		{"123456789.123", "0.0007", "176366841604.28571429"},
		{"-1", "3", "-0.33333333333333333333"},
		{"-2", "3", "-0.66666666666666666667"},
		{"0", "3", "0.00000000000000000000"},
		{"1", "10000", "0.000100000000000000000000"},
		{"1", "9999", "0.00010001000100010001"},
		{"12345678", "0.001", "12345678000.00000000"},
		{"99999", "1", "99999.000000000000"},
		{"1.000000000000000000001", "1", "1.000000000000000000001"},
	}
	for _, c := range cases {
		a, _ := parseNumeric(c.a)
		b, _ := parseNumeric(c.b)
		got, err := numArith('/', a, b)
		if err != nil || got.String() != c.want {
			t.Errorf("%s / %s = %s, %v; want %s", c.a, c.b, got, err, c.want)
		}
	}
}

func TestLike(t *testing.T) {
	cases := []struct {
		pat, esc string
		ilike    bool
		s        string
		want     bool
	}{
		{"a%", `\`, false, "abc", true},
		{"%c", `\`, false, "abc", true},
		{"a_c", `\`, false, "abc", true},
		{"a_c", `\`, false, "ac", false},
		{"a%%%c", `\`, false, "ac", true},
		{`a\%`, `\`, false, "a%", true},
		{`a\%`, `\`, false, "ab", false},
		{`a\%`, "", false, `a\b`, true},
		{"%b%b%", `\`, false, "abab", true},
		{"%b%b%", `\`, false, "ab", false},
		{"_", `\`, false, "ü", true},
		{"__", `\`, false, "ü", false},
		{"ABC", `\`, true, "abc", true},
		{"Ü", `\`, true, "ü", false},
		{"", `\`, false, "", true},
		{"%", `\`, false, "", true},
		{"a#_b", "#", false, "a_b", true},
		{"a#_b", "#", false, "axb", false},
	}
	for _, c := range cases {
		p, err := compileLike(c.pat, c.esc, c.ilike)
		if err != nil {
			t.Errorf("compileLike(%q): %v", c.pat, err)
			continue
		}
		if got := p.match(c.s); got != c.want {
			t.Errorf("%q LIKE %q (escape %q, ilike %v) = %v", c.s, c.pat, c.esc, c.ilike, got)
		}
	}
}

func TestDates(t *testing.T) {
	for _, s := range []string{"2000-01-01", "2024-02-29", "0001-01-01 BC", "4713-01-01 BC", "5874897-12-31", "1999-12-31", "0044-03-15 BC"} {
		d, err := parseDate(s)
		if err != nil {
			t.Errorf("parseDate(%q): %v", s, err)
			continue
		}
		if got := formatDate(d.V); got != s {
			t.Errorf("formatDate(parseDate(%q)) = %q", s, got)
		}
	}
	for _, s := range []string{"2000-01-01 00:00:00", "2024-02-29 23:59:59.999999", "0001-01-01 00:00:00 BC", "294276-12-31 23:59:59.999999", "4713-01-01 00:00:00 BC", "1969-12-31 23:59:59.5"} {
		ts, err := parseTimestamp(s, false, false)
		if err != nil {
			t.Errorf("parseTimestamp(%q): %v", s, err)
			continue
		}
		if got := formatTimestamp(ts.V, false); got != s {
			t.Errorf("formatTimestamp(parseTimestamp(%q)) = %q", s, got)
		}
	}
	if d, _ := parseDate("2000-01-01"); d.V != 0 {
		t.Errorf("2000-01-01 is day %d, want 0", d.V)
	}
	a, _ := parseTimestamp("2024-01-01 12:00:00+05:30", true, false)
	b, _ := parseTimestamp("2024-01-01 06:30:00+00", true, false)
	if a != b {
		t.Errorf("offsets: %v != %v", a, b)
	}
}

func TestFloatOrder(t *testing.T) {
	nan, inf := math.NaN(), math.Inf(1)
	if cmpFloat(nan, nan) != 0 || cmpFloat(nan, inf) != 1 || cmpFloat(inf, nan) != -1 || cmpFloat(math.Copysign(0, -1), 0) != 0 {
		t.Error("float order is not PostgreSQL's")
	}
}

func TestDecide(t *testing.T) {
	cases := []struct {
		oldIn, newIn bool
		want         Action
	}{{false, false, Skip}, {false, true, Insert}, {true, false, Delete}, {true, true, Update}}
	for _, c := range cases {
		if got := Decide(c.oldIn, c.newIn); got != c.want {
			t.Errorf("Decide(%v, %v) = %s, want %s", c.oldIn, c.newIn, got, c.want)
		}
	}
}

// TestChange covers the UPDATE rule and when the old row is known.
func TestChange(t *testing.T) {
	// amount is the filtered column; id the key.
	cols := []Column{{Name: "id", TypeOID: OIDInt4}, {Name: "amount", TypeOID: OIDInt4}, {Name: "note", TypeOID: OIDText}}
	f, err := Compile("amount > 100", cols)
	if err != nil {
		t.Fatal(err)
	}
	keyed := &record.Relation{Table: record.TableName{Schema: "s", Name: "t"}, Columns: []record.Column{
		{Name: "id", TypeOID: OIDInt4, Key: true}, {Name: "amount", TypeOID: OIDInt4}, {Name: "note", TypeOID: OIDText}}}
	full := &record.Relation{Table: record.TableName{Schema: "s", Name: "t"}, Columns: []record.Column{
		{Name: "id", TypeOID: OIDInt4, Key: true}, {Name: "amount", TypeOID: OIDInt4, Key: true}, {Name: "note", TypeOID: OIDText, Key: true}}}
	row := func(id, amount string) []record.Value {
		return []record.Value{{Data: []byte(id)}, {Data: []byte(amount)}, {Data: []byte("n")}}
	}
	unchangedNote := func(id, amount string) []record.Value {
		return []record.Value{{Data: []byte(id)}, {Data: []byte(amount)}, {Unchanged: true}}
	}
	cases := []struct {
		name string
		rec  record.Record
		want Action
		err  string
	}{
		{"insert in", record.Record{Op: record.Insert, Rel: keyed, New: row("1", "500")}, Insert, ""},
		{"insert out", record.Record{Op: record.Insert, Rel: keyed, New: row("1", "5")}, Skip, ""},
		{"full: in to in", record.Record{Op: record.Update, Rel: full, Old: row("1", "200"), New: row("1", "300")}, Update, ""},
		{"full: out to in", record.Record{Op: record.Update, Rel: full, Old: row("1", "5"), New: row("1", "300")}, Insert, ""},
		{"full: in to out", record.Record{Op: record.Update, Rel: full, Old: row("1", "200"), New: row("1", "3")}, Delete, ""},
		{"full: out to out", record.Record{Op: record.Update, Rel: full, Old: row("1", "2"), New: row("1", "3")}, Skip, ""},
		{"full: NULL to in", record.Record{Op: record.Update, Rel: full, Old: []record.Value{{Data: []byte("1")}, {Null: true}, {Null: true}}, New: row("1", "300")}, Insert, ""},
		{"keyed: old unknown, new in", record.Record{Op: record.Update, Rel: keyed, New: row("1", "300")}, Upsert, ""},
		{"keyed: old unknown, new out", record.Record{Op: record.Update, Rel: keyed, New: row("1", "3")}, DeleteIfPresent, ""},
		{"keyed: key-only old tuple", record.Record{Op: record.Update, Rel: keyed, Old: []record.Value{{Data: []byte("9")}, {Null: true}, {Null: true}}, New: row("1", "300")}, Upsert, ""},
		{"full delete in", record.Record{Op: record.Delete, Rel: full, Old: row("1", "200")}, Delete, ""},
		{"full delete out", record.Record{Op: record.Delete, Rel: full, Old: row("1", "2")}, Skip, ""},
		{"keyed delete", record.Record{Op: record.Delete, Rel: keyed, Old: []record.Value{{Data: []byte("1")}, {Null: true}, {Null: true}}}, DeleteIfPresent, ""},
		{"full: unchanged TOAST filled from old", record.Record{Op: record.Update, Rel: full, Old: row("1", "5"), New: unchangedNote("1", "300")}, Insert, ""},
		{"keyed: enters with unchanged TOAST", record.Record{Op: record.Update, Rel: keyed, New: unchangedNote("1", "300")}, Skip, "did not send its unchanged TOASTed values"},
		{"keyed: leaves with unchanged TOAST", record.Record{Op: record.Update, Rel: keyed, New: unchangedNote("1", "3")}, DeleteIfPresent, ""},
		{"truncate", record.Record{Op: record.Truncate, Rel: keyed}, Skip, "not a row change"},
	}
	for _, c := range cases {
		c.rec.Format = record.Text
		got, err := f.Change(&c.rec)
		switch {
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("%s: error %v, want …%s…", c.name, err, c.err)
		case c.err == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.err == "" && got != c.want:
			t.Errorf("%s: %s, want %s", c.name, got, c.want)
		}
	}

	// A filter on a TOASTable column: an unchanged value cannot be
	// evaluated and is an error, not a guess.
	g, err := Compile("note like 'x%'", cols)
	if err != nil {
		t.Fatal(err)
	}
	rec := record.Record{Op: record.Update, Rel: keyed, Format: record.Text, New: unchangedNote("1", "3")}
	if _, err := g.Change(&rec); !errors.Is(err, ErrUnchanged) {
		t.Errorf("unchanged filtered value: %v, want ErrUnchanged", err)
	}
}

// TestMatchErrors: rows that cannot be decided are errors.
func TestMatchErrors(t *testing.T) {
	f, err := Compile("i4 / i2 > 1", oracleColumns())
	if err != nil {
		t.Fatal(err)
	}
	rel := oracleRelation()
	vals := make([]record.Value, len(rel.Columns))
	for i := range vals {
		vals[i] = record.Value{Null: true}
	}
	vals[2] = record.Value{Data: []byte("5")}
	vals[1] = record.Value{Data: []byte("0")}
	_, err = f.Match(rel, vals)
	var ee *EvalError
	if !errors.As(err, &ee) || ee.Pos != 4 || !strings.Contains(err.Error(), "division by zero") {
		t.Errorf("division by zero: %v", err)
	}
	vals[1] = record.Value{Data: []byte("x")}
	if _, err = f.Match(rel, vals); err == nil || !strings.Contains(err.Error(), `column "i2"`) {
		t.Errorf("bad value: %v", err)
	}
	other := &record.Relation{Table: rel.Table, Columns: rel.Columns[:2]}
	if _, err = f.Match(other, vals[:2]); err == nil || !strings.Contains(err.Error(), "no longer in") {
		t.Errorf("missing column: %v", err)
	}
	changed := &record.Relation{Table: rel.Table, Columns: append([]record.Column(nil), rel.Columns...)}
	changed.Columns[2].TypeOID = OIDText
	if _, err = f.Match(changed, vals); err == nil || !strings.Contains(err.Error(), "changed type") {
		t.Errorf("changed type: %v", err)
	}
}

func BenchmarkMatch(b *testing.B) {
	f, err := Compile(`n > 100 AND v IN ('eu','us') AND t like 'a%'`, oracleColumns())
	if err != nil {
		b.Fatal(err)
	}
	rel := oracleRelation()
	vals := make([]record.Value, len(oracleRows[0]))
	for i, s := range oracleRows[0] {
		vals[i] = record.Value{Data: []byte(s)}
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.Match(rel, vals); err != nil {
			b.Fatal(err)
		}
	}
}
