// Package upstreamcmp is a backend that forwards to an external CMP CA: certgate acts as
// a registration authority (RFC 9483 section 5). The router has already authenticated
// the client and applied the profile's policy, so the request that goes upstream
// carries the policy's template with raVerified as proof of possession and the RA's own
// protection, a MAC or a signature (RFC 9483 section 5.2.3.2). The upstream answer,
// including certConf and polling, is handled by certgate's CMP client.
//
// Unlike the software CA, this backend runs inside the gateway process: it holds no CA
// key, only the RA credential, and every call is a network exchange anyway.
package upstreamcmp

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"sync"
	"time"

	"github.com/certgate/certgate/backends"
	"github.com/certgate/certgate/gateway/cmp"
	"github.com/certgate/certgate/gateway/cmpclient"
)

// chainCacheLifetime is how long a CA chain fetched with genm caCerts is reused.
const chainCacheLifetime = time.Hour

// Config is the validated configuration of an upstream CMP CA.
type Config struct {
	Server string // http://, https://, tcp:// (RFC 2510 framing) or tcp10:// (version-10 framing)

	// The RA credential: a MAC secret with its reference, or a signing certificate.
	Reference   string
	Secret      []byte
	Signer      crypto.Signer
	Certificate *x509.Certificate
	Chain       []*x509.Certificate

	TrustedRoots    *x509.CertPool      // roots of the upstream's signed responses
	Recipient       []byte              // DER Name of the upstream CA, for the header
	CAChain         []*x509.Certificate // issuing CA first; nil fetches it with genm caCerts
	RequestType     cmp.BodyType        // cmp.BodyIR or cmp.BodyCR
	ImplicitConfirm bool
	Timeout         time.Duration // per upstream operation, polling included
}

// Backend is a backends.Backend that forwards to an upstream CMP CA.
type Backend struct {
	config *Config
	logger *slog.Logger

	mu         sync.Mutex
	chain      []*x509.Certificate
	chainUntil time.Time
}

