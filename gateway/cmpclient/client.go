package cmpclient

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
	"time"

	"github.com/certgate/certgate/gateway/cmp"
)

// MACCredential is a shared secret for PasswordBasedMac protection.
type MACCredential struct {
	Reference string // sent as senderKID; empty sends none
	Secret    []byte
}

// Client sends CMP requests. Set exactly one of MAC and Signer.
type Client struct {
	Transport Transport
	MAC       *MACCredential
	Signer    *cmp.SignatureProtector

	// Recipient is the DER Name put into the header's recipient; nil sends the NULL-DN.
	Recipient []byte
	// TrustedRoots validates signature-protected responses. Without roots, only
	// MAC-protected responses are accepted.
	TrustedRoots *x509.CertPool
	// ImplicitConfirm requests that the server skip certConf.
	ImplicitConfirm bool
	// MaxPollWait bounds the total time spent polling for a delayed response; zero
	// means five minutes.
	MaxPollWait time.Duration
	// PVNO is the protocol version to send: 2 (cmp2000, the default) or 3 (cmp2021,
	// which also sends hashAlg in certConf).
	PVNO int
}

// ServerError is a CMP error message or a rejection status from the server.
type ServerError struct {
	Status cmp.StatusInfo
}

func (e *ServerError) Error() string {
	return "cmpclient: server rejected the request: " + e.Status.String()
}

// Result is the outcome of an enrollment.
type Result struct {
	Certificate *x509.Certificate
	CAPubs      []*x509.Certificate
	ExtraCerts  []*x509.Certificate
	Status      cmp.StatusInfo

	// PrivateKey is the key the server generated, and KeyGenerationAuthority the
	// certificate that signed it, when the request asked for central key generation.
	PrivateKey             crypto.PrivateKey
	KeyGenerationAuthority *x509.Certificate
}

// EnrollRequest describes an ir, cr or kur. Key is the new key pair; Subject and
// Extensions fill the certificate template. A kur names OldCert, and the Client's
// Signer must hold OldCert's key.
//
// An RA that vouches for a request it checked itself leaves Key nil and sets
// PublicKey (a DER SubjectPublicKeyInfo) and RawSubject instead; the request then
// carries raVerified as proof of possession (RFC 9483 section 5.2.3.2).
type EnrollRequest struct {
	Type       cmp.BodyType // cmp.BodyIR, cmp.BodyCR or cmp.BodyKUR
	Key        crypto.Signer
	Subject    pkix.Name
	Extensions []pkix.Extension
	OldCert    *x509.Certificate

	PublicKey  []byte // with a nil Key: the key to certify
	RawSubject []byte // DER Name; overrides Subject

	// CentralKeyType, with a nil Key and PublicKey, requests that the server generate
	// the key pair (RFC 9483 section 4.1.6). "default" leaves the type to the server,
	// and ecdsa-p256, ecdsa-p384, ecdsa-p521, rsa or ed25519 names the algorithm.
	CentralKeyType string
	NotBefore      time.Time // requested validity; zero leaves it to the CA
	NotAfter       time.Time
}

