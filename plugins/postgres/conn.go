// Package postgres is sluice's built-in PostgreSQL source and sink: it reads
// the catalog, exports a consistent snapshot, reads tables in chunks, creates
// missing tables at the sink and writes rows with COPY.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// sessionParams are set on every connection sluice opens, on both sides, so
// that values rendered as text on one side are read back identically on the
// other, and catalog output is always schema-qualified.
var sessionParams = map[string]string{
	"DateStyle":          "ISO, YMD",
	"IntervalStyle":      "postgres",
	"TimeZone":           "UTC",
	"extra_float_digits": "3",
	"bytea_output":       "hex",
	"client_encoding":    "UTF8",
	"lc_monetary":        "C",
	"search_path":        "",
	"application_name":   "sluice",
}

// ConnectBoth opens one connection to the source and one to the sink;
// closeBoth closes them (with a context that outlives ctx's end).
func ConnectBoth(ctx context.Context, srcDSN, dstDSN string) (src, dst *pgx.Conn, closeBoth func(), err error) {
	// Both at once: each is a round trip or more (server process forked,
	// authentication, TLS). The source's error is reported first.
	var dstErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		dst, dstErr = Connect(ctx, dstDSN, "sink")
	}()
	src, err = Connect(ctx, srcDSN, "source")
	<-done
	if err != nil || dstErr != nil {
		for _, c := range []*pgx.Conn{src, dst} {
			if c != nil {
				c.Close(context.WithoutCancel(ctx))
			}
		}
		if err == nil {
			err = dstErr
		}
		return nil, nil, nil, err
	}
	return src, dst, func() {
		src.Close(context.WithoutCancel(ctx))
		dst.Close(context.WithoutCancel(ctx))
	}, nil
}

// Connect opens one connection from a DSN (anything pgx accepts: URL or
// key=value, PG* environment variables, .pgpass, sslmode) with sluice's
// session settings. role names the side ("source", "sink") in errors.
func Connect(ctx context.Context, dsn, role string) (*pgx.Conn, error) {
	cfg, err := ParseConfig(dsn, role)
	if err != nil {
		return nil, err
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, connectError(role, cfg, err)
	}
	return conn, nil
}

// ParseConfig parses a DSN and applies sluice's session settings. The error
// never contains the password.
func ParseConfig(dsn, role string) (*pgx.ConnConfig, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("%s: invalid connection string: %w", role, redactErr(err, dsn))
	}
	for k, v := range sessionParams {
		cfg.RuntimeParams[k] = v
	}
	if role != "" {
		cfg.RuntimeParams["application_name"] = "sluice " + role
	}
	cfg.AfterConnect = sqlASCII
	installStallGuard(&cfg.Config, role)
	return cfg, nil
}

func connectError(role string, cfg *pgx.ConnConfig, err error) error {
	where := fmt.Sprintf("%s (host=%s port=%d user=%s dbname=%s)", role, cfg.Host, cfg.Port, cfg.User, cfg.Database)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "28P01", "28000":
			return fmt.Errorf("connect to %s: authentication failed: %s (check the user and password in the DSN, or .pgpass, and pg_hba.conf)", where, pgErr.Message)
		case "3D000":
			return fmt.Errorf("connect to %s: %s (create the database first)", where, pgErr.Message)
		}
		return fmt.Errorf("connect to %s: %w", where, err)
	}
	var netErr net.Error
	if errors.As(err, &netErr) || strings.Contains(err.Error(), "connection refused") {
		return fmt.Errorf("connect to %s: server unreachable (is it running and accepting TCP connections on that host and port?): %w", where, err)
	}
	return fmt.Errorf("connect to %s: %w", where, err)
}

// redactErr makes sure an error built from a DSN never carries its password.
func redactErr(err error, dsn string) error {
	cfg, perr := pgconn.ParseConfig(dsn)
	msg := err.Error()
	if perr == nil && cfg.Password != "" && strings.Contains(msg, cfg.Password) {
		return errors.New(strings.ReplaceAll(msg, cfg.Password, "xxxxx"))
	}
	return err
}

// IsConnectionError reports whether err means the connection itself failed
// (as opposed to a statement error), so a retry on a new connection may
// succeed.
func IsConnectionError(err error) bool {
	if err == nil {
		return false
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return strings.HasPrefix(pgErr.Code, "08") || pgErr.Code == "57P01" || pgErr.Code == "57P02" || pgErr.Code == "57P03"
	}
	var netErr net.Error
	if errors.As(err, &netErr) || errors.Is(err, io.ErrUnexpectedEOF) {
		return true // unexpected EOF: the server or a proxy closed the connection mid-message
	}
	return pgconn.SafeToRetry(err) || errors.Is(err, net.ErrClosed)
}
