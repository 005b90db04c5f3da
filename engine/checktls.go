package engine

import (
	"crypto/tls"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// CheckEncryption is the precheck item that warns when a DSN lets traffic
// to a server on another machine travel unencrypted.
const CheckEncryption = "encryption"

// plaintextHosts returns the hosts other than this machine that a DSN may
// reach without TLS: every host with sslmode=disable, and with allow or
// prefer (pgx's default) every host, since those fall back to plain text
// when TLS fails. An unparsable DSN gives nothing (the connection item
// reports it).
func plaintextHosts(dsn string) []string {
	cfg, err := pgconn.ParseConfig(dsn)
	if err != nil {
		return nil
	}
	var hosts []string
	seen := map[string]bool{}
	note := func(host string, plain bool) {
		if plain && !isLocalHost(host) && !seen[host] {
			seen[host] = true
			hosts = append(hosts, host)
		}
	}
	note(cfg.Host, cfg.TLSConfig == nil)
	for _, fb := range cfg.Fallbacks {
		note(fb.Host, fb.TLSConfig == nil)
	}
	return hosts
}

// tlsMode describes what a DSN asks for, as sslmode would name it.
func tlsMode(dsn string) string {
	cfg, err := pgconn.ParseConfig(dsn)
	switch {
	case err != nil:
		return "unknown"
	case cfg.TLSConfig == nil:
		return "sslmode=disable"
	}
	for _, fb := range cfg.Fallbacks {
		if fb.TLSConfig == nil {
			return "sslmode=prefer or allow, the default"
		}
	}
	return "TLS required"
}

// checkEncryption reports, for each side, whether its traffic is
// encrypted: from the live connection when there is one (is it TLS?), and
// from the DSN for the hosts it may fall back to.
func (c *checker) checkEncryption() {
	var warn, ok []string
	for _, side := range []struct {
		name, dsn string
		conn      *pgx.Conn
	}{{"source", c.cfg.SourceDSN, c.src}, {"sink", c.cfg.SinkDSN, c.dst}} {
		hosts := plaintextHosts(side.dsn)
		live := ""
		if side.conn != nil {
			if _, isTLS := side.conn.PgConn().Conn().(*tls.Conn); isTLS {
				live = "connected with TLS"
			} else {
				live = "connected without TLS"
			}
		}
		if len(hosts) > 0 {
			warn = append(warn, fmt.Sprintf("the %s DSN (%s) lets traffic to %s travel unencrypted%s", side.name, tlsMode(side.dsn), strings.Join(hosts, ", "), suffix(live)))
			continue
		}
		switch {
		case live == "":
			live = tlsMode(side.dsn)
		case live == "connected without TLS":
			live += ", to this machine"
		}
		ok = append(ok, side.name+" "+live)
	}
	if len(warn) > 0 {
		c.add(CheckEncryption, Warn, strings.Join(warn, "; "),
			fmt.Sprintf("set sslmode=verify-full (and sslrootcert=, plus sslcert= and sslkey= for client certificates) in the DSN, so that passwords and data are encrypted and the server is verified; or acknowledge with ignore_checks: [%s]", CheckEncryption))
		return
	}
	c.add(CheckEncryption, Pass, strings.Join(ok, "; "), "")
}

func suffix(live string) string {
	if live == "" {
		return ""
	}
	return " (" + live + " this time)"
}
