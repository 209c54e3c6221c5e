package scep

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/certgate/certgate/backends"
	"github.com/certgate/certgate/gateway"
	"github.com/certgate/certgate/gateway/cmp"
	"github.com/certgate/certgate/gateway/store"
)

// oidSHA256 names the certHash algorithm of the certConf the frontend sends.
var oidSHA256 = digestSHA256.oid

// pkiOperation returns the CertRep to one pkiMessage. When the message is too broken
// to name its transaction, no CertRep can refer to it, so it returns an HTTP status and
// detail instead.
func (h *Handler) pkiOperation(ctx context.Context, p *Profile, der []byte, remote string, ev *event) ([]byte, int, string) {
	req, err := ParseRequest(der, p.Legacy)
	if req == nil {
		ev.err = err
		return nil, http.StatusBadRequest, "the message is not a SCEP pkiMessage"
	}
	ev.transactionID = req.TransactionID
	ev.operation = req.MessageType.String()

	var rep *CertRep
	if err == nil {
		rep, err = h.run(ctx, p, req, remote)
	}
	if err != nil {
		f := failureOf(err)
		rep = &CertRep{Status: StatusFailure, FailInfo: failInfoOf(f.info), FailInfoText: f.detail}
		ev.failInfo, ev.detail, ev.err = rep.FailInfo.String(), f.detail, f.err
	}
	ev.status = rep.Status.String()
	out, err := req.Respond(rep, p.RA.Certificate, p.RA.Key)
	if err != nil {
		ev.err = err
		return nil, http.StatusInternalServerError, "internal error"
	}
	return out, http.StatusOK, ""
}

// run decrypts a verified request and dispatches it by messageType.
func (h *Handler) run(ctx context.Context, p *Profile, req *Request, remote string) (*CertRep, error) {
	if _, ok := req.Signer.PublicKey.(*rsa.PublicKey); !ok {
		return nil, reject(cmp.FailBadAlg, "the signer certificate holds a %s key, but SCEP encrypts the response to it, which needs RSA",
			req.Signer.PublicKeyAlgorithm)
	}
	content, err := req.Decrypt(p.RA.Certificate, p.RA.Key, p.Legacy)
	if err != nil {
		return nil, err
	}
	switch req.MessageType {
	case MessagePKCSReq:
		return h.enroll(ctx, p, req, content, remote)
	case MessageRenewalReq:
		return h.renew(ctx, p, req, content, remote)
	case MessageCertPoll:
		return h.certPoll(ctx, p, req, content, remote)
	case MessageGetCert:
		return h.getCert(ctx, content)
	case MessageGetCRL:
		return h.getCRL(ctx, p, content)
	}
	return nil, reject(cmp.FailBadRequest, "%s messages are not supported", req.MessageType)
}

// enroll handles a PKCSReq: the challenge password authorizes it, and it becomes a
// p10cr.
func (h *Handler) enroll(ctx context.Context, p *Profile, req *Request, content []byte, remote string) (*CertRep, error) {
	csr, challenge, err := ParseCSR(content)
	if err != nil {
		return nil, err
	}
	// A client that got PENDING may send its PKCSReq again instead of CertPoll; the
	// micromdm scepclient does. It polls then, and the challenge is not checked twice.
	entry, err := h.getPending(ctx, pendingKey(p, req))
	if err != nil {
		return nil, err
	}
	if entry != nil {
		return h.poll(ctx, p, req, entry, remote)
	}
	if p.Challenge == nil {
		return nil, reject(cmp.FailNotAuthorized, "this SCEP profile has no challenge password, so it accepts only RenewalReq")
	}
	challengeRequest := &ChallengeRequest{Profile: p.Name, TransactionID: req.TransactionID, Challenge: challenge, CSR: csr}
	if err := p.Challenge.ValidateChallenge(ctx, challengeRequest); err != nil {
		return nil, &failure{info: cmp.FailNotAuthorized, detail: "the challenge password is wrong or missing", err: err}
	}
	requester := backends.Requester{Frontend: "scep", Identity: csr.Subject.String(), Method: "challenge"}
	rep, err := h.submit(ctx, p, req, csr, requester, remote)
	if finisher, ok := p.Challenge.(ChallengeFinisher); ok {
		finisher.FinishChallenge(context.WithoutCancel(ctx), challengeRequest, err == nil && rep.Status != StatusFailure)
	}
	return rep, err
}

