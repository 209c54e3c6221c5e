package gateway

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"github.com/certgate/certgate/backends"
	"github.com/certgate/certgate/gateway/cmp"
	"github.com/certgate/certgate/gateway/store"
)

// backendTimeout bounds one backend call. Issuance runs detached from the client's
// context: once the CA is asked to sign, the result is recorded even if the client has
// gone, so that a certificate never exists without a store record.
const backendTimeout = 30 * time.Second

// responseTypes maps each enrollment request to its response body.
var responseTypes = map[cmp.BodyType]cmp.BodyType{
	cmp.BodyIR:    cmp.BodyIP,
	cmp.BodyCR:    cmp.BodyCP,
	cmp.BodyKUR:   cmp.BodyKUP,
	cmp.BodyP10CR: cmp.BodyCP,
}

func bodyTypeByName(name string) (cmp.BodyType, bool) {
	for request := range responseTypes {
		if request.String() == name {
			return request, true
		}
	}
	return 0, false
}

// enroll runs ir, cr, kur and p10cr. It checks proof of possession and policy, opens the
// transaction and requests the certificate from the backend.
func (r *Router) enroll(ctx context.Context, req *request) (*cmp.Body, error) {
	m := req.msg
	now := r.now()
	var requested requestedCertificate
	var certReqID int64
	var csr []byte

	if m.Body.Type == cmp.BodyP10CR {
		p10 := m.Body.P10CR
		if err := p10.CSR.CheckSignature(); err != nil {
			return nil, &Failure{Info: cmp.FailBadPOP, Detail: "the PKCS #10 signature does not verify", Err: err}
		}
		requested = requestedCertificate{RawSubject: p10.CSR.RawSubject, RawPublicKey: p10.CSR.RawSubjectPublicKeyInfo,
			PublicKey: p10.CSR.PublicKey, Extensions: p10.CSR.Extensions}
		// RFC 9483 section 4.1.4: a p10cr has no certReqId, and -1 stands for it in
		// the response and in certConf.
		certReqID = -1
		csr = p10.Raw
	} else {
		if len(m.Body.CertReqs) != 1 {
			return nil, reject(cmp.FailBadRequest, "one CertReqMsg per request is supported, got %d", len(m.Body.CertReqs))
		}
		crm := &m.Body.CertReqs[0]
		t := crm.Template
		requested = requestedCertificate{RawSubject: t.RawSubject, RawPublicKey: t.RawPublicKey,
			Extensions: t.Extensions, NotBefore: t.NotBefore, NotAfter: t.NotAfter}
		if wantsCentralKey(crm) {
			key, err := r.generateKey(req, crm)
			if err != nil {
				return nil, err
			}
			if requested.RawPublicKey, err = x509.MarshalPKIXPublicKey(key.Public()); err != nil {
				return nil, err
			}
			requested.PublicKey = key.Public()
			req.generatedKey = key
		} else {
			pub, err := r.verifyPOP(req, crm)
			if err != nil {
				return nil, err
			}
			requested.PublicKey = pub
		}
		certReqID = crm.CertReqID
		if m.Body.Type == cmp.BodyKUR {
			old, err := r.checkKeyUpdate(ctx, req, crm)
			if err != nil {
				return nil, err
			}
			if requested.RawSubject == nil {
				requested.RawSubject = old.RawSubject
			}
		}
	}

	template, modified, err := req.profile.applyPolicy(requested, now)
	if err != nil {
		return nil, err
	}
	tx := &store.Transaction{
		ID: m.Header.TransactionID, Profile: req.profile.Name, RequestType: m.Body.Type.String(),
		Requester: req.requester.Identity, State: store.StatePending, CertReqID: certReqID,
		CreatedAt: now, UpdatedAt: now, ExpiresAt: now.Add(r.opts.TransactionTimeout),
	}
	if err := r.opts.Store.OpenTransaction(ctx, tx, m.Header.SenderNonce, now.Add(r.opts.TransactionTimeout)); err != nil {
		return nil, err
	}
	if key, ok := req.generatedKey.(crypto.Signer); ok {
		if err := r.archiveKey(ctx, req, tx, key); err != nil {
			r.closeTransaction(ctx, tx, store.StateRejected)
			return nil, err
		}
	}

	backendCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), backendTimeout)
	defer cancel()
	result, err := req.profile.Backend.Issue(backendCtx, &backends.IssueRequest{
		TransactionID: m.Header.TransactionID, Profile: req.profile.Name,
		Requester: req.requester, Template: template, CSR: csr,
	})
	if err != nil {
		r.closeTransaction(backendCtx, tx, store.StateRejected)
		return nil, err
	}
	req.implicitConfirm = m.Header.HasImplicitConfirm() && req.profile.ImplicitConfirm
	return r.deliver(backendCtx, req, tx, m.Body.Type, template, result, modified)
}

