package gateway

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
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
	err = req.profile.Backend.Revoke(backendCtx, &backends.RevokeRequest{
		RawIssuer: t.RawIssuer, SerialNumber: t.SerialNumber, Reason: backends.RevocationReason(reason), Requester: req.requester,
	})
	if err != nil {
		return nil, err
	}
	var at time.Time
	if newStatus != store.CertConfirmed {
		at = r.now()
	}
	if err := r.opts.Store.SetCertificateStatus(backendCtx, t.RawIssuer, t.SerialNumber, newStatus, reason, at); err != nil {
		return nil, err
	}
	stateText := string(newStatus)
	if newStatus == store.CertConfirmed {
		stateText = "valid again (released from hold)"
	}
	r.log.Info("certificate revocation state changed", keySerial, t.SerialNumber.Text(16), "reason_code", reason,
		"status", stateText, keyRequester, req.requester.Identity)
	return &cmp.Body{Type: cmp.BodyRP, RevRep: &cmp.RevRepContent{
		Status:  []cmp.StatusInfo{{Status: cmp.StatusAccepted}},
		RevCert: []cmp.CertID{{Issuer: cmp.DirectoryNameOf(t.RawIssuer), SerialNumber: t.SerialNumber}},
	}}, nil
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
