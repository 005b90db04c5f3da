package engine

import (
	"testing"

	"github.com/sluicehq/sluice/plugins/postgres"
)

// TestChunkText: a failing chunk is named with the key range (or pages)
// it covers, so that the rejected row can be found.
func TestChunkText(t *testing.T) {
	key := &postgres.Plan{Method: "key", Key: []string{"id", "sub"}}
	ctid := &postgres.Plan{Method: postgres.MethodCTID}
	for _, c := range []struct {
		plan  *postgres.Plan
		chunk postgres.Chunk
		want  string
	}{
		{key, postgres.Chunk{ID: 0}, "chunk 0 (the whole table)"},
		{key, postgres.Chunk{ID: 1, Hi: []string{"10", "a"}}, "chunk 1 ((id, sub) before (10, a))"},
		{key, postgres.Chunk{ID: 2, Lo: []string{"10", "a"}, Hi: []string{"20", "b"}}, "chunk 2 ((id, sub) from (10, a) before (20, b))"},
		{key, postgres.Chunk{ID: 3, Lo: []string{"20", "b"}}, "chunk 3 ((id, sub) from (20, b))"},
		{ctid, postgres.Chunk{ID: 4, Lo: []string{"128"}, Hi: []string{"256"}}, "chunk 4 (pages from (128) before (256))"},
	} {
		if got := chunkText(c.plan, c.chunk); got != c.want {
			t.Errorf("chunkText(%+v) = %q, want %q", c.chunk, got, c.want)
		}
	}
}