// deliver records a backend result and builds the ip, cp or kup that carries it.
func (r *Router) deliver(ctx context.Context, req *request, tx *store.Transaction, requestType cmp.BodyType,
	template backends.Template, result *backends.IssueResult, modified bool) (*cmp.Body, error) {
	body := &cmp.Body{Type: responseTypes[requestType], CertRep: &cmp.CertRepMessage{}}
	now := r.now()
	tx.UpdatedAt = now
	tx.SenderNonce = req.responseNonce

	if result.Pending != nil {
		tx.State = store.StatePending
		tx.PollReference = result.Pending.PollReference
		if err := r.opts.Store.UpdateTransaction(ctx, tx); err != nil {
			return nil, err
		}
		body.CertRep.Responses = []cmp.CertResponse{{CertReqID: tx.CertReqID, Status: cmp.StatusInfo{
			Status: cmp.StatusWaiting, StatusString: []string{"the CA has not decided yet; poll again"},
		}}}
		return body, nil
	}

	cert := result.Certificate
	if cert == nil {
		r.closeTransaction(ctx, tx, store.StateRejected)
		return nil, errors.New("the backend returned neither a certificate nor a pending result")
	}
	if template.PublicKeyDER != nil && !bytes.Equal(cert.RawSubjectPublicKeyInfo, template.PublicKeyDER) {
		r.closeTransaction(ctx, tx, store.StateRejected)
		return nil, errors.New("the backend issued a certificate for another public key")
	}
	// The key is sealed before the certificate is recorded. generateKey checked the
	// recipient before issuance, so only an internal fault fails here.
	var sealedKey []byte
	if req.generatedKey != nil {
		kga, err := r.keyGenerationAuthority()
		if err == nil {
			var recipient cmp.KeyRecipient
			if recipient, err = keyRecipientOf(req); err == nil {
				sealedKey, err = cmp.SealPrivateKey(req.generatedKey, kga, recipient)
			}
		}
		if err != nil {
			r.closeTransaction(ctx, tx, store.StateRejected)
			return nil, err
		}
	}
	record := &store.Certificate{
		SerialNumber: cert.SerialNumber, RawIssuer: cert.RawIssuer, Subject: cert.Subject.String(),
		NotBefore: cert.NotBefore, NotAfter: cert.NotAfter, DER: cert.Raw,
		Profile: req.profile.Name, Backend: req.profile.BackendName, TransactionID: tx.ID,
		Status: store.CertIssued, CreatedAt: now,
	}
	if req.implicitConfirm {
		record.Status = store.CertConfirmed
		tx.State = store.StateDone
	} else {
		tx.State = store.StateWaitConfirm
		tx.Certificate = cert.Raw
	}
	if err := r.opts.Store.RecordIssued(ctx, record, tx); err != nil {
		return nil, err
	}
	r.log.Info("certificate issued", keyTransactionID, fmt.Sprintf("%x", tx.ID), keySerial, cert.SerialNumber.Text(16),
		"subject", cert.Subject.String(), keyProfile, req.profile.Name, keyBackend, req.profile.BackendName)

	status := cmp.StatusInfo{Status: cmp.StatusAccepted}
	if modified {
		status = cmp.StatusInfo{Status: cmp.StatusGrantedWithMods, StatusString: []string{"the profile changed the validity or dropped extensions"}}
	}
	response := cmp.CertResponse{CertReqID: tx.CertReqID, Status: status, Certificate: cert, EncryptedPrivateKey: sealedKey}
	body.CertRep.Responses = []cmp.CertResponse{response}
	if requestType == cmp.BodyIR && len(result.Chain) > 0 {
		// RFC 9483 section 4.1.1: an ip may deliver the root the new certificate chains to.
		body.CertRep.CAPubs = result.Chain[len(result.Chain)-1:]
	}
	req.extraCerts = append(req.extraCerts, result.Chain...)
	return body, nil
}

