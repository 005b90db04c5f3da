package plugin

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	goplugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/sluicehq/sluice/engine/record"
)

// Serve runs fn as a transform plugin: it is the whole of a plugin's main.
//
//	func main() {
//		plugin.Serve(mask)
//	}
//
// fn has the contract of transforms.Transform's Process. It receives a copy
// of each batch and returns the batch to apply: its records, kept or
// dropped, in order, with values changed as the plugin means to. Returning
// (nil, nil) drops every record. An error is passed back to the pipeline
// with its message, the batch is not applied, and the pipeline retries it.
// fn may be called concurrently for different batches.
//
// A panic in fn is not recovered: the process dies, the host starts it
// again and retries the batch, and if it keeps dying the pipeline parks
// with its data intact.
//
// The process is started by the host only: go-plugin checks the handshake
// cookie, and transport is mutually authenticated TLS with certificates
// made for this one process (go-plugin's AutoMTLS). Serve sets log/slog's
// default logger to one whose records reach the host's log with their
// level; anything else a plugin writes to stderr reaches it at debug level.
// The plugin exits when the host does, even if the host was killed.
// Serve returns only when the host is done with the plugin.
func Serve(fn func(ctx context.Context, b *record.Batch) (*record.Batch, error)) {
	go exitWithParent(os.Getppid(), time.Second)
	slog.SetDefault(slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{
		Level:       slog.LevelDebug,
		ReplaceAttr: hclogJSON,
	})))
	goplugin.Serve(&goplugin.ServeConfig{
		HandshakeConfig: handshake,
		Plugins:         goplugin.PluginSet{pluginName: &grpcPlugin{srv: server{fn: fn}}},
		GRPCServer: func(opts []grpc.ServerOption) *grpc.Server {
			return grpc.NewServer(append(opts,
				grpc.MaxRecvMsgSize(maxMessage), grpc.MaxSendMsgSize(maxMessage),
				grpc.InitialWindowSize(window), grpc.InitialConnWindowSize(window),
				grpc.ReadBufferSize(buffer), grpc.WriteBufferSize(buffer))...)
		},
	})
}

// hclogJSON renames slog's JSON keys to the ones go-plugin's host parses
// (hclog's): @level, @message, @timestamp.
func hclogJSON(groups []string, a slog.Attr) slog.Attr {
	if len(groups) > 0 {
		return a
	}
	switch a.Key {
	case slog.TimeKey:
		return slog.String("@timestamp", a.Value.Time().Format("2006-01-02T15:04:05.000000Z07:00"))
	case slog.LevelKey:
		lvl, _ := a.Value.Any().(slog.Level)
		name := "info"
		switch {
		case lvl < slog.LevelInfo:
			name = "debug"
		case lvl < slog.LevelWarn:
			name = "info"
		case lvl < slog.LevelError:
			name = "warn"
		default:
			name = "error"
		}
		return slog.String("@level", name)
	case slog.MessageKey:
		return slog.String("@message", a.Value.String())
	}
	return a
}

// server is the plugin side of Process: decode, call the author's
// function, encode its result or its error.
type server struct {
	fn func(ctx context.Context, b *record.Batch) (*record.Batch, error)
}

func (s server) process(ctx context.Context, req []byte) []byte {
	in, err := decodeFrame(req, nil, nil)
	if err != nil {
		return encodeError(fmt.Sprintf("plugin: decode batch: %v", err))
	}
	if in.kind != kindBatch {
		return encodeError(fmt.Sprintf("plugin: expected a batch, got message kind %d", in.kind))
	}
	rcv := newReceived(in.rels)
	out, err := s.fn(ctx, in.batch)
	if err != nil {
		return encodeError(err.Error())
	}
	if out == nil {
		out = &record.Batch{End: in.batch.End, Bytes: in.batch.Bytes}
	}
	buf, _ := encodeBatch(out, rcv)
	return buf
}

// exitWithParent ends the process once its parent is gone (it has been
// given another), so a host killed with SIGKILL leaves no plugin behind.
func exitWithParent(ppid int, every time.Duration) {
	if ppid <= 1 {
		return // started by init or a subreaper: nothing to watch
	}
	for range time.Tick(every) {
		if os.Getppid() != ppid {
			os.Exit(1)
		}
	}
}
