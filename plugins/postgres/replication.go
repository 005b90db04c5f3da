package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sluicehq/sluice/engine/record"
)

// SlotName is the replication slot (and publication) name of a pipeline.
func SlotName(pipeline string) string { return "sluice_" + pipeline }

// HeartbeatTable is the source table sluice writes to on an interval, so
// that an idle source still produces a transaction to apply: lag stays
// measurable and the slot keeps advancing.
var HeartbeatTable = record.TableName{Schema: ProgressSchema, Name: "heartbeat"}

// CheckLogical fails unless the source can decode logically.
func CheckLogical(ctx context.Context, conn *pgx.Conn) error {
	var level string
	if err := conn.QueryRow(ctx, "SHOW wal_level").Scan(&level); err != nil {
		return fmt.Errorf("source: read wal_level: %w", err)
	}
	if level != "logical" {
		return fmt.Errorf("source: wal_level is %q but incremental sync needs \"logical\": run ALTER SYSTEM SET wal_level = logical and restart the source server", level)
	}
	return nil
}

// PrepareSource makes the source ready to stream the tables: the sluice
// schema and heartbeat table, REPLICA IDENTITY FULL on tables without a
// primary key (before they join the publication, so the application's own
// UPDATEs and DELETEs never fail), and the pipeline's publication holding
// exactly the selected tables, the heartbeat table and the backfill
// watermark table, plus what pub adds.
func PrepareSource(ctx context.Context, conn *pgx.Conn, pipeline string, tables []*Table, pub Publish) (identityChanged []record.TableName, err error) {
	if _, err := conn.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS sluice;
CREATE TABLE IF NOT EXISTS sluice.heartbeat (
	pipeline text        PRIMARY KEY,
	beat_at  timestamptz NOT NULL
)`); err != nil {
		return nil, fmt.Errorf("source: create the sluice schema and heartbeat table (the source role needs CREATE on the database): %w", err)
	}
	if err := EnsureBackfillSource(ctx, conn); err != nil {
		return nil, err
	}
	for _, t := range tables {
		if t.Partitioned || t.KeyKind == "primary" || t.ReplicaIdentity == 'f' || t.ReplicaIdentity == 'i' {
			continue
		}
		if _, err := conn.Exec(ctx, "ALTER TABLE "+t.Name.Quoted()+" REPLICA IDENTITY FULL"); err != nil {
			return identityChanged, fmt.Errorf("source: set REPLICA IDENTITY FULL on %s, which has no primary key (the source role must own the table): %w", t.Name, err)
		}
		t.ReplicaIdentity = 'f'
		identityChanged = append(identityChanged, t.Name)
	}
	names := pub.tables(tables)
	pubName := record.QuoteIdent(SlotName(pipeline))
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_publication WHERE pubname = $1)", SlotName(pipeline)).Scan(&exists); err != nil {
		return identityChanged, fmt.Errorf("source: look up publication: %w", err)
	}
	sql := "CREATE PUBLICATION " + pubName + " FOR " + pub.schemas() + "TABLE " + strings.Join(names, ", ")
	if exists {
		sql = "ALTER PUBLICATION " + pubName + " SET " + pub.schemas() + "TABLE " + strings.Join(names, ", ")
	}
	if _, err := conn.Exec(ctx, sql); err != nil {
		return identityChanged, fmt.Errorf("source: publish the selected tables (%s): %w", firstLine(sql), err)
	}
	return identityChanged, nil
}

func containsOID(tables []*Table, oid uint32) bool {
	for _, t := range tables {
		if t.OID == oid {
			return true
		}
	}
	return false
}

// SlotState is what the source says about a replication slot.
type SlotState struct {
	Exists         bool
	Plugin         string
	ConfirmedFlush record.LSN
	Active         bool
	ActivePID      int
	RetainedBytes  int64
}

// ReadSlot reads the slot's state from pg_replication_slots.
func ReadSlot(ctx context.Context, conn *pgx.Conn, name string) (SlotState, error) {
	var s SlotState
	var confirmed *string
	var pid *int32
	err := conn.QueryRow(ctx, `SELECT plugin, confirmed_flush_lsn::text, active, active_pid,
			COALESCE(pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_lsn(), restart_lsn), 0)::bigint
		FROM pg_catalog.pg_replication_slots WHERE slot_name = $1 AND database = current_database()`, name).
		Scan(&s.Plugin, &confirmed, &s.Active, &pid, &s.RetainedBytes)
	if errors.Is(err, pgx.ErrNoRows) {
		return s, nil
	}
	if err != nil {
		return s, fmt.Errorf("source: read replication slot %s: %w", name, err)
	}
	s.Exists = true
	if confirmed != nil {
		if s.ConfirmedFlush, err = record.ParseLSN(*confirmed); err != nil {
			return s, err
		}
	}
	if pid != nil {
		s.ActivePID = int(*pid)
	}
	return s, nil
}

// ReplicationConfig is a DSN's config for a replication connection
// (replication=database) with sluice's session settings, which also govern
// how the walsender renders values as text.
func ReplicationConfig(dsn string) (*pgconn.Config, error) {
	cfg, err := ParseConfig(dsn, "source")
	if err != nil {
		return nil, err
	}
	pc := cfg.Config.Copy()
	removeStallGuard(pc, plainDial(dsn))
	pc.AfterConnect = sqlASCII
	pc.RuntimeParams["replication"] = "database"
	delete(pc.RuntimeParams, "search_path")
	return pc, nil
}

// Slot is a replication slot just created with an exported snapshot. The
// snapshot lives while the creating connection stays open and idle: import
// it in every worker before Close.
type Slot struct {
	Name            string
	ConsistentPoint record.LSN
	SnapshotID      string
	conn            *pgconn.PgConn
}

// CreateSlot creates a logical replication slot (pgoutput) and exports its
// snapshot. A temporary slot disappears when Close is called; sluice uses
// one only for the snapshot and consistent point it gives.
func CreateSlot(ctx context.Context, dsn, name string, temporary bool) (*Slot, error) {
	cfg, err := ReplicationConfig(dsn)
	if err != nil {
		return nil, err
	}
	conn, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("source: open a replication connection (the role needs the REPLICATION attribute and pg_hba.conf must allow it): %w", err)
	}
	res, err := pglogrepl.CreateReplicationSlot(ctx, conn, name, "pgoutput", pglogrepl.CreateReplicationSlotOptions{
		Temporary: temporary, SnapshotAction: "EXPORT_SNAPSHOT", Mode: pglogrepl.LogicalReplication,
	})
	if err != nil {
		conn.Close(context.WithoutCancel(ctx))
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "53400" {
			return nil, fmt.Errorf("source: create replication slot %s: all replication slots are in use (raise max_replication_slots or drop unused slots): %w", name, err)
		}
		return nil, fmt.Errorf("source: create replication slot %s (a long-running transaction at the source delays this): %w", name, err)
	}
	lsn, err := record.ParseLSN(res.ConsistentPoint)
	if err != nil {
		conn.Close(context.WithoutCancel(ctx))
		return nil, err
	}
	return &Slot{Name: name, ConsistentPoint: lsn, SnapshotID: res.SnapshotName, conn: conn}, nil
}

// Close closes the creating connection, ending the exported snapshot (and
// dropping the slot if it is temporary).
func (s *Slot) Close(ctx context.Context) error {
	if s == nil || s.conn == nil {
		return nil
	}
	err := s.conn.Close(context.WithoutCancel(ctx))
	s.conn = nil
	return err
}

// DropSource removes what sluice made at the source for a pipeline: the
// slot, the publication, its heartbeat row, and the sluice schema once no
// other pipeline uses it. It is safe to run twice. A slot in use by a live
// walsender is refused unless force is set, in which case the walsender is
// terminated first.
func DropSource(ctx context.Context, conn *pgx.Conn, pipeline string, force bool) (dropped []string, err error) {
	name := SlotName(pipeline)
	st, err := ReadSlot(ctx, conn, name)
	if err != nil {
		return nil, err
	}
	if st.Exists {
		if st.Active {
			if !force {
				return nil, fmt.Errorf("source: replication slot %s is in use by process %d (a running `sluice run`?): stop it first, or use --force to terminate it", name, st.ActivePID)
			}
			// Wait (up to 10s) for the walsender to exit.
			if _, err := conn.Exec(ctx, "SELECT pg_catalog.pg_terminate_backend($1, 10000)", st.ActivePID); err != nil {
				return nil, fmt.Errorf("source: terminate the walsender of slot %s: %w", name, err)
			}
		}
		// The slot can stay active a moment after its walsender was told to
		// go (or after a run just stopped): retry for a few seconds.
		deadline := time.Now().Add(15 * time.Second)
		for {
			_, err := conn.Exec(ctx, "SELECT pg_catalog.pg_drop_replication_slot($1)", name)
			if err == nil {
				break
			}
			var pgErr *pgconn.PgError
			if !errors.As(err, &pgErr) || pgErr.Code != "55006" || time.Now().After(deadline) {
				return nil, fmt.Errorf("source: drop replication slot %s: %w", name, err)
			}
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(200 * time.Millisecond):
			}
		}
		dropped = append(dropped, "replication slot "+name)
	}
	var pubExists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_publication WHERE pubname = $1)", name).Scan(&pubExists); err != nil {
		return dropped, fmt.Errorf("source: look up publication %s: %w", name, err)
	}
	if pubExists {
		if _, err := conn.Exec(ctx, "DROP PUBLICATION IF EXISTS "+record.QuoteIdent(name)); err != nil {
			return dropped, fmt.Errorf("source: drop publication %s: %w", name, err)
		}
		dropped = append(dropped, "publication "+name)
	}
	var hbExists bool
	if err := conn.QueryRow(ctx, "SELECT to_regclass('sluice.heartbeat') IS NOT NULL").Scan(&hbExists); err != nil {
		return dropped, fmt.Errorf("source: look up the heartbeat table: %w", err)
	}
	if hbExists {
		if _, err := conn.Exec(ctx, "DELETE FROM sluice.heartbeat WHERE pipeline = $1", pipeline); err != nil {
			return dropped, fmt.Errorf("source: remove the heartbeat row: %w", err)
		}
		var others bool
		if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM sluice.heartbeat)
			OR EXISTS (SELECT 1 FROM pg_catalog.pg_publication WHERE pubname LIKE 'sluice\_%')`).Scan(&others); err != nil {
			return dropped, fmt.Errorf("source: look for other pipelines: %w", err)
		}
		if !others {
			if _, err := conn.Exec(ctx, "DROP SCHEMA IF EXISTS sluice CASCADE"); err != nil {
				return dropped, fmt.Errorf("source: drop the sluice schema: %w", err)
			}
			dropped = append(dropped, "schema sluice")
		} else {
			dropped = append(dropped, "heartbeat row")
		}
	}
	return dropped, nil
}

