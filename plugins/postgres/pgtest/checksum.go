package pgtest

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// Querier is what Checksum needs: *pgx.Conn, *pgxpool.Pool and pgx.Tx all
// satisfy it.
type Querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Checksum computes, in SQL, an oracle for the data of table that shares no
// code with the product: count(*) and
// md5(string_agg(md5(t::text), ',' ORDER BY md5(t::text))) over the rows.
// table is used as is: pass an already quoted, qualified name such as
// `"public"."my table"`. sum is "" for an empty table.
//
// The text form of some values depends on session settings (TimeZone,
// DateStyle, extra_float_digits, ...); compare checksums taken with the same
// settings on both sides, or use ChecksumDSN, which pins them.
func Checksum(ctx context.Context, q Querier, table string) (count int64, sum string, err error) {
	sql := "SELECT count(*), coalesce(md5(string_agg(h, ',' ORDER BY h)), '') FROM (SELECT md5(t::text) AS h FROM " +
		table + " AS t) AS s"
	if err := q.QueryRow(ctx, sql).Scan(&count, &sum); err != nil {
		return 0, "", fmt.Errorf("pgtest: checksum of %s: %w", table, err)
	}
	return count, sum, nil
}

// ChecksumDSN is Checksum over a new connection to dsn whose session pins
// the settings that change the text form of values (TimeZone=UTC,
// DateStyle=ISO, IntervalStyle=postgres, extra_float_digits=3,
// bytea_output=hex).
func ChecksumDSN(ctx context.Context, dsn, table string) (count int64, sum string, err error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return 0, "", fmt.Errorf("pgtest: %w", err)
	}
	// Pin the settings that change the text form of values, so that two
	// servers with different defaults compare equal.
	cfg.RuntimeParams["DateStyle"] = "ISO, MDY"
	cfg.RuntimeParams["IntervalStyle"] = "postgres"
	cfg.RuntimeParams["TimeZone"] = "UTC"
	cfg.RuntimeParams["extra_float_digits"] = "3"
	cfg.RuntimeParams["bytea_output"] = "hex"
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return 0, "", fmt.Errorf("pgtest: %w", err)
	}
	defer conn.Close(context.Background())
	return Checksum(ctx, conn, table)
}
