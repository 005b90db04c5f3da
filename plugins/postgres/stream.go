package postgres

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/sluicehq/sluice/engine/record"
)

// EventKind says what a stream event carries.
type EventKind uint8

// Stream event kinds: a source transaction arrives as Begin, its changes,
// then Commit.
const (
	EventBegin EventKind = iota + 1
	EventChange
	EventTruncate
	EventCommit
)

// Event is one decoded message of the change stream.
type Event struct {
	Kind EventKind
	// CommitLSN is the transaction's commit position (on Begin, Change and
	// Commit); EndLSN the position just past its commit record (Commit).
	CommitLSN  record.LSN
	EndLSN     record.LSN
	CommitTime time.Time
	Xid        uint32
	// Record is the row change (EventChange).
	Record record.Record
	// Truncated lists the truncated relations (EventTruncate) and
	// RestartIdentity/Cascade its options.
	Truncated       []*record.Relation
	RestartIdentity bool
}

// StreamOptions tune a change stream.
type StreamOptions struct {
	// StatusInterval is how often the stream reports its flushed position
	// to the source (default 10s).
	StatusInterval time.Duration
	// MaxEvents bounds the events sent in one slice (default 512).
	MaxEvents int
}

// Stream receives a slot's changes (pgoutput, text values) and reports to
// the source the position the sink has made durable, never more.
type Stream struct {
	conn     *pgconn.PgConn
	slot     string
	opts     StreamOptions
	rels     map[uint32]*record.Relation
	flushed  atomic.Uint64
	received atomic.Uint64
	walEnd   atomic.Uint64
	// current transaction while decoding
	commitLSN  record.LSN
	commitTime time.Time
	xid        uint32
}

// StartStream opens a replication connection and starts streaming the slot
// from start (the position just past the last transaction the sink has
// applied). Flushed starts at start.
func StartStream(ctx context.Context, dsn, slot, publication string, start record.LSN, opts StreamOptions) (*Stream, error) {
	conn, err := DialStream(ctx, dsn)
	if err != nil {
		return nil, err
	}
	return StartStreamOn(ctx, conn, slot, publication, start, opts)
}

// DialStream opens a replication connection for StartStreamOn, so that
// connecting can overlap other work before the start position is known.
func DialStream(ctx context.Context, dsn string) (*pgconn.PgConn, error) {
	cfg, err := ReplicationConfig(dsn)
	if err != nil {
		return nil, err
	}
	conn, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("source: open a replication connection: %w", err)
	}
	return conn, nil
}