func (r *Router) closeTransaction(ctx context.Context, tx *store.Transaction, state store.TransactionState) {
	tx.State = state
	tx.UpdatedAt = r.now()
	if err := r.opts.Store.UpdateTransaction(ctx, tx); err != nil {
		r.log.Error("cannot update transaction", keyTransactionID, fmt.Sprintf("%x", tx.ID), keyError, err)
	}
}

// verifyPOP checks the proof of possession of a CRMF request (RFC 4211 section 4) and
// returns the template's public key when it parsed it, so that policy need not parse it
// again.
func (r *Router) verifyPOP(req *request, crm *cmp.CertReqMsg) (any, error) {
	pop := crm.POP
	if pop == nil {
		return nil, reject(cmp.FailBadPOP, "the proof of possession is missing")
	}
	switch pop.Type {
	case cmp.POPRAVerified:
		if req.origin.Verified == nil && !req.profile.TrustedRAs[req.requester.Identity] {
			return nil, reject(cmp.FailBadPOP, "raVerified is accepted only from a registration authority")
		}
		return nil, nil
	case cmp.POPSignature:
		if pop.RawPOPOSKInput != nil {
			return nil, reject(cmp.FailBadPOP, "poposkInput is not supported; put subject and publicKey into the certTemplate")
		}
		pub, err := x509.ParsePKIXPublicKey(crm.Template.RawPublicKey)
		if err != nil {
			return nil, &Failure{Info: cmp.FailBadCertTemplate, Detail: "the certTemplate has no usable publicKey", Err: err}
		}
		if err := cmp.VerifySignatureWithKey(pub, pop.Algorithm, crm.RawCertReq, pop.Signature); err != nil {
			if errors.Is(err, cmp.ErrBadAlgorithm) {
				return nil, &Failure{Info: cmp.FailBadAlg, Detail: "the proof-of-possession algorithm is not supported", Err: err}
			}
			return nil, &Failure{Info: cmp.FailBadPOP, Detail: "the proof-of-possession signature does not verify", Err: err}
		}
		return pub, nil
	}
	return nil, reject(cmp.FailBadPOP, "proof of possession by key encipherment or key agreement is not supported")
}

// checkKeyUpdate checks a kur (RFC 9483 section 4.1.3): it names the certificate to
// update with oldCertID, that certificate was issued here and is neither revoked nor
// expired, and the request is signed with that certificate's key.
func (r *Router) checkKeyUpdate(ctx context.Context, req *request, crm *cmp.CertReqMsg) (*x509.Certificate, error) {
	id, err := crm.OldCertID()
	if err != nil {
		return nil, err
	}
	if id == nil {
		return nil, reject(cmp.FailBadRequest, "a kur must carry the oldCertID control")
	}
	if req.signer == nil {
		return nil, reject(cmp.FailNotAuthorized, "a kur must be signed with the key of the certificate it updates")
	}
	issuer, ok := id.Issuer.DirectoryName()
	if !ok {
		return nil, reject(cmp.FailBadCertID, "oldCertID.issuer must be a directoryName")
	}
	record, err := r.opts.Store.Certificate(ctx, issuer, id.SerialNumber)
	if errors.Is(err, store.ErrNotFound) {
		return nil, reject(cmp.FailBadCertID, "the certificate named by oldCertID was not issued by this gateway")
	}
	if err != nil {
		return nil, err
	}
	if record.Status == store.CertRevoked || record.Status == store.CertOnHold {
		return nil, reject(cmp.FailCertRevoked, "the certificate named by oldCertID is revoked")
	}
	old, err := x509.ParseCertificate(record.DER)
	if err != nil {
		return nil, fmt.Errorf("stored certificate %x: %w", id.SerialNumber, err)
	}
	if r.now().After(old.NotAfter) {
		return nil, reject(cmp.FailBadCertID, "the certificate named by oldCertID has expired; enroll again with ir or cr")
	}
	if !bytes.Equal(old.RawSubjectPublicKeyInfo, req.signer.RawSubjectPublicKeyInfo) {
		return nil, reject(cmp.FailNotAuthorized, "the kur is not signed with the key of the certificate it updates")
	}
	return old, nil
}

