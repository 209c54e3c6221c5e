package backends

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/certgate/certgate/plugins/sdk"
	backendv1 "github.com/certgate/certgate/proto/certgate/backend/v1"
)

// Keys of the log attributes that the plugin host writes.
const (
	logKeyBackend = "backend"
	logKeyPID     = "pid"
	logKeyPath    = "path"
	logKeyError   = "error"
	logKeyOp      = "op"
	logKeyAttempt = "attempt"
	logKeyBackoff = "backoff"
	logKeyLogger  = "logger"
	logKeyVersion = "version"
)

const (
	// defaultHealthInterval is used when PluginSpec.HealthInterval is zero.
	defaultHealthInterval = 30 * time.Second

	// healthTimeout bounds one health check, or the interval when that is shorter. A
	// plugin that takes longer counts as failing, because go-plugin's gRPC health
	// service responds to the check without running CA code.
	healthTimeout = 5 * time.Second

	// maxHealthFailures consecutive failed checks make the host kill the plugin, so that
	// the next call starts a fresh process instead of waiting on a hung one.
	maxHealthFailures = 3

	// defaultStartTimeout bounds the launch of a plugin up to its handshake when the
	// caller's context has no earlier deadline.
	defaultStartTimeout = 30 * time.Second

	// stopGrace is how long Close waits for a plugin to shut down cleanly before it
	// kills the process.
	stopGrace = 5 * time.Second

	// exitWait is how long a call that failed on the transport waits for go-plugin to
	// report that the process exited, before it treats the failure as final. The
	// failed read and go-plugin's wait on the process race each other.
	exitWait = 500 * time.Millisecond

	// Restart backoff: the first restart after a stable run waits restartBackoffMin,
	// and each further restart within stableRunTime doubles the wait up to
	// restartBackoffMax, so a plugin that crashes on start does not spin.
	restartBackoffMin = 100 * time.Millisecond
	restartBackoffMax = 10 * time.Second
	stableRunTime     = time.Minute

	// maxResponseSize is the largest message the host accepts from a plugin. gRPC's
	// default of 4 MiB holds a CRL of roughly 100,000 entries; 64 MiB allows large CAs.
	// NOTE: a CRL larger than this fails with an internal error. It would need a
	// streaming rpc.
	maxResponseSize = 64 << 20
)

// PluginSpec describes a backend plugin executable and how to configure it.
type PluginSpec struct {
	// Name is the backend's name in certgate's configuration, used in logs and errors.
	Name string

	// Path is the absolute path of the plugin executable.
	Path string

	// Args are passed to the executable. Built-in plugins run the certgate executable
	// with a hidden subcommand, for example []string{"plugin", "softca"}.
	Args []string

	// SHA256 is the hex-encoded SHA-256 of the executable, checked before every launch.
	// It may be empty only for a built-in plugin, whose Path is the running certgate
	// executable itself; any other executable without a checksum is rejected.
	SHA256 string

	// DataDir is the plugin's own directory for keys and state. LaunchPlugin creates it
	// with mode 0700 when it does not exist.
	DataDir string

	// Config is the plugin's `config` block, passed to its Configure rpc. Values must be
	// nil, bool, numbers, strings, []any or map[string]any.
	Config map[string]any

	// HealthInterval is the time between health checks. Zero means 30 seconds, and a
	// negative value turns health checks off.
	HealthInterval time.Duration
}

// PluginBackend is a Backend served by a plugin process. It relaunches the process
// when it has exited, so a crash costs one slower call instead of an outage. It is
// safe for concurrent use.
type PluginBackend struct {
	spec     PluginSpec
	checksum []byte // nil for a built-in plugin
	config   *structpb.Struct
	logger   *slog.Logger

	// lock guards the fields below. It is a channel so that a caller waiting for a
	// restart can give up when its context ends.
	lock      chan struct{}
	current   *pluginProcess // nil after a failed restart or Close
	closed    bool
	restarts  int       // restarts since the last stable run, for the backoff
	lastStart time.Time // when the current or last process was launched

	stopHealth chan struct{}
	healthDone chan struct{}

	chains chainCache // the parsed CA chain of the last Issue or Poll result
}

