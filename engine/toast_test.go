package engine_test

import (
	"strings"
	"testing"

	"github.com/sluicehq/sluice/engine"
)

// TestToastCompression: the copy compresses large values it writes with
// copy.toast_compression (auto: lz4, the sink having it and its default
// untouched), while a column's own method and storage strategy follow the
// source's.
func TestToastCompression(t *testing.T) {
	e := newEnv(t)
	e.srcExec(`CREATE SCHEMA tc;
CREATE TABLE tc.docs (id int PRIMARY KEY, plain_default text, own_pglz text, own_lz4 text, ext text);
ALTER TABLE tc.docs ALTER COLUMN own_pglz SET COMPRESSION pglz, ALTER COLUMN own_lz4 SET COMPRESSION lz4, ALTER COLUMN ext SET STORAGE EXTERNAL;
INSERT INTO tc.docs SELECT g, repeat('sluice ' || g, 3000), repeat('pglz ' || g, 3000), repeat('lz4 ' || g, 3000), repeat('ext ' || g, 3000)
  FROM generate_series(1, 40) g;`)
	methods := func(dsn, col string) string {
		t.Helper()
		return queryText(t, dsn, `SELECT string_agg(DISTINCT COALESCE(pg_column_compression(`+col+`), 'none'), ',') FROM tc.docs`)
	}
	for _, tc := range []struct {
		mode              string
		want              string // the method of plain_default's values at the sink
		wantPglz, wantLz4 string
	}{
		{"", "lz4", "pglz", "lz4"},
		{"auto", "lz4", "pglz", "lz4"},
		{"pglz", "pglz", "pglz", "lz4"},
		{"lz4", "lz4", "pglz", "lz4"},
		{"server", "pglz", "pglz", "lz4"}, // the test clusters keep PostgreSQL's default
	} {
		t.Run("mode="+tc.mode, func(t *testing.T) {
			sink := e.newSink()
			cfg := e.config(schemaSel("tc")...)
			cfg.SinkDSN = sink
			cfg.ToastCompression = tc.mode
			runOK(t, cfg)
			assertSameData(t, e.srcDSN, sink, []string{"tc.docs"})
			if got := methods(sink, "plain_default"); got != tc.want {
				t.Errorf("plain_default at the sink compressed with %s, want %s", got, tc.want)
			}
			if got := methods(sink, "own_pglz"); got != tc.wantPglz {
				t.Errorf("own_pglz (COMPRESSION pglz at the source) compressed with %s at the sink, want %s", got, tc.wantPglz)
			}
			if got := methods(sink, "own_lz4"); got != tc.wantLz4 {
				t.Errorf("own_lz4 (COMPRESSION lz4 at the source) compressed with %s at the sink, want %s", got, tc.wantLz4)
			}
			// STORAGE EXTERNAL: stored out of line, never compressed.
			if got := methods(sink, "ext"); got != "none" {
				t.Errorf("ext (STORAGE EXTERNAL) compressed with %s at the sink, want none", got)
			}
			got := queryText(t, sink, `SELECT string_agg(attname || '=' || attcompression::text || attstorage::text, ' ' ORDER BY attnum)
				FROM pg_attribute WHERE attrelid = 'tc.docs'::regclass AND attnum > 0`)
			want := queryText(t, e.srcDSN, `SELECT string_agg(attname || '=' || attcompression::text || attstorage::text, ' ' ORDER BY attnum)
				FROM pg_attribute WHERE attrelid = 'tc.docs'::regclass AND attnum > 0`)
			if got != want {
				t.Errorf("column compression and storage at the sink:\n%s\nat the source:\n%s", got, want)
			}
		})
	}
	t.Run("unknown mode", func(t *testing.T) {
		cfg := e.config(schemaSel("tc")...)
		cfg.SinkDSN = e.newSink()
		cfg.ToastCompression = "zstd"
		err := runErr(t, cfg)
		if !strings.Contains(err.Error(), `copy.toast_compression "zstd" is not a compression mode`) {
			t.Fatalf("error %q does not name the mode", err)
		}
	})
}

// TestCheckToastCompression: the precheck says what copy.toast_compression
// does at the sink and fails a method the sink lacks, before anything is
// created.
func TestCheckToastCompression(t *testing.T) {
	e := newEnv(t)
	e.srcExec(`CREATE TABLE public.t (id int PRIMARY KEY, doc text)`)
	cfg := e.config(schemaSel("public")...)
	for _, tc := range []struct{ mode, status, detail string }{
		{"", engine.Pass, "with lz4"},
		{"server", engine.Pass, "the sink's default_toast_compression, pglz"},
		{"pglz", engine.Pass, "with pglz"},
		{"zstd", engine.Fail, "copy.toast_compression is zstd but the sink server was built without it"},
	} {
		cfg.ToastCompression = tc.mode
		rep := runCheck(t, cfg, engine.CheckOptions{})
		expect(t, rep, engine.CheckToastCompression, tc.status, tc.detail)
	}
}
