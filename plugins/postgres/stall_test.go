package postgres

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/sluicehq/sluice/plugins/postgres/pgtest"
)

// TestStallGuard: a connection whose bytes stop crossing the network
// (a proxy that drops them and keeps the socket open) while the server
// stays reachable on new connections. The guard's probe sees the session
// waiting for the client inside its transaction, terminates it (releasing
// its locks) and fails the pending query with a connection error; a
// long-running statement on a healthy connection is left alone.
func TestStallGuard(t *testing.T) {
	c := pgtest.Sink(t)
	dsn := pgtest.NewDB(t, c)
	zerolog.SetGlobalLevel(zerolog.Disabled)
	srv := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.Nop())
	px := toxiproxy.NewProxy(srv, "stall", "127.0.0.1:0", fmt.Sprintf("127.0.0.1:%d", c.Port()))
	if err := px.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(px.Stop)
	_, port, _ := net.SplitHostPort(px.Listen)
	proxied := strings.Replace(dsn, fmt.Sprintf("127.0.0.1:%d", c.Port()), "127.0.0.1:"+port, 1)

	const timeout = time.Second
	connect := func() *pgx.Conn {
		t.Helper()
		cfg, err := pgx.ParseConfig(proxied)
		if err != nil {
			t.Fatal(err)
		}
		direct, err := pgx.ParseConfig(dsn) // the probe bypasses the proxy
		if err != nil {
			t.Fatal(err)
		}
		guardWith(&cfg.Config, "sink", timeout, &direct.Config)
		conn, err := pgx.ConnectConfig(t.Context(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close(context.Background()) })
		return conn
	}

	// A statement longer than the timeout on a healthy connection.
	conn := connect()
	if _, err := conn.Exec(t.Context(), "SELECT pg_sleep(3)"); err != nil {
		t.Fatalf("a 3s statement on a healthy guarded connection failed: %v", err)
	}

	// A stall inside a transaction.
	conn = connect()
	pid := conn.PgConn().PID()
	if _, err := conn.Exec(t.Context(), "BEGIN; CREATE TABLE locked (id int)"); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{"upstream", "downstream"} {
		js := fmt.Sprintf(`{"name": "stall_%s", "type": "timeout", "stream": %q, "attributes": {"timeout": 0}}`, dir, dir)
		if _, err := px.Toxics.AddToxicJson(strings.NewReader(js)); err != nil {
			t.Fatal(err)
		}
	}
	g, ok := conn.PgConn().Conn().(*guardedConn)
	if !ok {
		t.Fatalf("the connection is a %T, not guarded", conn.PgConn().Conn())
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	start := time.Now()
	_, err := conn.Exec(ctx, "SELECT 1")
	took := time.Since(start)
	// The query fails with the guard's error, or (when pgx runs another
	// step on the connection the guard closed) with pgconn's "conn closed":
	// either way a connection error, well before the context's end.
	se := g.stalled.Load()
	if err == nil || !IsConnectionError(err) || ctx.Err() != nil || se == nil {
		t.Fatalf("query on a stalled connection: got %v after %s (guard: %v), want a connection error from the stall guard", err, took, se)
	}
	if !strings.Contains(se.Error(), "idle in transaction") || !strings.Contains(se.Error(), "terminated it") {
		t.Errorf("stall error %q does not say the session waited in its transaction and was terminated", se)
	}
	if !errors.As(err, new(*stallError)) && !errors.Is(err, pgconn.ErrConnClosed) {
		t.Errorf("query error %v: want the stall error or conn closed", err)
	}
	t.Logf("detected in %s: %v (query error: %v)", took.Round(time.Millisecond), se, err)
	probe, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer probe.Close(context.Background())
	deadline := time.Now().Add(10 * time.Second)
	for {
		var n int
		if err := probe.QueryRow(t.Context(), `SELECT count(*) FROM pg_stat_activity WHERE pid = $1`, pid).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the stalled session %d still exists", pid)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
