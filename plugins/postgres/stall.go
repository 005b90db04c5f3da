package postgres

// Stalled connections. A connection whose peer stops answering without
// closing it (a dead NAT entry, a partitioned network, a proxy that keeps
// the socket open) leaves a read waiting forever: TCP keepalives only help
// when nothing acknowledges the packets, and a long-running statement looks
// the same from the client's side. The stall guard tells them apart: when a
// read has waited for StallTimeout with no byte received since the last
// write, it asks the server, over a new connection, what the session is
// doing. A session that is itself waiting for the client (wait event
// ClientRead or ClientWrite, or idle) while the client waits for it, or a
// session that no longer exists, means the bytes are lost in between: the
// guard terminates that session and closes the socket, so the pending read
// fails with a connection error and the engine reconnects. If the probe
// cannot even connect within StallTimeout, the server is unreachable and the
// connection is closed as well.
//
// Replication (walsender) connections are not guarded this way: the change
// stream detects a silent source itself by asking for a reply (Stream.Run).

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// StallTimeoutEnv is the environment variable that overrides
// DefaultStallTimeout (a Go duration such as "45s"; "0" turns detection off).
const StallTimeoutEnv = "SLUICE_STALL_TIMEOUT"

// DefaultStallTimeout is how long a read may wait without a byte before the
// connection is checked for a stall, and how long a connection attempt may
// take when the DSN sets no connect_timeout.
const DefaultStallTimeout = 30 * time.Second

// StallTimeout returns the stall timeout in effect: StallTimeoutEnv if set
// and valid, else DefaultStallTimeout. Zero means detection is off.
func StallTimeout() time.Duration {
	if v := os.Getenv(StallTimeoutEnv); v != "" {
		if d, err := time.ParseDuration(v); err == nil && d >= 0 {
			return d
		}
	}
	return DefaultStallTimeout
}

// stallError is returned by a read of a connection the guard closed. It is
// a net.Error, so IsConnectionError classifies it as a lost connection.
type stallError struct {
	role   string
	waited time.Duration
	why    string
}

func (e *stallError) Error() string {
	return fmt.Sprintf("%s: connection stalled: no reply for %s (%s); closed it to reconnect", e.role, e.waited.Round(time.Second), e.why)
}
func (e *stallError) Timeout() bool   { return true }
func (e *stallError) Temporary() bool { return true }

// installStallGuard wraps cfg's dialer so that every connection it opens is
// watched for stalls, and bounds connection attempts by the stall timeout
// when the DSN gives no connect_timeout.
func installStallGuard(cfg *pgconn.Config, role string) {
	timeout := StallTimeout()
	if timeout <= 0 {
		return
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = timeout
	}
	probeCfg := cfg.Copy() // dials plainly: the probe is not guarded itself
	probeCfg.ConnectTimeout = timeout
	probeCfg.RuntimeParams["application_name"] = "sluice stall probe"
	guardWith(cfg, role, timeout, probeCfg)
}

// guardWith installs the stall guard with its timeout and the config the
// probe connects with.
func guardWith(cfg *pgconn.Config, role string, timeout time.Duration, probeCfg *pgconn.Config) {
	dial := cfg.DialFunc
	cfg.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return newGuardedConn(c, role, timeout, probeCfg), nil
	}
	after := cfg.AfterConnect
	cfg.AfterConnect = func(ctx context.Context, pc *pgconn.PgConn) error {
		nc := pc.Conn()
		if tc, ok := nc.(*tls.Conn); ok {
			nc = tc.NetConn()
		}
		if g, ok := nc.(*guardedConn); ok {
			g.pid.Store(pc.PID())
		}
		if after != nil {
			return after(ctx, pc)
		}
		return nil
	}
}

// removeStallGuard undoes installStallGuard on a copy of a config (for
// replication connections), keeping the connect timeout.
func removeStallGuard(cfg *pgconn.Config, plain pgconn.DialFunc) {
	cfg.DialFunc = plain
	cfg.AfterConnect = nil
}

// plainDial is the dialer pgconn would use for dsn, unguarded.
func plainDial(dsn string) pgconn.DialFunc {
	if c, err := pgconn.ParseConfig(dsn); err == nil {
		return c.DialFunc
	}
	return (&net.Dialer{KeepAlive: 5 * time.Minute}).DialContext
}

// guardedConn is a net.Conn watched by a stall guard.
type guardedConn struct {
	net.Conn
	role     string
	timeout  time.Duration
	probeCfg *pgconn.Config
	pid      atomic.Uint32
	// Unix nanoseconds: when the pending read and write started (0:
	// none), and the last byte read and written.
	readStart, writeStart, lastRead, lastWrite atomic.Int64
	stalled                                    atomic.Pointer[stallError]
	stop                                       chan struct{}
	once                                       sync.Once
}

func newGuardedConn(c net.Conn, role string, timeout time.Duration, probeCfg *pgconn.Config) *guardedConn {
	g := &guardedConn{Conn: c, role: role, timeout: timeout, probeCfg: probeCfg, stop: make(chan struct{})}
	now := time.Now().UnixNano()
	g.lastRead.Store(now)
	g.lastWrite.Store(now)
	go g.watch()
	return g
}

func (g *guardedConn) Read(b []byte) (int, error) {
	g.readStart.Store(time.Now().UnixNano())
	n, err := g.Conn.Read(b)
	g.readStart.Store(0)
	if n > 0 {
		g.lastRead.Store(time.Now().UnixNano())
	}
	if err != nil {
		if se := g.stalled.Load(); se != nil {
			return n, se
		}
	}
	return n, err
}

