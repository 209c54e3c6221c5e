// Package gateway is certgate's core: the router that takes a CMP request from any
// frontend, authenticates it, applies the profile's policy, runs the CMP transaction
// (transactionID, nonces, certConf, implicitConfirm, polling) and calls the profile's
// backend.
//
// The router speaks only CMP (package gateway/cmp) and the backends.Backend interface. The
// CMP frontend hands it protected PKIMessages; other frontends (SCEP, EST, ACME) hand it
// messages they built after authenticating the client in their own protocol, marked
// through Origin.Verified, the way an RA marks raVerified in RFC 9483 section 5.2.3.
// Every failure becomes a PKIStatusInfo in one place (errors.go), so each protocol gets the
// same semantics.
//
// State that a client's next request depends on (open transactions, seen nonces, issued
// certificates) lives in the store, never in memory, so several instances can share one
// database.
package gateway

import (
	"context"
	"crypto"
	"crypto/cipher"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"runtime/debug"
	"strings"
	"time"

	"github.com/certgate/certgate/backends"
	"github.com/certgate/certgate/gateway/cmp"
	"github.com/certgate/certgate/gateway/store"
)

// Responder is the CMP protection credential of the router: responses to
// signature-protected requests are signed with it.
type Responder struct {
	Signer      crypto.Signer
	Certificate *x509.Certificate
	Chain       []*x509.Certificate
}

// Options configures a Router. Store and at least one profile are required.
type Options struct {
	Store          store.Store
	Profiles       map[string]*Profile
	DefaultProfile string

	// Responder signs responses to signature-protected requests. When nil, such
	// responses go out unprotected and clients that require protection reject them.
	Responder *Responder

	// TrustedRoots and Intermediates validate the signer of signature-protected
	// requests. With no roots, signature-protected requests are rejected.
	TrustedRoots  *x509.CertPool
	Intermediates *x509.CertPool

	// ArchiveKey is the 32-byte AES-256-GCM key under which centrally generated keys
	// are archived in the store. It is required when a profile enables CentralKeyGen.
	ArchiveKey []byte

	// MessageTimeTolerance bounds the skew of messageTime; zero disables the check.
	MessageTimeTolerance time.Duration
	// TransactionTimeout is how long an open transaction waits for certConf or polling.
	TransactionTimeout time.Duration

	Logger *slog.Logger
	Now    func() time.Time
}

// Router processes CMP requests. It is safe for concurrent use.
type Router struct {
	opts    Options
	log     *slog.Logger
	now     func() time.Time
	archive cipher.AEAD // nil unless a profile enables central key generation
}