// Heartbeat writes the pipeline's heartbeat row at the source and returns
// the WAL position just before its commit: once a transaction committed at
// or after it is applied, everything committed before the call is applied.
//
// Its commit is flushed locally even where the source runs with
// synchronous_commit = off: a walsender sends only flushed WAL, and an
// asynchronous commit waits for the WAL writer (wal_writer_delay, 200 ms
// by default) before it, and every transaction committed before it, can
// reach the stream. "local", not "on": the commit must not wait for
// synchronous standbys (one that does not answer would hold the heartbeat,
// and with it --until-caught-up and cutover, forever). One batch: both
// statements run in one implicit transaction.
func Heartbeat(ctx context.Context, conn *pgx.Conn, pipeline string) (record.LSN, error) {
	b := &pgx.Batch{}
	b.Queue(`SELECT pg_catalog.set_config('synchronous_commit', 'local', true)`)
	b.Queue(`INSERT INTO sluice.heartbeat (pipeline, beat_at) VALUES ($1, now())
		ON CONFLICT (pipeline) DO UPDATE SET beat_at = EXCLUDED.beat_at
		RETURNING pg_catalog.pg_current_wal_insert_lsn()::text`, pipeline)
	br := conn.SendBatch(ctx, b)
	var lsn string
	_, err := br.Exec()
	if err == nil {
		err = br.QueryRow().Scan(&lsn)
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, fmt.Errorf("source: write heartbeat: %w", err)
	}
	return record.ParseLSN(lsn)
}
