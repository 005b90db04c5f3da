package postgres

import (
	"strings"
	"testing"
)

func TestParseDump(t *testing.T) {
	script := `--
-- PostgreSQL database dump
--

\restrict abc

SET statement_timeout = 0;
SELECT pg_catalog.set_config('search_path', '', false);

--
-- Name: f(); Type: FUNCTION; Schema: public; Owner: app
--

CREATE FUNCTION public.f() RETURNS integer
    LANGUAGE sql
    AS $$ SELECT 1 $$;


ALTER FUNCTION public.f() OWNER TO app;

SET default_tablespace = '';

--
-- Name: t t_pkey; Type: CONSTRAINT; Schema: public; Owner: postgres; Tablespace: 
--

ALTER TABLE ONLY public.t
    ADD CONSTRAINT t_pkey PRIMARY KEY (id);


--
-- Name: SCHEMA public; Type: ACL; Schema: -; Owner: pg_database_owner
--

GRANT ALL ON SCHEMA public TO PUBLIC;


--
-- PostgreSQL database dump complete
--

\unrestrict abc
`
	got := ParseDump(script)
	if len(got) != 3 {
		t.Fatalf("got %d entries: %+v", len(got), got)
	}
	f := got[0]
	if f.Type != "FUNCTION" || f.Schema != "public" || f.Name != "f()" || f.Owner != "app" || f.OwnerSQL != "ALTER FUNCTION public.f() OWNER TO app;" {
		t.Errorf("function entry: %+v", f)
	}
	if !strings.HasPrefix(f.SQL, "CREATE FUNCTION public.f()") || !strings.HasSuffix(f.SQL, "OWNER TO app;") {
		t.Errorf("function SQL: %q", f.SQL)
	}
	if c := got[1]; c.Type != "CONSTRAINT" || c.Name != "t t_pkey" || c.Owner != "postgres" || c.OwnerSQL != "" ||
		!strings.HasPrefix(c.SQL, "SET default_tablespace = '';\nALTER TABLE ONLY public.t") {
		t.Errorf("constraint entry: %+v", c)
	}
	if a := got[2]; a.Type != "ACL" || a.Schema != "-" || a.SQL != "GRANT ALL ON SCHEMA public TO PUBLIC;" {
		t.Errorf("acl entry: %+v", a)
	}
	for _, e := range got {
		if strings.Contains(e.SQL, `\restrict`) || strings.Contains(e.SQL, `\unrestrict`) || strings.Contains(e.SQL, "dump complete") {
			t.Errorf("entry %s keeps the script's trailer: %q", e.Name, e.SQL)
		}
	}
}

func TestFindPgDumpTooOld(t *testing.T) {
	_, err := FindPgDump(t.Context(), 990000)
	if err == nil {
		t.Fatal("FindPgDump(99) found one")
	}
	if !strings.Contains(err.Error(), "postgresql-client-99") || !strings.Contains(err.Error(), "PG_BINDIR") {
		t.Errorf("error does not say what to install: %v", err)
	}
}

func TestQuotePattern(t *testing.T) {
	if got := quotePattern(`a*"b`); got != `"a*""b"` {
		t.Errorf("quotePattern = %s", got)
	}
}
