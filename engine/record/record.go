// Package record holds the types that flow between pipeline stages: a
// Record is one row change, a Batch an ordered run of records ending at a
// source position. It is a leaf package: it imports nothing of sluice's, so
// every stage, built in or external, can depend on it.
package record

import (
	"fmt"
	"strings"
)

// Op is the kind of change a record carries.
type Op uint8

// The operations a record can carry. Snapshot rows are Insert.
const (
	Insert Op = iota + 1
	Update
	Delete
	Truncate
	DDL
)

// String returns the lower-case name of the operation, as used in pipeline
// files ("insert", "update", ...).
func (o Op) String() string {
	switch o {
	case Insert:
		return "insert"
	case Update:
		return "update"
	case Delete:
		return "delete"
	case Truncate:
		return "truncate"
	case DDL:
		return "ddl"
	}
	return fmt.Sprintf("op(%d)", uint8(o))
}

// Format says how a value's bytes are encoded: PostgreSQL's text or binary
// representation of the column's type.
type Format uint8

// Value formats, matching PostgreSQL's wire format codes plus one.
const (
	Text Format = iota
	Binary
)

// TableName is a schema-qualified table name, unquoted.
type TableName struct {
	Schema string
	Name   string
}

// String renders the name as schema.table with each part quoted only when
// needed for readability in messages. It is not for building SQL: use
// Quoted for that.
func (t TableName) String() string {
	return displayIdent(t.Schema) + "." + displayIdent(t.Name)
}

// Quoted renders the name as a SQL identifier, both parts always quoted.
func (t TableName) Quoted() string {
	return QuoteIdent(t.Schema) + "." + QuoteIdent(t.Name)
}

// QuoteIdent quotes a SQL identifier, doubling embedded quotes. It always
// quotes, so reserved words, mixed case and any character are safe.
func QuoteIdent(s string) string {
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}

func displayIdent(s string) string {
	if s == "" {
		return `""`
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_') {
			return QuoteIdent(s)
		}
	}
	return s
}

// Column describes one column of a relation as the source sees it.
type Column struct {
	Name    string
	TypeOID uint32
	// TypeName is the SQL spelling of the type with its modifier, as
	// PostgreSQL's format_type prints it (already quoted where needed).
	TypeName string
	// Key is true when the column is part of the relation's identity (its
	// primary key, the replica identity index, or all columns when the
	// relation has no key).
	Key bool
}

// Relation is the shape of a table at a point in the stream: the columns a
// record's values line up with.
type Relation struct {
	ID      uint32 // the source's OID of the table
	Table   TableName
	Columns []Column
}

// ColumnIndex returns the position of the named column, or -1.
func (r *Relation) ColumnIndex(name string) int {
	for i, c := range r.Columns {
		if c.Name == name {
			return i
		}
	}
	return -1
}

// Value is one column value in the form the source sent it. A nil Data with
// Null false never occurs; Unchanged marks a TOASTed value the source did
// not send because it did not change (the sink keeps what it has).
type Value struct {
	Data      []byte
	Null      bool
	Unchanged bool
}

// LSN is a PostgreSQL write-ahead-log position.
type LSN uint64

// String renders the LSN the way PostgreSQL does (XXX/XXX).
func (l LSN) String() string {
	return fmt.Sprintf("%X/%X", uint32(l>>32), uint32(l))
}

// ParseLSN parses PostgreSQL's XXX/XXX notation.
func ParseLSN(s string) (LSN, error) {
	var hi, lo uint32
	if _, err := fmt.Sscanf(s, "%X/%X", &hi, &lo); err != nil {
		return 0, fmt.Errorf("parse LSN %q: %w", s, err)
	}
	return LSN(uint64(hi)<<32 | uint64(lo)), nil
}

// Record is one row change. New holds the row after the change (insert,
// update); Old holds the key or the whole old row (update, delete) when the
// source sent it. Values line up with Rel.Columns.
type Record struct {
	Op     Op
	Rel    *Relation
	Format Format
	New    []Value
	Old    []Value
	// DDL holds the statement text when Op is DDL.
	DDL string
	// Position is the source position of the change: the commit LSN of its
	// transaction for streamed changes, zero for snapshot rows.
	Position LSN
}

// Batch is an ordered run of records: whole source transactions, or one
// snapshot chunk. End is the position reached once the batch is applied.
type Batch struct {
	Records []Record
	End     LSN
	// Bytes is the total size of the values in the batch, for throttling
	// and progress.
	Bytes int64
}

// Len returns the number of records in the batch.
func (b *Batch) Len() int { return len(b.Records) }
