package backends

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	backendv1 "github.com/certgate/certgate/proto/certgate/backend/v1"
)

var _ Backend = (*PluginBackend)(nil)

// Capabilities returns what the running plugin reported after its last launch.
func (b *PluginBackend) Capabilities(ctx context.Context) (Capabilities, error) {
	proc, err := b.process(ctx)
	if err != nil {
		return Capabilities{}, err
	}
	return proc.caps, nil
}

// Issue calls the plugin's Issue rpc.
func (b *PluginBackend) Issue(ctx context.Context, req *IssueRequest) (*IssueResult, error) {
	msg, err := issueRequestToProto(req)
	if err != nil {
		return nil, err
	}
	var resp *backendv1.IssueResponse
	err = b.call(ctx, "Issue", func(ctx context.Context, p *pluginProcess) (err error) {
		resp, err = p.rpc.Issue(ctx, msg)
		return err
	})
	if err != nil {
		return nil, err
	}
	return b.issueResultFromProto(resp.GetIssued(), resp.GetPending())
}

// Poll calls the plugin's Poll rpc.
func (b *PluginBackend) Poll(ctx context.Context, req *PollRequest) (*IssueResult, error) {
	if req == nil {
		return nil, Errorf(CategoryBadRequest, "the poll request is missing")
	}
	msg := &backendv1.PollRequest{TransactionId: req.TransactionID, PollReference: req.PollReference}
	var resp *backendv1.PollResponse
	err := b.call(ctx, "Poll", func(ctx context.Context, p *pluginProcess) (err error) {
		resp, err = p.rpc.Poll(ctx, msg)
		return err
	})
	if err != nil {
		return nil, err
	}
	return b.issueResultFromProto(resp.GetIssued(), resp.GetPending())
}

// Revoke calls the plugin's Revoke rpc.
func (b *PluginBackend) Revoke(ctx context.Context, req *RevokeRequest) (*RevokeResult, error) {
	msg, err := revokeRequestToProto(req)
	if err != nil {
		return nil, err
	}
	var resp *backendv1.RevokeResponse
	err = b.call(ctx, "Revoke", func(ctx context.Context, p *pluginProcess) (err error) {
		resp, err = p.rpc.Revoke(ctx, msg)
		return err
	})
	if err != nil {
		return nil, err
	}
	return revokeResultFromProto(resp.GetPending()), nil
}

// PollRevoke calls the plugin's PollRevoke rpc.
func (b *PluginBackend) PollRevoke(ctx context.Context, req *PollRequest) (*RevokeResult, error) {
	if req == nil {
		return nil, Errorf(CategoryBadRequest, "the poll request is missing")
	}
	msg := &backendv1.PollRevokeRequest{TransactionId: req.TransactionID, PollReference: req.PollReference}
	var resp *backendv1.PollRevokeResponse
	err := b.call(ctx, "PollRevoke", func(ctx context.Context, p *pluginProcess) (err error) {
		resp, err = p.rpc.PollRevoke(ctx, msg)
		return err
	})
	if err != nil {
		return nil, err
	}
	return revokeResultFromProto(resp.GetPending()), nil
}

func revokeResultFromProto(pending *backendv1.Pending) *RevokeResult {
	if pending == nil {
		return &RevokeResult{}
	}
	return &RevokeResult{Pending: &Pending{PollReference: pending.GetPollReference(), CheckAfter: pending.GetCheckAfter().AsDuration()}}
}

// CAChain calls the plugin's GetCAChain rpc.
func (b *PluginBackend) CAChain(ctx context.Context) ([]*x509.Certificate, error) {
	var resp *backendv1.GetCAChainResponse
	err := b.call(ctx, "GetCAChain", func(ctx context.Context, p *pluginProcess) (err error) {
		resp, err = p.rpc.GetCAChain(ctx, &backendv1.GetCAChainRequest{})
		return err
	})
	if err != nil {
		return nil, err
	}
	if len(resp.GetCertificatesDer()) == 0 {
		return nil, pluginFault(b.spec.Name, errors.New("empty CA chain"))
	}
	chain, err := parseCertificates(resp.GetCertificatesDer())
	if err != nil {
		return nil, pluginFault(b.spec.Name, err)
	}
	return chain, nil
}

