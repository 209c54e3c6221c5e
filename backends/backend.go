// Package backends defines the Backend interface that certgate's router calls to reach a
// certificate authority, and hosts the implementations: plugin processes launched with
// github.com/hashicorp/go-plugin over gRPC (the software CA, HSM and KMS CAs, custom CAs)
// and, later, in-process backends such as an upstream CMP CA.
//
// The interface uses Go types, not the generated protobuf types, so that the router stays
// free of gRPC and an in-process backend needs no protobuf. The plugin client in this
// package adapts it to the contract in proto/certgate/backend/v1.
package backends

import (
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"time"
)

// Backend is a certificate authority as the router uses it. Every method may return an
// *Error whose Category the router maps to the requesting protocol's failure code.
type Backend interface {
	// Capabilities reports what the backend supports beyond Issue and CAChain.
	Capabilities(ctx context.Context) (Capabilities, error)

	// Issue signs the policy-checked template of req, or returns a pending result with a
	// poll reference when the CA decides later.
	Issue(ctx context.Context, req *IssueRequest) (*IssueResult, error)

	// Poll requests again a result that Issue returned as pending.
	Poll(ctx context.Context, req *PollRequest) (*IssueResult, error)

	// Revoke changes the revocation state of a certificate that this backend issued, or
	// returns a pending result when the CA decides later.
	Revoke(ctx context.Context, req *RevokeRequest) (*RevokeResult, error)

	// PollRevoke requests again a revocation that Revoke returned as pending.
	PollRevoke(ctx context.Context, req *PollRequest) (*RevokeResult, error)

	// CAChain returns the issuing CA certificate first and the root last.
	CAChain(ctx context.Context) ([]*x509.Certificate, error)

	// CRL returns the current DER-encoded CRL of the issuing CA.
	CRL(ctx context.Context) ([]byte, error)
}

// Capabilities lists the optional operations of a backend.
type Capabilities struct {
	Name            string // the backend's own name, for logs
	Version         string // the backend's own version, for logs
	ContractVersion uint32 // the plugin contract version it speaks
	Revoke          bool
	CRL             bool
	Pending         bool // Issue may return pending results that Poll resolves
}

// Requester identifies who asked for an operation and how the frontend authenticated them.
type Requester struct {
	Frontend string // "cmp", "scep", "est", "acme"
	Identity string // the MAC reference, certificate subject or account that was verified
	Method   string // "mac", "signature", "challenge", "tls-client", "acme-account"
}

// Template is the certificate content after the profile's policy was applied. The backend
// adds issuer, serial number, authority key identifier and basic constraints itself.
type Template struct {
	RawSubject   []byte // DER-encoded Name
	PublicKeyDER []byte // DER-encoded SubjectPublicKeyInfo
	Extensions   []pkix.Extension
	NotBefore    time.Time
	NotAfter     time.Time
}

// IssueRequest is a request to sign one certificate.
type IssueRequest struct {
	TransactionID []byte // idempotency key: the same ID and template return the same certificate
	Profile       string
	Requester     Requester
	Template      Template
	CSR           []byte // the original PKCS#10 request when the client sent one, else nil
}

// IssueResult is either an issued certificate or a pending decision.
type IssueResult struct {
	Certificate *x509.Certificate   // nil while pending
	Chain       []*x509.Certificate // issuing CA first, root last
	Pending     *Pending
}

// Pending is the result of an issuance that the CA decides later; the client polls.
type Pending struct {
	PollReference string
	CheckAfter    time.Duration
}

// PollRequest is a request for the result of a pending issuance.
type PollRequest struct {
	TransactionID []byte
	PollReference string
}

// RevocationReason is a CRLReason code of RFC 5280 section 5.3.1.
type RevocationReason int

// The CRLReason codes of RFC 5280 section 5.3.1. Value 7 is not used.
const (
	ReasonUnspecified          RevocationReason = 0
	ReasonKeyCompromise        RevocationReason = 1
	ReasonCACompromise         RevocationReason = 2
	ReasonAffiliationChanged   RevocationReason = 3
	ReasonSuperseded           RevocationReason = 4
	ReasonCessationOfOperation RevocationReason = 5
	ReasonCertificateHold      RevocationReason = 6
	ReasonRemoveFromCRL        RevocationReason = 8
	ReasonPrivilegeWithdrawn   RevocationReason = 9
	ReasonAACompromise         RevocationReason = 10
)

// RevokeRequest names a certificate by issuer and serial number. ReasonRemoveFromCRL
// releases a certificate from certificateHold.
type RevokeRequest struct {
	TransactionID  []byte // the requesting transaction, passed back in PollRequest when pending
	RawIssuer      []byte // DER-encoded Name of the issuing CA
	SerialNumber   *big.Int
	Reason         RevocationReason
	InvalidityDate time.Time // zero when not given
	Requester      Requester
}

// RevokeResult is the outcome of Revoke and PollRevoke: a nil Pending means the new
// revocation state is recorded.
type RevokeResult struct {
	Pending *Pending
}
