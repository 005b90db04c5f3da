package postgres

import (
	"strings"
	"testing"

	"github.com/sluicehq/sluice/engine/record"
	"github.com/sluicehq/sluice/plugins/postgres/pgtest"
)

// TestMissingKeys: of the source's keyed tables, only those whose sink
// table exists (as a plain table, under its mapped name) without a primary
// key are listed, with the sink table's size and the key under its source
// name; one query answers for every table.
func TestMissingKeys(t *testing.T) {
	ctx := t.Context()
	srcDSN, dstDSN := pgtest.NewDB(t, pgtest.Source(t)), pgtest.NewDB(t, pgtest.Sink(t))
	src, err := Connect(ctx, srcDSN, "source")
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close(ctx)
	dst, err := Connect(ctx, dstDSN, "sink")
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close(ctx)
	if _, err := src.Exec(ctx, `CREATE SCHEMA "Odd ""s""";
CREATE TABLE "Odd ""s"""."has key" (id int CONSTRAINT "has key pk" PRIMARY KEY);
CREATE TABLE "Odd ""s""".lacks (a int, b text, CONSTRAINT lacks_pk PRIMARY KEY (b, a));
CREATE TABLE "Odd ""s""".absent (id int PRIMARY KEY);
CREATE TABLE "Odd ""s""".viewed (id int PRIMARY KEY);
CREATE TABLE "Odd ""s""".nokey (id int);
CREATE TABLE "Odd ""s""".moved (id int CONSTRAINT moved_pk PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	if _, err := dst.Exec(ctx, `CREATE SCHEMA "Odd ""s"""; CREATE SCHEMA elsewhere;
CREATE TABLE "Odd ""s"""."has key" (id int CONSTRAINT "has key pk" PRIMARY KEY);
CREATE TABLE "Odd ""s""".lacks (a int NOT NULL, b text NOT NULL);
INSERT INTO "Odd ""s""".lacks SELECT g, 'x' FROM generate_series(1, 500) g;
CREATE VIEW "Odd ""s""".viewed AS SELECT 1 AS id;
CREATE TABLE "Odd ""s""".nokey (id int);
CREATE TABLE elsewhere.moved (id int NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	tables, err := Discover(ctx, src, []Selection{{Schema: `Odd "s"`}})
	if err != nil {
		t.Fatal(err)
	}
	target := func(n record.TableName) record.TableName {
		if n.Name == "moved" {
			return record.TableName{Schema: "elsewhere", Name: "moved"}
		}
		return n
	}
	builds, err := MissingKeys(ctx, src, dst, tables, target, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]KeyBuild{}
	for _, b := range builds {
		got[b.Table.String()] = b
	}
	if len(got) != 2 {
		t.Fatalf("missing keys %v, want lacks and elsewhere.moved only", builds)
	}
	lacks, ok := got[`"Odd ""s""".lacks`]
	if !ok || lacks.Name != "lacks_pk" || !strings.HasSuffix(lacks.SQL, `ADD CONSTRAINT "lacks_pk" PRIMARY KEY ("b", "a")`) || lacks.Bytes < 8192 {
		t.Errorf("lacks: %+v", lacks)
	}
	if m, ok := got["elsewhere.moved"]; !ok || !strings.HasPrefix(m.SQL, `ALTER TABLE ONLY "elsewhere"."moved" ADD CONSTRAINT "moved_pk" PRIMARY KEY ("id")`) || m.Bytes != 0 {
		t.Errorf("elsewhere.moved: %+v", m)
	}
}
