package plugin

import (
	"context"
	"fmt"

	goplugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
)

// The gRPC service, written by hand: one unary method whose request and
// response are frames (wire.go) that the codec below passes through as
// bytes. No .proto file, no generated code and no protoc at build time;
// go-plugin's own services (health, stdio, broker) keep their protobuf
// codec, since gRPC picks a codec per call by content subtype.

// handshake is shared by the host and every plugin: go-plugin refuses to
// start a binary that was not built with this SDK (the cookie) or speaks
// another protocol version, and a plugin binary run by hand says it is a
// plugin and exits.
var handshake = goplugin.HandshakeConfig{
	ProtocolVersion:  1,
	MagicCookieKey:   "SLUICE_TRANSFORM_PLUGIN",
	MagicCookieValue: "4f2c1d9e-sluice-transform-v1",
}

// pluginName is the name the transform is dispensed under.
const pluginName = "transform"

const (
	serviceName   = "sluice.transform.v1.Transform"
	processMethod = "/" + serviceName + "/Process"
	// codecName is the gRPC content subtype of Process calls.
	codecName = "sluice-frame"
	// maxMessage is the largest frame either side accepts. gRPC's default
	// (4 MiB) is below the source's batch limit plus framing.
	maxMessage = 1<<31 - 1
	// window is the HTTP/2 flow-control window and buffer is the
	// transport's read and write buffer, on both sides. A batch is a few
	// hundred KiB to a few MiB sent one at a time; gRPC's defaults (64 KiB
	// windows, 32 KiB buffers) make it wait for window updates several
	// times per batch.
	window = 8 << 20
	buffer = 256 << 10
)

// frame is a message as bytes. The codec neither copies nor inspects it
// on the way out; on the way in it copies the received bytes once, so that
// record values can point into them after gRPC reuses its buffer.
type frame struct{ b []byte }

type frameCodec struct{}

func (frameCodec) Name() string { return codecName }

func (frameCodec) Marshal(v any) ([]byte, error) {
	f, ok := v.(*frame)
	if !ok {
		return nil, fmt.Errorf("sluice-frame codec: cannot marshal %T", v)
	}
	return f.b, nil
}

func (frameCodec) Unmarshal(data []byte, v any) error {
	f, ok := v.(*frame)
	if !ok {
		return fmt.Errorf("sluice-frame codec: cannot unmarshal into %T", v)
	}
	f.b = append([]byte(nil), data...)
	return nil
}

// The server side looks codecs up by content subtype in gRPC's registry,
// which may only be written during initialization.
func init() { encoding.RegisterCodec(frameCodec{}) }

// processor is what the server side serves: the author's function behind
// the frame decoding (serve.go).
type processor interface {
	process(ctx context.Context, req []byte) []byte
}

var serviceDesc = grpc.ServiceDesc{
	ServiceName: serviceName,
	HandlerType: (*processor)(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "Process",
		Handler: func(srv any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
			var req frame
			if err := dec(&req); err != nil {
				return nil, err
			}
			return &frame{b: srv.(processor).process(ctx, req.b)}, nil
		},
	}},
	Metadata: "sluice/transforms/plugin",
}

// grpcPlugin is the go-plugin glue: the plugin side registers the service,
// the host side wraps the connection.
type grpcPlugin struct {
	goplugin.NetRPCUnsupportedPlugin
	srv processor // plugin side only
}

func (p *grpcPlugin) GRPCServer(_ *goplugin.GRPCBroker, s *grpc.Server) error {
	s.RegisterService(&serviceDesc, p.srv)
	return nil
}

func (p *grpcPlugin) GRPCClient(_ context.Context, _ *goplugin.GRPCBroker, cc *grpc.ClientConn) (any, error) {
	return &stub{cc: cc}, nil
}

// stub calls Process on one plugin process.
type stub struct{ cc *grpc.ClientConn }

func (s *stub) call(ctx context.Context, req []byte) ([]byte, error) {
	var resp frame
	err := s.cc.Invoke(ctx, processMethod, &frame{b: req}, &resp,
		grpc.ForceCodec(frameCodec{}),
		grpc.MaxCallRecvMsgSize(maxMessage),
		grpc.MaxCallSendMsgSize(maxMessage))
	return resp.b, err
}