// pluginProcess is one running plugin process and its gRPC clients.
type pluginProcess struct {
	client   *plugin.Client
	cmd      *exec.Cmd
	rpc      backendv1.BackendServiceClient
	health   healthpb.HealthClient
	exited   <-chan struct{} // closed by go-plugin when the process has exited
	pid      int
	caps     Capabilities
	stopping atomic.Bool // set before the host kills the process on purpose
}

func (p *pluginProcess) hasExited() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

// stop ends the process and waits until it has exited. go-plugin's Kill sends the
// plugin a shutdown request over gRPC without a deadline, so a hung plugin would block
// it forever. After grace, stop therefore sends SIGKILL itself. os.Process.Kill is safe
// after the process was reaped, because Go tracks the process by a pidfd on Linux and
// by its own state elsewhere.
func (p *pluginProcess) stop(grace time.Duration) {
	p.stopping.Store(true)
	done := make(chan struct{})
	go func() {
		p.client.Kill()
		close(done)
	}()

	timer := time.NewTimer(grace)
	defer timer.Stop()
	select {
	case <-done:
		return
	case <-timer.C:
	}
	if !p.hasExited() {
		_ = p.cmd.Process.Kill()
	}
	<-done
}

// waitExited reports whether the process exits within d.
func (p *pluginProcess) waitExited(ctx context.Context, d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-p.exited:
		return true
	case <-timer.C:
		return false
	case <-ctx.Done():
		return p.hasExited()
	}
}

// LaunchPlugin starts the plugin described by spec, configures it and returns the
// Backend that calls it. The process speaks gRPC only, over a connection secured with
// go-plugin's AutoMTLS, and an external executable runs only when its SHA-256 equals
// spec.SHA256. The process inherits certgate's environment, which go-plugin passes on
// by default. The backend is not registered with go-plugin's CleanupClients, so the
// host calls Close when it shuts down.
//
// NOTE: nothing stops a plugin when the host is killed, because go-plugin has no
// parent-death signal. Plugins built with plugins/sdk exit by themselves within about a
// second after their parent process changes. Other plugins may keep running.
func LaunchPlugin(ctx context.Context, spec PluginSpec, logger *slog.Logger) (*PluginBackend, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	checksum, err := checkPluginSpec(spec)
	if err != nil {
		return nil, err
	}
	config, err := structpb.NewStruct(spec.Config)
	if err != nil {
		return nil, fmt.Errorf("backends: plugin %q: config cannot be passed to the plugin: %w", spec.Name, err)
	}
	if err := os.MkdirAll(spec.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("backends: plugin %q: creating the data directory: %w", spec.Name, err)
	}

	b := &PluginBackend{
		spec:       spec,
		checksum:   checksum,
		config:     config,
		logger:     logger.With(logKeyBackend, spec.Name),
		lock:       make(chan struct{}, 1),
		stopHealth: make(chan struct{}),
		healthDone: make(chan struct{}),
	}
	b.lastStart = time.Now()
	proc, err := b.start(ctx)
	if err != nil {
		return nil, fmt.Errorf("backends: plugin %q: launch failed: %w", spec.Name, err)
	}
	b.current = proc

	interval := spec.HealthInterval
	if interval == 0 {
		interval = defaultHealthInterval
	}
	go b.checkHealth(interval)
	return b, nil
}

// checkPluginSpec validates spec and returns the decoded checksum, or nil for a
// built-in plugin.
func checkPluginSpec(spec PluginSpec) ([]byte, error) {
	switch {
	case spec.Name == "":
		return nil, errors.New("backends: plugin name is missing")
	case spec.Path == "":
		return nil, fmt.Errorf("backends: plugin %q: path is missing", spec.Name)
	case !filepath.IsAbs(spec.Path):
		return nil, fmt.Errorf("backends: plugin %q: path %q is not absolute", spec.Name, spec.Path)
	case spec.DataDir == "":
		return nil, fmt.Errorf("backends: plugin %q: data directory is missing", spec.Name)
	}

	if spec.SHA256 == "" {
		// NOTE: the check holds at launch only. A restart after an in-place upgrade
		// runs the new certgate executable at Path, unchecked.
		if !isOwnExecutable(spec.Path) {
			return nil, fmt.Errorf("backends: plugin %q: sha256 is missing for %s; only built-in plugins, which run the certgate executable itself, may omit it", spec.Name, spec.Path)
		}
		return nil, nil
	}
	checksum, err := hex.DecodeString(spec.SHA256)
	if err != nil || len(checksum) != sha256.Size {
		return nil, fmt.Errorf("backends: plugin %q: sha256 %q is not 64 hexadecimal digits", spec.Name, spec.SHA256)
	}
	return checksum, nil
}

