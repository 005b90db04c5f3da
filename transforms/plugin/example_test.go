package plugin_test

import (
	"context"
	"fmt"

	"github.com/sluicehq/sluice/engine/record"
	"github.com/sluicehq/sluice/transforms"
	"github.com/sluicehq/sluice/transforms/plugin"
)

// dropAudit is a whole transform: it drops the rows of public.audit and
// keeps every other record as it is.
func dropAudit(ctx context.Context, b *record.Batch) (*record.Batch, error) {
	kept := b.Records[:0]
	for _, r := range b.Records {
		if r.Rel == nil || r.Rel.Table != (record.TableName{Schema: "public", Name: "audit"}) {
			kept = append(kept, r)
		}
	}
	b.Records = kept
	return b, nil
}

// The shortest plugin: its main serves one function. Build it with
// `go build` and name the binary in a pipeline's transforms as
// {type: plugin, path: ./dropaudit}. (Serve runs until the host stops the
// plugin, so this example is compiled, not run.)
func ExampleServe() {
	plugin.Serve(dropAudit)
}

// The same function runs in process as a transforms.Transform: this is how
// a plugin's logic is unit-tested without building it.
func ExampleServe_inProcess() {
	audit := &record.Relation{Table: record.TableName{Schema: "public", Name: "audit"}}
	users := &record.Relation{Table: record.TableName{Schema: "public", Name: "users"}}
	var t transforms.Transform = transforms.Func(dropAudit)
	out, _ := t.Process(context.Background(), &record.Batch{Records: []record.Record{
		{Op: record.Insert, Rel: audit},
		{Op: record.Insert, Rel: users},
	}})
	fmt.Println(out.Len(), out.Records[0].Rel.Table)
	// Output: 1 public.users
}

// The host side, as the engine uses it: start the plugin once, send it
// each batch, close it when the pipeline stops.
func ExampleOpen() {
	ctx := context.Background()
	t, err := plugin.Open(ctx, plugin.Config{
		Path:   "./dropaudit",
		SHA256: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
	})
	if err != nil {
		fmt.Println(err) // a bad pin: transforms.IsPermanent(err) is true
		return
	}
	defer t.Close()
	out, err := t.Process(ctx, &record.Batch{})
	if err != nil {
		fmt.Println(err) // the plugin's message, or a permanent *plugin.CrashError
		return
	}
	_ = out
}