// renew handles a RenewalReq: the certificate that signed it authorizes it (RFC 8894
// section 2.3), and it becomes a p10cr.
func (h *Handler) renew(ctx context.Context, p *Profile, req *Request, content []byte, remote string) (*CertRep, error) {
	csr, _, err := ParseCSR(content)
	if err != nil {
		return nil, err
	}
	entry, err := h.getPending(ctx, pendingKey(p, req))
	if err != nil {
		return nil, err
	}
	if entry != nil {
		return h.poll(ctx, p, req, entry, remote)
	}
	if err := h.checkRenewal(ctx, p, req.Signer, csr); err != nil {
		return nil, err
	}
	requester := backends.Requester{Frontend: "scep", Identity: csr.Subject.String(), Method: "signature"}
	return h.submit(ctx, p, req, csr, requester, remote)
}

// checkRenewal accepts the signer of a RenewalReq when it is a certificate this gateway
// issued, valid now, not on its CA's current CRL, and the CSR keeps its subject, so that
// one device's certificate cannot renew into another identity.
func (h *Handler) checkRenewal(ctx context.Context, p *Profile, signer *x509.Certificate, csr *x509.CertificateRequest) error {
	stored, err := h.Router.Certificate(ctx, signer.RawIssuer, signer.SerialNumber)
	if errors.Is(err, store.ErrNotFound) || (err == nil && !bytes.Equal(stored.Raw, signer.Raw)) {
		return reject(cmp.FailBadCertID, "a RenewalReq must be signed with a certificate that this gateway issued; send a PKCSReq with the challenge password instead")
	}
	if err != nil {
		return err
	}
	now := time.Now()
	if now.Before(stored.NotBefore) || now.After(stored.NotAfter) {
		return reject(cmp.FailBadCertID, "the certificate that signed the RenewalReq is not valid now; send a PKCSReq with the challenge password instead")
	}
	revoked, err := h.revoked(ctx, p, stored)
	if err != nil {
		return &failure{info: cmp.FailSystemUnavail, detail: "the revocation status of the signer certificate cannot be checked now; retry later", err: err}
	}
	if revoked {
		return reject(cmp.FailCertRevoked, "the certificate that signed the RenewalReq is revoked")
	}
	if !bytes.Equal(csr.RawSubject, stored.RawSubject) {
		return reject(cmp.FailBadCertTemplate, "a RenewalReq must keep the subject of the certificate it renews")
	}
	return nil
}

// revoked reports whether cert is revoked or on hold: first by the status the gateway
// recorded, then by the current CRL of the profile's backend, which also knows
// revocations made at the CA itself. A backend without CRLs is judged by the recorded
// status alone.
//
// NOTE: the CRL is fetched and parsed for every RenewalReq.
func (h *Handler) revoked(ctx context.Context, p *Profile, cert *x509.Certificate) (bool, error) {
	status, err := h.Router.CertificateStatus(ctx, cert.RawIssuer, cert.SerialNumber)
	if err != nil {
		return false, err
	}
	if status == store.CertRevoked || status == store.CertOnHold {
		return true, nil
	}
	der, err := h.Router.CRL(ctx, p.CMPProfile)
	if backends.CategoryOf(err) == backends.CategoryUnsupported {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		return false, fmt.Errorf("the backend's CRL: %w", err)
	}
	if !bytes.Equal(crl.RawIssuer, cert.RawIssuer) {
		return false, errors.New("the backend's CRL is not from the issuer of the signer certificate")
	}
	chain, err := h.Router.CAChain(ctx, p.CMPProfile)
	if err != nil {
		return false, err
	}
	var issuer *x509.Certificate
	for _, ca := range chain {
		if bytes.Equal(ca.RawSubject, cert.RawIssuer) && cert.CheckSignatureFrom(ca) == nil {
			issuer = ca
			break
		}
	}
	if issuer == nil {
		return false, errors.New("the signer certificate was not issued by the profile's CA")
	}
	if err := crl.CheckSignatureFrom(issuer); err != nil {
		return false, fmt.Errorf("the backend's CRL signature: %w", err)
	}
	for _, entry := range crl.RevokedCertificateEntries {
		if entry.SerialNumber.Cmp(cert.SerialNumber) == 0 {
			return true, nil
		}
	}
	return false, nil
}

// transaction is the CMP side of one SCEP enrollment: what the frontend needs to send
// the follow-up messages (pollReq, certConf) of the same CMP transaction.
type transaction struct {
	key       string
	origin    gateway.Origin
	sender    cmp.GeneralName
	signerKey []byte // SubjectPublicKeyInfo of the SCEP signer; CertPoll must use the same key
}