// isOwnExecutable reports whether path names the running executable.
func isOwnExecutable(path string) bool {
	self, err := os.Executable()
	if err != nil {
		return false
	}
	selfInfo, err := os.Stat(self)
	if err != nil {
		return false
	}
	pathInfo, err := os.Stat(path)
	if err != nil {
		return false
	}
	return os.SameFile(selfInfo, pathInfo)
}

// verifyChecksum compares the SHA-256 of the executable with the configured one.
func verifyChecksum(path string, want []byte) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("opening the executable to check its SHA-256: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return fmt.Errorf("reading %s to check its SHA-256: %w", path, err)
	}
	if got := h.Sum(nil); !bytes.Equal(got, want) {
		return fmt.Errorf("executable %s has SHA-256 %x but the configuration expects %x; if the new file is trusted, put its checksum in the configuration", path, got, want)
	}
	return nil
}

// start launches a process, configures it and reads its capabilities. On error no
// process is left running.
func (b *PluginBackend) start(ctx context.Context) (*pluginProcess, error) {
	if b.checksum != nil {
		// go-plugin checks the checksum again right before exec, which narrows the time
		// in which the file could be swapped. Checking here as well gives an error that
		// names the file and both checksums, which go-plugin's does not.
		if err := verifyChecksum(b.spec.Path, b.checksum); err != nil {
			return nil, err
		}
	}

	startTimeout := defaultStartTimeout
	if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) < startTimeout {
		startTimeout = max(time.Until(deadline), time.Millisecond)
	}
	cmd := exec.Command(b.spec.Path, b.spec.Args...)
	config := &plugin.ClientConfig{
		HandshakeConfig: sdk.Handshake,
		VersionedPlugins: map[int]plugin.PluginSet{
			sdk.ProtocolVersion: {sdk.PluginName: hostPlugin{}},
		},
		Cmd:              cmd,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		AutoMTLS:         true,
		StartTimeout:     startTimeout,
		Logger:           newHCLogAdapter(b.logger),
		GRPCDialOptions: []grpc.DialOption{
			grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxResponseSize)),
		},
	}
	if b.checksum != nil {
		config.SecureConfig = &plugin.SecureConfig{Checksum: b.checksum, Hash: sha256.New()}
	}
	client := plugin.NewClient(config)

	proc, err := connect(client, cmd)
	if err != nil {
		client.Kill()
		if errors.Is(err, plugin.ErrChecksumsDoNotMatch) {
			if checkErr := verifyChecksum(b.spec.Path, b.checksum); checkErr != nil {
				return nil, checkErr
			}
		}
		return nil, fmt.Errorf("starting %s: %w", b.spec.Path, err)
	}

	if err := b.configure(ctx, proc); err != nil {
		proc.stop(stopGrace)
		return nil, err
	}
	b.logger.Info("plugin ready", logKeyPID, proc.pid, logKeyPath, b.spec.Path,
		logKeyVersion, proc.caps.Version, "contract_version", proc.caps.ContractVersion)
	go b.logExit(proc)
	return proc, nil
}

// connect performs go-plugin's handshake and dispenses the BackendService client.
func connect(client *plugin.Client, cmd *exec.Cmd) (*pluginProcess, error) {
	protocol, err := client.Client()
	if err != nil {
		return nil, err
	}
	raw, err := protocol.Dispense(sdk.PluginName)
	if err != nil {
		return nil, err
	}
	conn, ok := raw.(*grpcConnection)
	if !ok {
		return nil, fmt.Errorf("go-plugin dispensed %T, not the BackendService client", raw)
	}
	proc := &pluginProcess{
		client: client,
		cmd:    cmd,
		rpc:    conn.rpc,
		health: conn.health,
		exited: conn.exited,
	}
	if reattach := client.ReattachConfig(); reattach != nil {
		proc.pid = reattach.Pid
	}
	return proc, nil
}

