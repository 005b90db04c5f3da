package engine

import (
	"context"
	"time"

	"github.com/sluicehq/sluice/engine/record"
	"github.com/sluicehq/sluice/plugins/postgres"
)

// BackfillReport is one unfinished backfill request of a streaming
// pipeline (`sluice status`): what it copies, and how far it has come as
// the sink committed it.
type BackfillReport struct {
	Request int64     `json:"request"`
	Table   string    `json:"table"`
	Where   string    `json:"where,omitempty"`
	Created time.Time `json:"created"`
	// Chunks and Rows are the chunks and rows committed at the sink so
	// far (over all partitions of a partitioned table).
	Chunks int   `json:"chunks"`
	Rows   int64 `json:"rows"`
}

// inspectBackfills lists the pipeline's unfinished backfill requests (at
// the source) with their progress (at the sink); the error, if any, is
// returned as text for the report.
func inspectBackfills(ctx context.Context, cfg Config) ([]BackfillReport, string) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	src, err := postgres.Connect(ctx, cfg.SourceDSN, "source")
	if err != nil {
		return nil, err.Error()
	}
	defer src.Close(context.WithoutCancel(ctx))
	reqs, err := postgres.PendingBackfills(ctx, src, cfg.Name)
	if err != nil || len(reqs) == 0 {
		return nil, errText(err)
	}
	dst, err := postgres.Connect(ctx, cfg.SinkDSN, "sink")
	if err != nil {
		return nil, err.Error()
	}
	defer dst.Close(context.WithoutCancel(ctx))
	out := make([]BackfillReport, 0, len(reqs))
	for _, req := range reqs {
		chunks, rows, err := postgres.ReadBackfillTotals(ctx, dst, cfg.Name, req.ID)
		if err != nil {
			return out, err.Error()
		}
		table := req.Table // quoted; shown as table names are elsewhere
		if schema, name, ok := splitIdentity(req.Table); ok {
			table = record.TableName{Schema: schema, Name: name}.String()
		}
		out = append(out, BackfillReport{Request: req.ID, Table: table, Where: req.Where, Created: req.Created.UTC(), Chunks: chunks, Rows: rows})
	}
	return out, ""
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
