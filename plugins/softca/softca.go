// Package softca is certgate's software CA: a root and an issuing CA whose keys are
// files in the data directory, or an imported CA from PEM files. It runs as a backend
// plugin through plugins/sdk (the certgate binary's hidden `plugin softca` subcommand
// calls Serve), and the CA type also works in-process, for tests and benchmarks.
//
// Configuration keys, all strings:
//
//	key_algorithm        ecdsa-p256 (default), ecdsa-p384, rsa-2048, rsa-3072,
//	                     rsa-4096 or ed25519; used for both generated CA keys
//	root_common_name     default "certgate Root CA"
//	issuing_common_name  default "certgate Issuing CA"
//	root_validity        Go duration, default 87600h (10 years)
//	issuing_validity     Go duration, default 43800h (5 years)
//	crl_validity         Go duration from thisUpdate to nextUpdate, default 168h
//	ca_certificate_file  import: PEM certificate of the issuing CA, optionally
//	                     followed by its issuers up to the root
//	ca_key_file          import: PEM key in PKCS#8, SEC 1 or PKCS#1 form, unencrypted
//	ca_chain_file        import, optional: PEM issuers of the CA, root last
//
// Relative paths resolve against the data directory. The first five keys describe a
// CA to generate and are rejected together with ca_certificate_file.
//
// Files in the data folder that the host gives the plugin (mode 0700):
//
//	root.key, issuing.key     PKCS#8 PEM keys, mode 0600 (generated CA only)
//	root.crt                  the root certificate, to distribute to clients as trust anchor
//	issuing.crt               the issuing CA certificate
//	chain.pem                 issuing CA then root, for servers that send the chain
//	issued-serials.log        every serial number issued, so that Revoke can tell
//	                          unknown serials apart
//	revocations.json          revoked and held certificates and the last CRL number
//
// There is no separate ca.crt: root.crt is the trust anchor and chain.pem the chain.
// The root key is read only when the CA is created, so an operator may move root.key
// offline after the first start. The keys are protected by file modes only; use an
// HSM or KMS backend where that is not enough.
//
// Issued certificates carry the template's subject and extensions as given, a random
// 127-bit serial number, basic constraints with cA FALSE, the issuer's authority key
// identifier, the template's subject key identifier or one derived from the key, and a
// validity clamped to the issuing CA's.
//
// NOTE: nothing locks the data directory, so two softca processes must not share one.
package softca

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/certgate/certgate/plugins/sdk"
)

// Serve runs softca as a certgate backend plugin until certgate stops it. The certgate
// binary calls it from its hidden `plugin softca` subcommand, and certgate launches that
// subcommand with PluginSpec{Path: <certgate executable>, Args: []string{"plugin",
// "softca"}}.
func Serve() {
	sdk.Serve(New(sdk.Logger()))
}

// CA is the software CA. Configure must succeed before the other methods work. It is
// safe for concurrent use.
type CA struct {
	logger *slog.Logger

	configureMu sync.Mutex // serialises Configure
	state       atomic.Pointer[state]
}

// state is everything Configure builds. It never changes afterwards.
type state struct {
	dir         string
	auth        *authority
	crlValidity time.Duration
	cache       *issueCache
	serials     *serialLog
	revocations *revocations
}

var (
	_ sdk.CA          = (*CA)(nil)
	_ sdk.CRLProvider = (*CA)(nil)
	_ sdk.Describer   = (*CA)(nil)
)

// New returns an unconfigured CA that logs to logger, or nowhere when logger is nil.
func New(logger *slog.Logger) *CA {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &CA{logger: logger}
}

