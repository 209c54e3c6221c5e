package sdk

import (
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/hashicorp/go-hclog"

	backendv1 "github.com/certgate/certgate/proto/certgate/backend/v1"
)

// server adapts a CA to the generated BackendService server: it converts the messages
// to Go types, checks what the host sent and converts errors with statusError.
type server struct {
	backendv1.UnimplementedBackendServiceServer
	ca         CA
	logger     hclog.Logger
	configured atomic.Bool
}

func (s *server) Configure(ctx context.Context, req *backendv1.ConfigureRequest) (*backendv1.ConfigureResponse, error) {
	if err := s.ca.Configure(ctx, req.GetDataDir(), req.GetConfig().AsMap()); err != nil {
		return nil, statusError(err)
	}
	s.configured.Store(true)
	s.logger.Info("plugin configured", "host_contract_version", req.GetHostContractVersion())
	return &backendv1.ConfigureResponse{}, nil
}

// checkConfigured rejects calls that arrive before a successful Configure, so a CA never
// runs half initialised.
func (s *server) checkConfigured() error {
	if !s.configured.Load() {
		return statusError(Errorf(CategoryUnavailable, "the plugin is not configured"))
	}
	return nil
}

func (s *server) GetCapabilities(context.Context, *backendv1.GetCapabilitiesRequest) (*backendv1.GetCapabilitiesResponse, error) {
	desc := describe(s.ca)
	return &backendv1.GetCapabilitiesResponse{
		Name:            desc.Name,
		Version:         desc.Version,
		ContractVersion: ContractVersion,
		Capabilities:    capabilities(s.ca),
	}, nil
}

// capabilities derives the optional features from the interfaces ca implements.
func capabilities(ca CA) []backendv1.Capability {
	var caps []backendv1.Capability
	if _, ok := ca.(interface{ revokeUnsupported() }); !ok {
		caps = append(caps, backendv1.Capability_CAPABILITY_REVOKE)
	}
	if _, ok := ca.(CRLProvider); ok {
		caps = append(caps, backendv1.Capability_CAPABILITY_CRL)
	}
	if _, ok := ca.(Poller); ok {
		caps = append(caps, backendv1.Capability_CAPABILITY_PENDING)
	}
	return caps
}

func (s *server) Issue(ctx context.Context, req *backendv1.IssueRequest) (*backendv1.IssueResponse, error) {
	if err := s.checkConfigured(); err != nil {
		return nil, err
	}
	template, err := templateFromProto(req.GetTemplate())
	if err != nil {
		return nil, statusError(err)
	}
	result, err := s.ca.Issue(ctx, &IssueRequest{
		TransactionID: req.GetTransactionId(),
		Profile:       req.GetProfile(),
		Requester:     requesterFromProto(req.GetRequester()),
		Template:      template,
		CSR:           req.GetCsrDer(),
	})
	if err != nil {
		return nil, statusError(err)
	}
	issued, pending, err := s.resultToProto(ctx, result)
	if err != nil {
		return nil, statusError(err)
	}
	if pending != nil {
		return &backendv1.IssueResponse{Result: &backendv1.IssueResponse_Pending{Pending: pending}}, nil
	}
	return &backendv1.IssueResponse{Result: &backendv1.IssueResponse_Issued{Issued: issued}}, nil
}

func (s *server) Poll(ctx context.Context, req *backendv1.PollRequest) (*backendv1.PollResponse, error) {
	if err := s.checkConfigured(); err != nil {
		return nil, err
	}
	poller, ok := s.ca.(Poller)
	if !ok {
		return nil, statusError(Errorf(CategoryUnsupported, "this CA never returns pending results"))
	}
	result, err := poller.Poll(ctx, &PollRequest{
		TransactionID: req.GetTransactionId(),
		PollReference: req.GetPollReference(),
	})
	if err != nil {
		return nil, statusError(err)
	}
	issued, pending, err := s.resultToProto(ctx, result)
	if err != nil {
		return nil, statusError(err)
	}
	if pending != nil {
		return &backendv1.PollResponse{Result: &backendv1.PollResponse_Pending{Pending: pending}}, nil
	}
	return &backendv1.PollResponse{Result: &backendv1.PollResponse_Issued{Issued: issued}}, nil
}

