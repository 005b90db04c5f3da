// Package where filters rows by a SQL condition, the same condition in
// every phase of a pipeline:
//
//   - the full copy pushes it down: the chunk query reads
//     ... WHERE <chunk range> AND (Filter.SQL());
//   - streamed changes are evaluated in the engine: Filter.Match on a row,
//     Filter.Change on an INSERT, UPDATE or DELETE, which also applies
//     PostgreSQL's rule for an UPDATE that moves a row across the filter
//     (Decide).
//
// # One condition, two evaluators, no approximation
//
// Compile parses the condition (a practical subset of PostgreSQL's
// expression grammar), then types it with PostgreSQL's own rules: how
// untyped literals take the type of the other operand, which operator a
// mix of types resolves to (integer = numeric compares as numeric, real =
// 0.1 as double precision, but real IN (1, 0.1) as real; bpchar against
// text as text, against varchar as bpchar), the common type of COALESCE
// and IN lists, the division scale of numeric. The typed tree is then
// rendered twice: as SQL with every conversion written out (SQL), and as
// an expr-lang program (Match). Because both come from the same typed tree,
// PostgreSQL and the engine evaluate the same operations; the tests check
// every case against PostgreSQL itself, for the expression as written and
// as rendered.
//
// Whatever the engine cannot evaluate exactly as PostgreSQL does is refused
// at compile time with the position and the reason, never approximated:
// volatile functions (now(), random(), current_date, ...), text ordering,
// lower/upper and ILIKE under a locale collation (allowed under "C",
// "POSIX" and ucs_basic, or with COLLATE "C" in the expression),
// nondeterministic collations, time zones other than UTC, narrowing casts,
// and columns of types the engine does not decode (which may only be tested
// with IS [NOT] NULL). Errors PostgreSQL would raise on a row (integer
// overflow, division by zero, float overflow and underflow, a date beyond
// the range of timestamps) are raised by the engine too (EvalError), so a
// row that would fail the copy stops the stream instead of being skipped.
//
// Values keep their exact semantics: numeric is an exact decimal
// (math/big; NaN and ±Infinity order as in PostgreSQL, and a quotient has
// PostgreSQL's scale); double precision and real follow PostgreSQL (NaN
// equals NaN and sorts above every number; real arithmetic rounds to
// single precision); character(n) compares without trailing spaces but
// LIKE sees the padding, as in PostgreSQL; dates and timestamps are
// PostgreSQL's day and microsecond counts, infinities and BC dates
// included; timestamptz literals and conversions are pinned to UTC.
//
// # Why in-engine evaluation and not publication row filters
//
// PostgreSQL 15 can filter at the source (CREATE PUBLICATION ... FOR TABLE t
// WHERE (...)), and pgoutput applies the same UPDATE rule as Decide. sluice
// evaluates in the engine instead, for these reasons:
//
//   - The full copy cannot use them: a publication's row filter applies to
//     logical decoding and to the subscriber's table sync, not to sluice's
//     own COPY at the exported snapshot. The copy needs the condition as SQL
//     anyway (SQL), so one translation has to be exact in any case.
//   - For a publication that publishes UPDATE and DELETE, the columns of a
//     row filter must be covered by the table's replica identity; otherwise
//     PostgreSQL rejects the application's own UPDATEs and DELETEs on that
//     table at the source ("cannot update table ... Column used in the
//     publication WHERE expression is not part of the replica identity").
//     Filtering on amount or region would mean REPLICA IDENTITY FULL on
//     every filtered table (more WAL) or breaking the application.
//   - A row filter belongs to one table entry of one publication (a table
//     published by FOR ALL TABLES or FOR TABLES IN SCHEMA has none, a table
//     in several publications gets the OR of their filters), accepts only
//     simple expressions, and is source state changed only by ALTER
//     PUBLICATION, whose effect on changes already decoded is hard to line
//     up with the copy's snapshot.
//   - Sources before PostgreSQL 15 have no row filters.
//
// The cost is that filtered-out changes still cross the network, and
// that the engine needs the old row to know whether an UPDATE left the
// filter. Change handles the cases: with the filtered columns in the
// replica identity (or REPLICA IDENTITY FULL) it decides exactly as
// PostgreSQL does; otherwise it answers Upsert or DeleteIfPresent, which
// leave a keyed sink equal to the filtered source whatever the old row was.
package where
