package where

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluicehq/sluice/engine/record"
	"github.com/sluicehq/sluice/plugins/postgres/pgtest"
)

// TestUpdatesCrossTheFilter runs random INSERTs, UPDATEs (moving rows into
// and out of the filter, changing keys) and DELETEs at a real source,
// captures each change with its old and new row by a trigger, replays the
// changes through Filter.Change into a model sink, and checks that the sink
// holds exactly the rows PostgreSQL's WHERE (SQL()) selects at the source.
// It does so twice: with full old rows (REPLICA IDENTITY FULL), where every
// decision must be exact (an Insert never meets an existing row, an Update
// or Delete always finds its row), and with key-only old rows sent only
// when the key changes (REPLICA IDENTITY DEFAULT), where the old row's
// side is unknown and Upsert / DeleteIfPresent must keep the sink right.
func TestUpdatesCrossTheFilter(t *testing.T) {
	if testing.Short() {
		t.Skip("needs PostgreSQL")
	}
	c := pgtest.Source(t)
	dsn := pgtest.NewDB(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	for _, q := range []string{
		`CREATE TABLE src (id integer PRIMARY KEY, amount numeric, region varchar(10), note text)`,
		`CREATE TABLE log (seq bigserial PRIMARY KEY, op text, old text[], new text[])`,
		`CREATE FUNCTION logit() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			INSERT INTO log (op, old, new) VALUES (TG_OP,
				CASE WHEN TG_OP <> 'INSERT' THEN ARRAY[OLD.id::text, OLD.amount::text, OLD.region::text, OLD.note] END,
				CASE WHEN TG_OP <> 'DELETE' THEN ARRAY[NEW.id::text, NEW.amount::text, NEW.region::text, NEW.note] END);
			RETURN NULL;
		END $$`,
		`CREATE TRIGGER logit AFTER INSERT OR UPDATE OR DELETE ON src FOR EACH ROW EXECUTE FUNCTION logit()`,
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	// Random changes; the filter's boundary is crossed often.
	rng := rand.New(rand.NewPCG(1, 2))
	regions := []string{"'eu'", "'us'", "'apac'", "NULL", "'EU'"}
	amount := func() string {
		switch rng.IntN(6) {
		case 0:
			return "NULL"
		case 1:
			return "100"
		case 2:
			return "100.0001"
		}
		return fmt.Sprintf("%d.%02d", rng.IntN(200), rng.IntN(100))
	}
	ids := []int{}
	next := 1
	for range 600 {
		switch k := rng.IntN(10); {
		case k < 3 || len(ids) == 0:
			q := fmt.Sprintf("INSERT INTO src VALUES (%d, %s, %s, 'n%d')", next, amount(), regions[rng.IntN(len(regions))], next)
			if _, err := conn.Exec(ctx, q); err != nil {
				t.Fatal(err)
			}
			ids = append(ids, next)
			next++
		case k < 8:
			id := ids[rng.IntN(len(ids))]
			var set string
			switch rng.IntN(4) {
			case 0:
				set = "amount = " + amount()
			case 1:
				set = "region = " + regions[rng.IntN(len(regions))]
			case 2:
				set = "note = note || 'x'" // filtered columns unchanged
			default:
				set = fmt.Sprintf("id = %d, amount = %s", next, amount()) // the key changes
				ids[slices.Index(ids, id)] = next
				next++
			}
			if _, err := conn.Exec(ctx, fmt.Sprintf("UPDATE src SET %s WHERE id = %d", set, id)); err != nil {
				t.Fatal(err)
			}
		default:
			i := rng.IntN(len(ids))
			if _, err := conn.Exec(ctx, fmt.Sprintf("DELETE FROM src WHERE id = %d", ids[i])); err != nil {
				t.Fatal(err)
			}
			ids = slices.Delete(ids, i, i+1)
		}
	}

	cols := []Column{{Name: "id", TypeOID: OIDInt4}, {Name: "amount", TypeOID: OIDNumeric}, {Name: "region", TypeOID: OIDVarchar}, {Name: "note", TypeOID: OIDText}}
	f, err := Compile(`amount > 100 AND region IN ('eu','us')`, cols)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	rows, err := conn.Query(ctx, "SELECT id::text, concat_ws('|', id, amount, region, note) FROM src WHERE ("+f.SQL()+")")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id, row string
		if err := rows.Scan(&id, &row); err != nil {
			t.Fatal(err)
		}
		want[id] = row
	}
	if rows.Err() != nil {
		t.Fatal(rows.Err())
	}
	type change struct {
		op       string
		old, new []*string
	}
	var log []change
	rows, err = conn.Query(ctx, "SELECT op, old, new FROM log ORDER BY seq")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var ch change
		if err := rows.Scan(&ch.op, &ch.old, &ch.new); err != nil {
			t.Fatal(err)
		}
		log = append(log, ch)
	}
	if rows.Err() != nil {
		t.Fatal(rows.Err())
	}
	if len(want) < 10 {
		t.Fatalf("only %d rows pass the filter at the end; the test is too weak", len(want))
	}

	for _, full := range []bool{true, false} {
		name := map[bool]string{true: "replica identity full", false: "replica identity default"}[full]
		t.Run(name, func(t *testing.T) {
			rel := &record.Relation{Table: record.TableName{Schema: "public", Name: "src"}}
			for i, c := range cols {
				rel.Columns = append(rel.Columns, record.Column{Name: c.Name, TypeOID: c.TypeOID, Key: full || i == 0})
			}
			sink := map[string]string{}
			counts := map[Action]int{}
			for n, ch := range log {
				rec := record.Record{Rel: rel, Format: record.Text, New: values(ch.new)}
				switch ch.op {
				case "INSERT":
					rec.Op = record.Insert
				case "UPDATE":
					rec.Op = record.Update
					if full {
						rec.Old = values(ch.old)
					} else if *ch.old[0] != *ch.new[0] {
						rec.Old = keyOnly(values(ch.old))
					}
				case "DELETE":
					rec.Op = record.Delete
					rec.Old = values(ch.old)
					if !full {
						rec.Old = keyOnly(rec.Old)
					}
				}
				a, err := f.Change(&rec)
				if err != nil {
					t.Fatalf("change %d (%s): %v", n, ch.op, err)
				}
				counts[a]++
				if err := applyModel(sink, a, ch.old, ch.new); err != nil {
					if full {
						t.Fatalf("change %d (%s %v → %v): %s: %v", n, ch.op, show(ch.old), show(ch.new), a, err)
					}
				}
			}
			if !maps(sink, want) {
				t.Errorf("the sink is not the filtered source:\n  sink %v\n  want %v", sorted(sink), sorted(want))
			}
			if full && (counts[Insert] == 0 || counts[Delete] == 0 || counts[Update] == 0 || counts[Skip] == 0) {
				t.Errorf("weak run: actions %v", counts)
			}
			if !full && (counts[Upsert] == 0 || counts[DeleteIfPresent] == 0) {
				t.Errorf("weak run: actions %v", counts)
			}
			t.Logf("%d changes, actions %v, %d rows at the sink", len(log), counts, len(sink))
		})
	}
}