// confirm handles certConf (RFC 9483 section 4.1.1): the client accepts or rejects the
// certificate of an open transaction. A rejected certificate is revoked.
func (r *Router) confirm(ctx context.Context, req *request) (*cmp.Body, error) {
	tx, err := r.openTransaction(ctx, req, store.StateWaitConfirm)
	if err != nil {
		return nil, err
	}
	if len(req.msg.Body.Confirms) != 1 {
		return nil, reject(cmp.FailBadRequest, "certConf must carry one CertStatus, got %d", len(req.msg.Body.Confirms))
	}
	status := req.msg.Body.Confirms[0]
	if status.CertReqID != tx.CertReqID {
		return nil, reject(cmp.FailBadCertID, "certReqId %d does not match the request's %d", status.CertReqID, tx.CertReqID)
	}
	cert, err := x509.ParseCertificate(tx.Certificate)
	if err != nil {
		return nil, fmt.Errorf("stored certificate of transaction: %w", err)
	}
	if err := checkCertHash(cert, status); err != nil {
		return nil, err
	}

	backendCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), backendTimeout)
	defer cancel()
	tx.SenderNonce = req.responseNonce
	if status.StatusInfo != nil && status.StatusInfo.Status == cmp.StatusRejection {
		r.log.Warn("client rejected the certificate; revoking it", keyTransactionID, fmt.Sprintf("%x", tx.ID),
			keySerial, cert.SerialNumber.Text(16), keyDetail, status.StatusInfo.String())
		result, err := req.profile.Backend.Revoke(backendCtx, &backends.RevokeRequest{
			TransactionID: tx.ID, RawIssuer: cert.RawIssuer, SerialNumber: cert.SerialNumber,
			Reason: backends.ReasonCessationOfOperation, Requester: req.requester,
		})
		switch {
		case err != nil:
			r.log.Error("cannot revoke the rejected certificate", keySerial, cert.SerialNumber.Text(16), keyError, err)
		case result.Pending != nil:
			// NOTE: the router does not poll this revocation. The CA decides it on its own,
			// and the store keeps the certificate unconfirmed until an rr changes it.
			r.log.Warn("the CA left the revocation of the rejected certificate pending", keySerial, cert.SerialNumber.Text(16),
				"poll_reference", result.Pending.PollReference)
		default:
			if err := r.opts.Store.SetCertificateStatus(backendCtx, cert.RawIssuer, cert.SerialNumber, store.CertRevoked, int(backends.ReasonCessationOfOperation), r.now()); err != nil {
				r.log.Error("cannot record the revocation", keySerial, cert.SerialNumber.Text(16), keyError, err)
			}
		}
		r.closeTransaction(backendCtx, tx, store.StateRejected)
	} else {
		if err := r.opts.Store.SetCertificateStatus(backendCtx, cert.RawIssuer, cert.SerialNumber, store.CertConfirmed, 0, time.Time{}); err != nil {
			return nil, err
		}
		tx.Certificate = nil
		r.closeTransaction(backendCtx, tx, store.StateDone)
	}
	return &cmp.Body{Type: cmp.BodyPKIConf}, nil
}

// checkCertHash compares certHash with the certificate's hash. The hash is hashAlg when
// given (cmp2021), else the hash of the certificate's signature algorithm. Ed25519 has
// none, so RFC 9810 section 5.3.18 names SHA-512 for it.
func checkCertHash(cert *x509.Certificate, status cmp.CertStatus) error {
	var h crypto.Hash
	if status.HashAlg != nil {
		var ok bool
		if h, ok = digestByOID(status.HashAlg); !ok {
			return reject(cmp.FailBadAlg, "certConf hashAlg %s is not supported", status.HashAlg.Algorithm)
		}
	} else {
		h = certificateHash(cert.SignatureAlgorithm)
	}
	digest := h.New()
	digest.Write(cert.Raw)
	if !bytes.Equal(digest.Sum(nil), status.CertHash) {
		return reject(cmp.FailBadCertID, "certHash does not match the issued certificate")
	}
	return nil
}