// submit sends the CSR to the router as a p10cr with implicitConfirm requested, under a
// fresh CMP transactionID: the SCEP transactionID is often a hash of the public key and
// repeats when a client enrolls the same key again.
//
// NOTE: the CSR goes to the backend as the client sent it, challengePassword
// included, because a CA behind the gateway may need the original PKCS #10 request.
func (h *Handler) submit(ctx context.Context, p *Profile, req *Request, csr *x509.CertificateRequest, requester backends.Requester, remote string) (*CertRep, error) {
	tx := &transaction{
		key:       pendingKey(p, req),
		origin:    gateway.Origin{Frontend: "scep", Profile: p.CMPProfile, RemoteAddr: remote, Verified: &requester},
		sender:    cmp.DirectoryNameOf(csr.RawSubject),
		signerKey: req.Signer.RawSubjectPublicKeyInfo,
	}
	msg := &cmp.Message{
		Header: newHeader(tx.sender, randomBytes(16), nil),
		Body:   cmp.Body{Type: cmp.BodyP10CR, P10CR: &cmp.P10Request{CSR: csr, Raw: csr.Raw}},
	}
	msg.Header.GeneralInfo = []cmp.InfoTypeAndValue{{Type: cmp.OIDITImplicitConfirm, Value: []byte{0x05, 0x00}}}
	resp, err := h.Router.Process(ctx, tx.origin, msg)
	if err != nil {
		return nil, err
	}
	return h.translate(ctx, tx, resp)
}

// certPoll handles a CertPoll (RFC 8894 section 3.3.3) for a request that got PENDING.
// Polling is keyed on the transactionID, as the RFC recommends.
func (h *Handler) certPoll(ctx context.Context, p *Profile, req *Request, content []byte, remote string) (*CertRep, error) {
	if _, _, err := ParseIssuerAndSubject(content); err != nil {
		return nil, err
	}
	entry, err := h.getPending(ctx, pendingKey(p, req))
	if err != nil {
		return nil, err
	}
	if entry == nil {
		return nil, reject(cmp.FailBadCertID, "no pending request has this transactionID")
	}
	return h.poll(ctx, p, req, entry, remote)
}

// poll sends the router a pollReq for a pending enrollment.
func (h *Handler) poll(ctx context.Context, p *Profile, req *Request, entry *pendingEnrollment, remote string) (*CertRep, error) {
	if !bytes.Equal(req.Signer.RawSubjectPublicKeyInfo, entry.tx.signerKey) {
		return nil, reject(cmp.FailNotAuthorized, "poll with the key that signed the pending request")
	}
	tx := entry.tx
	tx.origin.RemoteAddr = remote
	msg := &cmp.Message{
		Header: newHeader(tx.sender, entry.cmpTransactionID, entry.recipNonce),
		Body:   cmp.Body{Type: cmp.BodyPollReq, PollReqs: []int64{-1}},
	}
	resp, err := h.Router.Process(ctx, tx.origin, msg)
	if err != nil {
		return nil, err
	}
	return h.translate(ctx, &tx, resp)
}

// translate turns the router's response to a p10cr or pollReq into a CertRep. A
// certificate becomes SUCCESS, waiting and pollRep become PENDING, and an error or a
// rejection becomes FAILURE with its PKIFailureInfo.
func (h *Handler) translate(ctx context.Context, tx *transaction, resp *cmp.Message) (*CertRep, error) {
	switch resp.Body.Type {
	case cmp.BodyError:
		status := resp.Body.Error.Status
		return nil, &failure{info: status.FailInfo, detail: strings.Join(status.StatusString, "; ")}
	case cmp.BodyPollRep:
		h.rememberPending(ctx, tx, resp)
		return &CertRep{Status: StatusPending}, nil
	case cmp.BodyCP:
	default:
		return nil, fmt.Errorf("unexpected %s response from the router to a p10cr", resp.Body.Type)
	}
	if resp.Body.CertRep == nil || len(resp.Body.CertRep.Responses) != 1 {
		return nil, errors.New("the router's cp does not carry one CertResponse")
	}
	answer := resp.Body.CertRep.Responses[0]
	switch answer.Status.Status {
	case cmp.StatusAccepted, cmp.StatusGrantedWithMods:
		if answer.Certificate == nil {
			return nil, errors.New("the router's cp accepts the request but carries no certificate")
		}
		if err := h.removePending(ctx, tx.key); err != nil {
			h.logger().Error("cannot remove a completed SCEP enrollment from the pending table", keyTransactionID, fmt.Sprintf("%x", resp.Header.TransactionID), keyError, err)
		}
		// The client gets its certificate even when certConf fails; the certificate
		// then stays unconfirmed in the store.
		if err := confirm(ctx, h.Router, tx, resp, answer.Certificate); err != nil {
			h.logger().Warn("certConf for a SCEP enrollment failed", keyTransactionID, fmt.Sprintf("%x", resp.Header.TransactionID), keyError, err)
		}
		return &CertRep{Status: StatusSuccess, Certificates: []*x509.Certificate{answer.Certificate}}, nil
	case cmp.StatusWaiting:
		h.rememberPending(ctx, tx, resp)
		return &CertRep{Status: StatusPending}, nil
	}
	return nil, &failure{info: answer.Status.FailInfo, detail: strings.Join(answer.Status.StatusString, "; ")}
}

