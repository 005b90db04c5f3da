package pipelines

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"regexp"

	"github.com/go-viper/mapstructure/v2"
	kyaml "github.com/knadh/koanf/parsers/yaml"
	"github.com/knadh/koanf/providers/confmap"
	"github.com/knadh/koanf/providers/rawbytes"
	"github.com/knadh/koanf/v2"
	"gopkg.in/yaml.v3"
)

// Pipeline is one loaded and validated pipeline file. Load and Parse fill
// in every default, so a caller never needs to check for zero values.
type Pipeline struct {
	// Name identifies the pipeline: the replication slot is sluice_<Name>
	// and the state is kept under it. It matches ^[a-z][a-z0-9_]{0,40}$.
	Name string `yaml:"name"`
	// Source is the database read from.
	Source Endpoint `yaml:"source"`
	// Sink is the database written to.
	Sink Endpoint `yaml:"sink"`
	// Sync says which phases run; at least one is on.
	Sync Sync `yaml:"sync"`
	// Objects lists what to copy, in file order; never empty, no duplicates.
	Objects []Object `yaml:"objects"`
	// Transforms are the stages records go through, in order, between the
	// objects' where conditions and the renames (see Transform).
	Transforms []Transform `yaml:"transforms"`
	// Rename holds bulk table renames and the case policy of sink names.
	Rename Rename `yaml:"rename"`
	// Copy tunes the full copy.
	Copy Copy `yaml:"copy"`
	// Stream tunes streaming.
	Stream Stream `yaml:"stream"`
	// Throttle limits rates, apart for the full copy and streaming.
	Throttle Throttle `yaml:"throttle"`
	// Retry sets how long errors are retried before the pipeline stops.
	Retry Retry `yaml:"retry"`
	// Metrics serves Prometheus metrics when Listen is set.
	Metrics Metrics `yaml:"metrics"`
	// Alerts fire on lag and failure.
	Alerts Alerts `yaml:"alerts"`
	// OnConflictingTables says what to do with a selected table that
	// already exists at the sink holding rows: "error" (the default: check
	// and run stop, naming it) or "ignore" (copy into it anyway; on a key
	// clash the full copy keeps the sink's row, streaming overwrites it).
	OnConflictingTables string `yaml:"on_conflicting_tables" default:"error"`
	// IgnoreChecks lists precheck warnings acknowledged by name; failures
	// cannot be ignored.
	IgnoreChecks []string `yaml:"ignore_checks"`
	// StateDir is the directory of the pipeline's local state. A relative
	// path in the file is relative to the file's directory; Load returns it
	// joined to that directory, so it is usable from the current directory.
	// Default: state/<Name> next to the file.
	StateDir string `yaml:"state_dir"`
	// File is the path the pipeline was loaded from, as given to Load or
	// Parse.
	File string `yaml:"-"`
}

// Endpoint is a database the pipeline reads from or writes to.
type Endpoint struct {
	// Type is the plugin that talks to the database. Default "postgres",
	// for now the only one.
	Type string `yaml:"type" default:"postgres"`
	// DSN is the connection string, as a URL (postgres://user:pw@host/db)
	// or as key=value pairs (host=h dbname=db). Load checks that it parses
	// (pgconn.ParseConfig, which also reads the PG* environment variables
	// of this process and .pgpass) but does not connect.
	DSN Secret `yaml:"dsn"`
}

// Sync says which phases of a pipeline run.
type Sync struct {
	// Schema copies the schema (tables first, indexes and constraints
	// after the data). Default true.
	Schema bool `yaml:"schema" default:"true"`
	// Full copies the existing rows at a consistent snapshot. Default true.
	Full bool `yaml:"full" default:"true"`
	// Incremental streams every committed change after the snapshot.
	// Default false.
	Incremental bool `yaml:"incremental" default:"false"`
}

// Object is one item of the objects list: a whole schema or one table.
// Exactly one of Schema and Table is set.
//
// Both are written the way they appear in the file: a name may be
// double-quoted, and must be if it contains a dot or a double quote
// ("" inside quotes is one "). Unlike SQL, an unquoted name is taken
// literally with its case kept: Orders means the table Orders, not
// orders. Use SchemaName and TableName for the parsed names.
type Object struct {
	// Schema names a whole schema, e.g. public or "My Schema".
	Schema string `yaml:"schema"`
	// Table names one table as schema.table, or table for a table in the
	// schema public, e.g. sales.orders or "Sales"."Order Items".
	Table string `yaml:"table"`
	// Where keeps only the rows satisfying a SQL boolean expression over
	// the table's columns, in the full copy and in the stream, e.g.
	// amount > 100 AND region IN ('eu','us'). Only on a table. Load checks
	// its syntax; the columns and types are checked against the source's
	// catalog when the pipeline runs.
	Where string `yaml:"where"`
	// Rename gives the sink name: schema.table (or table, in public) for a
	// table, a schema name for a schema (every table of it goes there),
	// written like Table and Schema. Use RenameTable and RenameSchema.
	Rename string `yaml:"rename"`
	// Columns renames columns of a table (source name → sink name); a null
	// sink name drops the column. Only on a table. Names are taken
	// literally, dots and all.
	Columns map[string]*string `yaml:"columns"`
	// Operations lists the DML that reaches the sink: insert, update,
	// delete, truncate. Empty means all.
	Operations []string `yaml:"operations"`
	// Line is the line of this item in the file (0 if unknown).
	Line int `yaml:"-"`
}