// StartStreamOn is StartStream on a connection from DialStream, which it
// owns from then on (closed on error).
func StartStreamOn(ctx context.Context, conn *pgconn.PgConn, slot, publication string, start record.LSN, opts StreamOptions) (*Stream, error) {
	if opts.StatusInterval <= 0 {
		opts.StatusInterval = 10 * time.Second
	}
	if opts.MaxEvents <= 0 {
		opts.MaxEvents = 512
	}
	err := pglogrepl.StartReplication(ctx, conn, slot, pglogrepl.LSN(start), pglogrepl.StartReplicationOptions{
		PluginArgs: []string{"proto_version '1'", "publication_names '" + strings.ReplaceAll(publication, "'", "''") + "'"},
	})
	if err != nil {
		conn.Close(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("source: start streaming slot %s at %s: %w", slot, start, err)
	}
	s := &Stream{conn: conn, slot: slot, opts: opts, rels: map[uint32]*record.Relation{}}
	s.flushed.Store(uint64(start))
	s.received.Store(uint64(start))
	return s, nil
}

// SetFlushed records the position the sink has durably applied (and the
// checkpoint recorded); the next status update reports it to the source.
func (s *Stream) SetFlushed(lsn record.LSN) {
	for {
		cur := s.flushed.Load()
		if uint64(lsn) <= cur || s.flushed.CompareAndSwap(cur, uint64(lsn)) {
			return
		}
	}
}

// Flushed returns the position last reported as durable.
func (s *Stream) Flushed() record.LSN { return record.LSN(s.flushed.Load()) }

// ServerWALEnd returns the source's WAL end as last reported by it, for lag
// in bytes.
func (s *Stream) ServerWALEnd() record.LSN { return record.LSN(s.walEnd.Load()) }

// Close ends the replication connection.
func (s *Stream) Close(ctx context.Context) error {
	return s.conn.Close(context.WithoutCancel(ctx))
}

func (s *Stream) sendStatus(ctx context.Context) error { return s.sendStatusReply(ctx, false) }

// sendStatusReply sends a status update; reply asks the source to answer.
func (s *Stream) sendStatusReply(ctx context.Context, reply bool) error {
	flushed := pglogrepl.LSN(s.flushed.Load())
	err := pglogrepl.SendStandbyStatusUpdate(ctx, s.conn, pglogrepl.StandbyStatusUpdate{
		WALWritePosition: flushed,
		WALFlushPosition: flushed,
		WALApplyPosition: flushed,
		ReplyRequested:   reply,
	})
	if err != nil {
		return fmt.Errorf("source: send status update: %w", err)
	}
	return nil
}

// Run receives messages until ctx ends or the connection fails, sending
// decoded events to out in order, in slices of at most MaxEvents. Each slice
// belongs to the receiver. Status updates go out every StatusInterval and
// whenever the source asks, also while out is full.
func (s *Stream) Run(ctx context.Context, out chan<- []Event) error {
	var pending []Event
	nextStatus := time.Now().Add(s.opts.StatusInterval)
	live := streamLiveness{timeout: StallTimeout()}
	live.heard()
	send := func() error {
		for len(pending) > 0 {
			wait := time.Until(nextStatus)
			timer := time.NewTimer(max(wait, 0))
			select {
			case out <- pending:
				timer.Stop()
				pending = nil
			case <-timer.C:
				if err := s.sendStatus(ctx); err != nil {
					return err
				}
				nextStatus = time.Now().Add(s.opts.StatusInterval)
			case <-ctx.Done():
				timer.Stop()
				return ctx.Err()
			}
		}
		return nil
	}
	// The read deadline is the next status update, set on the connection
	// when that changes, and ctx's end moves it to now: no context and
	// timer per message (with a context, pgconn sets up a watcher for
	// every message, which cost a quarter of the receiver's CPU).
	netConn := s.conn.Conn()
	stopWatch := context.AfterFunc(ctx, func() { _ = netConn.SetReadDeadline(time.Now()) })
	defer stopWatch()
	var deadline time.Time
	for {
		if time.Now().After(nextStatus) {
			if err := s.sendStatus(ctx); err != nil {
				return err
			}
			nextStatus = time.Now().Add(s.opts.StatusInterval)
		}
		// The deadline is also the stall guard's next look (live.deadline):
		// moved forward at most every 100 ms, back at once.
		if want := live.deadline(nextStatus); want.Before(deadline) || want.Sub(deadline) > 100*time.Millisecond {
			deadline = want
			if err := netConn.SetReadDeadline(deadline); err != nil {
				return fmt.Errorf("source: set the read deadline of slot %s's connection: %w", s.slot, err)
			}
			if ctx.Err() != nil { // ended before the deadline was set
				return ctx.Err()
			}
		}
		msg, err := s.conn.ReceiveMessage(context.Background())
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if pgconn.Timeout(err) {
				ask, err := live.check(s.slot)
				if err != nil {
					return err
				}
				if ask {
					if err := s.sendStatusReply(ctx, true); err != nil {
						return err
					}
				}
				continue
			}
			return fmt.Errorf("source: receive from slot %s: %w", s.slot, err)
		}
		live.heard()
		switch m := msg.(type) {
		case *pgproto3.CopyData:
			if len(m.Data) == 0 {
				continue
			}
			switch m.Data[0] {
			case pglogrepl.PrimaryKeepaliveMessageByteID:
				ka, err := pglogrepl.ParsePrimaryKeepaliveMessage(m.Data[1:])
				if err != nil {
					return fmt.Errorf("source: parse keepalive: %w", err)
				}
				s.walEnd.Store(uint64(ka.ServerWALEnd))
				if ka.ReplyRequested {
					nextStatus = time.Time{}
				}
			case pglogrepl.XLogDataByteID:
				xld, err := pglogrepl.ParseXLogData(m.Data[1:])
				if err != nil {
					return fmt.Errorf("source: parse WAL data: %w", err)
				}
				s.walEnd.Store(uint64(xld.ServerWALEnd))
				ev, ok, err := s.decode(xld.WALData)
				if err != nil {
					return fmt.Errorf("source: decode change at %s: %w", record.LSN(xld.WALStart), err)
				}
				if !ok {
					continue
				}
				pending = append(pending, ev)
				if ev.Kind == EventCommit || len(pending) >= s.opts.MaxEvents {
					if err := send(); err != nil {
						return err
					}
					live.heard() // not reading while the applier was busy
				}
			}
		case *pgproto3.ErrorResponse:
			return fmt.Errorf("source: slot %s: %w", s.slot, pgconn.ErrorResponseToPgError(m))
		case *pgproto3.CopyDone:
			return errors.New("source: the server ended the replication stream")
		}
	}
}