// transaction carries the header values of one CMP transaction.
type transaction struct {
	id        []byte
	lastNonce []byte // the senderNonce of the last response
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// Enroll runs one certificate enrollment to its end: request, polling while the server
// responds with status waiting, and certConf unless implicit confirmation was granted.
func (c *Client) Enroll(ctx context.Context, req EnrollRequest) (*Result, error) {
	if req.Type != cmp.BodyIR && req.Type != cmp.BodyCR && req.Type != cmp.BodyKUR {
		return nil, fmt.Errorf("cmpclient: %s is not an enrollment request type", req.Type)
	}
	spki := req.PublicKey
	var err error
	switch {
	case req.Key != nil:
		if spki, err = x509.MarshalPKIXPublicKey(req.Key.Public()); err != nil {
			return nil, err
		}
	case req.CentralKeyType != "":
		if spki, err = centralKeyTemplate(req.CentralKeyType); err != nil {
			return nil, err
		}
	case spki == nil:
		return nil, errors.New("cmpclient: an enrollment needs Key, PublicKey or CentralKeyType")
	}
	crm := cmp.CertReqMsg{CertReqID: 0, Template: cmp.CertTemplate{
		RawPublicKey: spki, Extensions: req.Extensions, RawSubject: req.RawSubject,
		NotBefore: req.NotBefore, NotAfter: req.NotAfter,
	}}
	if subject := req.Subject.ToRDNSequence(); len(subject) > 0 && crm.Template.RawSubject == nil {
		if crm.Template.RawSubject, err = asn1.Marshal(subject); err != nil {
			return nil, err
		}
	}
	if req.Type == cmp.BodyKUR {
		if req.OldCert == nil {
			return nil, errors.New("cmpclient: a kur needs OldCert")
		}
		value, err := cmp.EncodeCertID(cmp.CertID{Issuer: cmp.DirectoryNameOf(req.OldCert.RawIssuer), SerialNumber: req.OldCert.SerialNumber})
		if err != nil {
			return nil, err
		}
		crm.Controls = []cmp.AttributeTypeAndValue{{Type: cmp.OIDRegCtrlOldCertID, Value: value}}
	}
	if crm.RawCertReq, err = crm.EncodeCertRequest(); err != nil {
		return nil, err
	}
	if req.Key == nil && req.CentralKeyType != "" {
		// No proof of possession: there is no key to prove yet.
		return c.enroll(ctx, &cmp.Body{Type: req.Type, CertReqs: []cmp.CertReqMsg{crm}}, 0)
	}
	if req.Key == nil {
		crm.POP = &cmp.ProofOfPossession{Type: cmp.POPRAVerified}
		return c.enroll(ctx, &cmp.Body{Type: req.Type, CertReqs: []cmp.CertReqMsg{crm}}, 0)
	}
	alg, h, err := cmp.SignatureAlgorithmFor(req.Key.Public())
	if err != nil {
		return nil, err
	}
	signature, err := cmp.Sign(req.Key, h, crm.RawCertReq)
	if err != nil {
		return nil, fmt.Errorf("cmpclient: signing the proof of possession: %w", err)
	}
	crm.POP = &cmp.ProofOfPossession{Type: cmp.POPSignature, Algorithm: alg, Signature: signature}
	return c.enroll(ctx, &cmp.Body{Type: req.Type, CertReqs: []cmp.CertReqMsg{crm}}, 0)
}

// EnrollCSR sends a p10cr with a DER PKCS #10 request.
func (c *Client) EnrollCSR(ctx context.Context, csrDER []byte) (*Result, error) {
	csr, err := x509.ParseCertificateRequest(csrDER)
	if err != nil {
		return nil, fmt.Errorf("cmpclient: %w", err)
	}
	return c.enroll(ctx, &cmp.Body{Type: cmp.BodyP10CR, P10CR: &cmp.P10Request{CSR: csr, Raw: csrDER}}, -1)
}

func (c *Client) enroll(ctx context.Context, body *cmp.Body, certReqID int64) (*Result, error) {
	tx := &transaction{id: randomBytes(16)}
	resp, err := c.exchange(ctx, tx, body, c.ImplicitConfirm)
	if err != nil {
		return nil, err
	}
	maxWait := c.MaxPollWait
	if maxWait <= 0 {
		maxWait = 5 * time.Minute
	}
	deadline := time.Now().Add(maxWait)
	for {
		if resp.Body.Type == cmp.BodyPollRep {
			if len(resp.Body.PollReps) != 1 {
				return nil, fmt.Errorf("cmpclient: pollRep with %d entries", len(resp.Body.PollReps))
			}
			wait := time.Duration(resp.Body.PollReps[0].CheckAfter) * time.Second
			if time.Now().Add(wait).After(deadline) {
				return nil, fmt.Errorf("cmpclient: still waiting after %s", maxWait)
			}
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(wait):
			}
			if resp, err = c.exchange(ctx, tx, &cmp.Body{Type: cmp.BodyPollReq, PollReqs: []int64{certReqID}}, false); err != nil {
				return nil, err
			}
			continue
		}
		if resp.Body.CertRep == nil || len(resp.Body.CertRep.Responses) != 1 {
			return nil, fmt.Errorf("cmpclient: unexpected %s response", resp.Body.Type)
		}
		certResp := resp.Body.CertRep.Responses[0]
		if certResp.Status.Status != cmp.StatusWaiting {
			break
		}
		// The first response to a delayed request is ip/cp/kup with status waiting.
		resp = &cmp.Message{Header: resp.Header, Body: cmp.Body{Type: cmp.BodyPollRep, PollReps: []cmp.PollResponse{{CertReqID: certReqID, CheckAfter: 1}}}}
	}

	certResp := resp.Body.CertRep.Responses[0]
	if certResp.Status.Status != cmp.StatusAccepted && certResp.Status.Status != cmp.StatusGrantedWithMods {
		return nil, &ServerError{Status: certResp.Status}
	}
	if certResp.CertReqID != certReqID {
		return nil, fmt.Errorf("cmpclient: response for certReqId %d, want %d", certResp.CertReqID, certReqID)
	}
	if certResp.Certificate == nil {
		return nil, errors.New("cmpclient: accepted response without a certificate")
	}
	result := &Result{Certificate: certResp.Certificate, CAPubs: resp.Body.CertRep.CAPubs, ExtraCerts: resp.ExtraCerts, Status: certResp.Status}
	if certResp.EncryptedPrivateKey != nil {
		if result.PrivateKey, result.KeyGenerationAuthority, err = c.openKey(certResp.EncryptedPrivateKey, certResp.Certificate); err != nil {
			return nil, err
		}
	}
	if c.ImplicitConfirm && resp.Header.HasImplicitConfirm() {
		return result, nil
	}

	hash := certificateHash(certResp.Certificate)
	status := cmp.CertStatus{CertReqID: certReqID}
	if c.PVNO == cmp.PVNO2021 {
		// cmp2021 names the hash explicitly (RFC 9810 section 5.3.18). SHA-512 is
		// strong for every key type and differs from the SHA-256 that most
		// certificates are signed with, which keeps a server's hashAlg handling honest.
		hash = crypto.SHA512
		status.HashAlg = &pkix.AlgorithmIdentifier{Algorithm: cmp.OIDSHA512}
	}
	digest := hash.New()
	digest.Write(certResp.Certificate.Raw)
	status.CertHash = digest.Sum(nil)
	confirm := &cmp.Body{Type: cmp.BodyCertConf, Confirms: []cmp.CertStatus{status}}
	conf, err := c.exchange(ctx, tx, confirm, false)
	if err != nil {
		return nil, fmt.Errorf("cmpclient: certConf: %w", err)
	}
	if conf.Body.Type != cmp.BodyPKIConf {
		return nil, fmt.Errorf("cmpclient: the server responded to certConf with %s, want pkiconf", conf.Body.Type)
	}
	return result, nil
}

