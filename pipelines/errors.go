package pipelines

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Error is one problem in a pipeline file. Load and Parse return all they
// find as an errors.Join of *Error, sorted by line; use errors.As or
// interface{ Unwrap() []error } to get at them one by one.
type Error struct {
	// File is the file's path as given to Load or Parse.
	File string
	// Line is the 1-based line of the problem, 0 if no line applies (a
	// required key missing from the whole file, say).
	Line int
	// Path is the key path of the problem, e.g. "objects[1].table", or ""
	// for the file as a whole. List indexes count from 0.
	Path string
	// Msg says what is wrong and what would be valid. It starts with the
	// key path when there is one, and never holds a value taken from an
	// environment variable.
	Msg string
}

// Error returns "file:line: msg", or "file: msg" without a line.
func (e *Error) Error() string {
	if e.Line > 0 {
		return e.File + ":" + strconv.Itoa(e.Line) + ": " + e.Msg
	}
	return e.File + ": " + e.Msg
}

// add records a problem at line (0: none) about path; msg is the full text
// after the location.
func (d *decoder) add(line int, path, msg string) {
	d.errs = append(d.errs, &Error{File: d.file, Line: line, Path: path, Msg: msg})
	d.reported[path] = true
}

// errorf records "path: message" at line. A problem found while reading the
// tree: it marks path so later checks don't report it again.
func (d *decoder) errorf(line int, path, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if path != "" {
		msg = path + ": " + msg
	}
	d.add(line, path, msg)
}

// problem records a failed check on the decoded value at path, placed at
// the key's line, unless path or a key above it was already reported (its
// value was dropped, so the check would only repeat the first error).
func (d *decoder) problem(path, format string, args ...any) {
	if d.covered(path) {
		return
	}
	d.errorf(d.line(path), path, format, args...)
}

// required records that the key at path is missing or empty; what says what
// belongs there.
func (d *decoder) required(path, what string) {
	if d.covered(path) {
		return
	}
	if vars := d.fromEnv[path]; len(vars) > 0 {
		d.add(d.line(path), path, fmt.Sprintf("%s is empty: it comes from %s, which is set to an empty string; it should be %s", path, varList(vars), what))
		return
	}
	d.add(d.line(path), path, fmt.Sprintf("%s is required (%s)", path, what))
}

// duplicate records that the objects item at path names the same thing
// (what) as the one at prevPath (line prevLine).
func (d *decoder) duplicate(path, prevPath string, prevLine int, what string) {
	for _, p := range []string{path, prevPath} {
		if len(d.fromEnv[p+".schema"]) > 0 || len(d.fromEnv[p+".table"]) > 0 {
			what = "the same name"
		}
	}
	d.problem(path, "%s is listed twice, at lines %d (%s) and %d; remove one", what, prevLine, prevPath, d.line(path))
}

// covered reports whether path or a key path above it was reported.
func (d *decoder) covered(path string) bool {
	for p := path; ; {
		if d.reported[p] {
			return true
		}
		i := strings.LastIndexAny(p, ".[")
		if i < 0 {
			return false
		}
		p = p[:i]
	}
}

// show renders the value v found at path for an error message: quoted if it
// is a string, and replaced by the names of the variables it came from if
// any were substituted into it.
func (d *decoder) show(path string, v any) string {
	if vars := d.fromEnv[path]; len(vars) > 0 {
		return "the value of " + varList(vars)
	}
	if s, ok := v.(string); ok {
		return strconv.Quote(truncate(s))
	}
	return fmt.Sprint(v)
}

func varList(vars []string) string {
	s := make([]string, len(vars))
	for i, v := range vars {
		s[i] = "${" + v + "}"
	}
	return strings.Join(s, ", ")
}

// truncate shortens s for an error message.
func truncate(s string) string {
	const max = 60
	if len(s) <= max {
		return s
	}
	r := []rune(s)
	if len(r) <= max {
		return s
	}
	return string(r[:max]) + "…"
}

// err joins the problems found, sorted by line (those without a line last).
func (d *decoder) err() error {
	if len(d.errs) == 0 {
		return nil
	}
	slices.SortStableFunc(d.errs, func(a, b *Error) int {
		return cmp.Compare(sortLine(a.Line), sortLine(b.Line))
	})
	errs := make([]error, len(d.errs))
	for i, e := range d.errs {
		errs[i] = e
	}
	return errors.Join(errs...)
}

func sortLine(l int) int {
	if l == 0 {
		return int(^uint(0) >> 1)
	}
	return l
}