// Copy tunes the full copy.
type Copy struct {
	// Parallel is the number of tables or chunks copied at once, 1..64.
	// Default 4.
	Parallel int `yaml:"parallel" default:"4"`
	// ChunkRows is the number of rows a big table's chunk aims at, at
	// least 1000. Default 100000.
	ChunkRows int64 `yaml:"chunk_rows" default:"100000"`
	// ToastCompression is how the copy compresses large (TOASTed) values
	// it writes at the sink, for columns without a compression method of
	// their own: "auto" (the default: lz4 when the sink has it and its
	// default_toast_compression is still PostgreSQL's built-in default,
	// else the sink's setting), "lz4", "pglz", or "server" (always the
	// sink's setting). lz4 compresses several times faster than pglz;
	// values read back identical either way.
	ToastCompression string `yaml:"toast_compression" default:"auto"`
	// SharedScanMaxMB is the size up to which a table of several chunks
	// whose rows pass through unchanged is read by one sequential scan,
	// its rows shared out among the workers' writers, instead of one
	// query per chunk: the source then reads through a small ring of
	// buffers rather than its whole buffer pool, which costs it markedly
	// less CPU. Its chunks still commit one by one at the sink, but an
	// interrupted copy of such a table restarts it whole. 0 turns it off
	// (every chunk read by its own query, resumable one by one). Default
	// 4096 (4 GiB).
	SharedScanMaxMB int64 `yaml:"shared_scan_max_mb" default:"4096"`
}

// Load reads, validates and returns the pipeline file at path. env looks up
// the environment variables the file refers to as ${VAR}; pass
// os.LookupEnv in production. A nil env knows no variables.
//
// A file that cannot be read gives an error starting "open pipeline: ".
// Any problem inside the file gives an errors.Join of [*Error] values. On
// error the returned pipeline is nil.
func Load(path string, env func(string) (string, bool)) (*Pipeline, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			return nil, fmt.Errorf("open pipeline: %s: %w", pe.Path, pe.Err)
		}
		return nil, fmt.Errorf("open pipeline: %w", err)
	}
	return Parse(data, path, env)
}

// Parse is Load for a file already read: data is its content and file its
// path, used in error messages (shown as "pipeline" if empty) and as the
// base of a relative state_dir.
func Parse(data []byte, file string, env func(string) (string, bool)) (*Pipeline, error) {
	if env == nil {
		env = func(string) (string, bool) { return "", false }
	}
	d := newDecoder(file, env)
	root := d.parseYAML(data)
	if root == nil {
		return nil, d.err()
	}
	if !d.walk(root, reflect.TypeFor[Pipeline](), "") {
		return nil, d.err()
	}
	p, err := d.decode(root)
	if err != nil {
		return nil, err
	}
	p.File = file
	for i := range p.Objects {
		p.Objects[i].Line = d.line(objectPath(i))
	}
	for i := range p.Transforms {
		p.Transforms[i].Line = d.line(transformPath(i))
	}
	p.Rename.CaseLine = d.line("rename.case")
	for i := range p.Rename.Tables {
		p.Rename.Tables[i].Line = d.line(fmt.Sprintf("rename.tables[%d]", i))
	}
	p.validate(d)
	if err := d.err(); err != nil {
		return nil, err
	}
	if p.StateDir == "" {
		p.StateDir = filepath.Join("state", p.Name)
	}
	if !filepath.IsAbs(p.StateDir) {
		p.StateDir = filepath.Join(filepath.Dir(file), p.StateDir)
	}
	p.resolvePluginPaths(file)
	return p, nil
}