// decode turns one pgoutput message into an event, copying every value out
// of the connection's buffer.
func (s *Stream) decode(data []byte) (Event, bool, error) {
	if len(data) > 0 && (data[0] == 'I' || data[0] == 'U' || data[0] == 'D') {
		ev, err := s.decodeChange(data) // pgoutput.go
		return ev, err == nil, err
	}
	msg, err := parseMessage(data)
	if err != nil {
		return Event{}, false, err
	}
	switch m := msg.(type) {
	case *pglogrepl.RelationMessage:
		rel := &record.Relation{ID: m.RelationID, Table: record.TableName{Schema: m.Namespace, Name: m.RelationName}}
		for _, c := range m.Columns {
			rel.Columns = append(rel.Columns, record.Column{Name: c.Name, TypeOID: c.DataType, Key: c.Flags&1 != 0})
		}
		s.rels[m.RelationID] = rel
		return Event{}, false, nil
	case *pglogrepl.BeginMessage:
		s.commitLSN, s.commitTime, s.xid = record.LSN(m.FinalLSN), m.CommitTime, m.Xid
		return Event{Kind: EventBegin, CommitLSN: s.commitLSN, CommitTime: m.CommitTime, Xid: m.Xid}, true, nil
	case *pglogrepl.CommitMessage:
		ev := Event{Kind: EventCommit, CommitLSN: record.LSN(m.CommitLSN), EndLSN: record.LSN(m.TransactionEndLSN), CommitTime: m.CommitTime, Xid: s.xid}
		s.received.Store(uint64(m.TransactionEndLSN))
		return ev, true, nil
	case *pglogrepl.TruncateMessage:
		ev := Event{Kind: EventTruncate, CommitLSN: s.commitLSN, CommitTime: s.commitTime, Xid: s.xid,
			RestartIdentity: m.Option&pglogrepl.TruncateOptionRestartIdentity != 0}
		for _, id := range m.RelationIDs {
			rel, err := s.relation(id)
			if err != nil {
				return Event{}, false, err
			}
			ev.Truncated = append(ev.Truncated, rel)
		}
		return ev, true, nil
	}
	// Type, origin and logical messages carry nothing to apply.
	return Event{}, false, nil
}

// parseMessage parses one pgoutput message. pglogrepl indexes into the
// message without checking its length, so a truncated or empty message
// would panic: that is turned into an error naming the message's size.
func parseMessage(data []byte) (msg pglogrepl.Message, err error) {
	if len(data) == 0 {
		return nil, errors.New("empty pgoutput message")
	}
	// pglogrepl allocates each value at its declared length before
	// checking the message holds it: check the lengths first.
	if err := checkTuples(data); err != nil {
		return nil, fmt.Errorf("malformed pgoutput message %q (%d bytes): %w", data[0], len(data), err)
	}
	defer func() {
		if r := recover(); r != nil {
			msg, err = nil, fmt.Errorf("malformed pgoutput message %q (%d bytes): %v", data[0], len(data), r)
		}
	}()
	return pglogrepl.Parse(data)
}

// checkTuples verifies that what a truncate message counts lies within the
// message. (Insert, update and delete messages are decoded, with their
// lengths checked, by decodeChange.)
func checkTuples(data []byte) error {
	if data[0] != 'T' { // relation count, options, then 4 bytes per relation
		return nil
	}
	if len(data) < 6 {
		return errors.New("truncated truncate message")
	}
	if n := int64(binary.BigEndian.Uint32(data[1:])); n*4 > int64(len(data)-6) {
		return fmt.Errorf("truncate names %d relations but holds %d bytes", n, len(data))
	}
	return nil
}

func (s *Stream) relation(id uint32) (*record.Relation, error) {
	rel := s.rels[id]
	if rel == nil {
		return nil, fmt.Errorf("change for relation %d arrived before its description", id)
	}
	return rel, nil
}

func (s *Stream) change(r record.Record) Event {
	r.Format = record.Text
	r.Position = s.commitLSN
	return Event{Kind: EventChange, CommitLSN: s.commitLSN, CommitTime: s.commitTime, Xid: s.xid, Record: r}
}
