package where

import (
	"github.com/sluicehq/sluice/engine/record"
)

// typ is a SQL type the filter knows.
type typ uint8

const (
	tyUnknown     typ = iota // an untyped string literal or NULL, typed by its context
	tyBool                   // boolean
	tyInt2                   // smallint
	tyInt4                   // integer
	tyInt8                   // bigint
	tyNumeric                // numeric
	tyFloat4                 // real
	tyFloat8                 // double precision
	tyText                   // text
	tyVarchar                // character varying
	tyBpchar                 // character(n), compared without trailing spaces
	tyDate                   // date
	tyTimestamp              // timestamp without time zone
	tyTimestamptz            // timestamp with time zone
	tyUUID                   // uuid
	tyOther                  // a column of another type: IS [NOT] NULL only
)

// Type OIDs of the types the filter can look into (pg_type.oid, fixed in
// every PostgreSQL).
const (
	OIDBool        = 16
	OIDInt8        = 20
	OIDInt2        = 21
	OIDInt4        = 23
	OIDText        = 25
	OIDFloat4      = 700
	OIDFloat8      = 701
	OIDBpchar      = 1042
	OIDVarchar     = 1043
	OIDDate        = 1082
	OIDTimestamp   = 1114
	OIDTimestamptz = 1184
	OIDNumeric     = 1700
	OIDUUID        = 2950
)

var oidTypes = map[uint32]typ{
	OIDBool: tyBool, OIDInt2: tyInt2, OIDInt4: tyInt4, OIDInt8: tyInt8, OIDNumeric: tyNumeric,
	OIDFloat4: tyFloat4, OIDFloat8: tyFloat8, OIDText: tyText, OIDVarchar: tyVarchar, OIDBpchar: tyBpchar,
	OIDDate: tyDate, OIDTimestamp: tyTimestamp, OIDTimestamptz: tyTimestamptz, OIDUUID: tyUUID,
}

func typeOfOID(oid uint32) typ {
	if t, ok := oidTypes[oid]; ok {
		return t
	}
	return tyOther
}

// sqlName is the type's name as SQL() writes it in casts: keywords where
// PostgreSQL has one (they always mean the built-in type), else the
// built-in name.
func (t typ) sqlName() string {
	switch t {
	case tyBool:
		return "boolean"
	case tyInt2:
		return "smallint"
	case tyInt4:
		return "integer"
	case tyInt8:
		return "bigint"
	case tyNumeric:
		return "numeric"
	case tyFloat4:
		return "real"
	case tyFloat8:
		return "double precision"
	case tyText:
		return "text"
	case tyVarchar:
		return "character varying"
	case tyBpchar:
		return "bpchar"
	case tyDate:
		return "date"
	case tyTimestamp:
		return "timestamp without time zone"
	case tyTimestamptz:
		return "timestamp with time zone"
	case tyUUID:
		return "uuid"
	case tyUnknown:
		return "unknown"
	}
	return "other"
}

// String is the type's name in messages.
func (t typ) String() string {
	switch t {
	case tyBpchar:
		return "character"
	case tyTimestamp:
		return "timestamp"
	case tyTimestamptz:
		return "timestamptz"
	}
	return t.sqlName()
}

// typeNames maps the type names a user may write (normalized by the
// parser) to types. A quoted name is prefixed with " and must match a
// built-in name exactly.
var typeNames = map[string]typ{
	"bool": tyBool, "boolean": tyBool,
	"int2": tyInt2, "smallint": tyInt2,
	"int4": tyInt4, "int": tyInt4, "integer": tyInt4,
	"int8": tyInt8, "bigint": tyInt8,
	"numeric": tyNumeric, "decimal": tyNumeric,
	"float4": tyFloat4, "real": tyFloat4,
	"float8": tyFloat8, "double precision": tyFloat8, "float": tyFloat8,
	"text":    tyText,
	"varchar": tyVarchar, "character varying": tyVarchar, "char varying": tyVarchar,
	"bpchar":    tyBpchar,
	"date":      tyDate,
	"timestamp": tyTimestamp, "timestamp without time zone": tyTimestamp,
	"timestamptz": tyTimestamptz, "timestamp with time zone": tyTimestamptz,
	"uuid":  tyUUID,
	`"bool`: tyBool, `"int2`: tyInt2, `"int4`: tyInt4, `"int8`: tyInt8, `"numeric`: tyNumeric,
	`"float4`: tyFloat4, `"float8`: tyFloat8, `"text`: tyText, `"varchar`: tyVarchar,
	`"bpchar`: tyBpchar, `"date`: tyDate, `"timestamp`: tyTimestamp, `"timestamptz`: tyTimestamptz,
	`"uuid`: tyUUID,
}

// category groups types as PostgreSQL's pg_type.typcategory does: implicit
// conversions and common types stay within a category.
type category uint8

const (
	catNone category = iota
	catBool
	catNumber
	catString
	catDatetime
	catUUID
)

func (t typ) cat() category {
	switch t {
	case tyBool:
		return catBool
	case tyInt2, tyInt4, tyInt8, tyNumeric, tyFloat4, tyFloat8:
		return catNumber
	case tyText, tyVarchar, tyBpchar:
		return catString
	case tyDate, tyTimestamp, tyTimestamptz:
		return catDatetime
	case tyUUID:
		return catUUID
	}
	return catNone
}

// rank orders the types of the number and date-time categories by
// PostgreSQL's implicit casts: a type converts implicitly to every type of
// higher rank in its category, never to a lower one.
func (t typ) rank() int {
	switch t {
	case tyInt2, tyDate:
		return 1
	case tyInt4, tyTimestamp:
		return 2
	case tyInt8, tyTimestamptz:
		return 3
	case tyNumeric:
		return 4
	case tyFloat4:
		return 5
	case tyFloat8:
		return 6
	}
	return 0
}

func (t typ) isInt() bool   { return t == tyInt2 || t == tyInt4 || t == tyInt8 }
func (t typ) isFloat() bool { return t == tyFloat4 || t == tyFloat8 }

// implicitCast reports whether PostgreSQL converts from to to implicitly
// (pg_cast.castcontext = 'i'), identity included.
func implicitCast(from, to typ) bool {
	if from == to {
		return true
	}
	if from.cat() != to.cat() {
		return false
	}
	switch from.cat() {
	case catNumber, catDatetime:
		return from.rank() < to.rank()
	case catString:
		return true
	}
	return false
}

// preferred reports PostgreSQL's preferred type of a category
// (pg_type.typispreferred) among ours.
func (t typ) preferred() bool {
	return t == tyFloat8 || t == tyText || t == tyTimestamptz || t == tyBool
}

// commonType is PostgreSQL's select_common_type over types (tyUnknown for
// untyped literals), as used by COALESCE and IN lists: ok is false when
// two categories meet.
func commonType(types []typ) (typ, bool) {
	p := tyUnknown
	for _, t := range types {
		switch {
		case t == tyUnknown || t == p:
		case p == tyUnknown:
			p = t
		case t.cat() != p.cat():
			return tyUnknown, false
		case !p.preferred() && implicitCast(p, t) && !implicitCast(t, p):
			p = t
		}
	}
	if p == tyUnknown {
		p = tyText
	}
	return p, true
}

// quoteIdent quotes an identifier for SQL and for messages.
func quoteIdent(s string) string { return record.QuoteIdent(s) }
