package main

// TLS through the binary: sslmode and client certificates in the DSNs
// reach every connection sluice opens (queries, COPY, the replication
// stream), against a cluster that accepts role app only over TLS with a
// client certificate.

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluicehq/sluice/plugins/postgres/pgtest"
)

// certPair is a certificate and its key, PEM-encoded.
type certPair struct{ cert, key []byte }

// issue makes a certificate for tmpl, signed by parent (self-signed when
// parent is nil).
func issue(t *testing.T, tmpl *x509.Certificate, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (certPair, *x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return certPair{
		cert: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		key:  pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}),
	}, cert, key
}

// testPKI is a CA, a server certificate for 127.0.0.1 and a client
// certificate for role app.
func testPKI(t *testing.T) (ca, server, client certPair) {
	t.Helper()
	now := time.Now()
	ca, caCert, caKey := issue(t, &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "sluice test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}, nil, nil)
	server, _, _ = issue(t, &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}, caCert, caKey)
	client, _, _ = issue(t, &x509.Certificate{
		SerialNumber: big.NewInt(3), Subject: pkix.Name{CommonName: "app"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, caCert, caKey)
	return ca, server, client
}

// writeOwned writes a file readable only by the owner of dir (the server's
// OS user, for files in the data directory).
func writeOwned(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	st, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	sys := st.Sys().(*syscall.Stat_t)
	if err := os.Chown(path, int(sys.Uid), int(sys.Gid)); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestTLSClientCertificates: a cluster where role app may connect only
// with TLS and a client certificate (hostssl … cert; hostnossl … reject),
// both for queries and replication. A pipeline whose DSNs say
// sslmode=verify-full with sslrootcert, sslcert and sslkey copies and
// streams, and every session it opens on both sides uses TLS with the
// client certificate (pg_stat_ssl); the same DSNs with sslmode=disable are
// refused.
func TestTLSClientCertificates(t *testing.T) {
	ctx := testCtx(t)
	c := pgtest.NewCluster(t, nil)
	ca, server, client := testPKI(t)
	data := c.DataDir()
	writeOwned(t, data, "server.crt", server.cert)
	writeOwned(t, data, "server.key", server.key)
	writeOwned(t, data, "root.crt", ca.cert)
	hba := writeOwned(t, data, "tls_hba.conf", []byte(`# TestTLSClientCertificates
local     all          postgres                  trust
host      all          postgres  127.0.0.1/32    trust
local     replication  postgres                  trust
host      replication  postgres  127.0.0.1/32    trust
hostssl   all          app       127.0.0.1/32    cert
hostssl   replication  app       127.0.0.1/32    cert
hostnossl all          app       127.0.0.1/32    reject
hostnossl replication  app       127.0.0.1/32    reject
`))
	for _, sql := range []string{
		`ALTER SYSTEM SET ssl = on`,
		`ALTER SYSTEM SET ssl_cert_file = 'server.crt'`,
		`ALTER SYSTEM SET ssl_key_file = 'server.key'`,
		`ALTER SYSTEM SET ssl_ca_file = 'root.crt'`,
		`ALTER SYSTEM SET hba_file = '` + hba + `'`,
		`CREATE ROLE app LOGIN SUPERUSER`,
		`CREATE DATABASE src OWNER app`,
		`CREATE DATABASE dst OWNER app`,
	} {
		if err := c.Exec(ctx, "postgres", sql); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Restart(ctx, "fast"); err != nil {
		t.Fatal(err)
	}
	if err := c.Exec(ctx, "src", `CREATE TABLE public.t (id int PRIMARY KEY, v text);
		INSERT INTO public.t SELECT g, 'v' || g FROM generate_series(1, 5000) g;`); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = c.Exec(ctx, "src", `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE NOT active`)
	})

	dir := t.TempDir()
	for name, b := range map[string][]byte{"root.crt": ca.cert, "app.crt": client.cert, "app.key": client.key} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	dsn := func(db, mode string) string {
		q := url.Values{}
		q.Set("sslmode", mode)
		q.Set("sslrootcert", filepath.Join(dir, "root.crt"))
		q.Set("sslcert", filepath.Join(dir, "app.crt"))
		q.Set("sslkey", filepath.Join(dir, "app.key"))
		return fmt.Sprintf("postgres://app@127.0.0.1:%d/%s?%s", c.Port(), db, q.Encode())
	}
	env := dsnEnv(dsn("src", "verify-full"), dsn("dst", "verify-full"))
	file := writePipeline(t, dir, "tls.yaml", streamPipeline("tls", "{parallel: 2}"))

	r := sluice(t, dir, env, "check", file)
	if r.code != 0 || !strings.Contains(r.stdout, "connected with TLS") {
		t.Fatalf("sluice check over verify-full: want exit 0 and encryption passing with TLS:\n%s", r)
	}
	runCaughtUp(t, dir, env, file, 2*time.Minute)

	p := startSluice(t, dir, env, "run", file)
	waitStreaming(t, ctx, p, c.DSN("src"), "sluice_tls", time.Minute)
	if err := c.Exec(ctx, "src", `UPDATE public.t SET v = v || '+' WHERE id % 3 = 0; INSERT INTO public.t VALUES (6000, 'new')`); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for queryInt(t, ctx, c.DSN("dst"), `SELECT count(*) FROM public.t WHERE id = 6000`) == 0 {
		if time.Now().After(deadline) || p.exited() {
			t.Fatalf("the change did not reach the sink:\n%s", quit(p))
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Every session of sluice, on both databases, walsender included.
	sessions := queryInt(t, ctx, c.DSN("postgres"), `SELECT count(*) FROM pg_stat_activity a
		WHERE a.application_name LIKE 'sluice%' AND a.datname IN ('src', 'dst')`)
	plain := queryInt(t, ctx, c.DSN("postgres"), `SELECT count(*) FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid)
		WHERE a.application_name LIKE 'sluice%' AND a.datname IN ('src', 'dst') AND NOT (s.ssl AND s.client_dn = '/CN=app')`)
	walsenders := queryInt(t, ctx, c.DSN("postgres"), `SELECT count(*) FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid)
		WHERE a.backend_type = 'walsender' AND a.datname = 'src' AND s.ssl AND s.client_dn = '/CN=app'`)
	if sessions < 2 || plain != 0 || walsenders < 1 {
		t.Errorf("sluice sessions: %d, %d of them without TLS and the client certificate; %d walsenders over TLS (want ≥ 2, 0, ≥ 1)", sessions, plain, walsenders)
	}
	t.Logf("%d sluice sessions, all over TLS with client certificate CN=app (%d walsender)", sessions, walsenders)
	p.signal(syscall.SIGTERM)
	if r := p.wait(time.Minute); r.code != 130 {
		t.Errorf("after SIGTERM: want exit code 130:\n%s", r)
	}
	assertSameData(t, ctx, c.DSN("src"), c.DSN("dst"), "public.t")

	// Without TLS the server refuses role app, and sluice says so.
	plainEnv := dsnEnv(dsn("src", "disable"), dsn("dst", "disable"))
	r = sluice(t, dir, plainEnv, "check", file)
	if r.code == 0 || !strings.Contains(r.stdout+r.stderr, "no encryption") {
		t.Errorf("sluice check with sslmode=disable: want a failure saying the server refuses unencrypted connections:\n%s", r)
	}
	t.Logf("sslmode=disable: %s", firstLineOf(r.stdout+r.stderr, "source_connection"))
}

// firstLineOf returns the first line of s containing sub.
func firstLineOf(s, sub string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			return l
		}
	}
	return ""
}
