package postgres

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/sluicehq/sluice/engine/record"
	"github.com/sluicehq/sluice/plugins/postgres/pgtest"
)

// TestHeartbeatFlushed: the heartbeat's commit is flushed when Heartbeat
// returns, also in a session (or on a server) with synchronous_commit =
// off. A walsender sends only flushed WAL: an asynchronous heartbeat, the
// target of --until-caught-up and cutover, would wait for the WAL writer.
func TestHeartbeatFlushed(t *testing.T) {
	c := pgtest.Source(t)
	dsn := pgtest.NewDB(t, c)
	ctx := t.Context()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, `CREATE SCHEMA sluice;
CREATE TABLE sluice.heartbeat (pipeline text PRIMARY KEY, beat_at timestamptz NOT NULL);
SET synchronous_commit = off`); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		lsn, err := Heartbeat(ctx, conn, "p")
		if err != nil {
			t.Fatal(err)
		}
		var flushed string
		if err := conn.QueryRow(ctx, "SELECT pg_current_wal_flush_lsn()::text").Scan(&flushed); err != nil {
			t.Fatal(err)
		}
		f, err := record.ParseLSN(flushed)
		if err != nil {
			t.Fatal(err)
		}
		if f < lsn {
			t.Fatalf("heartbeat %d: WAL flushed to %s, the heartbeat's commit lies after %s: not flushed", i, f, lsn)
		}
		var sc string
		if err := conn.QueryRow(ctx, "SHOW synchronous_commit").Scan(&sc); err != nil {
			t.Fatal(err)
		}
		if sc != "off" {
			t.Fatalf("the session's synchronous_commit is %s after the heartbeat, want it left off", sc)
		}
	}
}