// certificateHash is the hash certConf uses: the one of the certificate's signature
// algorithm, SHA-512 for Ed25519 (RFC 9810 section 5.3.18).
func certificateHash(cert *x509.Certificate) crypto.Hash {
	switch cert.SignatureAlgorithm {
	case x509.SHA384WithRSA, x509.ECDSAWithSHA384, x509.SHA384WithRSAPSS:
		return crypto.SHA384
	case x509.SHA512WithRSA, x509.ECDSAWithSHA512, x509.SHA512WithRSAPSS, x509.PureEd25519:
		return crypto.SHA512
	case x509.SHA1WithRSA, x509.ECDSAWithSHA1:
		return crypto.SHA1
	}
	return crypto.SHA256
}

// centralKeyTemplate returns the certTemplate publicKey that requests central key
// generation: absent for "default", else the algorithm with an empty key.
func centralKeyTemplate(keyType string) ([]byte, error) {
	var alg pkix.AlgorithmIdentifier
	switch keyType {
	case "default":
		return nil, nil
	case "ecdsa-p256", "ecdsa-p384", "ecdsa-p521":
		curve := map[string]asn1.ObjectIdentifier{"ecdsa-p256": cmp.OIDNamedCurveP256, "ecdsa-p384": cmp.OIDNamedCurveP384, "ecdsa-p521": cmp.OIDNamedCurveP521}[keyType]
		params, err := asn1.Marshal(curve)
		if err != nil {
			return nil, err
		}
		alg = pkix.AlgorithmIdentifier{Algorithm: cmp.OIDPublicKeyECDSA, Parameters: asn1.RawValue{FullBytes: params}}
	case "rsa":
		alg = pkix.AlgorithmIdentifier{Algorithm: cmp.OIDPublicKeyRSA, Parameters: asn1.NullRawValue}
	case "ed25519":
		alg = pkix.AlgorithmIdentifier{Algorithm: cmp.OIDEd25519}
	default:
		return nil, fmt.Errorf("cmpclient: unknown key type %q for central key generation; use default, ecdsa-p256, ecdsa-p384, ecdsa-p521, rsa or ed25519", keyType)
	}
	return asn1.Marshal(struct {
		Algorithm pkix.AlgorithmIdentifier
		PublicKey asn1.BitString
	}{Algorithm: alg})
}

