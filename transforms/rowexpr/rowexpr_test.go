package rowexpr

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/engine/record"
)

var table = Table{
	Name: record.TableName{Schema: "Sales ü", Name: `Weird "Name"`},
	Columns: []Column{
		{Name: "id", TypeOID: oidInt4, TypeName: "integer", Key: true},
		{Name: "e mail", TypeOID: 25, TypeName: "text"},
		{Name: "amount", TypeOID: oidNumeric, TypeName: "numeric"},
		{Name: "qty", TypeOID: oidInt8, TypeName: "bigint"},
		{Name: "ok", TypeOID: oidBool, TypeName: "boolean"},
	},
}

func rel() *record.Relation {
	r := &record.Relation{ID: 1, Table: table.Name}
	for _, c := range table.Columns {
		r.Columns = append(r.Columns, record.Column{Name: c.Name, TypeOID: c.TypeOID, Key: c.Key})
	}
	return r
}

func vals(s ...string) []record.Value {
	out := make([]record.Value, len(s))
	for i, v := range s {
		switch v {
		case "\\N":
			out[i] = record.Value{Null: true}
		case "\\U":
			out[i] = record.Value{Unchanged: true}
		default:
			out[i] = record.Value{Data: []byte(v)}
		}
	}
	return out
}

func TestCompileErrors(t *testing.T) {
	cases := []struct{ src, want string }{
		{`after.emial == ""`, "position 7: unknown field emial"},
		{`after.qty + 'x' > 1`, "position 11: invalid operation: + (mismatched types int and string)"},
		{`after.qty >`, "position 11: unexpected token EOF"},
		{`after.qty`, "a filter must be a boolean expression, but this one gives int"},
		{`nosuch == 1`, "unknown name nosuch"},
		{`  `, "the expression is empty"},
	}
	for _, c := range cases {
		_, err := CompileFilter(c.src, table)
		var e *Error
		if err == nil || !errors.As(err, &e) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("CompileFilter(%q) = %v, want an *Error containing %q", c.src, err, c.want)
		}
	}
	if err := Parse(`after.qty > (1`); err == nil || !strings.Contains(err.Error(), "position") {
		t.Errorf("Parse of a syntax error = %v, want a position", err)
	}
	if err := Parse(`after.nosuch > 1`); err != nil {
		t.Errorf("Parse checks syntax only, got %v", err)
	}
	setCases := []struct {
		set  map[string]string
		want string
	}{
		{map[string]string{"id": "1"}, `"id" is a key column`},
		{map[string]string{"nosuch": "1"}, `has no column "nosuch"`},
		{map[string]string{"qty": "'x'"}, `the expression gives string but column "qty" is bigint`},
		{map[string]string{"qty": "after.qty / 2"}, "convert with int(...)"},
		{map[string]string{"e mail": "after.qty"}, "convert with string(...)"},
		{map[string]string{"ok": "after.emial"}, "unknown field emial"},
	}
	for _, c := range setCases {
		if _, err := CompileSet(c.set, table); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("CompileSet(%v) = %v, want %q", c.set, err, c.want)
		}
	}
}