// resultToProto checks a CA's IssueResult and converts it. Exactly one of the results
// is non-nil when the error is nil.
func (s *server) resultToProto(ctx context.Context, result *IssueResult) (*backendv1.Issued, *backendv1.Pending, error) {
	switch {
	case result == nil:
		return nil, nil, errors.New("sdk: the CA returned neither a certificate nor an error")
	case result.Pending != nil && result.Certificate != nil:
		return nil, nil, errors.New("sdk: the CA returned both a certificate and a pending result")
	case result.Pending != nil:
		if _, ok := s.ca.(Poller); !ok {
			return nil, nil, errors.New("sdk: the CA returned a pending result but does not implement Poller")
		}
		return nil, pendingToProto(result.Pending), nil
	case result.Certificate == nil || len(result.Certificate.Raw) == 0:
		return nil, nil, errors.New("sdk: the CA returned a certificate without DER encoding")
	}

	chain := result.Chain
	if chain == nil {
		var err error
		if chain, err = s.ca.CAChain(ctx); err != nil {
			return nil, nil, err
		}
	}
	return &backendv1.Issued{
		CertificateDer: result.Certificate.Raw,
		ChainDer:       certificatesToDER(chain),
	}, nil, nil
}

func (s *server) Revoke(ctx context.Context, req *backendv1.RevokeRequest) (*backendv1.RevokeResponse, error) {
	if err := s.checkConfigured(); err != nil {
		return nil, err
	}
	if len(req.GetSerialNumber()) == 0 {
		return nil, statusError(Errorf(CategoryBadRequest, "the serial number is missing"))
	}
	reason, err := reasonFromProto(req.GetReason())
	if err != nil {
		return nil, statusError(err)
	}
	invalidityDate, err := timeFromProto("invalidity_date", req.GetInvalidityDate())
	if err != nil {
		return nil, statusError(err)
	}
	revocation := &RevokeRequest{
		TransactionID:  req.GetTransactionId(),
		RawIssuer:      req.GetRawIssuer(),
		SerialNumber:   new(big.Int).SetBytes(req.GetSerialNumber()),
		Reason:         reason,
		InvalidityDate: invalidityDate,
		Requester:      requesterFromProto(req.GetRequester()),
	}
	if poller, ok := s.ca.(RevocationPoller); ok {
		pending, err := poller.DeferRevoke(ctx, revocation)
		if err != nil {
			return nil, statusError(err)
		}
		return &backendv1.RevokeResponse{Pending: pendingToProto(pending)}, nil
	}
	if err := s.ca.Revoke(ctx, revocation); err != nil {
		return nil, statusError(err)
	}
	return &backendv1.RevokeResponse{}, nil
}

func (s *server) PollRevoke(ctx context.Context, req *backendv1.PollRevokeRequest) (*backendv1.PollRevokeResponse, error) {
	if err := s.checkConfigured(); err != nil {
		return nil, err
	}
	poller, ok := s.ca.(RevocationPoller)
	if !ok {
		return nil, statusError(Errorf(CategoryUnsupported, "this CA never defers a revocation"))
	}
	pending, err := poller.PollRevoke(ctx, &PollRequest{TransactionID: req.GetTransactionId(), PollReference: req.GetPollReference()})
	if err != nil {
		return nil, statusError(err)
	}
	return &backendv1.PollRevokeResponse{Pending: pendingToProto(pending)}, nil
}

// pendingToProto converts a pending decision; nil stays nil.
func pendingToProto(p *Pending) *backendv1.Pending {
	if p == nil {
		return nil
	}
	return &backendv1.Pending{PollReference: p.PollReference, CheckAfter: durationToProto(p.CheckAfter)}
}

