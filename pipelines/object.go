package pipelines

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"unicode"

	"gopkg.in/yaml.v3"

	"github.com/sluicehq/sluice/transforms/where"
)

// maxIdentLen is PostgreSQL's limit on an identifier in bytes
// (NAMEDATALEN-1). A longer name would be truncated by the server and
// silently mean another object.
const maxIdentLen = 63

// TableName parses o.Table into the schema and the table name. "orders"
// means public.orders. A part may be double-quoted, and must be if it
// contains a dot or a double quote; inside quotes "" stands for one ".
// Unquoted parts are taken literally, case and all: unlike SQL, Orders is
// not folded to orders. The error describes what is wrong but does not
// quote o.Table.
func (o Object) TableName() (schema, name string, err error) {
	if o.Table == "" {
		return "", "", errors.New("no table given")
	}
	parts, err := parseNames(o.Table)
	if err != nil {
		return "", "", err
	}
	switch len(parts) {
	case 1:
		return "public", parts[0], nil
	case 2:
		return parts[0], parts[1], nil
	default:
		return "", "", fmt.Errorf("%d dot-separated names where schema.table or table was expected; quote a name that contains a dot, e.g. \"sales\".\"q1.orders\"", len(parts))
	}
}

// SchemaName parses o.Schema, a single name written like one part of
// Table: quoted or not, unquoted taken literally.
func (o Object) SchemaName() (string, error) {
	if o.Schema == "" {
		return "", errors.New("no schema given")
	}
	parts, err := parseNames(o.Schema)
	if err != nil {
		return "", err
	}
	if len(parts) != 1 {
		return "", errors.New("a schema is a single name; quote it if it contains a dot, e.g. '\"my.schema\"'")
	}
	return parts[0], nil
}

// RenameTable parses o.Rename on a table item: the sink's schema and
// table name, written like Table ("orders" means public.orders). ok is
// false when o.Rename is empty.
func (o Object) RenameTable() (schema, name string, ok bool, err error) {
	if o.Rename == "" {
		return "", "", false, nil
	}
	schema, name, err = Object{Table: o.Rename}.TableName()
	return schema, name, err == nil, err
}

// RenameSchema parses o.Rename on a schema item: the sink schema's name,
// written like Schema. ok is false when o.Rename is empty.
func (o Object) RenameSchema() (name string, ok bool, err error) {
	if o.Rename == "" {
		return "", false, nil
	}
	name, err = Object{Schema: o.Rename}.SchemaName()
	return name, err == nil, err
}

// Operations are the DML operations the operations key accepts.
var Operations = []string{"insert", "update", "delete", "truncate"}

// parseNames splits a dotted list of names, each quoted or not.
func parseNames(s string) ([]string, error) {
	var parts []string
	for i := 0; ; {
		var part string
		if i < len(s) && s[i] == '"' {
			var b strings.Builder
			j := i + 1
			for {
				k := strings.IndexByte(s[j:], '"')
				if k < 0 {
					return nil, errors.New(`a quoted name has no closing "`)
				}
				b.WriteString(s[j : j+k])
				j += k + 1
				if j < len(s) && s[j] == '"' { // "" is one "
					b.WriteByte('"')
					j++
					continue
				}
				break
			}
			part = b.String()
			if part == "" {
				return nil, errors.New(`"" is an empty name`)
			}
			i = j
			if i < len(s) && s[i] != '.' {
				return nil, errors.New(`a quoted name must be followed by a dot or nothing; quote the whole name`)
			}
		} else {
			j := strings.IndexByte(s[i:], '.')
			if j < 0 {
				j = len(s) - i
			}
			part = s[i : i+j]
			i += j
			switch {
			case part == "":
				return nil, errors.New("empty name (two dots in a row, or a dot at the start or end)")
			case strings.Contains(part, `"`):
				return nil, errors.New(`a double quote inside an unquoted name; quote the whole name and double the quote, e.g. "a""b"`)
			case strings.TrimFunc(part, unicode.IsSpace) != part:
				return nil, errors.New("an unquoted name starts or ends with a space; remove it, or quote the name if the space belongs to it")
			}
		}
		if strings.IndexByte(part, 0) >= 0 {
			return nil, errors.New("a name contains a NUL byte")
		}
		if len(part) > maxIdentLen {
			return nil, fmt.Errorf("a name is %d bytes long; PostgreSQL names are at most %d", len(part), maxIdentLen)
		}
		parts = append(parts, part)
		if i == len(s) {
			return parts, nil
		}
		i++ // the dot
		if i == len(s) {
			return nil, errors.New("empty name (two dots in a row, or a dot at the start or end)")
		}
	}
}

