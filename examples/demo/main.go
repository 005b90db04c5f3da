// Command demo drives `make demo`: it starts a local source and sink
// PostgreSQL cluster under .demo/, loads the generated shop data into the
// source, runs the example pipeline with the sluice binary, and compares
// both sides table by table.
//
//	go run ./examples/demo [-sluice bin/sluice] [up|stop]
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/sluicehq/sluice/plugins/postgres/pgtest"
)

const database = "shop"

func main() {
	bin := flag.String("sluice", "bin/sluice", "path of the sluice binary")
	root := flag.String("dir", ".demo", "folder for the demo clusters (git-ignored)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	var err error
	switch flag.Arg(0) {
	case "", "up":
		err = demo(ctx, *bin, *root)
	case "stop":
		err = stopClusters(ctx, *root)
	default:
		err = fmt.Errorf("unknown command %q (want up or stop)", flag.Arg(0))
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func step(format string, args ...any) {
	fmt.Printf("\n==> "+format+"\n", args...)
}

func demo(ctx context.Context, bin, root string) error {
	if _, err := pgtest.BinDir(); err != nil {
		return err
	}
	step("starting the source and sink PostgreSQL clusters under %s/", root)
	src, err := pgtest.Start(ctx, pgtest.Options{Dir: filepath.Join(root, "source"), Port: portFor(filepath.Join(root, "source"), sourcePort), Fsync: true})
	if err != nil {
		return fmt.Errorf("start source cluster: %w", err)
	}
	dst, err := pgtest.Start(ctx, pgtest.Options{Dir: filepath.Join(root, "sink"), Port: portFor(filepath.Join(root, "sink"), sinkPort), Fsync: true})
	if err != nil {
		return fmt.Errorf("start sink cluster: %w", err)
	}
	fmt.Printf("    source: %s\n    sink:   %s\n", src.DSN(database), dst.DSN(database))

	step("creating database %q on both and loading demo data into the source (examples/demo/seed.sql)", database)
	for _, c := range []*pgtest.Cluster{src, dst} {
		_ = c.DropDatabase(ctx, database)
		if _, err := c.CreateDatabase(ctx, database); err != nil {
			return err
		}
	}
	if err := os.RemoveAll(filepath.Join(root, "state")); err != nil {
		return err
	}
	t0 := time.Now()
	if err := src.LoadSQLFile(ctx, database, "examples/demo/seed.sql"); err != nil {
		return fmt.Errorf("load demo data: %w", err)
	}
	fmt.Printf("    loaded in %s\n", time.Since(t0).Round(time.Millisecond))

	step("running: %s run examples/demo.yaml", bin)
	cmd := exec.CommandContext(ctx, bin, "run", "examples/demo.yaml")
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), "SRC_DSN="+src.DSN(database), "DST_DSN="+dst.DSN(database))
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("sluice run: %w", err)
	}

	step("comparing source and sink (row count and checksum of every table)")
	if err := compare(ctx, src, dst); err != nil {
		return err
	}
	step("both clusters are still running; look around:")
	fmt.Printf("    psql '%s' -c '\\dt+ shop.*'\n", src.DSN(database))
	fmt.Printf("    psql '%s' -c 'SELECT * FROM shop.orders LIMIT 5'\n", dst.DSN(database))
	fmt.Printf("    SRC_DSN='%s' DST_DSN='%s' %s check examples/demo.yaml\n", src.DSN(database), dst.DSN(database), bin)
	fmt.Printf("    make demo-stop    # stops both clusters (data stays in %s/)\n", root)
	return nil
}

func compare(ctx context.Context, src, dst *pgtest.Cluster) error {
	conn, err := src.Connect(ctx, database)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = 'shop' AND c.relkind IN ('r','p') ORDER BY 1`)
	if err != nil {
		return err
	}
	var tables []string
	for rows.Next() {
		var t string
		if err := rows.Scan(&t); err != nil {
			return err
		}
		tables = append(tables, t)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(os.Stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "    TABLE\tSOURCE ROWS\tSINK ROWS\tCHECKSUM")
	mismatch := 0
	for _, t := range tables {
		n1, s1, err := pgtest.ChecksumDSN(ctx, src.DSN(database), t)
		if err != nil {
			return err
		}
		n2, s2, err := pgtest.ChecksumDSN(ctx, dst.DSN(database), t)
		if err != nil {
			return err
		}
		state := "equal"
		if n1 != n2 || s1 != s2 {
			state = "DIFFERENT"
			mismatch++
		}
		fmt.Fprintf(tw, "    %s\t%d\t%d\t%s\n", t, n1, n2, state)
	}
	tw.Flush()
	if mismatch > 0 {
		return fmt.Errorf("%d tables differ between source and sink", mismatch)
	}
	return nil
}

// Fixed ports so the printed psql commands work across runs.
const (
	sourcePort = 55432
	sinkPort   = 55433
)

// portFor keeps the fixed port for a demo cluster that is running already
// (it holds the port itself); otherwise it uses the port if free.
func portFor(dir string, port int) int {
	if _, err := os.Stat(filepath.Join(dir, "data", "postmaster.pid")); err == nil {
		return port
	}
	return freeOr(port)
}

// freeOr returns port when nothing listens on it, else 0 (any free port):
// the printed commands then show the port actually used.
func freeOr(port int) int {
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return 0
	}
	l.Close()
	return port
}

func stopClusters(ctx context.Context, root string) error {
	for _, name := range []string{"source", "sink"} {
		dir := filepath.Join(root, name)
		if _, err := os.Stat(dir); err != nil {
			continue
		}
		// Start restarts a running cluster (on any free port); then stop it.
		c, err := pgtest.Start(ctx, pgtest.Options{Dir: dir, Fsync: true})
		if err != nil {
			return err
		}
		if err := c.Stop(ctx); err != nil {
			return err
		}
		fmt.Printf("stopped the %s cluster in %s\n", name, dir)
	}
	return nil
}