func (s *server) GetCAChain(ctx context.Context, _ *backendv1.GetCAChainRequest) (*backendv1.GetCAChainResponse, error) {
	if err := s.checkConfigured(); err != nil {
		return nil, err
	}
	chain, err := s.ca.CAChain(ctx)
	if err != nil {
		return nil, statusError(err)
	}
	return &backendv1.GetCAChainResponse{CertificatesDer: certificatesToDER(chain)}, nil
}

func (s *server) GetCRL(ctx context.Context, _ *backendv1.GetCRLRequest) (*backendv1.GetCRLResponse, error) {
	if err := s.checkConfigured(); err != nil {
		return nil, err
	}
	provider, ok := s.ca.(CRLProvider)
	if !ok {
		return nil, statusError(Errorf(CategoryUnsupported, "this CA does not publish CRLs"))
	}
	crl, err := provider.CRL(ctx)
	if err != nil {
		return nil, statusError(err)
	}
	return &backendv1.GetCRLResponse{CrlDer: crl}, nil
}

func templateFromProto(t *backendv1.CertTemplate) (Template, error) {
	if t == nil {
		return Template{}, Errorf(CategoryBadRequest, "the certificate template is missing")
	}
	extensions := make([]pkix.Extension, 0, len(t.GetExtensions()))
	for i, ext := range t.GetExtensions() {
		oid, err := parseOID(ext.GetOid())
		if err != nil {
			return Template{}, &Error{Category: CategoryBadRequest, Detail: fmt.Sprintf("extension %d has an invalid OID", i), Err: err}
		}
		extensions = append(extensions, pkix.Extension{Id: oid, Critical: ext.GetCritical(), Value: ext.GetValue()})
	}
	notBefore, err := timeFromProto("not_before", t.GetNotBefore())
	if err != nil {
		return Template{}, err
	}
	notAfter, err := timeFromProto("not_after", t.GetNotAfter())
	if err != nil {
		return Template{}, err
	}
	return Template{
		RawSubject:   t.GetRawSubject(),
		PublicKeyDER: t.GetPublicKeyDer(),
		Extensions:   extensions,
		NotBefore:    notBefore,
		NotAfter:     notAfter,
	}, nil
}

func requesterFromProto(r *backendv1.Requester) Requester {
	return Requester{Frontend: r.GetFrontend(), Identity: r.GetIdentity(), Method: r.GetMethod()}
}

// parseOID parses a dotted-decimal object identifier. The rules are those of X.660: at
// least two arcs, the first 0, 1 or 2, and the second below 40 unless the first is 2.
func parseOID(dotted string) (asn1.ObjectIdentifier, error) {
	parts := strings.Split(dotted, ".")
	if len(parts) < 2 {
		return nil, fmt.Errorf("sdk: OID %q has fewer than two arcs", dotted)
	}
	oid := make(asn1.ObjectIdentifier, len(parts))
	for i, part := range parts {
		// Arcs are digits only, without sign or leading zeros, and fit an int32 so that
		// encoding/asn1 can encode them on every platform.
		if part == "" || (len(part) > 1 && part[0] == '0') || strings.TrimLeft(part, "0123456789") != "" {
			return nil, fmt.Errorf("sdk: OID %q has an invalid arc %q", dotted, part)
		}
		arc, err := strconv.ParseInt(part, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("sdk: OID %q has an arc above 2^31-1", dotted)
		}
		oid[i] = int(arc)
	}
	if oid[0] > 2 || (oid[0] < 2 && oid[1] >= 40) {
		return nil, fmt.Errorf("sdk: OID %q has invalid first arcs", dotted)
	}
	return oid, nil
}

func certificatesToDER(certs []*x509.Certificate) [][]byte {
	der := make([][]byte, len(certs))
	for i, cert := range certs {
		der[i] = cert.Raw
	}
	return der
}