// New returns a Backend for cfg.
func New(cfg *Config, logger *slog.Logger) (*Backend, error) {
	if cfg.Secret == nil && cfg.Signer == nil {
		return nil, errors.New("upstreamcmp: no RA credential: set a MAC secret or a signing certificate and key")
	}
	if _, err := url.Parse(cfg.Server); err != nil {
		return nil, fmt.Errorf("upstreamcmp: server %q: %w", cfg.Server, err)
	}
	if cfg.RequestType == 0 {
		cfg.RequestType = cmp.BodyCR
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = time.Minute
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Backend{config: cfg, logger: logger}, nil
}

// client returns a CMP client with its own transport, so that concurrent calls do not
// share a TCP connection.
func (b *Backend) client() (*cmpclient.Client, error) {
	server, err := url.Parse(b.config.Server)
	if err != nil {
		return nil, err
	}
	client := &cmpclient.Client{
		Recipient: b.config.Recipient, TrustedRoots: b.config.TrustedRoots,
		ImplicitConfirm: b.config.ImplicitConfirm, MaxPollWait: b.config.Timeout,
	}
	switch server.Scheme {
	case "http", "https":
		client.Transport = &cmpclient.HTTPTransport{URL: b.config.Server}
	case "tcp":
		client.Transport = &cmpclient.TCPTransport{Address: server.Host, Framing: cmp.FramingRFC2510}
	case "tcp10":
		client.Transport = &cmpclient.TCPTransport{Address: server.Host, Framing: cmp.FramingTCPv10}
	default:
		return nil, fmt.Errorf("upstreamcmp: server scheme %q is not http, https, tcp or tcp10", server.Scheme)
	}
	if b.config.Secret != nil {
		client.MAC = &cmpclient.MACCredential{Reference: b.config.Reference, Secret: b.config.Secret}
	} else {
		client.Signer = &cmp.SignatureProtector{Signer: b.config.Signer, Certificate: b.config.Certificate, Chain: b.config.Chain}
	}
	return client, nil
}

// Capabilities implements backends.Backend.
func (b *Backend) Capabilities(context.Context) (backends.Capabilities, error) {
	return backends.Capabilities{Name: "upstream-cmp", Version: "1", ContractVersion: 1, Revoke: true, CRL: true}, nil
}

// Issue implements backends.Backend. Delayed delivery upstream is waited out here, up to
// the configured timeout, so the router always gets a final result.
func (b *Backend) Issue(ctx context.Context, req *backends.IssueRequest) (*backends.IssueResult, error) {
	client, err := b.client()
	if err != nil {
		return nil, &backends.Error{Category: backends.CategoryInternal, Detail: "invalid upstream configuration", Err: err}
	}
	defer client.Transport.Close()
	ctx, cancel := context.WithTimeout(ctx, b.config.Timeout)
	defer cancel()
	result, err := client.Enroll(ctx, cmpclient.EnrollRequest{
		Type: b.config.RequestType, PublicKey: req.Template.PublicKeyDER, RawSubject: req.Template.RawSubject,
		Extensions: req.Template.Extensions, NotBefore: req.Template.NotBefore, NotAfter: req.Template.NotAfter,
	})
	if err != nil {
		return nil, b.upstreamError("enrollment", err)
	}
	chain, err := b.CAChain(ctx)
	if err != nil {
		b.logger.Warn("upstream CA chain unavailable; returning the certificate without it", "error", err)
	}
	b.logger.Info("upstream CA issued a certificate", "server", b.config.Server, "serial", result.Certificate.SerialNumber.Text(16),
		"subject", result.Certificate.Subject.String(), "status", result.Status.Status.String())
	return &backends.IssueResult{Certificate: result.Certificate, Chain: chain}, nil
}

// Poll implements backends.Backend. Issue never returns a pending result, so there is
// nothing to poll.
func (b *Backend) Poll(context.Context, *backends.PollRequest) (*backends.IssueResult, error) {
	return nil, backends.Errorf(backends.CategoryUnsupported, "the upstream CMP backend never returns a pending result, so there is nothing to poll")
}

// Revoke implements backends.Backend.
//
// NOTE: when the upstream CA responds to the rr with status waiting, the client polls it
// within the configured timeout. A decision that takes longer fails the revocation
// instead of becoming a pending result for the router.
func (b *Backend) Revoke(ctx context.Context, req *backends.RevokeRequest) (*backends.RevokeResult, error) {
	client, err := b.client()
	if err != nil {
		return nil, &backends.Error{Category: backends.CategoryInternal, Detail: "invalid upstream configuration", Err: err}
	}
	defer client.Transport.Close()
	ctx, cancel := context.WithTimeout(ctx, b.config.Timeout)
	defer cancel()
	if err := client.RevokeSerial(ctx, req.RawIssuer, req.SerialNumber, int(req.Reason)); err != nil {
		return nil, b.upstreamError("revocation", err)
	}
	return &backends.RevokeResult{}, nil
}

// PollRevoke implements backends.Backend. Revoke never returns a pending result, so
// there is nothing to poll.
func (b *Backend) PollRevoke(context.Context, *backends.PollRequest) (*backends.RevokeResult, error) {
	return nil, backends.Errorf(backends.CategoryUnsupported, "the upstream CMP backend never returns a pending revocation, so there is nothing to poll")
}

// CAChain implements backends.Backend: the configured chain, or the upstream's response
// to genm caCerts, kept for an hour.
func (b *Backend) CAChain(ctx context.Context) ([]*x509.Certificate, error) {
	if b.config.CAChain != nil {
		return b.config.CAChain, nil
	}
	b.mu.Lock()
	if b.chain != nil && time.Now().Before(b.chainUntil) {
		chain := b.chain
		b.mu.Unlock()
		return chain, nil
	}
	b.mu.Unlock()

	infos, err := b.general(ctx, cmp.OIDITCACerts)
	if err != nil {
		return nil, err
	}
	for _, info := range infos {
		if !info.Type.Equal(cmp.OIDITCACerts) || info.Value == nil {
			continue
		}
		var raw []asn1.RawValue
		if rest, err := asn1.Unmarshal(info.Value, &raw); err != nil || len(rest) != 0 {
			return nil, backends.Errorf(backends.CategoryUnavailable, "the upstream CA sent an invalid caCerts value")
		}
		chain := make([]*x509.Certificate, 0, len(raw))
		for _, element := range raw {
			cert, err := x509.ParseCertificate(element.FullBytes)
			if err != nil {
				return nil, backends.Errorf(backends.CategoryUnavailable, "the upstream CA sent an invalid certificate in caCerts")
			}
			chain = append(chain, cert)
		}
		b.mu.Lock()
		b.chain, b.chainUntil = chain, time.Now().Add(chainCacheLifetime)
		b.mu.Unlock()
		return chain, nil
	}
	return nil, backends.Errorf(backends.CategoryUnsupported, "the upstream CA does not return caCerts; configure ca_chain_file")
}

// CRL implements backends.Backend with genm currentCRL.
func (b *Backend) CRL(ctx context.Context) ([]byte, error) {
	infos, err := b.general(ctx, cmp.OIDITCurrentCRL)
	if err != nil {
		return nil, err
	}
	for _, info := range infos {
		if info.Type.Equal(cmp.OIDITCurrentCRL) && info.Value != nil {
			return info.Value, nil
		}
	}
	return nil, backends.Errorf(backends.CategoryUnsupported, "the upstream CA does not return its CRL with genm currentCRL")
}

func (b *Backend) general(ctx context.Context, infoType asn1.ObjectIdentifier) ([]cmp.InfoTypeAndValue, error) {
	client, err := b.client()
	if err != nil {
		return nil, &backends.Error{Category: backends.CategoryInternal, Detail: "invalid upstream configuration", Err: err}
	}
	defer client.Transport.Close()
	ctx, cancel := context.WithTimeout(ctx, b.config.Timeout)
	defer cancel()
	infos, err := client.General(ctx, infoType)
	if err != nil {
		return nil, b.upstreamError("genm", err)
	}
	return infos, nil
}

// Close implements the host's shutdown; the backend holds no connection between calls.
func (b *Backend) Close() error { return nil }

// upstreamFailures maps the upstream CA's PKIFailureInfo to a backend category, so that
// the client of the gateway gets the upstream's reason in its own protocol.
var upstreamFailures = []struct {
	info     cmp.FailureInfo
	category backends.Category
}{
	{cmp.FailBadCertTemplate, backends.CategoryBadTemplate},
	{cmp.FailUnacceptedPolicy, backends.CategoryBadTemplate},
	{cmp.FailUnacceptedExtension, backends.CategoryBadTemplate},
	{cmp.FailBadAlg, backends.CategoryBadTemplate},
	{cmp.FailNotAuthorized, backends.CategoryNotAuthorized},
	{cmp.FailBadCertID, backends.CategoryNotFound},
	{cmp.FailCertRevoked, backends.CategoryAlreadyRevoked},
	{cmp.FailSystemUnavail, backends.CategoryUnavailable},
	{cmp.FailBadRequest, backends.CategoryBadRequest},
	{cmp.FailBadPOP, backends.CategoryBadRequest},
}

// upstreamError turns a client error into a backend error. A rejection by the upstream
// CA keeps its reason. A transport failure or an invalid response makes the CA
// unavailable, and the upstream's own internal failures stay internal.
func (b *Backend) upstreamError(operation string, err error) error {
	var serverErr *cmpclient.ServerError
	if errors.As(err, &serverErr) {
		category := backends.CategoryInternal
		for _, row := range upstreamFailures {
			if serverErr.Status.FailInfo&row.info != 0 {
				category = row.category
				break
			}
		}
		b.logger.Warn("upstream CA rejected the "+operation, "server", b.config.Server, "status", serverErr.Status.String())
		return &backends.Error{Category: category, Detail: "upstream CA: " + serverErr.Status.String(), Err: err}
	}
	b.logger.Warn("upstream CA unreachable or its response invalid", "operation", operation, "server", b.config.Server, "error", err)
	return &backends.Error{Category: backends.CategoryUnavailable, Detail: "the upstream CA is unavailable", Err: err}
}
