// Package pipelines loads and validates sluice pipeline files.
//
// A pipeline file is YAML and describes one job: what to copy (objects),
// from where (source), to where (sink) and how (sync, copy):
//
//	name: demo                      # required: ^[a-z][a-z0-9_]{0,40}$ (slot sluice_<name>)
//	source: {type: postgres, dsn: "${SRC_DSN}"}
//	sink:   {type: postgres, dsn: "${DST_DSN}"}
//	sync:   {schema: true, full: true, incremental: false}
//	objects:
//	  - schema: public              # a whole schema
//	  - table: sales.orders         # one table: "schema.table" or "table" (schema public)
//	  - table: '"Sales"."Order Items"'
//	copy: {parallel: 4, chunk_rows: 100000}
//	state_dir: ./state/demo         # default ./state/<name>, relative to the file
//
// # Keys
//
// The keys a file may hold are the yaml tags of the [Pipeline] struct and
// the structs it contains, and defaults are their `default` tags: adding a
// key is adding a field. Checks that go beyond the type live in the
// validate method of the struct that holds the field. A key given with an
// empty value (key: or key: ~) counts as absent, so its default applies.
// YAML anchors, aliases and merge keys (<<) work as usual.
//
// # Environment variables
//
// Scalar values (never keys) may refer to environment variables:
// ${VAR} is the variable's value and an error if it is not set,
// ${VAR:-default} is the value or, if VAR is unset or empty, the literal
// text default (up to the first "}"), and $$ is a literal $. Any other $ is
// an error, so that a mistyped $VAR cannot pass silently. Substitution
// happens after the YAML is parsed, so a value can never change the
// structure of the file, and a substituted value always stays one scalar.
// Errors never print a substituted value; they name the key path and the
// variable instead, because a DSN may hold a password. Inside a flow
// mapping ({...}) quote a value holding ${VAR}: YAML reads its braces as
// the mapping's own (dsn: "${SRC_DSN}").
//
// # Errors
//
// Load and Parse report every problem they find, not just the first, as an
// errors.Join of [*Error] values, one per line, each starting with
// file:line when the place is known:
//
//	pipeline.yaml:7: objects[1]: unknown key "tabel" (valid keys: schema, table, where, rename, columns, operations)
//	pipeline.yaml: sink.dsn is required (a PostgreSQL connection string, e.g. "${DST_DSN}")
//
// List indexes in key paths count from 0.
package pipelines
