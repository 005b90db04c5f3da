// Package plugin runs custom transforms as separate executables, speaking
// gRPC through hashicorp/go-plugin, one call per batch. It is both sides:
//
//   - The SDK, for plugin authors: Serve turns one function over a batch
//     into a plugin, so a plugin's main is three lines (see the example and
//     examples/plugins/mask).
//   - The host, for the engine: Open starts a plugin and returns a
//     *Transform, which implements transforms.Transform like any built-in
//     transform.
//
// The flow of one batch:
//
//	engine ──Process(b)──▶ Transform ──frame──▶ plugin process (Serve)
//	                          │  gRPC over a Unix socket,   │
//	                          │  mutual TLS (AutoMTLS)      ▼
//	engine ◀──result───── Transform ◀──frame── fn(ctx, batch)
//
// Trust: go-plugin checks a handshake cookie, so only binaries
// built with this SDK start; with Config.SHA256 set it checks the binary's
// digest before every start and refuses one that does not match; and the
// connection is mutually authenticated TLS with one-off certificates, so
// no other process can talk to the plugin or pose as it.
//
// Failures: an error from the author's function comes back as *Error with
// its message and is retried by the engine like any batch error. A plugin
// that crashes (panics, is killed) or whose connection breaks is started
// again and the batch sent again; after Config.MaxRestarts crashes within
// Config.RestartWindow, Process returns a permanent *CrashError (see
// transforms.IsPermanent) and the pipeline parks, the batch not applied.
//
// Wire format: the service is declared by hand (codec.go) and its one
// message is a compact binary frame (wire.go) carried by a gRPC codec of
// its own, so neither side needs protoc or generated code, and a batch is
// encoded in one pass without reflection: relations once per frame,
// values as bytes with their null and unchanged flags, each record's
// operation, format and position. go-plugin's own services keep protobuf.
package plugin
