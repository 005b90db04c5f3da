package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"

	"github.com/sluicehq/sluice/plugins/postgres"
)

// CheckToastCompression is the precheck item for copy.toast_compression:
// how the copy compresses large values at the sink, and whether the sink
// has the method the pipeline names.
const CheckToastCompression = "toast_compression"

// checkToastCompression reports what copy.toast_compression does at this
// sink; a method the sink lacks fails (the copy would stop on it).
func (c *checker) checkToastCompression(ctx context.Context) {
	if !c.cfg.Full {
		c.add(CheckToastCompression, Pass, "not checked: sync.full is off, nothing is copied", "")
		return
	}
	mode := c.cfg.ToastCompression
	if mode == "" {
		mode = postgres.ToastAuto
	}
	var setting, source string
	var methods []string
	err := c.dst.QueryRow(ctx, `SELECT setting, source, enumvals FROM pg_catalog.pg_settings WHERE name = 'default_toast_compression'`).
		Scan(&setting, &source, &methods)
	if errors.Is(err, pgx.ErrNoRows) {
		// Before PostgreSQL 14: pglz only, no setting.
		if mode == "lz4" || mode == "pglz" {
			c.add(CheckToastCompression, Fail, fmt.Sprintf("copy.toast_compression is %s but the sink server (PostgreSQL before 14) has no default_toast_compression setting", mode),
				"set copy.toast_compression to auto or server")
			return
		}
		c.add(CheckToastCompression, Pass, "the sink server compresses large values with pglz (PostgreSQL before 14 has no other method)", "")
		return
	}
	if err != nil {
		c.add(CheckToastCompression, Fail, fmt.Sprintf("sink: read default_toast_compression: %v", err), "check that the sink role can read pg_settings")
		return
	}
	switch mode {
	case postgres.ToastAuto:
		if source == "default" && slices.Contains(methods, "lz4") {
			c.add(CheckToastCompression, Pass, "the copy compresses large values with lz4 (the sink's default_toast_compression is PostgreSQL's built-in pglz; set copy.toast_compression: server to keep it)", "")
		} else {
			c.add(CheckToastCompression, Pass, fmt.Sprintf("the copy compresses large values with the sink's default_toast_compression, %s", setting), "")
		}
	case postgres.ToastServer:
		c.add(CheckToastCompression, Pass, fmt.Sprintf("the copy compresses large values with the sink's default_toast_compression, %s", setting), "")
	default:
		if !slices.Contains(methods, mode) {
			c.add(CheckToastCompression, Fail, fmt.Sprintf("copy.toast_compression is %s but the sink server was built without it (it has %v)", mode, methods),
				"set copy.toast_compression to auto, server or one of the methods the sink has")
			return
		}
		c.add(CheckToastCompression, Pass, fmt.Sprintf("the copy compresses large values with %s", mode), "")
	}
}
