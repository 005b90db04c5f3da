package main

// The least privileges the README documents, proved end to end: no
// superuser on either side.

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/plugins/postgres/pgtest"
)

// TestLeastPrivileges runs a full copy and incremental sync with roles
// that are not superusers. Source: LOGIN REPLICATION, CONNECT and CREATE
// on the database, USAGE on the schema, membership in the tables' owner
// (SELECT alone is enough without incremental sync). Sink: owner of the
// sink database, and SET ON PARAMETER session_replication_role (PostgreSQL
// 15+), so that the sink's triggers and foreign keys do not fire for
// applied rows. check passes, the copy and the stream reach the sink, drop
// removes everything; and without the REPLICATION attribute check fails
// saying what to grant.
func TestLeastPrivileges(t *testing.T) {
	ctx := testCtx(t)
	src, snk := pgtest.Source(t), pgtest.Sink(t)
	srcDSN, dstDSN := pgtest.NewDB(t, src), pgtest.NewDB(t, snk)
	dropSlotsAtCleanup(t, srcDSN)
	srcDB, dstDB := dbOf(t, srcDSN), dbOf(t, dstDSN)
	suffix := fmt.Sprintf("%d", time.Now().UnixNano()%1_000_000)
	owner, reader, writer := "app_owner_"+suffix, "sluice_src_"+suffix, "sluice_dst_"+suffix
	for _, sql := range []string{
		`CREATE ROLE ` + owner + ` NOLOGIN`,
		`CREATE ROLE ` + reader + ` LOGIN REPLICATION IN ROLE ` + owner,
		`GRANT CONNECT, CREATE ON DATABASE ` + srcDB + ` TO ` + reader,
		`ALTER SCHEMA public OWNER TO ` + owner,
	} {
		if err := src.Exec(ctx, srcDB, sql); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		for _, sql := range []string{`DROP OWNED BY ` + reader + `, ` + owner + ` CASCADE`, `DROP ROLE ` + reader, `DROP ROLE ` + owner} {
			_ = src.Exec(ctx, srcDB, sql)
		}
	})
	if err := src.Exec(ctx, srcDB, `SET ROLE `+owner+`;
CREATE TABLE public.orders (id bigserial PRIMARY KEY, item text NOT NULL, qty int);
CREATE TABLE public.events (at timestamptz, what text);
INSERT INTO public.orders (item, qty) SELECT 'i' || g, g FROM generate_series(1, 3000) g;
INSERT INTO public.events SELECT now(), 'e' || g FROM generate_series(1, 500) g;`); err != nil {
		t.Fatal(err)
	}
	for _, sql := range []string{
		`CREATE ROLE ` + writer + ` LOGIN`,
		`ALTER DATABASE ` + dstDB + ` OWNER TO ` + writer,
		`GRANT SET ON PARAMETER session_replication_role TO ` + writer,
	} {
		if err := snk.Exec(ctx, dstDB, sql); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		_ = snk.Exec(ctx, "postgres", `DROP DATABASE IF EXISTS `+dstDB+` WITH (FORCE)`)
		_ = snk.Exec(ctx, "postgres", `REVOKE SET ON PARAMETER session_replication_role FROM `+writer)
		_ = snk.Exec(ctx, "postgres", `DROP ROLE IF EXISTS `+writer)
	})
	env := dsnEnv(src.DSNAs(srcDB, reader, ""), snk.DSNAs(dstDB, writer, ""))
	dir := t.TempDir()
	file := writePipeline(t, dir, "least.yaml", streamPipeline("least", "{parallel: 2}"))

	r := sluice(t, dir, env, "check", file)
	if r.code != 0 {
		t.Fatalf("sluice check with least-privilege roles: want exit 0:\n%s", r)
	}
	for _, want := range []string{"owns them and can create the publication", "has the REPLICATION attribute; a replication connection works"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("check lacks %q:\n%s", want, r.stdout)
		}
	}
	runCaughtUp(t, dir, env, file, 2*time.Minute)
	if err := src.Exec(ctx, srcDB, `UPDATE public.orders SET qty = qty + 1 WHERE id % 5 = 0;
		DELETE FROM public.events WHERE what LIKE 'e1%'; INSERT INTO public.orders (item, qty) VALUES ('new', 1)`); err != nil {
		t.Fatal(err)
	}
	r = startSluice(t, dir, env, "run", "--until-caught-up", file).wait(2 * time.Minute)
	if r.code != 0 {
		t.Fatalf("sluice run (streaming) with least-privilege roles:\n%s", r)
	}
	if strings.Contains(r.stderr, "cannot set session_replication_role") {
		t.Errorf("the sink role could not set session_replication_role:\n%s", r.stderr)
	}
	assertSameData(t, ctx, srcDSN, dstDSN, "public.orders", "public.events")
	if r := sluice(t, dir, env, "drop", file); r.code != 0 {
		t.Errorf("sluice drop as the least-privilege roles:\n%s", r)
	}
	if n := queryInt(t, ctx, srcDSN, `SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'sluice_least'`); n != 0 {
		t.Errorf("after drop: the slot is left")
	}

	// Without REPLICATION: check fails and says what to grant.
	if err := src.Exec(ctx, srcDB, `ALTER ROLE `+reader+` NOREPLICATION`); err != nil {
		t.Fatal(err)
	}
	r = sluice(t, dir, env, "check", file)
	if r.code == 0 || !strings.Contains(r.stdout, `ALTER ROLE "`+reader+`" REPLICATION`) {
		t.Errorf("check without REPLICATION: want a failure naming ALTER ROLE … REPLICATION:\n%s", r)
	}
}
