package engine

import (
	"fmt"
	"strings"

	"github.com/sluicehq/sluice/plugins/postgres"
)

// chunkText names a chunk of a full copy for messages: its number and the
// key range (or pages) it covers, so that a failing row can be found.
func chunkText(plan *postgres.Plan, c postgres.Chunk) string {
	if plan != nil && plan.Method == postgres.MethodScan {
		return fmt.Sprintf("share %d of %d of one shared scan (not a key range: the next run copies this table in key ranges, and names the chunk)", c.ID+1, len(plan.Chunks))
	}
	if plan == nil || (c.Lo == nil && c.Hi == nil) {
		return fmt.Sprintf("chunk %d (the whole table)", c.ID)
	}
	what := "(" + strings.Join(plan.Key, ", ") + ")"
	if plan.Method == postgres.MethodCTID {
		what = "pages"
	}
	var parts []string
	if c.Lo != nil {
		parts = append(parts, fmt.Sprintf("%s from (%s)", what, strings.Join(c.Lo, ", ")))
	}
	if c.Hi != nil {
		prefix := what + " "
		if len(parts) > 0 {
			prefix = ""
		}
		parts = append(parts, fmt.Sprintf("%sbefore (%s)", prefix, strings.Join(c.Hi, ", ")))
	}
	return fmt.Sprintf("chunk %d (%s)", c.ID, strings.Join(parts, " "))
}
