package sdk

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"time"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	backendv1 "github.com/certgate/certgate/proto/certgate/backend/v1"
)

// PluginName is the name under which a plugin registers BackendService in go-plugin's
// plugin set, and under which certgate dispenses it.
const PluginName = "backend"

// ProtocolVersion is the go-plugin application protocol version. It equals the major
// version of the contract package, certgate.backend.v1.
const ProtocolVersion = 1

// ContractVersion is the minor revision of the v1 contract that this SDK implements. It
// grows when fields or rpcs are added to proto/certgate/backend/v1.
const ContractVersion uint32 = 1

// Handshake is the go-plugin handshake shared by certgate and its plugins. The magic
// cookie only keeps a plugin from being started by hand by mistake. It is not a
// security measure, which is why certgate checks the executable's SHA-256.
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  ProtocolVersion,
	MagicCookieKey:   "CERTGATE_BACKEND_PLUGIN",
	MagicCookieValue: "5b1c0e4f7d2a9e36c8f14a7b02d9e5c1",
}

// parentCheckInterval is how often a plugin checks that its host is still alive. A
// second bounds how long an orphan lingers and costs one getppid call.
const parentCheckInterval = time.Second

// Serve serves ca as a certgate backend plugin until certgate stops the plugin. It
// must be called from main and is the only thing main does: go-plugin writes its
// handshake to stdout, so nothing else may write there. When the plugin is stopped,
// Serve closes ca if it implements io.Closer and returns.
//
// Run by hand, outside certgate, Serve prints that the binary is a plugin and exits
// with status 1.
func Serve(ca CA) {
	initPluginLog()
	stopWatch := watchParent(ca)
	defer stopWatch()

	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: Handshake,
		VersionedPlugins: map[int]plugin.PluginSet{
			ProtocolVersion: {PluginName: &grpcPlugin{ca: ca}},
		},
		GRPCServer: newGRPCServer,
		Logger:     pluginHCLog,
	})

	closeCA(ca)
}

// watchParent exits the process when its parent changes, which on Unix means the host
// died and the plugin was adopted by init or a subreaper. It returns a function that
// stops the watch.
func watchParent(ca CA) (stop func()) {
	done := make(chan struct{})
	parent := os.Getppid()
	if parent <= 1 {
		// Started by init, or already orphaned: there is no host to watch.
		return func() {}
	}

	go func() {
		ticker := time.NewTicker(parentCheckInterval)
		defer ticker.Stop()
		for {
			select {
			case <-done:
				return
			case <-ticker.C:
			}
			if os.Getppid() != parent {
				// Close first: with the host gone, stderr may be a broken pipe, and a
				// write to it ends a Go program with SIGPIPE.
				closeCA(ca)
				pluginHCLog.Error("host process exited, stopping plugin", "host_pid", parent)
				os.Exit(1)
			}
		}
	}()
	return func() { close(done) }
}

func closeCA(ca CA) {
	closer, ok := ca.(io.Closer)
	if !ok {
		return
	}
	if err := closer.Close(); err != nil {
		pluginHCLog.Error("closing the CA failed", "error", err)
	}
}

// newGRPCServer is go-plugin's default server with an interceptor that turns a panic in
// the CA into an internal error, so one bad request does not end the process and with
// it every request in flight.
//
// It also keeps one stream worker goroutine per core. Without workers gRPC starts a
// goroutine per call, whose stack grows again on every Issue because
// x509.CreateCertificate runs deep. perf put that growth at about 6% of softca's CPU
// under the certgate-bench load. When every worker is busy, gRPC still starts a
// goroutine for the call, so no call waits.
func newGRPCServer(opts []grpc.ServerOption) *grpc.Server {
	opts = append(opts, grpc.ChainUnaryInterceptor(recoverPanic),
		grpc.NumStreamWorkers(uint32(runtime.GOMAXPROCS(0))))
	return grpc.NewServer(opts...)
}

func recoverPanic(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
	defer func() {
		if v := recover(); v != nil {
			pluginHCLog.Error("panic in CA method", "method", info.FullMethod, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			resp, err = nil, statusError(fmt.Errorf("panic in %s: %v", info.FullMethod, v))
		}
	}()
	return handler(ctx, req)
}

// grpcPlugin registers BackendService with go-plugin. Only the plugin side uses it;
// certgate has its own client-side plugin type.
type grpcPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	ca CA
}

func (p *grpcPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	backendv1.RegisterBackendServiceServer(s, &server{ca: p.ca, logger: pluginHCLog})
	return nil
}

func (p *grpcPlugin) GRPCClient(context.Context, *plugin.GRPCBroker, *grpc.ClientConn) (any, error) {
	return nil, errors.New("sdk: the plugin side has no client")
}

// describe returns the CA's own description, or the executable name and module version.
func describe(ca CA) Description {
	if d, ok := ca.(Describer); ok {
		return d.Describe()
	}
	desc := Description{Name: filepath.Base(os.Args[0]), Version: "unknown"}
	if info, ok := debug.ReadBuildInfo(); ok {
		desc.Version = info.Main.Version
	}
	return desc
}