func (h *Handler) rememberPending(ctx context.Context, tx *transaction, resp *cmp.Message) {
	stored, err := h.putPending(ctx, tx, resp)
	switch {
	case err != nil:
		h.logger().Error("cannot record a pending SCEP enrollment; the client's poll will fail",
			keyTransactionID, fmt.Sprintf("%x", resp.Header.TransactionID), keyError, err)
	case !stored:
		h.logger().Warn("too many pending SCEP enrollments; this one cannot be polled",
			keyTransactionID, fmt.Sprintf("%x", resp.Header.TransactionID), "limit", maxPending)
	}
}

// confirm sends certConf when the router did not grant implicitConfirm, because a SCEP
// client has no confirmation step: delivering the CertRep ends its transaction.
func confirm(ctx context.Context, router *gateway.Router, tx *transaction, resp *cmp.Message, cert *x509.Certificate) error {
	if resp.Header.HasImplicitConfirm() {
		return nil
	}
	certHash := sha256.Sum256(cert.Raw)
	header := newHeader(tx.sender, resp.Header.TransactionID, resp.Header.SenderNonce)
	// hashAlg in CertStatus is a cmp2021 field (RFC 9810 section 5.3.18).
	header.PVNO = cmp.PVNO2021
	msg := &cmp.Message{Header: header, Body: cmp.Body{Type: cmp.BodyCertConf, Confirms: []cmp.CertStatus{{
		CertHash: certHash[:], CertReqID: -1, HashAlg: &pkix.AlgorithmIdentifier{Algorithm: oidSHA256},
	}}}}
	out, err := router.Process(ctx, tx.origin, msg)
	switch {
	case err != nil:
		return err
	case out.Body.Type == cmp.BodyError:
		return fmt.Errorf("the router rejected certConf: %s", out.Body.Error.Status)
	case out.Body.Type != cmp.BodyPKIConf:
		return fmt.Errorf("unexpected %s response from the router to certConf", out.Body.Type)
	}
	return nil
}

// getCert handles GetCert (RFC 8894 section 3.3.4): a certificate this gateway issued,
// by issuer and serial number.
func (h *Handler) getCert(ctx context.Context, content []byte) (*CertRep, error) {
	issuer, serial, err := ParseIssuerAndSerial(content)
	if err != nil {
		return nil, err
	}
	cert, err := h.Router.Certificate(ctx, issuer, serial)
	if errors.Is(err, store.ErrNotFound) {
		return nil, reject(cmp.FailBadCertID, "no certificate with this issuer and serial number was issued here")
	}
	if err != nil {
		return nil, err
	}
	return &CertRep{Status: StatusSuccess, Certificates: []*x509.Certificate{cert}}, nil
}

// getCRL handles GetCRL (RFC 8894 section 3.3.4): the current CRL of the profile's CA,
// when it is the issuer the request names.
func (h *Handler) getCRL(ctx context.Context, p *Profile, content []byte) (*CertRep, error) {
	issuer, _, err := ParseIssuerAndSerial(content)
	if err != nil {
		return nil, err
	}
	der, err := h.Router.CRL(ctx, p.CMPProfile)
	if err != nil {
		return nil, &failure{info: cmp.FailSystemUnavail, detail: "the CA cannot produce a CRL now; retry later", err: err}
	}
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		return nil, fmt.Errorf("the backend's CRL: %w", err)
	}
	if !bytes.Equal(crl.RawIssuer, issuer) {
		return nil, reject(cmp.FailBadCertID, "this SCEP profile has no CRL from the issuer the request names")
	}
	return &CertRep{Status: StatusSuccess, CRLs: [][]byte{der}}, nil
}

// newHeader returns the header of a CMP request the frontend sends for a client.
func newHeader(sender cmp.GeneralName, transactionID, recipNonce []byte) cmp.Header {
	return cmp.Header{
		PVNO: cmp.PVNO2000, Sender: sender, Recipient: cmp.NullDN, MessageTime: time.Now(),
		TransactionID: transactionID, SenderNonce: randomBytes(16), RecipNonce: recipNonce,
	}
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}