// openKey decrypts a key the server generated or recovered, with the MAC secret or the
// signer's key, and checks that it belongs to cert. With TrustedRoots set, the key
// generation authority's certificate must chain to them.
func (c *Client) openKey(encrypted []byte, cert *x509.Certificate) (crypto.PrivateKey, *x509.Certificate, error) {
	var password []byte
	var recipient *x509.Certificate
	var recipientKey crypto.PrivateKey
	if c.MAC != nil {
		password = c.MAC.Secret
	} else if c.Signer != nil {
		recipient, recipientKey = c.Signer.Certificate, c.Signer.Signer
	}
	key, kgaChain, err := cmp.OpenPrivateKey(encrypted, password, recipient, recipientKey)
	if err != nil {
		return nil, nil, fmt.Errorf("cmpclient: opening the generated key: %w", err)
	}

	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, nil, fmt.Errorf("cmpclient: the generated key is a %T", key)
	}
	spki, err := x509.MarshalPKIXPublicKey(signer.Public())
	if err != nil || !bytes.Equal(spki, cert.RawSubjectPublicKeyInfo) {
		return nil, nil, errors.New("cmpclient: the generated key does not match the certificate")
	}

	kga := kgaChain[0]
	if c.TrustedRoots != nil {
		intermediates := x509.NewCertPool()
		for _, cert := range kgaChain[1:] {
			intermediates.AddCert(cert)
		}
		_, err := kga.Verify(x509.VerifyOptions{Roots: c.TrustedRoots, Intermediates: intermediates, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
		if err != nil {
			return nil, nil, fmt.Errorf("cmpclient: the key generation authority %s is not trusted: %w", kga.Subject, err)
		}
	}
	return key, kga, nil
}

// RecoverKey sends a krr for the archived key of cert and returns the key.
func (c *Client) RecoverKey(ctx context.Context, cert *x509.Certificate) (crypto.PrivateKey, error) {
	value, err := cmp.EncodeCertID(cmp.CertID{Issuer: cmp.DirectoryNameOf(cert.RawIssuer), SerialNumber: cert.SerialNumber})
	if err != nil {
		return nil, err
	}
	crm := cmp.CertReqMsg{Template: cmp.CertTemplate{RawSubject: cert.RawSubject},
		Controls: []cmp.AttributeTypeAndValue{{Type: cmp.OIDRegCtrlOldCertID, Value: value}}}
	resp, err := c.exchange(ctx, &transaction{id: randomBytes(16)}, &cmp.Body{Type: cmp.BodyKRR, CertReqs: []cmp.CertReqMsg{crm}}, false)
	if err != nil {
		return nil, err
	}
	if resp.Body.Type != cmp.BodyKRP {
		return nil, fmt.Errorf("cmpclient: the server responded to krr with %s, want krp", resp.Body.Type)
	}
	rep := resp.Body.KeyRecRep
	if rep.Status.Status != cmp.StatusAccepted && rep.Status.Status != cmp.StatusGrantedWithMods {
		return nil, &ServerError{Status: rep.Status}
	}
	if len(rep.KeyPairHist) == 0 || rep.KeyPairHist[0].EncryptedPrivateKey == nil {
		return nil, errors.New("cmpclient: the krp carries no key")
	}
	pair := rep.KeyPairHist[0]
	if pair.Certificate == nil || !pair.Certificate.Equal(cert) {
		return nil, errors.New("cmpclient: the krp carries the key of another certificate")
	}
	key, _, err := c.openKey(pair.EncryptedPrivateKey, cert)
	return key, err
}

// Revoke sends an rr for cert with a CRLReason code (RFC 5280 section 5.3.1).
func (c *Client) Revoke(ctx context.Context, cert *x509.Certificate, reason int) error {
	return c.RevokeSerial(ctx, cert.RawIssuer, cert.SerialNumber, reason)
}

// RevokeSerial sends an rr for the certificate with this DER issuer Name and serial
// number.
func (c *Client) RevokeSerial(ctx context.Context, rawIssuer []byte, serial *big.Int, reason int) error {
	details := cmp.RevDetails{CertDetails: cmp.CertTemplate{RawIssuer: rawIssuer, SerialNumber: serial}}
	reasonValue, err := asn1.Marshal(asn1.Enumerated(reason))
	if err != nil {
		return err
	}
	details.CRLEntryDetails = []pkix.Extension{{Id: cmp.OIDExtensionReasonCode, Value: reasonValue}}
	tx := &transaction{id: randomBytes(16)}
	resp, err := c.exchange(ctx, tx, &cmp.Body{Type: cmp.BodyRR, RevReqs: []cmp.RevDetails{details}}, false)
	resp, err = c.awaitDelayed(ctx, tx, resp, err)
	if err != nil {
		return err
	}
	if resp.Body.Type != cmp.BodyRP || len(resp.Body.RevRep.Status) != 1 {
		return fmt.Errorf("cmpclient: the server responded to rr with %s, want rp", resp.Body.Type)
	}
	if status := resp.Body.RevRep.Status[0]; status.Status != cmp.StatusAccepted && status.Status != cmp.StatusGrantedWithMods {
		return &ServerError{Status: status}
	}
	return nil
}

// General sends a genm with one InfoTypeAndValue per type, each without a value, and
// returns the genp's entries.
func (c *Client) General(ctx context.Context, infoTypes ...asn1.ObjectIdentifier) ([]cmp.InfoTypeAndValue, error) {
	infos := make([]cmp.InfoTypeAndValue, len(infoTypes))
	for i, infoType := range infoTypes {
		infos[i] = cmp.InfoTypeAndValue{Type: infoType}
	}
	tx := &transaction{id: randomBytes(16)}
	resp, err := c.exchange(ctx, tx, &cmp.Body{Type: cmp.BodyGenM, Infos: infos}, false)
	resp, err = c.awaitDelayed(ctx, tx, resp, err)
	if err != nil {
		return nil, err
	}
	if resp.Body.Type != cmp.BodyGenP {
		return nil, fmt.Errorf("cmpclient: the server responded to genm with %s, want genp", resp.Body.Type)
	}
	return resp.Body.Infos, nil
}

// awaitDelayed takes the result of the first exchange of tx. When the server responded
// with an error message of status waiting (delayed delivery of a response other than
// ip, cp or kup, RFC 9483 section 4.4), it polls with pollReq and certReqId -1 until
// the real response arrives.
func (c *Client) awaitDelayed(ctx context.Context, tx *transaction, resp *cmp.Message, err error) (*cmp.Message, error) {
	var serverErr *ServerError
	if !errors.As(err, &serverErr) || serverErr.Status.Status != cmp.StatusWaiting {
		return resp, err
	}
	maxWait := c.MaxPollWait
	if maxWait <= 0 {
		maxWait = 5 * time.Minute
	}
	deadline := time.Now().Add(maxWait)
	wait := time.Second
	for {
		if time.Now().Add(wait).After(deadline) {
			return nil, fmt.Errorf("cmpclient: still waiting after %s", maxWait)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
		resp, err = c.exchange(ctx, tx, &cmp.Body{Type: cmp.BodyPollReq, PollReqs: []int64{-1}}, false)
		if err != nil || resp.Body.Type != cmp.BodyPollRep {
			return resp, err
		}
		if len(resp.Body.PollReps) != 1 {
			return nil, fmt.Errorf("cmpclient: pollRep with %d entries", len(resp.Body.PollReps))
		}
		wait = time.Duration(max(1, resp.Body.PollReps[0].CheckAfter)) * time.Second
	}
}

// exchange protects and sends one request of tx and checks the response: transactionID
// and recipNonce echoed, protection valid, and no error message.
func (c *Client) exchange(ctx context.Context, tx *transaction, body *cmp.Body, implicitConfirm bool) (*cmp.Message, error) {
	nonce := randomBytes(16)
	pvno := c.PVNO
	if pvno == 0 {
		pvno = cmp.PVNO2000
	}
	m := &cmp.Message{
		Header: cmp.Header{
			PVNO: pvno, Sender: cmp.NullDN, Recipient: cmp.NullDN, MessageTime: time.Now(),
			TransactionID: tx.id, SenderNonce: nonce, RecipNonce: tx.lastNonce,
		},
		Body: *body,
	}
	if c.Recipient != nil {
		m.Header.Recipient = cmp.DirectoryNameOf(c.Recipient)
	}
	if implicitConfirm {
		m.Header.GeneralInfo = []cmp.InfoTypeAndValue{{Type: cmp.OIDITImplicitConfirm, Value: []byte{0x05, 0x00}}}
	}

	var der []byte
	var err error
	switch {
	case c.MAC != nil:
		if c.MAC.Reference != "" {
			m.Header.SenderKID = []byte(c.MAC.Reference)
		}
		key, keyErr := cmp.NewPBMKey(c.MAC.Secret, crypto.SHA256, crypto.SHA256, 500)
		if keyErr != nil {
			return nil, keyErr
		}
		der, err = key.Protect(m)
	case c.Signer != nil:
		m.Header.Sender = cmp.DirectoryNameOf(c.Signer.Certificate.RawSubject)
		der, err = c.Signer.Protect(m)
	default:
		return nil, errors.New("cmpclient: no MAC secret and no signer configured")
	}
	if err != nil {
		return nil, err
	}

	respDER, err := c.Transport.Exchange(ctx, der)
	if err != nil {
		return nil, err
	}
	resp, err := cmp.ParseMessage(respDER)
	if err != nil {
		return nil, fmt.Errorf("cmpclient: %w", err)
	}
	if err := c.checkResponse(tx, nonce, resp); err != nil {
		return nil, err
	}
	tx.lastNonce = resp.Header.SenderNonce
	if resp.Body.Type == cmp.BodyError {
		return nil, &ServerError{Status: resp.Body.Error.Status}
	}
	return resp, nil
}

func (c *Client) checkResponse(tx *transaction, nonce []byte, resp *cmp.Message) error {
	if !bytes.Equal(resp.Header.TransactionID, tx.id) {
		// An error message about an unreadable request may lack the transactionID.
		if resp.Body.Type == cmp.BodyError && resp.Header.TransactionID == nil {
			return &ServerError{Status: resp.Body.Error.Status}
		}
		return errors.New("cmpclient: the response has another transactionID")
	}
	if resp.Header.PVNO != cmp.PVNO2000 && resp.Header.PVNO != cmp.PVNO2021 {
		return fmt.Errorf("cmpclient: the response has pvno %d", resp.Header.PVNO)
	}
	if !bytes.Equal(resp.Header.RecipNonce, nonce) {
		return errors.New("cmpclient: the response's recipNonce is not the request's senderNonce")
	}
	if resp.Protection == nil {
		if resp.Body.Type == cmp.BodyError {
			return &ServerError{Status: resp.Body.Error.Status}
		}
		return errors.New("cmpclient: the response is not protected")
	}
	if cmp.IsMACAlgorithm(resp.Header.ProtectionAlg) {
		if c.MAC == nil {
			return errors.New("cmpclient: the response is MAC-protected, but no secret is configured")
		}
		key, err := cmp.DeriveMACKey(*resp.Header.ProtectionAlg, c.MAC.Secret)
		if err != nil {
			return fmt.Errorf("cmpclient: %w", err)
		}
		return key.Verify(resp)
	}
	if c.TrustedRoots == nil {
		// A server that cannot verify a MAC responds with a signed error message. Its
		// content is shown, marked as unverified, because it is usually the reason.
		if resp.Body.Type == cmp.BodyError {
			return fmt.Errorf("cmpclient: the server responded with a signed error message that cannot be verified without trusted roots (unverified: %s)",
				resp.Body.Error.Status.String())
		}
		return errors.New("cmpclient: the response is signed, but no trusted roots are configured to verify it")
	}
	if len(resp.ExtraCerts) == 0 {
		return errors.New("cmpclient: the signed response carries no extraCerts")
	}
	signer := resp.ExtraCerts[0]
	intermediates := x509.NewCertPool()
	for _, cert := range resp.ExtraCerts[1:] {
		intermediates.AddCert(cert)
	}
	if _, err := signer.Verify(x509.VerifyOptions{Roots: c.TrustedRoots, Intermediates: intermediates, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return fmt.Errorf("cmpclient: the response signer is not trusted: %w", err)
	}
	return cmp.VerifySignature(resp, signer)
}