// decode hands the checked, interpolated tree to koanf: defaults first
// (from the struct tags), the file over them, then into the struct.
func (d *decoder) decode(root *yaml.Node) (*Pipeline, error) {
	data, err := yaml.Marshal(root)
	if err != nil {
		d.add(0, "", fmt.Sprintf("internal error: re-encoding the checked file: %v", err))
		return nil, d.err()
	}
	k := koanf.New(".")
	if err := k.Load(confmap.Provider(defaults(reflect.TypeFor[Pipeline]()), "."), nil); err != nil {
		d.add(0, "", fmt.Sprintf("internal error: loading defaults: %v", err))
		return nil, d.err()
	}
	if err := k.Load(rawbytes.Provider(data), kyaml.Parser()); err != nil {
		d.add(0, "", fmt.Sprintf("internal error: loading the checked file: %v", err))
		return nil, d.err()
	}
	var p Pipeline
	err = k.UnmarshalWithConf("", &p, koanf.UnmarshalConf{
		Tag: "yaml",
		DecoderConfig: &mapstructure.DecoderConfig{
			DecodeHook:  mapstructure.StringToTimeDurationHookFunc(),
			ErrorUnused: true,
		},
	})
	if err != nil {
		// The walk checked keys and types already, so this is our bug;
		// mapstructure's message may quote a value, so it is not shown.
		d.add(0, "", "internal error: decoding the checked file failed; please report this")
		return nil, d.err()
	}
	return &p, nil
}

// nameRE is the form of a pipeline name: it becomes part of the replication
// slot name sluice_<name>, which PostgreSQL limits to 63 lower-case
// letters, digits and underscores.
var nameRE = regexp.MustCompile(`^[a-z][a-z0-9_]{0,40}$`)

func (p *Pipeline) validate(d *decoder) {
	switch {
	case p.Name == "":
		d.required("name", `a short name for this pipeline, e.g. "name: orders_sync"; it names the replication slot sluice_<name> and the state`)
	case !nameRE.MatchString(p.Name):
		d.problem("name", "%s is not a valid name: it must match %s (a lower-case letter, then up to 40 lower-case letters, digits or _) because it becomes part of the replication slot name sluice_<name>",
			d.show("name", p.Name), nameRE.String())
	}
	p.Source.validate(d, "source", "${SRC_DSN}")
	p.Sink.validate(d, "sink", "${DST_DSN}")
	p.Sync.validate(d, "sync")
	validateObjects(d, p.Objects)
	validateTransforms(d, p.Transforms)
	p.Rename.validate(d, "rename")
	p.Copy.validate(d, "copy")
	p.Stream.validate(d, "stream")
	p.Throttle.validate(d, "throttle")
	p.Retry.validate(d, "retry")
	p.Metrics.validate(d, "metrics")
	p.Alerts.validate(d, "alerts")
	if p.OnConflictingTables != "error" && p.OnConflictingTables != "ignore" {
		d.problem("on_conflicting_tables", "%s is not valid: use error (stop when a selected table exists at the sink with rows) or ignore (copy into it, keeping the sink's rows on a key clash)",
			d.show("on_conflicting_tables", p.OnConflictingTables))
	}
}

func (e Endpoint) validate(d *decoder, path, example string) {
	if e.Type != "postgres" {
		d.problem(path+".type", "%s is not a supported type (supported: postgres)", d.show(path+".type", e.Type))
		return
	}
	dsnPath := path + ".dsn"
	if e.DSN == "" {
		d.required(dsnPath, fmt.Sprintf("a PostgreSQL connection string, e.g. %q", example))
		return
	}
	if msg := checkDSN(e.DSN); msg != "" {
		d.problem(dsnPath, "not a valid PostgreSQL connection string: %s", msg)
	}
}

func (s Sync) validate(d *decoder, path string) {
	if !s.Schema && !s.Full && !s.Incremental {
		d.problem(path, "at least one of schema, full, incremental must be true")
	}
}

func (c Copy) validate(d *decoder, path string) {
	if c.Parallel < 1 || c.Parallel > 64 {
		d.problem(path+".parallel", "must be between 1 and 64, got %s", d.show(path+".parallel", c.Parallel))
	}
	if c.ChunkRows < 1000 {
		d.problem(path+".chunk_rows", "must be at least 1000, got %s", d.show(path+".chunk_rows", c.ChunkRows))
	}
	switch c.ToastCompression {
	case "auto", "lz4", "pglz", "server":
	default:
		d.problem(path+".toast_compression", "%s is not valid: use auto (lz4 where the sink has it), lz4, pglz or server (the sink's default_toast_compression)", d.show(path+".toast_compression", c.ToastCompression))
	}
	if c.SharedScanMaxMB < 0 {
		d.problem(path+".shared_scan_max_mb", "must be 0 (off) or a size in MiB, got %s", d.show(path+".shared_scan_max_mb", c.SharedScanMaxMB))
	}
}
