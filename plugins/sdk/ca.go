package sdk

import (
	"context"
	"crypto"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"time"
)

// CA is a certificate authority served by a plugin. certgate calls the methods
// concurrently, so implementations must be safe for concurrent use. An error of type
// [*Error] keeps its category on the way to certgate; any other error becomes
// [CategoryInternal].
type CA interface {
	// Configure validates config and prepares the CA. It is called after every launch of
	// the plugin process and before any other method. dataDir belongs to this plugin
	// instance and exists. config is the plugin's `config` block from certgate's
	// configuration file; numbers in it are float64. A wrong setting is reported with
	// an *Error of CategoryBadRequest that names the key.
	Configure(ctx context.Context, dataDir string, config map[string]any) error

	// Issue signs the template of req, or returns a result with Pending set when the CA
	// decides later (only allowed when the CA implements Poller). Issue must be
	// idempotent for req.TransactionID: certgate repeats a request after a plugin crash.
	Issue(ctx context.Context, req *IssueRequest) (*IssueResult, error)

	// Revoke changes the revocation state of a certificate this CA issued. An unknown
	// issuer or serial number is CategoryNotFound, a certificate that is already revoked
	// is CategoryAlreadyRevoked. ReasonRemoveFromCRL releases a certificate from
	// certificateHold.
	Revoke(ctx context.Context, req *RevokeRequest) error

	// CAChain returns the issuing CA certificate first and the root last.
	CAChain(ctx context.Context) ([]*x509.Certificate, error)
}

// Poller is implemented by a CA whose Issue may return pending results.
type Poller interface {
	// Poll returns the result of an Issue call that returned Pending: the certificate,
	// or Pending again.
	Poll(ctx context.Context, req *PollRequest) (*IssueResult, error)
}

// RevocationPoller is implemented by a CA whose revocations may wait for a decision,
// such as an operator's approval. certgate then calls DeferRevoke in place of Revoke.
type RevocationPoller interface {
	// DeferRevoke revokes as Revoke does and returns nil, or returns a Pending when the
	// CA decides later.
	DeferRevoke(ctx context.Context, req *RevokeRequest) (*Pending, error)
	// PollRevoke returns Pending again while the CA has not decided, nil once the
	// revocation took effect, or the error that rejected it.
	PollRevoke(ctx context.Context, req *PollRequest) (*Pending, error)
}

// CRLProvider is implemented by a CA that publishes CRLs.
type CRLProvider interface {
	// CRL returns the issuing CA's current DER-encoded CRL.
	CRL(ctx context.Context) ([]byte, error)
}

// Describer is implemented by a CA that names itself in certgate's logs. Without it,
// Serve reports the executable's file name and the main module's version.
type Describer interface {
	Describe() Description
}

// Description is the name and version a plugin reports.
type Description struct {
	Name    string // short name of the implementation, for example "softca"
	Version string // version of the implementation
}

// RevokeUnsupported is embedded in a CA that cannot revoke certificates. Its Revoke
// returns CategoryUnsupported, and Serve then leaves the REVOKE capability out, so that
// certgate rejects revocation requests for this backend before calling it.
type RevokeUnsupported struct{}

// Revoke returns an *Error of CategoryUnsupported.
func (RevokeUnsupported) Revoke(context.Context, *RevokeRequest) error {
	return Errorf(CategoryUnsupported, "this CA does not revoke certificates")
}

func (RevokeUnsupported) revokeUnsupported() {}

// Requester identifies who asked for an operation and how certgate's frontend
// authenticated them.
type Requester struct {
	Frontend string // "cmp", "est", "scep" or "acme"
	Identity string // the verified MAC reference, certificate subject or ACME account
	Method   string // "mac", "signature", "challenge", "tls-client" or "acme-account"
}

// Template is the certificate content after certgate applied the profile's policy. The
// CA adds issuer, serial number, basic constraints and authority key identifier itself.
type Template struct {
	RawSubject   []byte           // DER-encoded subject Name; empty for an empty Name
	PublicKeyDER []byte           // DER-encoded SubjectPublicKeyInfo
	Extensions   []pkix.Extension // to copy into the certificate as given
	NotBefore    time.Time        // requested start of validity; zero when not given
	NotAfter     time.Time        // requested end of validity; zero when not given
}

// PublicKey parses PublicKeyDER. It returns an *Error of CategoryBadTemplate when the
// key cannot be parsed or its algorithm is unknown to crypto/x509.
func (t *Template) PublicKey() (crypto.PublicKey, error) {
	pub, err := x509.ParsePKIXPublicKey(t.PublicKeyDER)
	if err != nil {
		return nil, &Error{Category: CategoryBadTemplate, Detail: "the public key cannot be parsed", Err: err}
	}
	return pub, nil
}

// IssueRequest is a request to sign one certificate.
type IssueRequest struct {
	TransactionID []byte // idempotency key: the same ID and template return the same certificate
	Profile       string // name of the certgate profile that produced the template
	Requester     Requester
	Template      Template
	CSR           []byte // the client's DER-encoded PKCS#10 request, or nil
}

// IssueResult is either an issued certificate or a pending decision.
type IssueResult struct {
	Certificate *x509.Certificate   // nil while pending
	Chain       []*x509.Certificate // issuing CA first, root last; nil means CAChain's result
	Pending     *Pending            // set instead of Certificate when the CA decides later
}

// Pending is a decision deferred by the CA. certgate polls for it later through Poll.
type Pending struct {
	PollReference string        // opaque to certgate, passed back in PollRequest
	CheckAfter    time.Duration // zero lets certgate choose
}

// PollRequest is a request for the result of a pending issuance.
type PollRequest struct {
	TransactionID []byte
	PollReference string
}

// RevocationReason is a CRLReason code of RFC 5280 section 5.3.1, or ReasonNone.
type RevocationReason int

// The CRLReason codes of RFC 5280 section 5.3.1, and ReasonNone. RFC 5280 does not use
// code 7.
const (
	// ReasonNone means the requester gave no reason. A CA writes no reasonCode
	// extension, as it also should for ReasonUnspecified (RFC 5280 section 5.3.1).
	ReasonNone RevocationReason = -1

	ReasonUnspecified          RevocationReason = 0 // sent explicitly by the requester
	ReasonKeyCompromise        RevocationReason = 1
	ReasonCACompromise         RevocationReason = 2
	ReasonAffiliationChanged   RevocationReason = 3
	ReasonSuperseded           RevocationReason = 4
	ReasonCessationOfOperation RevocationReason = 5
	ReasonCertificateHold      RevocationReason = 6
	ReasonRemoveFromCRL        RevocationReason = 8 // releases a certificate from hold
	ReasonPrivilegeWithdrawn   RevocationReason = 9
	ReasonAACompromise         RevocationReason = 10
)

// RevokeRequest names a certificate by issuer and serial number.
type RevokeRequest struct {
	TransactionID  []byte   // the requesting transaction; a deferred revocation gets it back in PollRequest
	RawIssuer      []byte   // DER-encoded Name of the issuing CA
	SerialNumber   *big.Int // positive
	Reason         RevocationReason
	InvalidityDate time.Time // zero when not given
	Requester      Requester
}