func (g *guardedConn) Write(b []byte) (int, error) {
	g.writeStart.Store(time.Now().UnixNano())
	n, err := g.Conn.Write(b)
	g.writeStart.Store(0)
	if n > 0 {
		g.lastWrite.Store(time.Now().UnixNano())
	}
	if err != nil {
		if se := g.stalled.Load(); se != nil {
			return n, se
		}
	}
	return n, err
}

func (g *guardedConn) Close() error {
	g.once.Do(func() { close(g.stop) })
	return g.Conn.Close()
}

// watch checks, a few times per timeout, whether a write has been blocked
// for a whole timeout, or a read has waited that long with no byte either
// way, and then probes. A read that started before the last write
// completed may be pgx's background reader, left pending after a slow
// write on a connection that is now healthy and idle: for it the probe is
// strict (see probe).
func (g *guardedConn) watch() {
	tick := time.NewTicker(max(g.timeout/4, 100*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-g.stop:
			return
		case <-tick.C:
		}
		if g.pid.Load() == 0 {
			continue
		}
		var idle time.Duration
		strict := false
		if ws := g.writeStart.Load(); ws != 0 && time.Since(time.Unix(0, ws)) >= g.timeout {
			idle = time.Since(time.Unix(0, ws))
		} else {
			start, lastW := g.readStart.Load(), g.lastWrite.Load()
			idle = time.Since(time.Unix(0, max(g.lastRead.Load(), lastW)))
			if start == 0 || idle < g.timeout {
				continue
			}
			strict = start < lastW
		}
		why, stalled := g.probe(strict)
		if !stalled {
			continue
		}
		g.stalled.CompareAndSwap(nil, &stallError{role: g.role, waited: idle, why: why})
		g.Close()
		return
	}
}

// probe asks the server, on a new connection, what the guarded session is
// doing. It reports a stall when the session waits for the client (idle,
// idle in a transaction, or waiting on a client read or write), is gone,
// or the server cannot be reached at all; a stalled session is terminated
// so that it releases its locks. Strict, an idle session is not a stall
// (only one waiting on the network in the middle of a statement is). A
// server that answers with an error (too many connections...) tells
// nothing.
func (g *guardedConn) probe(strict bool) (why string, stalled bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*g.timeout)
	defer cancel()
	conn, err := pgconn.ConnectConfig(ctx, g.probeCfg)
	if err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) {
			return "", false
		}
		return "the server did not answer a new connection either: " + err.Error(), true
	}
	defer conn.Close(context.Background())
	pid := []byte(fmt.Sprint(g.pid.Load()))
	res := conn.ExecParams(ctx,
		`SELECT coalesce(state, ''), coalesce(wait_event, ''),
		        CASE WHEN $2 THEN state = 'active' AND wait_event IN ('ClientRead', 'ClientWrite')
		             ELSE state LIKE 'idle%' OR wait_event IN ('ClientRead', 'ClientWrite') END
		   FROM pg_catalog.pg_stat_activity WHERE pid = $1`,
		[][]byte{pid, []byte(strconv.FormatBool(strict))}, nil, nil, nil).Read()
	switch {
	case res.Err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded):
		return "the server did not answer a probe on a new connection", true
	case res.Err != nil:
		return "", false // cannot tell; keep waiting
	case len(res.Rows) == 0:
		return fmt.Sprintf("server session %s no longer exists", pid), true
	case string(res.Rows[0][2]) != "t":
		return "", false
	}
	// Say so before the session ends: its end may reach the client first.
	why = fmt.Sprintf("server session %s is %s, waiting for the client (%s); terminated it", pid, res.Rows[0][0], res.Rows[0][1])
	g.stalled.Store(&stallError{role: g.role, waited: g.idle(), why: why})
	conn.ExecParams(ctx, `SELECT pg_catalog.pg_terminate_backend($1)`, [][]byte{pid}, nil, nil, nil).Read()
	return why, true
}

// idle is how long the connection has gone without a byte either way.
func (g *guardedConn) idle() time.Duration {
	return time.Since(time.Unix(0, max(g.lastRead.Load(), g.lastWrite.Load())))
}

// streamLiveness tells a silent replication stream from a stalled one: after
// a timeout without any message it asks the source for a reply (a status
// update with the reply flag, which a walsender answers at once with a
// keepalive); a second timeout without any message means the connection
// is stalled.
type streamLiveness struct {
	timeout time.Duration
	lastMsg time.Time
	asked   time.Time // when a reply was requested; zero: not asked
}

// heard records that a message arrived (or that the stream was busy
// elsewhere and not reading).
func (l *streamLiveness) heard() { l.lastMsg, l.asked = time.Now(), time.Time{} }

// deadline bounds the next receive so that check runs in time.
func (l *streamLiveness) deadline(next time.Time) time.Time {
	if l.timeout <= 0 {
		return next
	}
	return minTime(next, time.Now().Add(l.timeout/2))
}

// check returns whether to ask for a reply now, or a stall error.
func (l *streamLiveness) check(slot string) (ask bool, err error) {
	if l.timeout <= 0 || time.Since(l.lastMsg) < l.timeout {
		return false, nil
	}
	if l.asked.IsZero() {
		l.asked = time.Now()
		return true, nil
	}
	if time.Since(l.asked) >= l.timeout {
		return false, &stallError{role: "source", waited: time.Since(l.lastMsg),
			why: "replication stream of slot " + slot + " sent nothing, not even a reply to a status update that asked for one"}
	}
	return false, nil
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
