package verify

import (
	"strconv"
	"strings"
	"time"
)

// Kind is how a row differs between source and sink.
type Kind string

// The kinds of difference.
const (
	// Missing: the source has the row, the sink does not.
	Missing Kind = "missing"
	// Extra: the sink has a row the source does not.
	Extra Kind = "extra"
	// Different: both have a row with this key, with other values.
	Different Kind = "different"
)

// Diff is one differing row.
type Diff struct {
	Kind Kind `json:"kind"`
	// Key is the row's key as text, one value per key column of the table
	// (TableReport.Key). Empty for a table without a key.
	Key []string `json:"key,omitempty"`
	// Columns lists the compared columns whose values differ (Different
	// only; source names).
	Columns []string `json:"columns,omitempty"`
	// Row is the text of a row of a table without a key, cut to 200
	// characters, and Copies how many more copies of it one side has than
	// the other.
	Row    string `json:"row,omitempty"`
	Copies int64  `json:"copies,omitempty"`
	// Text is the difference as Format renders it.
	Text string `json:"text"`
}

// Format renders the difference for people, with the key columns' names:
// "missing at sink: id=42", "different: a=1, b=x (columns: n)".
func (d Diff) Format(keyCols []string) string {
	var b strings.Builder
	switch d.Kind {
	case Missing:
		b.WriteString("missing at sink: ")
	case Extra:
		b.WriteString("extra at sink: ")
	default:
		b.WriteString(string(d.Kind) + ": ")
	}
	if len(d.Key) > 0 {
		for i, v := range d.Key {
			if i > 0 {
				b.WriteString(", ")
			}
			if i < len(keyCols) {
				b.WriteString(displayName(keyCols[i]) + "=")
			}
			b.WriteString(displayValue(v))
		}
	} else {
		b.WriteString(d.Row)
		if d.Copies > 1 {
			b.WriteString(" (×" + strconv.FormatInt(d.Copies, 10) + ")")
		}
	}
	if len(d.Columns) > 0 {
		names := make([]string, len(d.Columns))
		for i, c := range d.Columns {
			names[i] = displayName(c)
		}
		b.WriteString(" (columns: " + strings.Join(names, ", ") + ")")
	}
	return b.String()
}

// TableReport is the comparison of one table.
type TableReport struct {
	// Table is the source table and SinkTable its name at the sink, both
	// as schema.table, quoted where needed.
	Table     string `json:"table"`
	SinkTable string `json:"sink_table"`
	// Key lists the key columns the rows were matched by (source names);
	// empty for a table without a key, compared as a multiset of rows.
	Key []string `json:"key,omitempty"`
	// Method is how the table was split: "key" (key ranges), "whole" (one
	// chunk) or "hash" (rows of a table without a key, by hash bucket).
	Method     string `json:"method"`
	SourceRows int64  `json:"source_rows"`
	SinkRows   int64  `json:"sink_rows"`
	Chunks     int    `json:"chunks"`
	// Mismatched counts the chunks that still differ after the re-checks;
	// Rechecked the chunks that differed at first and were equal on a
	// re-check (a streaming pipeline caught up).
	Mismatched int `json:"mismatched_chunks"`
	Rechecked  int `json:"rechecked_chunks"`
	// Missing, Extra and Different count the differing rows (for a table
	// without a key: row copies missing or extra).
	Missing   int64 `json:"missing"`
	Extra     int64 `json:"extra"`
	Different int64 `json:"different"`
	// Diffs lists the first differences (at most Config.MaxDiffRows), in
	// key order within each chunk; Truncated is set when there are more.
	Diffs     []Diff `json:"diffs,omitempty"`
	Truncated bool   `json:"truncated,omitempty"`
	// Error says why the table could not be compared (e.g. it is missing
	// at the sink); the table then counts as different.
	Error string `json:"error,omitempty"`
}

// Equal reports whether the table is the same on both sides.
func (t *TableReport) Equal() bool {
	return t.Error == "" && t.Mismatched == 0 && t.SourceRows == t.SinkRows &&
		t.Missing == 0 && t.Extra == 0 && t.Different == 0
}

// Differences is the number of differing rows.
func (t *TableReport) Differences() int64 { return t.Missing + t.Extra + t.Different }

// Report is the result of a verification.
type Report struct {
	Tables []*TableReport `json:"tables"`
	// SourceRows and SinkRows are the totals over the tables.
	SourceRows int64 `json:"source_rows"`
	SinkRows   int64 `json:"sink_rows"`
	Chunks     int   `json:"chunks"`
	Mismatched int   `json:"mismatched_chunks"`
	// Rechecks is how many re-check rounds ran.
	Rechecks int           `json:"rechecks"`
	Duration time.Duration `json:"-"`
	Seconds  float64       `json:"seconds"`
}

// Equal reports whether every table is the same on both sides.
func (r *Report) Equal() bool {
	for _, t := range r.Tables {
		if !t.Equal() {
			return false
		}
	}
	return true
}

// Differing returns the tables that are not equal.
func (r *Report) Differing() []*TableReport {
	var out []*TableReport
	for _, t := range r.Tables {
		if !t.Equal() {
			out = append(out, t)
		}
	}
	return out
}

// RowsPerSec is the source rows compared per second.
func (r *Report) RowsPerSec() float64 {
	if r.Duration <= 0 {
		return 0
	}
	return float64(r.SourceRows) / r.Duration.Seconds()
}

// displayName shows an identifier as SQL would need it only when it has to:
// plain lower-case names bare, others quoted.
func displayName(s string) string {
	if s == "" {
		return `""`
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_') {
			return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
		}
	}
	return s
}

// displayValue shows a key value bare when that is unambiguous, else
// Go-quoted.
func displayValue(s string) string {
	if s == "" || strings.ContainsAny(s, " ,=\"'\\()") {
		return strconv.Quote(s)
	}
	for _, r := range s {
		if !strconv.IsPrint(r) {
			return strconv.Quote(s)
		}
	}
	return s
}