// configure sends Configure and reads the capabilities.
func (b *PluginBackend) configure(ctx context.Context, proc *pluginProcess) error {
	_, err := proc.rpc.Configure(ctx, &backendv1.ConfigureRequest{
		DataDir:             b.spec.DataDir,
		Config:              b.config,
		HostContractVersion: sdk.ContractVersion,
	})
	if err != nil {
		return errorFromStatus(ctx, b.spec.Name, err)
	}
	resp, err := proc.rpc.GetCapabilities(ctx, &backendv1.GetCapabilitiesRequest{})
	if err != nil {
		return errorFromStatus(ctx, b.spec.Name, err)
	}
	if resp.GetContractVersion() < 1 {
		return fmt.Errorf("the plugin reports contract version %d; version 1 or later is required", resp.GetContractVersion())
	}
	proc.caps = capabilitiesFromProto(resp)
	return nil
}

// logExit logs the exit of a process that the host did not stop itself. The next call
// relaunches it.
func (b *PluginBackend) logExit(proc *pluginProcess) {
	<-proc.exited
	if proc.stopping.Load() {
		return
	}
	b.logger.Error("plugin exited unexpectedly; the next call restarts it", logKeyPID, proc.pid)
}

// acquire takes the lock or returns the context's error.
func (b *PluginBackend) acquire(ctx context.Context) error {
	select {
	case b.lock <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (b *PluginBackend) release() { <-b.lock }

// process returns the running process, relaunching it when it has exited.
func (b *PluginBackend) process(ctx context.Context) (*pluginProcess, error) {
	if err := b.acquire(ctx); err != nil {
		return nil, &Error{Category: CategoryUnavailable, Detail: "the CA is restarting", Err: err}
	}
	defer b.release()

	if b.closed {
		return nil, &Error{Category: CategoryUnavailable, Detail: "the CA is shut down",
			Err: fmt.Errorf("plugin %q is closed", b.spec.Name)}
	}
	if b.current != nil && !b.current.hasExited() && !b.current.stopping.Load() {
		return b.current, nil
	}
	return b.restartLocked(ctx)
}

// restartLocked replaces an exited, missing or stopping process. The caller holds the
// lock.
func (b *PluginBackend) restartLocked(ctx context.Context) (*pluginProcess, error) {
	oldPID := 0
	if old := b.current; old != nil {
		oldPID = old.pid
		old.stop(0) // the process has exited; this releases go-plugin's resources
		b.current = nil
	}

	if time.Since(b.lastStart) > stableRunTime {
		b.restarts = 0
	}
	backoff := restartBackoffMin << min(b.restarts, 16)
	backoff = min(backoff, restartBackoffMax)
	b.restarts++
	b.logger.Warn("restarting plugin", "old_pid", oldPID, logKeyAttempt, b.restarts, logKeyBackoff, backoff.String())

	timer := time.NewTimer(backoff)
	select {
	case <-timer.C:
	case <-ctx.Done():
		timer.Stop()
		return nil, &Error{Category: CategoryUnavailable, Detail: "the CA is restarting", Err: ctx.Err()}
	}

	b.lastStart = time.Now()
	proc, err := b.start(ctx)
	if err != nil {
		b.logger.Error("plugin restart failed", logKeyAttempt, b.restarts, logKeyError, err)
		return nil, &Error{Category: CategoryUnavailable, Detail: "the CA is restarting", Err: err}
	}
	b.current = proc
	return proc, nil
}

// call runs rpc against the current process. When the call fails because the process
// exited, call relaunches the process and runs rpc once more. Issue is idempotent for
// its transaction ID, so the retry returns the same certificate when the first attempt
// got through before the crash.
//
// NOTE: a Revoke that the crashed process had already recorded fails on retry with
// CategoryAlreadyRevoked, although the revocation took effect.
func (b *PluginBackend) call(ctx context.Context, op string, rpc func(context.Context, *pluginProcess) error) error {
	proc, err := b.process(ctx)
	if err != nil {
		return err
	}
	err = rpc(ctx, proc)
	if err == nil {
		return nil
	}
	if !isTransportFailure(ctx, err) || !proc.waitExited(ctx, exitWait) {
		return errorFromStatus(ctx, b.spec.Name, err)
	}

	b.logger.Warn("plugin call failed because the process exited; retrying once",
		logKeyOp, op, logKeyPID, proc.pid, logKeyError, err)
	proc, err = b.process(ctx)
	if err != nil {
		return err
	}
	if err := rpc(ctx, proc); err != nil {
		return errorFromStatus(ctx, b.spec.Name, err)
	}
	return nil
}

// checkHealth pings the plugin every interval until Close. A plugin that fails
// maxHealthFailures checks in a row is killed, and the next call starts a new one.
func (b *PluginBackend) checkHealth(interval time.Duration) {
	defer close(b.healthDone)
	if interval < 0 {
		return
	}
	ticker := time.NewTicker(interval)
	defer ticker.Stop()

	failures := 0
	for {
		select {
		case <-b.stopHealth:
			return
		case <-ticker.C:
		}

		proc := b.runningProcess()
		if proc == nil || proc.hasExited() {
			// logExit has reported the exit; the next call restarts the plugin.
			failures = 0
			continue
		}
		// This is the grpc.health.v1 check that go-plugin's Ping sends, with a deadline
		// that Ping lacks.
		ctx, cancel := context.WithTimeout(context.Background(), min(healthTimeout, interval))
		_, err := proc.health.Check(ctx, &healthpb.HealthCheckRequest{Service: plugin.GRPCServiceName})
		cancel()
		if err == nil {
			failures = 0
			continue
		}
		failures++
		b.logger.Warn("plugin health check failed", logKeyPID, proc.pid, logKeyAttempt, failures, logKeyError, err)
		if failures >= maxHealthFailures {
			// Mark the process first, so that calls from now on restart the plugin
			// instead of using the one being killed.
			proc.stopping.Store(true)
			b.logger.Error("plugin failed its health checks; killing it so that the next call restarts it", logKeyPID, proc.pid)
			proc.stop(0)
			failures = 0
		}
	}
}

// runningProcess returns the current process without waiting for a restart in
// progress, or nil.
func (b *PluginBackend) runningProcess() *pluginProcess {
	select {
	case b.lock <- struct{}{}:
	default:
		return nil
	}
	defer b.release()
	return b.current
}

// Pid returns the process ID of the current plugin process, which may have exited and
// not been restarted yet, or 0 after Close or a failed restart. It waits for a restart
// in progress.
func (b *PluginBackend) Pid() int {
	_ = b.acquire(context.Background())
	defer b.release()
	if b.current == nil {
		return 0
	}
	return b.current.pid
}

// Close stops the plugin process and waits until it has exited. Calls after Close fail
// with CategoryUnavailable. Close is safe to call more than once.
func (b *PluginBackend) Close() error {
	_ = b.acquire(context.Background())
	if b.closed {
		b.release()
		return nil
	}
	b.closed = true
	proc := b.current
	b.current = nil
	b.release()

	close(b.stopHealth)
	<-b.healthDone
	if proc != nil {
		proc.stop(stopGrace)
		b.logger.Info("plugin stopped", logKeyPID, proc.pid)
	}
	return nil
}

// hostPlugin is the host side of go-plugin's plugin set: it wraps the gRPC connection
// in the generated BackendService client.
type hostPlugin struct {
	plugin.NetRPCUnsupportedPlugin
}

func (hostPlugin) GRPCServer(*plugin.GRPCBroker, *grpc.Server) error {
	return errors.New("backends: the host does not serve BackendService")
}

// GRPCClient receives a context that go-plugin cancels when the process exits, which
// pluginProcess uses as its exit signal.
func (hostPlugin) GRPCClient(ctx context.Context, _ *plugin.GRPCBroker, conn *grpc.ClientConn) (any, error) {
	return &grpcConnection{
		rpc:    backendv1.NewBackendServiceClient(conn),
		health: healthpb.NewHealthClient(conn),
		exited: ctx.Done(),
	}, nil
}

type grpcConnection struct {
	rpc    backendv1.BackendServiceClient
	health healthpb.HealthClient
	exited <-chan struct{}
}