// openTransaction loads the transaction a follow-up message (certConf, pollReq) belongs
// to and checks that it is in the expected state, that the client echoed the last
// senderNonce, and that the same requester continues it.
func (r *Router) openTransaction(ctx context.Context, req *request, expected store.TransactionState) (*store.Transaction, error) {
	h := &req.msg.Header
	tx, err := r.opts.Store.Transaction(ctx, h.TransactionID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, reject(cmp.FailBadRequest, "no open transaction has this transactionID")
	}
	if err != nil {
		return nil, err
	}
	if tx.Profile != req.profile.Name {
		return nil, reject(cmp.FailBadRequest, "the transaction belongs to another profile")
	}
	if tx.Requester != req.requester.Identity {
		return nil, reject(cmp.FailNotAuthorized, "the transaction was opened by another requester")
	}
	if tx.State != expected {
		return nil, reject(cmp.FailBadRequest, "the transaction does not expect a %s message (state %s)", req.msg.Body.Type, tx.State)
	}
	if !bytes.Equal(h.RecipNonce, tx.SenderNonce) {
		return nil, reject(cmp.FailBadRecipientNonce, "recipNonce does not match the senderNonce of the last response")
	}
	return tx, nil
}

// poll handles pollReq (RFC 9483 section 4.4) for a transaction whose issuance the
// backend left pending.
func (r *Router) poll(ctx context.Context, req *request) (*cmp.Body, error) {
	tx, err := r.openTransaction(ctx, req, store.StatePending)
	if err != nil {
		return nil, err
	}
	if len(req.msg.Body.PollReqs) != 1 || req.msg.Body.PollReqs[0] != tx.CertReqID {
		return nil, reject(cmp.FailBadCertID, "pollReq must name the certReqId %d of the request", tx.CertReqID)
	}
	if tx.RequestType == cmp.BodyRR.String() {
		backendCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), backendTimeout)
		defer cancel()
		return r.pollRevocation(backendCtx, req, tx)
	}
	requestType, ok := bodyTypeByName(tx.RequestType)
	if !ok {
		return nil, fmt.Errorf("transaction of unknown request type %q", tx.RequestType)
	}
	backendCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), backendTimeout)
	defer cancel()
	result, err := req.profile.Backend.Poll(backendCtx, &backends.PollRequest{TransactionID: tx.ID, PollReference: tx.PollReference})
	if err != nil {
		r.closeTransaction(backendCtx, tx, store.StateRejected)
		return nil, err
	}
	if result.Pending != nil {
		tx.SenderNonce = req.responseNonce
		tx.UpdatedAt = r.now()
		if err := r.opts.Store.UpdateTransaction(backendCtx, tx); err != nil {
			return nil, err
		}
		return &cmp.Body{Type: cmp.BodyPollRep, PollReps: []cmp.PollResponse{{
			CertReqID: tx.CertReqID, CheckAfter: max(1, int64(result.Pending.CheckAfter/time.Second)),
		}}}, nil
	}
	template := backends.Template{}
	if result.Certificate != nil {
		template.PublicKeyDER = result.Certificate.RawSubjectPublicKeyInfo
		// A centrally generated key waited in the archive for the certificate.
		if r.archive != nil {
			_, key, err := r.archivedKey(backendCtx, tx.ID)
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				return nil, err
			}
			req.generatedKey = key
		}
	}
	return r.deliver(backendCtx, req, tx, requestType, template, result, false)
}

// clientError handles an error message from the client, which ends its transaction.
func (r *Router) clientError(ctx context.Context, req *request) (*cmp.Body, error) {
	tx, err := r.opts.Store.Transaction(ctx, req.msg.Header.TransactionID)
	if err == nil && tx.Requester == req.requester.Identity && tx.State != store.StateDone {
		r.closeTransaction(ctx, tx, store.StateRejected)
	}
	r.log.Warn("client sent an error message", keyTransactionID, fmt.Sprintf("%x", req.msg.Header.TransactionID),
		keyDetail, req.msg.Body.Error.Status.String())
	return &cmp.Body{Type: cmp.BodyPKIConf}, nil
}
