// Package sdk is what the author of a certgate backend plugin imports. A plugin is a
// separate executable that certgate launches as a child process and calls over gRPC,
// using github.com/hashicorp/go-plugin. The contract is the BackendService of
// proto/certgate/backend/v1; this package implements its server side, so a plugin author
// writes plain Go:
//
//	type myCA struct{ ... }
//
//	func (c *myCA) Configure(ctx context.Context, dataDir string, config map[string]any) error
//	func (c *myCA) Issue(ctx context.Context, req *sdk.IssueRequest) (*sdk.IssueResult, error)
//	func (c *myCA) Revoke(ctx context.Context, req *sdk.RevokeRequest) error
//	func (c *myCA) CAChain(ctx context.Context) ([]*x509.Certificate, error)
//
//	func main() { sdk.Serve(&myCA{}) }
//
// # Design
//
// The CA interface has the four operations every backend needs and uses Go types
// (*x509.Certificate, pkix.Extension, time.Time, *big.Int), never generated protobuf
// types, so a plugin does not change when the wire format grows. Optional features are
// optional interfaces: a CA that also implements [Poller] may return pending results, and
// one that implements [CRLProvider] serves CRLs. [Serve] derives the capabilities it
// reports to certgate from the interfaces the value implements. A CA that cannot revoke
// embeds [RevokeUnsupported].
//
// Errors cross the process boundary with their category: return an [*Error], usually
// built with [Errorf], and certgate's frontend maps its [Category] to the failure code
// of the client's protocol. An error without a category arrives as [CategoryInternal],
// and its text is logged by certgate but never shown to the client.
//
// # Process rules
//
// go-plugin uses the plugin's stdout for its handshake line, so a plugin must never
// write to stdout. [Logger] writes JSON lines in hclog's format to stderr, as the SDK's
// own log does, and certgate merges them into its log with their levels and
// attributes.
//
// certgate configures the plugin with [CA.Configure] after every launch, before any
// other call, and relaunches the plugin after a crash. Keep state that must survive a
// crash in the data directory.
//
// A plugin whose host process dies is not stopped by go-plugin, which offers no
// parent-death signal, and go-plugin's server ignores SIGINT. [Serve] therefore checks once a second
// whether its parent process changed (the orphan was adopted by init or a subreaper) and
// exits when it did. The check uses os.Getppid and works on Unix only.
package sdk
