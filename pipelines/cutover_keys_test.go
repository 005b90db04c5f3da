package pipelines

import (
	"strings"
	"testing"
	"time"
)

// on_conflicting_tables takes error or ignore; stream.sequence_sync 0s
// (off) or a sane interval; anything else names the file, line and key.
func TestConflictingTablesAndSequenceSyncKeys(t *testing.T) {
	base := "name: p\nsource: {dsn: \"host=s\"}\nsink: {dsn: \"host=d\"}\nobjects: [{schema: public}]\n"
	p, err := Parse([]byte(base+"on_conflicting_tables: ignore\nstream: {sequence_sync: 0s}\n"), "p.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	if p.OnConflictingTables != "ignore" || p.Stream.SequenceSync != 0 {
		t.Errorf("got on_conflicting_tables %q, sequence_sync %s", p.OnConflictingTables, p.Stream.SequenceSync)
	}
	p, err = Parse([]byte(base+"stream: {sequence_sync: 5m}\n"), "p.yaml", nil)
	if err != nil || p.Stream.SequenceSync != 5*time.Minute || p.OnConflictingTables != "error" {
		t.Fatalf("got %v, %+v", err, p)
	}
	for _, c := range []struct{ yaml, want string }{
		{"on_conflicting_tables: skip\n", `p.yaml:5: on_conflicting_tables: "skip" is not valid: use error`},
		{"stream: {sequence_sync: 1ms}\n", "p.yaml:5: stream.sequence_sync: must be 0s (off) or between 100ms and 24h"},
	} {
		_, err := Parse([]byte(base+c.yaml), "p.yaml", nil)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: got %v, want an error containing %q", c.yaml, err, c.want)
		}
	}
}