func values(row []*string) []record.Value {
	if row == nil {
		return nil
	}
	vals := make([]record.Value, len(row))
	for i, s := range row {
		if s == nil {
			vals[i] = record.Value{Null: true}
		} else {
			vals[i] = record.Value{Data: []byte(*s)}
		}
	}
	return vals
}

// keyOnly is an old tuple as pgoutput sends it under REPLICA IDENTITY
// DEFAULT: the key, NULL elsewhere.
func keyOnly(vals []record.Value) []record.Value {
	out := make([]record.Value, len(vals))
	out[0] = vals[0]
	for i := 1; i < len(out); i++ {
		out[i] = record.Value{Null: true}
	}
	return out
}

func rowText(row []*string) string {
	parts := make([]string, 0, len(row))
	for _, s := range row {
		if s != nil {
			parts = append(parts, *s)
		}
	}
	return strings.Join(parts, "|")
}

func show(row []*string) string {
	if row == nil {
		return "-"
	}
	return rowText(row)
}

// applyModel applies an action to a model sink keyed by id, strictly: an
// insert must not find the row, an update or delete must.
func applyModel(sink map[string]string, a Action, old, new []*string) error {
	oldKey := ""
	if old != nil {
		oldKey = *old[0]
	}
	switch a {
	case Skip:
	case Insert:
		if _, ok := sink[*new[0]]; ok {
			return fmt.Errorf("insert: row %s exists", *new[0])
		}
		sink[*new[0]] = rowText(new)
	case Update:
		if _, ok := sink[oldKey]; !ok {
			return fmt.Errorf("update: row %s missing", oldKey)
		}
		delete(sink, oldKey)
		sink[*new[0]] = rowText(new)
	case Delete:
		if _, ok := sink[oldKey]; !ok {
			return fmt.Errorf("delete: row %s missing", oldKey)
		}
		delete(sink, oldKey)
	case Upsert:
		if oldKey != "" {
			delete(sink, oldKey)
		}
		sink[*new[0]] = rowText(new)
	case DeleteIfPresent:
		key := oldKey
		if key == "" {
			key = *new[0]
		}
		delete(sink, key)
	}
	return nil
}

func maps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func sorted(m map[string]string) []string {
	var s []string
	for _, v := range m {
		s = append(s, v)
	}
	slices.Sort(s)
	return s
}
