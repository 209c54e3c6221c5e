package gateway

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"time"

	"github.com/certgate/certgate/backends"
	"github.com/certgate/certgate/gateway/cmp"
	"github.com/certgate/certgate/gateway/store"
)

// revoke handles rr (RFC 9483 section 4.2). The certificate is named by issuer and
// serialNumber. The requester must hold the certificate's key (a signature by any
// certificate with the same public key), hold the profile's MAC secret, or be a
// frontend that authenticated an operator.
func (r *Router) revoke(ctx context.Context, req *request) (*cmp.Body, error) {
	if len(req.msg.Body.RevReqs) != 1 {
		return nil, reject(cmp.FailBadRequest, "one RevDetails per request is supported, got %d", len(req.msg.Body.RevReqs))
	}
	details := req.msg.Body.RevReqs[0]
	reason, err := details.Reason()
	if err != nil {
		return nil, err
	}
	if reason < 0 {
		reason = int(backends.ReasonUnspecified)
	}
	t := details.CertDetails
	if t.RawIssuer == nil || t.SerialNumber == nil {
		// NOTE: a template with only subject and publicKey (what openssl cmp -csr sends)
		// can match many certificates, so it is rejected rather than guessed.
		return nil, reject(cmp.FailBadCertID, "name the certificate to revoke by issuer and serialNumber")
	}
	record, err := r.opts.Store.Certificate(ctx, t.RawIssuer, t.SerialNumber)
	if errors.Is(err, store.ErrNotFound) {
		return nil, reject(cmp.FailBadCertID, "certificate %s was not issued by this gateway", t.SerialNumber.Text(16))
	}
	if err != nil {
		return nil, err
	}
	if err := r.authorizeRevocation(req, record); err != nil {
		return nil, err
	}

	newStatus := store.CertRevoked
	switch {
	case backends.RevocationReason(reason) == backends.ReasonRemoveFromCRL:
		if record.Status != store.CertOnHold {
			return nil, reject(cmp.FailBadRequest, "removeFromCRL applies only to a certificate on hold")
		}
		newStatus = store.CertConfirmed
	case record.Status == store.CertRevoked:
		return nil, reject(cmp.FailCertRevoked, "the certificate is already revoked")
	case backends.RevocationReason(reason) == backends.ReasonCertificateHold:
		if record.Status == store.CertOnHold {
			return nil, reject(cmp.FailCertRevoked, "the certificate is already on hold")
		}
		newStatus = store.CertOnHold
	}

	backendCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), backendTimeout)
	defer cancel()
	result, err := req.profile.Backend.Revoke(backendCtx, &backends.RevokeRequest{
		TransactionID: req.msg.Header.TransactionID, RawIssuer: t.RawIssuer, SerialNumber: t.SerialNumber,
		Reason: backends.RevocationReason(reason), Requester: req.requester,
	})
	if err != nil {
		return nil, err
	}
	decided := decidedRevocation{RawIssuer: t.RawIssuer, Serial: t.SerialNumber.Bytes(), Reason: reason, Status: newStatus}
	if result.Pending != nil {
		return r.deferRevocation(backendCtx, req, decided, result.Pending)
	}
	return r.recordRevocation(backendCtx, req, decided)
}

// decidedRevocation is the certificate state change that an rr requests. It is kept in
// the transaction while the backend's decision is pending.
type decidedRevocation struct {
	RawIssuer []byte                  `json:"issuer"`
	Serial    []byte                  `json:"serial"`
	Reason    int                     `json:"reason"`
	Status    store.CertificateStatus `json:"status"`
}

// recordRevocation stores the new state of a revoked certificate and returns the rp.
func (r *Router) recordRevocation(ctx context.Context, req *request, d decidedRevocation) (*cmp.Body, error) {
	serial := new(big.Int).SetBytes(d.Serial)
	var at time.Time
	if d.Status != store.CertConfirmed {
		at = r.now()
	}
	if err := r.opts.Store.SetCertificateStatus(ctx, d.RawIssuer, serial, d.Status, d.Reason, at); err != nil {
		return nil, err
	}
	stateText := string(d.Status)
	if d.Status == store.CertConfirmed {
		stateText = "valid again (released from hold)"
	}
	r.log.Info("certificate revocation state changed", keySerial, serial.Text(16), "reason_code", d.Reason,
		"status", stateText, keyRequester, req.requester.Identity)
	return &cmp.Body{Type: cmp.BodyRP, RevRep: &cmp.RevRepContent{
		Status:  []cmp.StatusInfo{{Status: cmp.StatusAccepted}},
		RevCert: []cmp.CertID{{Issuer: cmp.DirectoryNameOf(d.RawIssuer), SerialNumber: serial}},
	}}, nil
}