// New returns a Router, or an error when opts is incomplete.
func New(opts Options) (*Router, error) {
	if opts.Store == nil {
		return nil, errors.New("gateway: no store")
	}
	if len(opts.Profiles) == 0 {
		return nil, errors.New("gateway: no profiles")
	}
	if _, ok := opts.Profiles[opts.DefaultProfile]; !ok {
		return nil, fmt.Errorf("gateway: default profile %q is not defined", opts.DefaultProfile)
	}
	if opts.TransactionTimeout <= 0 {
		opts.TransactionTimeout = 15 * time.Minute
	}
	r := &Router{opts: opts, log: opts.Logger, now: opts.Now}
	for name, p := range opts.Profiles {
		if !p.CentralKeyGen {
			continue
		}
		if opts.Responder == nil {
			return nil, fmt.Errorf("gateway: profile %q enables central key generation, which needs a responder certificate to sign keys", name)
		}
		if !p.KeyTypes[p.CentralKeyType] {
			return nil, fmt.Errorf("gateway: profile %q generates %q keys, which its key types do not allow", name, p.CentralKeyType)
		}
		if r.archive == nil {
			archive, err := newArchive(opts.ArchiveKey)
			if err != nil {
				return nil, fmt.Errorf("gateway: profile %q enables central key generation: %w", name, err)
			}
			r.archive = archive
		}
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	if r.now == nil {
		r.now = time.Now
	}
	return r, nil
}

// Profile returns the profile with this name; "" names the default profile.
func (r *Router) Profile(name string) (*Profile, bool) {
	if name == "" {
		name = r.opts.DefaultProfile
	}
	p, ok := r.opts.Profiles[name]
	return p, ok
}

// Origin describes where a request came from.
type Origin struct {
	Frontend   string // "cmp", "scep", "est", "acme"
	Profile    string // profile selected by the transport; "" is the default profile
	RemoteAddr string

	// Verified is set by a frontend that authenticated the client in its own protocol.
	// The router then does not require CMP protection and treats the request as coming
	// from an RA that vouches for the client (RFC 9483 section 5.2.3).
	Verified *backends.Requester
}

// request is one CMP request on its way through the router.
type request struct {
	origin  Origin
	profile *Profile
	msg     *cmp.Message

	// Set by authenticate.
	requester backends.Requester
	macKey    *cmp.MACKey       // the key that verified a MAC-protected request
	macSecret []byte            // the shared secret behind macKey
	signer    *x509.Certificate // the validated signer of a signature-protected request

	// Set while processing, for the response.
	responseNonce   []byte              // the senderNonce of the response, stored with the transaction
	implicitConfirm bool                // grant implicitConfirm in the response
	extraCerts      []*x509.Certificate // the CA chain to add to extraCerts
	generatedKey    crypto.PrivateKey   // the centrally generated key to return with the certificate

	failure *Failure // set when the response is an error message, for the log
}

// Handle processes one DER PKIMessage and returns the DER response, which is always a
// PKIMessage: a failure gets a CMP error message. The profile must exist;
// the transport answers unknown profiles in its own terms before calling Handle.
func (r *Router) Handle(ctx context.Context, origin Origin, der []byte) (out []byte) {
	start := r.now()
	// A fault on one request must not end the process: TCP connections run on plain
	// goroutines, where net/http's recovery does not reach.
	defer func() {
		if recovered := recover(); recovered != nil {
			r.log.Error("panic while processing a CMP request", keyFrontend, origin.Frontend, keyRemote, origin.RemoteAddr,
				keyError, fmt.Sprint(recovered), "stack", string(debug.Stack()))
			out = r.unreadError(cmp.FailSystemFailure, "internal error")
		}
	}()
	profile, ok := r.Profile(origin.Profile)
	if !ok {
		// The frontend should have rejected the path. Respond anyway rather than panic.
		profile = r.opts.Profiles[r.opts.DefaultProfile]
	}
	req := &request{origin: origin, profile: profile, responseNonce: make([]byte, 16)}
	rand.Read(req.responseNonce)

	msg, err := cmp.ParseMessage(der)
	var resp *cmp.Message
	if err != nil {
		resp = r.errorResponse(req, failureOf(err))
	} else {
		req.msg = msg
		resp = r.process(ctx, req)
	}
	out, protectErr := r.protect(req, resp)
	if protectErr != nil {
		r.log.Error("cannot protect the response", keyError, protectErr)
		out = r.fallbackError(req)
	}
	r.logRequest(req, resp, start)
	return out
}

// process authenticates the request, runs it and returns the response message.
func (r *Router) process(ctx context.Context, req *request) *cmp.Message {
	if err := r.checkHeader(req); err != nil {
		return r.errorResponse(req, failureOf(err))
	}
	if err := r.authenticate(req); err != nil {
		return r.errorResponse(req, failureOf(err))
	}
	// The nonce is recorded only after authentication, so that unauthenticated traffic
	// cannot fill the nonce table. An enrollment records it together with the new
	// transaction, in one commit on the measured path.
	if !opensTransaction(req.msg.Body.Type) {
		if err := r.opts.Store.RecordNonce(ctx, req.msg.Header.SenderNonce, r.now().Add(r.opts.TransactionTimeout)); err != nil {
			return r.errorResponse(req, failureOf(err))
		}
	}

	var body *cmp.Body
	var err error
	switch req.msg.Body.Type {
	case cmp.BodyIR, cmp.BodyCR, cmp.BodyKUR, cmp.BodyP10CR:
		body, err = r.enroll(ctx, req)
	case cmp.BodyCertConf:
		body, err = r.confirm(ctx, req)
	case cmp.BodyPollReq:
		body, err = r.poll(ctx, req)
	case cmp.BodyKRR:
		body, err = r.recoverKey(ctx, req)
	case cmp.BodyRR:
		body, err = r.revoke(ctx, req)
	case cmp.BodyGenM:
		body, err = r.general(ctx, req)
	case cmp.BodyError:
		body, err = r.clientError(ctx, req)
	case cmp.BodyNested:
		body, err = r.nested(ctx, req)
	default:
		err = reject(cmp.FailBadRequest, "%s messages are not supported", req.msg.Body.Type)
	}
	if err != nil {
		return r.errorResponse(req, failureOf(err))
	}
	return r.response(req, body)
}

// opensTransaction reports whether a request body starts a transaction: the enrollment
// requests.
func opensTransaction(body cmp.BodyType) bool {
	_, ok := responseTypes[body]
	return ok
}

// checkHeader applies the generic header checks of RFC 9483 section 3.5.
func (r *Router) checkHeader(req *request) error {
	h := &req.msg.Header
	if h.PVNO != cmp.PVNO2000 && h.PVNO != cmp.PVNO2021 {
		return reject(cmp.FailUnsupportedVersion, "pvno %d is not supported; use 2 (cmp2000) or 3 (cmp2021)", h.PVNO)
	}
	if _, ok := h.Sender.DirectoryName(); !ok {
		return reject(cmp.FailBadRequest, "the sender must be a directoryName")
	}
	if len(h.TransactionID) < 16 || len(h.TransactionID) > 64 {
		return reject(cmp.FailBadRequest, "transactionID must be 16 to 64 bytes, got %d", len(h.TransactionID))
	}
	if len(h.SenderNonce) < 16 || len(h.SenderNonce) > 64 {
		return reject(cmp.FailBadSenderNonce, "senderNonce must be 16 to 64 bytes, got %d", len(h.SenderNonce))
	}
	if tolerance := r.opts.MessageTimeTolerance; tolerance > 0 && !h.MessageTime.IsZero() {
		skew := r.now().Sub(h.MessageTime)
		if skew > tolerance || skew < -tolerance {
			return reject(cmp.FailBadTime, "messageTime %s is more than %s away from the server's time", h.MessageTime.UTC().Format(time.RFC3339), tolerance)
		}
	}
	return nil
}

// response wraps a body in a response header for req.
func (r *Router) response(req *request, body *cmp.Body) *cmp.Message {
	h := &req.msg.Header
	resp := &cmp.Message{
		Header: cmp.Header{
			PVNO:          h.PVNO,
			Sender:        r.senderName(),
			Recipient:     h.Sender,
			MessageTime:   r.now(),
			TransactionID: h.TransactionID,
			SenderNonce:   req.responseNonce,
			RecipNonce:    h.SenderNonce,
		},
		Body:       *body,
		ExtraCerts: req.extraCerts,
	}
	if req.implicitConfirm && body.Type != cmp.BodyError {
		resp.Header.GeneralInfo = []cmp.InfoTypeAndValue{{Type: cmp.OIDITImplicitConfirm, Value: asn1NULL}}
	}
	if carriesEnvelopedData(body) {
		// RFC 9810 section 7: a message with EnvelopedData is cmp2021.
		resp.Header.PVNO = cmp.PVNO2021
	}
	return resp
}

// asn1NULL is the DER of NULL, the value of the implicitConfirm InfoTypeAndValue.
var asn1NULL = []byte{0x05, 0x00}

func (r *Router) senderName() cmp.GeneralName {
	if r.opts.Responder != nil {
		return cmp.DirectoryNameOf(r.opts.Responder.Certificate.RawSubject)
	}
	return cmp.NullDN
}

// errorResponse builds the error message for a failure. A request that could not be
// decoded gets a header with no transactionID or nonce to echo.
func (r *Router) errorResponse(req *request, failure *Failure) *cmp.Message {
	req.failure = failure
	body := &cmp.Body{Type: cmp.BodyError, Error: &cmp.ErrorContent{
		Status: cmp.StatusInfo{Status: cmp.StatusRejection, FailInfo: failure.Info, StatusString: []string{failure.Detail}},
	}}
	if req.msg == nil {
		return &cmp.Message{
			Header: cmp.Header{PVNO: cmp.PVNO2000, Sender: r.senderName(), Recipient: cmp.NullDN, MessageTime: r.now(), SenderNonce: req.responseNonce},
			Body:   *body,
		}
	}
	req.extraCerts = nil
	resp := r.response(req, body)
	if resp.Header.PVNO != cmp.PVNO2000 && resp.Header.PVNO != cmp.PVNO2021 {
		resp.Header.PVNO = cmp.PVNO2000
	}
	return resp
}

// fallbackError is the unprotected error sent when the real response cannot be
// protected; it carries no detail.
func (r *Router) fallbackError(req *request) []byte {
	req.macKey = nil
	m := r.errorResponse(req, &Failure{Info: cmp.FailSystemFailure, Detail: "internal error"})
	if err := m.Encode(); err != nil {
		return nil
	}
	out, _ := m.Bytes()
	return out
}

func (r *Router) logRequest(req *request, resp *cmp.Message, start time.Time) {
	attrs := []any{
		keyFrontend, req.origin.Frontend,
		keyProfile, req.profile.Name,
		keyRemote, req.origin.RemoteAddr,
		keyDuration, r.now().Sub(start),
	}
	if req.msg != nil {
		attrs = append(attrs, keyOperation, req.msg.Body.Type.String(),
			keyTransactionID, hex.EncodeToString(req.msg.Header.TransactionID))
	}
	if req.requester.Identity != "" {
		attrs = append(attrs, keyRequester, req.requester.Identity)
	}
	attrs = append(attrs, keyResponse, resp.Body.Type.String())
	level := slog.LevelInfo
	if resp.Body.Type == cmp.BodyError {
		status := resp.Body.Error.Status
		// Status waiting is delayed delivery, not a failure.
		if status.Status != cmp.StatusWaiting {
			level = slog.LevelWarn
		}
		attrs = append(attrs, keyFailInfo, status.FailInfo.String(), keyDetail, strings.Join(status.StatusString, "; "))
		if req.failure != nil && req.failure.Err != nil {
			attrs = append(attrs, keyError, req.failure.Err)
		}
	}
	r.log.Log(context.Background(), level, "cmp request", attrs...)
}

// TransportError returns an unprotected CMP error message with failInfo badRequest, for
// a transport that rejects a request before the router can read it (oversized, say).
func (r *Router) TransportError(detail string) []byte {
	return r.unreadError(cmp.FailBadRequest, detail)
}

// unreadError returns an unprotected error message for a request the router did not
// read, so that it has no header to echo.
func (r *Router) unreadError(info cmp.FailureInfo, detail string) []byte {
	req := &request{responseNonce: make([]byte, 16)}
	rand.Read(req.responseNonce)
	m := r.errorResponse(req, reject(info, "%s", detail))
	if err := m.Encode(); err != nil {
		return nil
	}
	out, _ := m.Bytes()
	return out
}

// CRL returns the current DER CRL of the profile's backend; "" names the default
// profile.
func (r *Router) CRL(ctx context.Context, profileName string) ([]byte, error) {
	profile, ok := r.Profile(profileName)
	if !ok {
		return nil, fmt.Errorf("gateway: profile %q is not configured", profileName)
	}
	return profile.Backend.CRL(ctx)
}

// nested handles a nested message (RFC 9483 section 5.2.2): an RA that added its own
// protection around one request, or batched several. The outer protection was verified
// like any request's; each inner message is then processed as if it had arrived alone,
// with its own protection checked, so wrapping a request grants it nothing. The
// answers go back in one nested response, in order.
func (r *Router) nested(ctx context.Context, req *request) (*cmp.Body, error) {
	for i, inner := range req.msg.Body.Nested {
		innerMsg, err := cmp.ParseMessage(inner)
		if err != nil {
			return nil, err
		}
		if innerMsg.Body.Type == cmp.BodyNested {
			return nil, reject(cmp.FailBadRequest, "inner message %d is nested again; one level of nesting is supported", i)
		}
	}
	responses := make([][]byte, 0, len(req.msg.Body.Nested))
	for _, inner := range req.msg.Body.Nested {
		responses = append(responses, r.Handle(ctx, req.origin, inner))
	}
	return &cmp.Body{Type: cmp.BodyNested, Nested: responses}, nil
}

// Process runs a CMP request that a frontend built itself after authenticating the
// client in its own protocol (SCEP, EST, ACME). origin.Verified must be set, the message
// needs no protection, and the response comes back as a message, unprotected and not
// encoded, for the frontend to translate.
func (r *Router) Process(ctx context.Context, origin Origin, msg *cmp.Message) (*cmp.Message, error) {
	if origin.Verified == nil {
		return nil, errors.New("gateway: Process needs an origin whose requester the frontend verified")
	}
	profile, ok := r.Profile(origin.Profile)
	if !ok {
		return nil, fmt.Errorf("gateway: profile %q is not configured", origin.Profile)
	}
	start := r.now()
	req := &request{origin: origin, profile: profile, msg: msg, responseNonce: make([]byte, 16)}
	rand.Read(req.responseNonce)
	resp := r.process(ctx, req)
	r.logRequest(req, resp, start)
	return resp, nil
}

// Certificate returns an issued certificate by issuer and serial number, or
// store.ErrNotFound.
func (r *Router) Certificate(ctx context.Context, rawIssuer []byte, serial *big.Int) (*x509.Certificate, error) {
	record, err := r.opts.Store.Certificate(ctx, rawIssuer, serial)
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(record.DER)
}

// CAChain returns the CA chain of a profile's backend, issuing CA first.
func (r *Router) CAChain(ctx context.Context, profileName string) ([]*x509.Certificate, error) {
	profile, ok := r.Profile(profileName)
	if !ok {
		return nil, fmt.Errorf("gateway: profile %q is not configured", profileName)
	}
	return profile.Backend.CAChain(ctx)
}

// CertificateStatus returns the recorded status of an issued certificate, or
// store.ErrNotFound.
func (r *Router) CertificateStatus(ctx context.Context, rawIssuer []byte, serial *big.Int) (store.CertificateStatus, error) {
	record, err := r.opts.Store.Certificate(ctx, rawIssuer, serial)
	if err != nil {
		return "", err
	}
	return record.Status, nil
}

// carriesEnvelopedData reports whether a response body returns a private key.
func carriesEnvelopedData(body *cmp.Body) bool {
	if body.Type == cmp.BodyKRP {
		return true
	}
	if body.CertRep == nil {
		return false
	}
	for _, resp := range body.CertRep.Responses {
		if resp.EncryptedPrivateKey != nil {
			return true
		}
	}
	return false
}