// CRL calls the plugin's GetCRL rpc.
func (b *PluginBackend) CRL(ctx context.Context) ([]byte, error) {
	var resp *backendv1.GetCRLResponse
	err := b.call(ctx, "GetCRL", func(ctx context.Context, p *pluginProcess) (err error) {
		resp, err = p.rpc.GetCRL(ctx, &backendv1.GetCRLRequest{})
		return err
	})
	if err != nil {
		return nil, err
	}
	if len(resp.GetCrlDer()) == 0 {
		return nil, pluginFault(b.spec.Name, errors.New("empty CRL"))
	}
	return resp.GetCrlDer(), nil
}

// pluginFault is the error for a response that breaks the contract.
func pluginFault(backend string, err error) *Error {
	return &Error{Category: CategoryInternal, Err: fmt.Errorf("plugin %q returned an invalid response: %w", backend, err)}
}

func capabilitiesFromProto(resp *backendv1.GetCapabilitiesResponse) Capabilities {
	caps := Capabilities{
		Name:            resp.GetName(),
		Version:         resp.GetVersion(),
		ContractVersion: resp.GetContractVersion(),
	}
	for _, c := range resp.GetCapabilities() {
		switch c {
		case backendv1.Capability_CAPABILITY_REVOKE:
			caps.Revoke = true
		case backendv1.Capability_CAPABILITY_CRL:
			caps.CRL = true
		case backendv1.Capability_CAPABILITY_PENDING:
			caps.Pending = true
		}
		// Capabilities of later contract revisions are ignored until the host uses them.
	}
	return caps
}

func issueRequestToProto(req *IssueRequest) (*backendv1.IssueRequest, error) {
	if req == nil {
		return nil, Errorf(CategoryBadRequest, "the issue request is missing")
	}
	t := req.Template
	extensions := make([]*backendv1.Extension, 0, len(t.Extensions))
	for i, ext := range t.Extensions {
		if len(ext.Id) < 2 {
			return nil, Errorf(CategoryBadTemplate, "extension %d has no valid OID", i)
		}
		extensions = append(extensions, &backendv1.Extension{
			Oid:      ext.Id.String(),
			Critical: ext.Critical,
			Value:    ext.Value,
		})
	}
	return &backendv1.IssueRequest{
		TransactionId: req.TransactionID,
		Profile:       req.Profile,
		Requester:     requesterToProto(req.Requester),
		Template: &backendv1.CertTemplate{
			RawSubject:   t.RawSubject,
			PublicKeyDer: t.PublicKeyDER,
			Extensions:   extensions,
			NotBefore:    timeToProto(t.NotBefore),
			NotAfter:     timeToProto(t.NotAfter),
		},
		CsrDer: req.CSR,
	}, nil
}

func (b *PluginBackend) issueResultFromProto(issued *backendv1.Issued, pending *backendv1.Pending) (*IssueResult, error) {
	backend := b.spec.Name
	switch {
	case issued != nil:
		cert, err := x509.ParseCertificate(issued.GetCertificateDer())
		if err != nil {
			return nil, pluginFault(backend, fmt.Errorf("certificate: %w", err))
		}
		chain, err := b.chains.parse(issued.GetChainDer())
		if err != nil {
			return nil, pluginFault(backend, err)
		}
		return &IssueResult{Certificate: cert, Chain: chain}, nil
	case pending != nil:
		var checkAfter time.Duration
		if pending.GetCheckAfter() != nil {
			if err := pending.GetCheckAfter().CheckValid(); err != nil {
				return nil, pluginFault(backend, fmt.Errorf("check_after: %w", err))
			}
			checkAfter = pending.GetCheckAfter().AsDuration()
		}
		return &IssueResult{Pending: &Pending{PollReference: pending.GetPollReference(), CheckAfter: checkAfter}}, nil
	default:
		// Also what a result added in a later contract revision looks like here.
		return nil, pluginFault(backend, errors.New("neither a certificate nor a pending result"))
	}
}

