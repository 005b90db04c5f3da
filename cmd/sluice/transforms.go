package main

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/engine/record"
	"github.com/sluicehq/sluice/engine/verify"
	"github.com/sluicehq/sluice/pipelines"
	"github.com/sluicehq/sluice/transforms/plugin"
	"github.com/sluicehq/sluice/transforms/rename"
)

// transformConfig adds the file's transform stages, bulk renames and case
// policy to the engine's config.
func transformConfig(p *pipelines.Pipeline, cfg *engine.Config) error {
	for i, t := range p.Transforms {
		st := engine.TransformStage{
			Kind:   t.Kind(),
			Filter: t.Filter,
			Set:    t.Set,
			Origin: fmt.Sprintf("%s:%d (transforms[%d])", p.File, t.Line, i),
			Scope:  "every table",
		}
		if len(t.Tables) > 0 {
			pats := make([]pipelines.TablePattern, len(t.Tables))
			for j, s := range t.Tables {
				pat, err := pipelines.ParseTablePattern(s)
				if err != nil {
					return fmt.Errorf("%s: tables[%d]: %w", st.Origin, j, err)
				}
				pats[j] = pat
			}
			st.Match = func(n record.TableName) bool {
				for _, pat := range pats {
					if pat.Match(n.Schema, n.Name) {
						return true
					}
				}
				return false
			}
			st.Scope = strings.Join(t.Tables, ", ")
		}
		if st.Kind == "plugin" {
			st.Plugin = plugin.Config{Path: t.Path, SHA256: t.SHA256}
			for _, k := range slices.Sorted(maps.Keys(t.Env)) {
				st.Plugin.Env = append(st.Plugin.Env, k+"="+t.Env[k])
			}
		}
		cfg.Transforms = append(cfg.Transforms, st)
	}
	c, err := rename.ParseCase(p.Rename.Case)
	if err != nil {
		return fmt.Errorf("%s: rename.case: %w", p.File, err)
	}
	cfg.Rename.Case = c
	if p.Rename.Case != "" {
		cfg.Rename.CaseOrigin = fmt.Sprintf("%s:%d (rename.case)", p.File, p.Rename.CaseLine)
	}
	for i, b := range p.Rename.Tables {
		schema, err := pipelines.Object{Schema: b.Schema}.SchemaName()
		if err != nil {
			return fmt.Errorf("%s:%d: rename.tables[%d].schema: %w", p.File, b.Line, i, err)
		}
		cfg.Rename.Bulk = append(cfg.Rename.Bulk, rename.BulkRename{
			Schema: schema, Prefix: b.Prefix, Suffix: b.Suffix, Pattern: b.Pattern, Replacement: b.Replacement,
			Origin: fmt.Sprintf("%s:%d (rename.tables[%d])", p.File, b.Line, i),
		})
	}
	return nil
}

// stageRule adds to a table's verify rule what its transform stages do:
// the columns a set stage computes are not compared; a table with a
// filter or plugin stage cannot be compared row by row.
func stageRule(stages []engine.TransformStage, n record.TableName, r *verify.Rule) {
	for _, st := range stages {
		if st.Match != nil && !st.Match(n) {
			continue
		}
		switch st.Kind {
		case "set":
			for _, c := range slices.Sorted(maps.Keys(st.Set)) {
				if !slices.Contains(r.Skip, c) {
					r.Skip = append(r.Skip, c)
				}
			}
		case "filter", "plugin":
			if r.Uncomparable == "" {
				r.Uncomparable = fmt.Sprintf("not compared: %s, a %s stage, drops or rewrites its rows", st.Origin, st.Kind)
			}
		}
	}
}
