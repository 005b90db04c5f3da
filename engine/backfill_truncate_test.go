package engine_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/engine"
)

// TestBackfillTruncateInWindow: a TRUNCATE of the backfilled table
// committed between a chunk's low and high watermarks (the window whose
// changed keys the chunk leaves to the stream), with rows inserted after
// it in the same transaction, one inside the chunk's key range. The
// chunk was read before the TRUNCATE: none of its rows may reach the sink
// (the source no longer has them), and the rows inserted after the
// TRUNCATE arrive. The sink, emptied by hand before the backfill, ends
// equal to the source.
func TestBackfillTruncateInWindow(t *testing.T) {
	s := newStreamEnv(t, "bf_trunc")
	s.srcExec(`CREATE SCHEMA app;
CREATE TABLE app.t (id integer PRIMARY KEY, v text);
INSERT INTO app.t SELECT g, 'v' || g FROM generate_series(1, 25) g;
CREATE TABLE app.marker (id integer PRIMARY KEY);`)
	s.run(s.cfg)
	cfg := s.cfg
	cfg.Failpoints = streamFailpoints(t, "backfill.read=sleep:3s")
	bg := s.streamInBackground(cfg)
	sink := oracleConn(t, s.dstDSN)
	defer sink.Close(context.Background())
	if _, err := sink.Exec(t.Context(), `DELETE FROM app.t`); err != nil {
		t.Fatal(err)
	}
	type outcome struct {
		res *engine.BackfillResult
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
		defer cancel()
		res, err := engine.Backfill(ctx, cfg, engine.BackfillOptions{Table: tn("app", "t"), ChunkRows: 10, Poll: 50 * time.Millisecond})
		done <- outcome{res, err}
	}()
	// The first chunk's low mark: the worker has read (or is reading) the
	// chunk and sleeps before its high mark.
	var low string
	deadline := time.Now().Add(time.Minute)
	for low == "" {
		m, err := tryQuery[string](t.Context(), s.srcDSN, `SELECT COALESCE((SELECT mark FROM sluice.watermark WHERE pipeline = $1), '')`, cfg.Name)
		if err == nil && strings.HasSuffix(m, "/low") {
			low = m
		}
		if time.Now().After(deadline) {
			t.Fatal("no backfill low watermark at the source within a minute")
		}
		time.Sleep(10 * time.Millisecond)
	}
	s.srcExec(`BEGIN; TRUNCATE app.t; INSERT INTO app.t VALUES (5, 'after truncate'), (100, 'after truncate'); COMMIT`)
	if m := queryText(t, s.srcDSN, `SELECT mark FROM sluice.watermark WHERE pipeline = $1`, cfg.Name); m != low {
		t.Fatalf("the TRUNCATE committed after the chunk's window closed (mark %s, want still %s): the test did not test the window", m, low)
	}
	o := <-done
	if o.err != nil {
		t.Fatalf("engine.Backfill: %v", o.err)
	}
	t.Logf("backfill: %+v", *o.res)
	s.stopAtMarker(bg)
	if n := queryInt(t, s.dstDSN, `SELECT count(*) FROM app.t WHERE v <> 'after truncate'`); n != 0 {
		t.Errorf("the sink has %d rows the TRUNCATE removed at the source (brought back by the backfill's chunk)", n)
	}
	assertSameData(t, s.srcDSN, s.dstDSN, []string{"app.t"})
}
