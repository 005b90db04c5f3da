// Command panicky is a test plugin that misbehaves on request. Its
// environment says how:
//
//	PANICKY_MARKER=file   panic on the first call of all: the one that finds
//	                      no file there (it creates it first), then work
//	PANICKY_ALWAYS=1      panic on every call
//	PANICKY_HANG=file     hang on the first call of all (as PANICKY_MARKER)
//	PANICKY_ERROR=msg     return an error with msg on every call
//	PANICKY_RENAME=name   point every record at a new relation, its table
//	                      renamed to name (made afresh on every call)
//	PANICKY_PIDFILE=file  write the process id to file on start
//
// Working means: text values are upper-cased, binary ones left alone.
package main

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"strconv"

	"github.com/sluicehq/sluice/engine/record"
	"github.com/sluicehq/sluice/transforms/plugin"
)

func main() {
	if f := os.Getenv("PANICKY_PIDFILE"); f != "" {
		if err := os.WriteFile(f, []byte(strconv.Itoa(os.Getpid())), 0o600); err != nil {
			panic(err)
		}
	}
	plugin.Serve(process)
}

func process(ctx context.Context, b *record.Batch) (*record.Batch, error) {
	if os.Getenv("PANICKY_ALWAYS") != "" {
		panic("panicky: always")
	}
	if m := os.Getenv("PANICKY_MARKER"); m != "" {
		if f, err := os.OpenFile(m, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600); err == nil {
			f.Close()
			panic("panicky: first call")
		}
	}
	if m := os.Getenv("PANICKY_HANG"); m != "" {
		if f, err := os.OpenFile(m, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600); err == nil {
			f.Close()
			select {} // ctx is ignored on purpose: a hung plugin
		}
	}
	if msg := os.Getenv("PANICKY_ERROR"); msg != "" {
		slog.Warn("refusing the batch", "records", b.Len())
		return nil, errors.New(msg)
	}
	renamed := map[*record.Relation]*record.Relation{}
	for i := range b.Records {
		r := &b.Records[i]
		if name := os.Getenv("PANICKY_RENAME"); name != "" && r.Rel != nil {
			n, ok := renamed[r.Rel]
			if !ok {
				c := *r.Rel
				c.Table.Name = name
				n = &c
				renamed[r.Rel] = n
			}
			r.Rel = n
		}
		if r.Format != record.Text {
			continue
		}
		for j := range r.New {
			if v := &r.New[j]; v.Data != nil {
				v.Data = bytes.ToUpper(v.Data)
			}
		}
	}
	return b, nil
}
