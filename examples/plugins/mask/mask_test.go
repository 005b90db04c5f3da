package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/engine/record"
	"github.com/sluicehq/sluice/plugins/postgres"
	"github.com/sluicehq/sluice/plugins/postgres/pgtest"
	"github.com/sluicehq/sluice/transforms"
	"github.com/sluicehq/sluice/transforms/plugin"
)

// maskBin is this plugin, built by TestMain with `go build`.
var maskBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "sluice-mask-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	maskBin = filepath.Join(dir, "mask")
	gobin, err := exec.LookPath("go")
	if err == nil {
		var out []byte
		out, err = exec.Command(gobin, "build", "-o", maskBin, ".").CombinedOutput()
		if err != nil {
			err = fmt.Errorf("%v\n%s", err, out)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "go build the mask plugin:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := pgtest.Main(m)
	os.RemoveAll(dir)
	os.Exit(code)
}

func TestMaskValues(t *testing.T) {
	auto := how{emails: true, cards: true}
	named := how{emails: true, cards: true, anyDigits: true}
	for _, c := range []struct {
		in, want string
		h        how
	}{
		{"john@example.com", "j***@example.com", auto},
		{"Mail a@b.io or john.doe+x@mail.example.org!", "Mail *@b.io or j*********@mail.example.org!", auto},
		{"not @ an address, nor x@localhost", "not @ an address, nor x@localhost", auto},
		{"4111 1111 1111 1111", "**** **** **** 1111", auto},
		{"paid 5500-0000-0000-0004.", "paid ****-****-****-0004.", auto},
		{"4111111111111111", "************1111", auto},
		{"4111111111111112", "4111111111111112", auto},                // fails Luhn
		{"4111111111111112", "************1112", named},               // a named column: any 13-19 digits
		{"id 12345678901234567890", "id 12345678901234567890", named}, // 20 digits
		{"x4111111111111111", "x4111111111111111", auto},              // part of a word
		{"call +31 20 555 0001 on 2024-01-15", "call +31 20 555 0001 on 2024-01-15", auto},
		{"", "", auto},
	} {
		if got := string(maskValue([]byte(c.in), 0, c.h)); got != c.want {
			t.Errorf("mask %q: got %q, want %q", c.in, got, c.want)
		}
	}
	// jsonb in binary: the version byte stays.
	orig := "\x01" + `{"mail": "ann@example.com", "n": 4111111111111111}`
	in := []byte(orig)
	got := maskValue(in, 1, how{emails: true})
	if want := "\x01" + `{"mail": "a**@example.com", "n": 4111111111111111}`; string(got) != want {
		t.Errorf("jsonb: got %q", got)
	}
	if string(in) != orig {
		t.Error("maskValue changed its input")
	}
}

var customers = &record.Relation{ID: 1, Table: record.TableName{Schema: "public", Name: "customers"}, Columns: []record.Column{
	{Name: "id", TypeOID: 23, TypeName: "integer", Key: true},
	{Name: "email", TypeOID: oidText, TypeName: "text"},
	{Name: "card", TypeOID: oidVarchar, TypeName: "character varying(25)"},
	{Name: "doc", TypeOID: oidJSONB, TypeName: "jsonb"},
	{Name: "amount", TypeOID: 1700, TypeName: "numeric"},
}}

func row(format record.Format, id, email, card, doc string) record.Record {
	d := []byte(doc)
	if format == record.Binary {
		d = append([]byte{1}, d...)
	}
	return record.Record{Op: record.Insert, Rel: customers, Format: format, New: []record.Value{
		{Data: []byte(id)}, {Data: []byte(email)}, {Data: []byte(card)}, {Data: d}, {Data: []byte("4111111111111111")},
	}}
}

func openMask(t *testing.T, env ...string) *plugin.Transform {
	t.Helper()
	data, err := os.ReadFile(maskBin)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	tr, err := plugin.Open(context.Background(), plugin.Config{
		Path: maskBin, SHA256: hex.EncodeToString(sum[:]), Env: env,
		Log: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr
}

func TestMaskPlugin(t *testing.T) {
	tr := openMask(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	in := &record.Batch{End: 100, Records: []record.Record{
		row(record.Text, "1", "john@example.com", "4111 1111 1111 1111", `{"contact": "ann@example.com"}`),
		row(record.Binary, "\x00\x00\x00\x02", "mary@example.org", "5500-0000-0000-0004", `{"contact": "bob@example.com"}`),
		{Op: record.Delete, Rel: customers, Format: record.Text, Old: []record.Value{
			{Data: []byte("3")}, {Data: []byte("zoe@example.net")}, {Null: true}, {Null: true}, {Null: true}}},
	}}
	out, err := tr.Process(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	if out.Len() != 3 || out.End != 100 {
		t.Fatalf("got %d records ending at %s", out.Len(), out.End)
	}
	want := [][]string{
		{"1", "j***@example.com", "**** **** **** 1111", `{"contact": "a**@example.com"}`, "4111111111111111"},
		{"\x00\x00\x00\x02", "m***@example.org", "****-****-****-0004", "\x01" + `{"contact": "b**@example.com"}`, "4111111111111111"},
	}
	for i, w := range want {
		for j, v := range out.Records[i].New {
			if string(v.Data) != w[j] {
				t.Errorf("record %d column %s: got %q, want %q", i, customers.Columns[j].Name, v.Data, w[j])
			}
		}
		if out.Records[i].Rel != customers {
			t.Errorf("record %d: relation pointer not kept", i)
		}
	}
	if old := out.Records[2].Old; string(old[1].Data) != "z**@example.net" || !old[2].Null {
		t.Errorf("delete's old key: %+v", old)
	}

	// Named columns: only those, with any 13-19 digits a card.
	named := openMask(t, "MASK_COLUMNS=customers.card, amount")
	out, err = named.Process(ctx, &record.Batch{Records: []record.Record{
		row(record.Text, "1", "john@example.com", "4111111111111112", `{}`),
	}})
	if err != nil {
		t.Fatal(err)
	}
	got := out.Records[0].New
	if string(got[1].Data) != "john@example.com" || string(got[2].Data) != "************1112" || string(got[4].Data) != "************1111" {
		t.Errorf("named columns: %q %q %q", got[1].Data, got[2].Data, got[4].Data)
	}
}

func TestMaskWrongSHA256Refused(t *testing.T) {
	data, err := os.ReadFile(maskBin)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(append(data, 0))
	wrong := hex.EncodeToString(sum[:])
	_, err = plugin.Open(context.Background(), plugin.Config{Path: maskBin, SHA256: wrong})
	var cerr *plugin.ChecksumError
	if !errors.As(err, &cerr) || !transforms.IsPermanent(err) {
		t.Fatalf("got %T %v, want a permanent *plugin.ChecksumError", err, err)
	}
	if !strings.Contains(err.Error(), wrong) || !strings.Contains(err.Error(), maskBin) || cerr.Actual == "" {
		t.Errorf("error does not name the path and both digests: %v", err)
	}
}

// syntheticBatch is n insert records of 8 text columns, some of them with
// addresses and card numbers.
func syntheticBatch(n int) *record.Batch {
	rel := &record.Relation{ID: 2, Table: record.TableName{Schema: "public", Name: "wide"}}
	for i := range 8 {
		rel.Columns = append(rel.Columns, record.Column{Name: fmt.Sprintf("c%d", i), TypeOID: oidText, TypeName: "text"})
	}
	b := &record.Batch{}
	for i := range n {
		vals := make([]record.Value, 8)
		for j := range vals {
			switch j {
			case 1:
				vals[j].Data = fmt.Appendf(nil, "user%d@example.com", i)
			case 2:
				vals[j].Data = []byte("4111 1111 1111 1111")
			default:
				vals[j].Data = fmt.Appendf(nil, "some text value %d in column %d", i, j)
			}
		}
		b.Records = append(b.Records, record.Record{Op: record.Insert, Rel: rel, Format: record.Text, New: vals})
		b.Bytes += int64(len(vals[0].Data) * 8)
	}
	return b
}

// TestOverhead measures rows/s of batches of 1000 records (8 text columns)
// through the mask plugin, through the same masking in process, and
// through an in-process identity transform.
func TestOverhead(t *testing.T) {
	if testing.Short() {
		t.Skip("measurement")
	}
	ctx := context.Background()
	plug := openMask(t)
	const batches, size = 100, 1000
	src := syntheticBatch(size)
	measure := func(tr transforms.Transform, fresh bool) float64 {
		start := time.Now()
		for range batches {
			b := src
			if fresh { // in-process masking changes the batch: give it its own
				b = &record.Batch{Records: append([]record.Record(nil), src.Records...)}
				for i := range b.Records {
					b.Records[i].New = append([]record.Value(nil), b.Records[i].New...)
				}
			}
			out, err := tr.Process(ctx, b)
			if err != nil {
				t.Fatal(err)
			}
			if out.Len() != size {
				t.Fatalf("%d records out", out.Len())
			}
		}
		return float64(batches*size) / time.Since(start).Seconds()
	}
	identity := transforms.Func(func(_ context.Context, b *record.Batch) (*record.Batch, error) { return b, nil })
	measure(plug, false) // warm up
	idRate := measure(identity, false)
	inRate := measure(transforms.Func(newMasker("").Process), true)
	plugRate := measure(plug, false)
	t.Logf("batches of %d records × 8 text columns: identity in process %.3g rows/s; masking in process %.0f rows/s (%.0f µs a batch); the mask plugin %.0f rows/s (%.0f µs a batch)",
		size, idRate, inRate, 1e6*size/inRate, plugRate, 1e6*size/plugRate)
}

// TestMaskInPipeline runs the plugin between a real source and sink: rows
// read from PostgreSQL by the full copy's reader go through the plugin into
// the sink's COPY, and arrive masked. The same rows through an in-process
// identity transform give the rate without the plugin.
func TestMaskInPipeline(t *testing.T) {
	if testing.Short() {
		t.Skip("needs PostgreSQL")
	}
	src, dst := pgtest.Source(t), pgtest.Sink(t)
	srcDSN, dstDSN := pgtest.NewDB(t, src), pgtest.NewDB(t, dst)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const rows = 100000
	ddl := func(name string) string {
		return `CREATE TABLE public.` + name + ` (id int PRIMARY KEY, name text, email text, card varchar(25), note text,
			city text, country char(2), phone text, doc jsonb);`
	}
	sconn, err := postgres.Connect(ctx, srcDSN, "source")
	if err != nil {
		t.Fatal(err)
	}
	defer sconn.Close(ctx)
	dconn, err := postgres.Connect(ctx, dstDSN, "sink")
	if err != nil {
		t.Fatal(err)
	}
	defer dconn.Close(ctx)
	if _, err := sconn.PgConn().Exec(ctx, ddl("customers")+fmt.Sprintf(`
		INSERT INTO public.customers SELECT g, 'name '||g, 'user'||g||'@example.com', '4111 1111 1111 1111',
			'order '||g||' paid with 5500-0000-0000-0004 by buyer'||g||'@shop.example', 'city '||g, 'NL',
			'+31 20 555 '||lpad(g::text, 4, '0'), jsonb_build_object('contact', 'c'||g||'@mail.example', 'n', g)
		FROM generate_series(1, %d) g;
		ANALYZE public.customers;`, rows)).ReadAll(); err != nil {
		t.Fatal(err)
	}
	if _, err := dconn.PgConn().Exec(ctx, ddl("customers")+ddl("customers_plain")+ddl("customers_local")).ReadAll(); err != nil {
		t.Fatal(err)
	}
	tables, err := postgres.Discover(ctx, sconn, []postgres.Selection{{Table: record.TableName{Schema: "public", Name: "customers"}}})
	if err != nil {
		t.Fatal(err)
	}
	table := tables[0]
	plan, err := postgres.PlanChunks(ctx, sconn, table, rows*10)
	if err != nil {
		t.Fatal(err)
	}
	if err := postgres.EnsureSinkState(ctx, dconn); err != nil {
		t.Fatal(err)
	}

	// copyThrough is the copy path with a transform stage: reader →
	// Process → the sink's COPY, one chunk, in one sink transaction.
	copyThrough := func(tr transforms.Transform, target string) float64 {
		rd, err := postgres.OpenReader(ctx, srcDSN, "")
		if err != nil {
			t.Fatal(err)
		}
		defer rd.Close(ctx)
		wr, err := postgres.OpenWriter(ctx, dstDSN, "masktest", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer wr.Close(ctx)
		format := record.Text
		if table.Binary {
			format = record.Binary
		}
		start := time.Now()
		// Three stages, each its own goroutine, so the plugin's round trip
		// overlaps reading and writing.
		read, batches := make(chan *record.Batch, 2), make(chan *record.Batch, 2)
		readErr, errc := make(chan error, 1), make(chan error, 1)
		go func() {
			readErr <- rd.ReadChunk(ctx, table, plan, plan.Chunks[0], postgres.BatchLimits{Rows: 1000, Bytes: 4 << 20}, func(b *record.Batch) error {
				read <- b
				return nil
			})
			close(read)
		}()
		go func() {
			defer close(batches)
			for b := range read {
				out, err := tr.Process(ctx, b)
				if err != nil {
					errc <- err
					for range read {
					}
					return
				}
				batches <- out
			}
			errc <- <-readErr
		}()
		n, _, err := wr.CopyChunk(ctx, record.TableName{Schema: "public", Name: target}, table.Relation(), format, target, 0, batches, errc)
		if err != nil {
			t.Fatal(err)
		}
		if n != rows {
			t.Fatalf("%s: %d rows copied, want %d", target, n, rows)
		}
		return rows / time.Since(start).Seconds()
	}
	plainRate := copyThrough(transforms.Func(func(_ context.Context, b *record.Batch) (*record.Batch, error) { return b, nil }), "customers_plain")
	localRate := copyThrough(transforms.Func(newMasker("").Process), "customers_local")
	maskRate := copyThrough(openMask(t), "customers")
	t.Logf("pipeline PostgreSQL → reader → transform → sink COPY, %d rows of 8 text columns, %s format, batches of 1000: identity in process %.0f rows/s; masking in process %.0f rows/s; the mask plugin %.0f rows/s (%.0f%% of the identity's rate)",
		rows, map[bool]string{true: "binary", false: "text"}[table.Binary], plainRate, localRate, maskRate, 100*maskRate/plainRate)

	// The identity copy is exact; the masked one differs only where it
	// should.
	_, want, err := pgtest.ChecksumDSN(ctx, srcDSN, "public.customers")
	if err != nil {
		t.Fatal(err)
	}
	if _, got, err := pgtest.ChecksumDSN(ctx, dstDSN, "public.customers_plain"); err != nil || got != want {
		t.Fatalf("identity copy differs from the source (%v)", err)
	}
	// The plugin and the same function in process agree.
	_, viaPlugin, err := pgtest.ChecksumDSN(ctx, dstDSN, "public.customers")
	if err != nil {
		t.Fatal(err)
	}
	if _, local, err := pgtest.ChecksumDSN(ctx, dstDSN, "public.customers_local"); err != nil || local != viaPlugin {
		t.Errorf("masked through the plugin and in process differ (%v)", err)
	}
	var bad int
	err = dconn.QueryRow(ctx, `SELECT count(*) FROM public.customers m JOIN public.customers_plain p USING (id)
		WHERE NOT (m.email = left(p.email, 1) || repeat('*', length(split_part(p.email, '@', 1)) - 1) || '@example.com'
			AND m.card = '**** **** **** 1111'
			AND m.note = 'order ' || m.id || ' paid with ****-****-****-0004 by b' || repeat('*', length('buyer' || m.id) - 1) || '@shop.example'
			AND m.doc->>'contact' = 'c' || repeat('*', length('c' || m.id) - 1) || '@mail.example'
			AND (m.doc->>'n')::int = m.id
			AND (m.name, m.city, m.country, m.phone) = (p.name, p.city, p.country, p.phone))`).Scan(&bad)
	if err != nil {
		t.Fatal(err)
	}
	var sample string
	if err := dconn.QueryRow(ctx, `SELECT row_to_json(c)::text FROM public.customers c WHERE id = 42`).Scan(&sample); err != nil {
		t.Fatal(err)
	}
	if bad != 0 {
		t.Errorf("%d of %d rows not masked as expected; e.g. %s", bad, rows, sample)
	}
	t.Logf("row 42 at the sink: %s", sample)
}
