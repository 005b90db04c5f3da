package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// Toast compression modes of a sink session (copy.toast_compression).
const (
	// ToastAuto uses lz4 when the sink was built with it and its
	// default_toast_compression was never configured (still PostgreSQL's
	// built-in pglz); otherwise it leaves the server's setting.
	ToastAuto = "auto"
	// ToastServer always leaves the server's default_toast_compression.
	ToastServer = "server"
)

// SetToastCompression sets default_toast_compression for the session of
// the writer, so large values the copy writes into columns without a
// compression method of their own are compressed with mode's method
// (see ToastAuto, ToastServer; "lz4" and "pglz" name a method). Values
// read back identical whatever the method; only speed and size differ.
func (w *Writer) SetToastCompression(ctx context.Context, mode string) error {
	return setToastCompression(ctx, w.conn, mode)
}

func setToastCompression(ctx context.Context, conn *pgx.Conn, mode string) error {
	switch mode {
	case "", ToastAuto:
		// One statement: a server older than 14 has no such setting and
		// one without lz4 lacks the value, so nothing is set there.
		_, err := conn.Exec(ctx, `SELECT pg_catalog.set_config('default_toast_compression', 'lz4', false)
			FROM pg_catalog.pg_settings
			WHERE name = 'default_toast_compression' AND source = 'default' AND 'lz4' = ANY (enumvals)`)
		if err != nil {
			return fmt.Errorf("sink: choose the compression of large values (copy.toast_compression: auto): %w", err)
		}
		return nil
	case ToastServer:
		return nil
	case "lz4", "pglz":
	default:
		return fmt.Errorf("sink: copy.toast_compression %q is not a compression mode: use auto, lz4, pglz or server", mode)
	}
	var ok bool
	err := conn.QueryRow(ctx, `SELECT $1 = ANY (enumvals) FROM pg_catalog.pg_settings WHERE name = 'default_toast_compression'`, mode).Scan(&ok)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("sink: copy.toast_compression is %s but the sink server has no default_toast_compression setting (PostgreSQL 14 or later has it); use auto or server", mode)
	}
	if err != nil {
		return fmt.Errorf("sink: read default_toast_compression: %w", err)
	}
	if !ok {
		return fmt.Errorf("sink: copy.toast_compression is %s but the sink server was built without it; use auto, pglz or server", mode)
	}
	if _, err := conn.Exec(ctx, "SELECT pg_catalog.set_config('default_toast_compression', $1, false)", mode); err != nil {
		return fmt.Errorf("sink: set default_toast_compression to %s (copy.toast_compression): %w", mode, err)
	}
	return nil
}