func TestFilterAndSet(t *testing.T) {
	f, err := CompileFilter(`op != 'delete' && after['e mail'] != nil && after.amount > 10.5 && table == 'Weird "Name"' && schema == 'Sales ü'`, table)
	if err != nil {
		t.Fatal(err)
	}
	if !f.ReadsAfter() {
		t.Error("ReadsAfter = false")
	}
	if cols, all := f.Columns(); all || strings.Join(cols, ",") != "amount,e mail" {
		t.Errorf("Columns = %v, %v", cols, all)
	}
	in := &record.Record{Op: record.Insert, Rel: rel(), New: vals("1", "a@b.c", "10.75", "3", "t")}
	if keep, err := f.Keep(in, time.Time{}); err != nil || !keep {
		t.Errorf("Keep = %v, %v; want true", keep, err)
	}
	in.New = vals("1", "\\N", "10.75", "3", "t")
	if keep, err := f.Keep(in, time.Time{}); err != nil || keep {
		t.Errorf("Keep with a NULL e-mail = %v, %v; want false", keep, err)
	}

	s, err := CompileSet(map[string]string{
		"e mail": `after['e mail'] == nil ? nil : 'x@' + split(after['e mail'], '@')[1]`,
		"qty":    `after.qty * 2`,
		"amount": `after.amount / 4`,
		"ok":     `!after.ok`,
	}, table)
	if err != nil {
		t.Fatal(err)
	}
	rec := &record.Record{Op: record.Update, Rel: rel(), New: vals("1", "jo@example.com", "10", "21", "f")}
	orig := rec.New
	if err := s.Apply(rec, false, time.Time{}); err != nil {
		t.Fatal(err)
	}
	got := []string{}
	for _, v := range rec.New {
		got = append(got, string(v.Data))
	}
	if strings.Join(got, "|") != "1|x@example.com|2.5000000000000000|42|t" {
		t.Errorf("set gave %q", got)
	}
	if string(orig[1].Data) != "jo@example.com" {
		t.Error("set changed the values it was given in place")
	}

	// Runtime errors carry the position; a division by zero is one.
	div, err := CompileSet(map[string]string{"qty": "int(100 / after.qty)"}, table)
	if err != nil {
		t.Fatal(err)
	}
	rec = &record.Record{Op: record.Insert, Rel: rel(), New: vals("7", "\\N", "1", "0", "t")}
	err = div.Apply(rec, false, time.Time{})
	var ee *EvalError
	if !errors.As(err, &ee) || ee.Pos != 9 || !strings.Contains(err.Error(), "division by zero") {
		t.Errorf("division by zero: %v, want an *EvalError at position 9", err)
	}
	// An operation on a NULL is an error with its position, not false.
	cmp, err := CompileFilter(`after.qty > 1`, table)
	if err != nil {
		t.Fatal(err)
	}
	rec = &record.Record{Op: record.Insert, Rel: rel(), New: vals("7", "\\N", "1", "\\N", "t")}
	if _, err := cmp.Keep(rec, time.Time{}); !errors.As(err, &ee) || ee.Pos != 11 || !strings.Contains(err.Error(), "invalid operation: <nil> > int") {
		t.Errorf("comparing a NULL: %v, want an *EvalError at position 11", err)
	}
	// A filter that gives nil (a NULL boolean column) is an error too.
	nb, err := CompileFilter(`after.ok`, table)
	if err != nil {
		t.Fatal(err)
	}
	rec = &record.Record{Op: record.Insert, Rel: rel(), New: vals("7", "\\N", "1", "1", "\\N")}
	if _, err := nb.Keep(rec, time.Time{}); err == nil || !strings.Contains(err.Error(), "the filter gave nil, not true or false") {
		t.Errorf("a NULL boolean filter: %v", err)
	}
	// Reading an unchanged TOASTed value that the source did not send is
	// an error, never a guess.
	rec = &record.Record{Op: record.Update, Rel: rel(), New: vals("7", "\\U", "1", "1", "t")}
	if err := s.Apply(rec, false, time.Time{}); err == nil || !strings.Contains(err.Error(), "REPLICA IDENTITY FULL") {
		t.Errorf("unchanged value read: %v", err)
	}
	// commit_time and lsn are there for streamed changes.
	ct, err := CompileFilter(`commit_time != nil && commit_time.Year() == 2025 && lsn == '0/10'`, table)
	if err != nil {
		t.Fatal(err)
	}
	rec = &record.Record{Op: record.Insert, Rel: rel(), New: vals("7", "\\N", "1", "1", "t"), Position: 16}
	if keep, err := ct.Keep(rec, time.Date(2025, 1, 2, 0, 0, 0, 0, time.UTC)); err != nil || !keep {
		t.Errorf("commit_time filter = %v, %v", keep, err)
	}
}

func BenchmarkSet(b *testing.B) {
	s, err := CompileSet(map[string]string{"e mail": `'x@' + split(after['e mail'], '@')[1]`}, table)
	if err != nil {
		b.Fatal(err)
	}
	row := vals("1", "jo@example.com", "10", "21", "f")
	r := rel()
	b.ReportAllocs()
	for b.Loop() {
		rec := &record.Record{Op: record.Insert, Rel: r, New: row}
		if err := s.Apply(rec, false, time.Time{}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkFilter(b *testing.B) {
	f, err := CompileFilter(`after.qty >= 0 && after.amount > 1.5`, table)
	if err != nil {
		b.Fatal(err)
	}
	rec := &record.Record{Op: record.Insert, Rel: rel(), New: vals("1", "jo@example.com", "10", "21", "f")}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.Keep(rec, time.Time{}); err != nil {
			b.Fatal(err)
		}
	}
}

// TestConcurrentUse: a Filter and a Set are used by several copy workers
// at once; each record gets its own answer.
func TestConcurrentUse(t *testing.T) {
	s, err := CompileSet(map[string]string{"qty": `after.qty * 2`}, table)
	if err != nil {
		t.Fatal(err)
	}
	f, err := CompileFilter(`after.qty % 2 == 0`, table)
	if err != nil {
		t.Fatal(err)
	}
	r := rel()
	done := make(chan error, 4)
	for w := range 4 {
		go func() {
			for i := range 2000 {
				n := w*10000 + i
				rec := &record.Record{Op: record.Insert, Rel: r, New: vals("1", "\\N", "1", strconv.Itoa(n), "t")}
				keep, err := f.Keep(rec, time.Time{})
				if err == nil && keep != (n%2 == 0) {
					err = fmt.Errorf("filter on %d gave %v", n, keep)
				}
				if err == nil {
					err = s.Apply(rec, false, time.Time{})
				}
				if err == nil && string(rec.New[3].Data) != strconv.Itoa(2*n) {
					err = fmt.Errorf("set on %d gave %s", n, rec.New[3].Data)
				}
				if err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
	}
	for range 4 {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}