// chainCache keeps the CA chain of the last issued certificate, parsed. A CA returns
// the same chain with every certificate, and parsing it again cost two certificate
// parses per request.
type chainCache struct {
	last atomic.Pointer[parsedChain]
}

type parsedChain struct {
	der   [][]byte
	certs []*x509.Certificate
}

// parse returns the certificates of ders, from the cache when ders equals the last
// chain byte for byte. The returned slice is the caller's own; the certificates in it
// are shared and must not be modified.
func (c *chainCache) parse(ders [][]byte) ([]*x509.Certificate, error) {
	if last := c.last.Load(); last != nil && slices.EqualFunc(last.der, ders, bytes.Equal) {
		return slices.Clone(last.certs), nil
	}
	certs, err := parseCertificates(ders)
	if err != nil {
		return nil, err
	}
	c.last.Store(&parsedChain{der: ders, certs: slices.Clone(certs)})
	return certs, nil
}

func parseCertificates(ders [][]byte) ([]*x509.Certificate, error) {
	certs := make([]*x509.Certificate, 0, len(ders))
	for i, der := range ders {
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fmt.Errorf("CA certificate %d: %w", i, err)
		}
		certs = append(certs, cert)
	}
	return certs, nil
}

// reasonToWire maps RevocationReason to the contract's values, which equal the RFC 5280
// codes except for unspecified.
//
// NOTE: RevocationReason has no separate value for "no reason given", so
// ReasonUnspecified is sent as REVOCATION_REASON_UNSPECIFIED (no reason), never as
// REVOCATION_REASON_RFC5280_UNSPECIFIED. Both lead to a CRL entry without reasonCode.
var reasonToWire = map[RevocationReason]backendv1.RevocationReason{
	ReasonUnspecified:          backendv1.RevocationReason_REVOCATION_REASON_UNSPECIFIED,
	ReasonKeyCompromise:        backendv1.RevocationReason_REVOCATION_REASON_KEY_COMPROMISE,
	ReasonCACompromise:         backendv1.RevocationReason_REVOCATION_REASON_CA_COMPROMISE,
	ReasonAffiliationChanged:   backendv1.RevocationReason_REVOCATION_REASON_AFFILIATION_CHANGED,
	ReasonSuperseded:           backendv1.RevocationReason_REVOCATION_REASON_SUPERSEDED,
	ReasonCessationOfOperation: backendv1.RevocationReason_REVOCATION_REASON_CESSATION_OF_OPERATION,
	ReasonCertificateHold:      backendv1.RevocationReason_REVOCATION_REASON_CERTIFICATE_HOLD,
	ReasonRemoveFromCRL:        backendv1.RevocationReason_REVOCATION_REASON_REMOVE_FROM_CRL,
	ReasonPrivilegeWithdrawn:   backendv1.RevocationReason_REVOCATION_REASON_PRIVILEGE_WITHDRAWN,
	ReasonAACompromise:         backendv1.RevocationReason_REVOCATION_REASON_AA_COMPROMISE,
}

func revokeRequestToProto(req *RevokeRequest) (*backendv1.RevokeRequest, error) {
	if req == nil {
		return nil, Errorf(CategoryBadRequest, "the revocation request is missing")
	}
	if req.SerialNumber == nil || req.SerialNumber.Sign() <= 0 {
		return nil, Errorf(CategoryBadRequest, "the serial number must be a positive integer")
	}
	reason, ok := reasonToWire[req.Reason]
	if !ok {
		return nil, Errorf(CategoryBadRequest, "revocation reason %d is not a CRLReason of RFC 5280", int(req.Reason))
	}
	return &backendv1.RevokeRequest{
		TransactionId:  req.TransactionID,
		RawIssuer:      req.RawIssuer,
		SerialNumber:   req.SerialNumber.Bytes(),
		Reason:         reason,
		InvalidityDate: timeToProto(req.InvalidityDate),
		Requester:      requesterToProto(req.Requester),
	}, nil
}

func requesterToProto(r Requester) *backendv1.Requester {
	return &backendv1.Requester{Frontend: r.Frontend, Identity: r.Identity, Method: r.Method}
}

// timeToProto returns nil for the zero time, which the contract reads as "not given".
func timeToProto(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}