// deferRevocation opens a transaction for an rr whose revocation the backend left
// pending and responds with an error message of status waiting, which RFC 9483 section
// 4.4 uses for every response that is not a CertRepMessage. The client then polls
// with pollReq and certReqId -1 until it receives the rp.
func (r *Router) deferRevocation(ctx context.Context, req *request, d decidedRevocation, pending *backends.Pending) (*cmp.Body, error) {
	state, err := json.Marshal(d)
	if err != nil {
		return nil, err
	}
	now := r.now()
	tx := &store.Transaction{
		ID: req.msg.Header.TransactionID, Profile: req.profile.Name, RequestType: cmp.BodyRR.String(),
		Requester: req.requester.Identity, State: store.StatePending, SenderNonce: req.responseNonce,
		CertReqID: -1, PollReference: pending.PollReference, Request: state,
		CreatedAt: now, UpdatedAt: now, ExpiresAt: now.Add(r.opts.TransactionTimeout),
	}
	if err := r.opts.Store.CreateTransaction(ctx, tx); err != nil {
		return nil, err
	}
	r.log.Info("revocation pending at the CA", keyTransactionID, fmt.Sprintf("%x", tx.ID),
		keySerial, new(big.Int).SetBytes(d.Serial).Text(16), "poll_reference", pending.PollReference)
	return waitingError(), nil
}

// waitingError returns the error message with status waiting, which makes a client
// poll for the response.
func waitingError() *cmp.Body {
	return &cmp.Body{Type: cmp.BodyError, Error: &cmp.ErrorContent{Status: cmp.StatusInfo{
		Status: cmp.StatusWaiting, StatusString: []string{"the CA has not decided yet; poll with pollReq"},
	}}}
}

// pollRevocation handles a pollReq for a pending rr.
func (r *Router) pollRevocation(ctx context.Context, req *request, tx *store.Transaction) (*cmp.Body, error) {
	result, err := req.profile.Backend.PollRevoke(ctx, &backends.PollRequest{TransactionID: tx.ID, PollReference: tx.PollReference})
	if err != nil {
		r.closeTransaction(ctx, tx, store.StateRejected)
		return nil, err
	}
	if result.Pending != nil {
		tx.SenderNonce = req.responseNonce
		tx.UpdatedAt = r.now()
		if err := r.opts.Store.UpdateTransaction(ctx, tx); err != nil {
			return nil, err
		}
		return &cmp.Body{Type: cmp.BodyPollRep, PollReps: []cmp.PollResponse{{
			CertReqID: -1, CheckAfter: max(1, int64(result.Pending.CheckAfter/time.Second)),
		}}}, nil
	}
	var d decidedRevocation
	if err := json.Unmarshal(tx.Request, &d); err != nil {
		return nil, fmt.Errorf("pending revocation of transaction %x: %w", tx.ID, err)
	}
	body, err := r.recordRevocation(ctx, req, d)
	if err != nil {
		return nil, err
	}
	r.closeTransaction(ctx, tx, store.StateDone)
	return body, nil
}

func (r *Router) authorizeRevocation(req *request, record *store.Certificate) error {
	switch {
	case req.origin.Verified != nil:
		return nil
	case req.macKey != nil:
		if record.Profile != req.profile.Name {
			return reject(cmp.FailNotAuthorized, "the certificate belongs to another profile")
		}
		return nil
	case req.signer != nil:
		cert, err := x509.ParseCertificate(record.DER)
		if err != nil {
			return fmt.Errorf("stored certificate %s: %w", record.SerialNumber.Text(16), err)
		}
		if !bytes.Equal(cert.RawSubjectPublicKeyInfo, req.signer.RawSubjectPublicKeyInfo) {
			return reject(cmp.FailNotAuthorized, "the request is not signed with the key of the certificate to revoke")
		}
		return nil
	}
	return reject(cmp.FailNotAuthorized, "the requester may not revoke this certificate")
}