// objectPath is the key path of the i-th item of objects.
func objectPath(i int) string { return fmt.Sprintf("objects[%d]", i) }

// validateObjects checks each item and that none is listed twice.
func validateObjects(d *decoder, objs []Object) {
	if len(objs) == 0 {
		if e, given := d.nodes["objects"]; given && e.value.Kind == yaml.SequenceNode {
			d.problem("objects", `the list is empty; list at least one schema or table, e.g. "- schema: public" or "- table: sales.orders"`)
			return
		}
		d.required("objects", `the schemas and tables to copy, e.g. "- schema: public" or "- table: sales.orders"`)
		return
	}
	type seen struct {
		index int
		line  int
	}
	schemas := map[string]seen{}
	tables := map[[2]string]seen{}
	for i, o := range objs {
		path := objectPath(i)
		switch {
		case o.Schema != "" && o.Table != "":
			d.problem(path, "give either schema or table, not both (use two items to copy a schema and a table)")
		case o.Schema == "" && o.Table == "":
			d.problem(path, `give schema or table, e.g. "schema: public" or "table: sales.orders"`)
		case o.Schema != "":
			if o.Where != "" {
				d.problem(path+".where", "a where condition applies to one table; give it on a table item")
			}
			if o.Columns != nil {
				d.problem(path+".columns", "column renames apply to one table; give them on a table item")
			}
			if _, _, err := o.RenameSchema(); err != nil {
				d.problem(path+".rename", "%s is not a valid schema name: %v", d.show(path+".rename", o.Rename), err)
			}
			validateOperations(d, path, o.Operations)
			s, err := o.SchemaName()
			if err != nil {
				d.problem(path+".schema", "%s is not a valid schema name: %v", d.show(path+".schema", o.Schema), err)
				continue
			}
			if prev, dup := schemas[s]; dup {
				d.duplicate(path, objectPath(prev.index), prev.line, fmt.Sprintf("schema %q", s))
				continue
			}
			schemas[s] = seen{i, o.Line}
		default:
			if o.Where != "" {
				if err := where.Parse(o.Where); err != nil {
					d.problem(path+".where", "%s is not a valid condition: %v", d.show(path+".where", o.Where), err)
				}
			}
			if _, _, _, err := o.RenameTable(); err != nil {
				d.problem(path+".rename", "%s is not a valid table name: %v", d.show(path+".rename", o.Rename), err)
			}
			validateColumns(d, path+".columns", o.Columns)
			validateOperations(d, path, o.Operations)
			sc, t, err := o.TableName()
			if err != nil {
				d.problem(path+".table", "%s is not a valid table name: %v", d.show(path+".table", o.Table), err)
				continue
			}
			key := [2]string{sc, t}
			if prev, dup := tables[key]; dup {
				d.duplicate(path, objectPath(prev.index), prev.line, fmt.Sprintf("table %q.%q", sc, t))
				continue
			}
			tables[key] = seen{i, o.Line}
		}
	}
}

// validateColumns checks the names of a columns mapping: source and sink
// names are taken literally, so only emptiness, NUL bytes and length can
// be wrong here; the source's catalog decides the rest.
func validateColumns(d *decoder, path string, cols map[string]*string) {
	for _, from := range sortedKeys(cols) {
		p := keyPath(path, from)
		if msg := columnNameProblem(from); msg != "" {
			d.problem(p, "the source column name %s %s", d.show(p, from), msg)
			continue
		}
		if to := cols[from]; to != nil {
			if msg := columnNameProblem(*to); msg != "" {
				d.problem(p, "the sink column name %s %s (write null to drop the column)", d.show(p, *to), msg)
			}
		}
	}
}

func columnNameProblem(s string) string {
	switch {
	case s == "":
		return "is empty"
	case strings.IndexByte(s, 0) >= 0:
		return "contains a NUL byte"
	case len(s) > maxIdentLen:
		return fmt.Sprintf("is %d bytes long; PostgreSQL names are at most %d", len(s), maxIdentLen)
	}
	return ""
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// validateOperations checks an operations list: known names, none twice.
func validateOperations(d *decoder, path string, ops []string) {
	seen := map[string]bool{}
	for i, op := range ops {
		p := fmt.Sprintf("%s.operations[%d]", path, i)
		if !slices.Contains(Operations, op) {
			d.problem(p, "%s is not an operation (valid: %s)", d.show(p, op), strings.Join(Operations, ", "))
			continue
		}
		if seen[op] {
			d.problem(p, "%s is listed twice; remove one", d.show(p, op))
		}
		seen[op] = true
	}
	if ops != nil && len(ops) == 0 {
		d.problem(path+".operations", "the list is empty; list the operations to copy (%s), or remove the key for all", strings.Join(Operations, ", "))
	}
}