// Configure validates config, then loads the CA from dataDir, imports it or creates it.
// It succeeds once per CA value; a plugin process configures one CA for its lifetime.
func (ca *CA) Configure(_ context.Context, dataDir string, config map[string]any) error {
	ca.configureMu.Lock()
	defer ca.configureMu.Unlock()
	if ca.state.Load() != nil {
		return sdk.Errorf(sdk.CategoryBadRequest, "softca: the CA is already configured")
	}
	if dataDir == "" {
		return sdk.Errorf(sdk.CategoryBadRequest, "softca: the data directory is missing")
	}
	c, err := ParseConfig(dataDir, config)
	if err != nil {
		return err
	}

	dir := dataDir
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("softca: creating %s: %w", dir, err)
	}
	// The folder holds the CA keys, so it is closed to other users even when the host
	// created it with a wider mode.
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("softca: restricting %s to mode 0700: %w", dir, err)
	}
	auth, err := loadOrCreateAuthority(dir, c, ca.logger)
	if err != nil {
		var sdkErr *sdk.Error
		if errors.As(err, &sdkErr) {
			return err
		}
		return fmt.Errorf("softca: %w", err)
	}
	revocations, err := openRevocations(filepath.Join(dir, revocationsFile), auth.spkiHash)
	if err != nil {
		return fmt.Errorf("softca: %w", err)
	}
	serials, err := openSerialLog(filepath.Join(dir, issuedSerialsFile), auth.spkiHash, ca.logger)
	if err != nil {
		return fmt.Errorf("softca: %w", err)
	}

	ca.state.Store(&state{
		dir:         dir,
		auth:        auth,
		crlValidity: c.CRLValidity,
		cache:       newIssueCache(issueCacheSize),
		serials:     serials,
		revocations: revocations,
	})
	return nil
}

// current returns the configured state.
func (ca *CA) current() (*state, error) {
	st := ca.state.Load()
	if st == nil {
		return nil, sdk.Errorf(sdk.CategoryUnavailable, "softca: the CA is not configured")
	}
	return st, nil
}

// Issue signs the template of req. The same transaction ID with the same profile and
// template returns the same certificate while the ID is in the idempotency cache.
func (ca *CA) Issue(ctx context.Context, req *sdk.IssueRequest) (*sdk.IssueResult, error) {
	st, err := ca.current()
	if err != nil {
		return nil, err
	}
	cert, err := st.issue(ctx, req)
	if err != nil {
		return nil, err
	}
	return &sdk.IssueResult{Certificate: cert, Chain: st.auth.chain}, nil
}

// Revoke records a revocation, a hold or a release from hold (see revocations.revoke).
func (ca *CA) Revoke(_ context.Context, req *sdk.RevokeRequest) error {
	st, err := ca.current()
	if err != nil {
		return err
	}
	if string(req.RawIssuer) != string(st.auth.cert.RawSubject) {
		return sdk.Errorf(sdk.CategoryNotFound, "the issuer is not this CA (%s)", st.auth.cert.Subject)
	}
	if req.SerialNumber == nil || req.SerialNumber.Sign() <= 0 {
		return sdk.Errorf(sdk.CategoryBadRequest, "the serial number must be a positive integer")
	}
	if !validReasons[req.Reason] {
		return sdk.Errorf(sdk.CategoryBadRequest, "revocation reason %d is not a CRLReason of RFC 5280", int(req.Reason))
	}
	if !st.serials.contains(req.SerialNumber) {
		return sdk.Errorf(sdk.CategoryNotFound, "serial number %x was not issued by this CA", req.SerialNumber)
	}
	if err := st.revocations.revoke(req.SerialNumber, req.Reason, req.InvalidityDate, time.Now()); err != nil {
		return err
	}
	ca.logger.Info("revocation recorded", "serial", req.SerialNumber.Text(16), "reason", req.Reason.String(),
		"requester", req.Requester.Identity)
	return nil
}

// CAChain returns the issuing CA certificate first and the root last.
func (ca *CA) CAChain(context.Context) ([]*x509.Certificate, error) {
	st, err := ca.current()
	if err != nil {
		return nil, err
	}
	return st.auth.chain, nil
}

// CRL returns the issuing CA's current CRL.
func (ca *CA) CRL(context.Context) ([]byte, error) {
	st, err := ca.current()
	if err != nil {
		return nil, err
	}
	return st.revocations.crl(st.auth, st.crlValidity, time.Now())
}

// Describe names softca and the version of the binary it is built into.
func (ca *CA) Describe() sdk.Description {
	version := "unknown"
	if info, ok := debug.ReadBuildInfo(); ok {
		version = info.Main.Version
	}
	return sdk.Description{Name: "softca", Version: version}
}

// Close syncs and closes the issued-serials file. The CA cannot issue afterwards.
func (ca *CA) Close() error {
	ca.configureMu.Lock()
	defer ca.configureMu.Unlock()
	st := ca.state.Swap(nil)
	if st == nil {
		return nil
	}
	return st.serials.close()
}
