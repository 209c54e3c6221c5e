package gateway

import (
	"bytes"
	"crypto/x509"
	"fmt"

	"github.com/certgate/certgate/backends"
	"github.com/certgate/certgate/gateway/cmp"
)

// authenticate verifies the protection of a request and sets req.requester. A MAC
// verifies against the profile's secret for the senderKID. A signature verifies against
// the first certificate of extraCerts (or the one whose key identifier is the senderKID),
// which must chain to a trusted root and allow digitalSignature (RFC 9483 section 3.2).
func (r *Router) authenticate(req *request) error {
	if req.origin.Verified != nil {
		req.requester = *req.origin.Verified
		return nil
	}
	m := req.msg
	if m.Protection == nil || m.Header.ProtectionAlg == nil {
		return reject(cmp.FailBadMessageCheck, "the request is not protected; protect it with a MAC over a shared secret or with a signature")
	}
	if cmp.IsMACAlgorithm(m.Header.ProtectionAlg) {
		return r.authenticateMAC(req)
	}
	return r.authenticateSignature(req)
}

func (r *Router) authenticateMAC(req *request) error {
	m := req.msg
	reference := string(m.Header.SenderKID)
	secret, ok := req.profile.MACSecrets[reference]
	if !ok {
		// The same public text as a wrong secret, so that a client cannot probe which
		// references exist; the log gets the reason.
		return &Failure{Info: cmp.FailBadMessageCheck, Detail: "the MAC protection does not verify",
			Err: fmt.Errorf("no MAC secret for senderKID %q in profile %q", reference, req.profile.Name)}
	}
	key, err := cmp.DeriveMACKey(*m.Header.ProtectionAlg, secret)
	if err != nil {
		return err
	}
	if err := key.Verify(m); err != nil {
		return &Failure{Info: cmp.FailBadMessageCheck, Detail: "the MAC protection does not verify",
			Err: fmt.Errorf("MAC of senderKID %q: %w", reference, err)}
	}
	req.macKey = key
	req.macSecret = secret
	req.requester = backends.Requester{Frontend: req.origin.Frontend, Identity: "mac:" + reference, Method: "mac"}
	return nil
}

func (r *Router) authenticateSignature(req *request) error {
	m := req.msg
	signer := protectionCertificate(m)
	if signer == nil {
		return reject(cmp.FailSignerNotTrusted, "the request is signed, but extraCerts carries no protection certificate")
	}
	if r.opts.TrustedRoots == nil {
		return reject(cmp.FailSignerNotTrusted, "signature-protected requests are not accepted: no trusted roots are configured")
	}
	intermediates := x509.NewCertPool()
	if r.opts.Intermediates != nil {
		intermediates = r.opts.Intermediates.Clone()
	}
	for _, cert := range m.ExtraCerts {
		if cert != signer {
			intermediates.AddCert(cert)
		}
	}
	_, err := signer.Verify(x509.VerifyOptions{
		Roots:         r.opts.TrustedRoots,
		Intermediates: intermediates,
		CurrentTime:   r.now(),
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	if err != nil {
		return &Failure{Info: cmp.FailSignerNotTrusted, Detail: "the protection certificate does not chain to a trusted root", Err: err}
	}
	if signer.KeyUsage != 0 && signer.KeyUsage&x509.KeyUsageDigitalSignature == 0 {
		return reject(cmp.FailNotAuthorized, "the protection certificate lacks the digitalSignature key usage")
	}
	if err := cmp.VerifySignature(m, signer); err != nil {
		return err
	}
	req.signer = signer
	req.requester = backends.Requester{Frontend: req.origin.Frontend, Identity: signer.Subject.String(), Method: "signature"}
	return nil
}

// protectionCertificate returns the certificate of extraCerts that signed m: the one
// whose subject key identifier is the senderKID, else the first, which RFC 9483 section
// 3.3 requires to be the protection certificate.
func protectionCertificate(m *cmp.Message) *x509.Certificate {
	if len(m.ExtraCerts) == 0 {
		return nil
	}
	if len(m.Header.SenderKID) > 0 {
		for _, cert := range m.ExtraCerts {
			if bytes.Equal(cert.SubjectKeyId, m.Header.SenderKID) {
				return cert
			}
		}
	}
	return m.ExtraCerts[0]
}

// protect encodes the response with the protection that matches the request: the same
// MAC key for a MAC-protected request, else the responder's signature, else none.
func (r *Router) protect(req *request, resp *cmp.Message) ([]byte, error) {
	if req.macKey != nil {
		resp.Header.SenderKID = req.msg.Header.SenderKID
		resp.ExtraCerts = dedupeCertificates(resp.ExtraCerts)
		return req.macKey.Protect(resp)
	}
	if responder := r.opts.Responder; responder != nil {
		protector := &cmp.SignatureProtector{Signer: responder.Signer, Certificate: responder.Certificate, Chain: responder.Chain}
		if _, err := protector.Protect(resp); err != nil {
			return nil, err
		}
		// extraCerts lie outside the protected part, so the responder's chain can be
		// merged with the CA chain after signing.
		resp.ExtraCerts = dedupeCertificates(resp.ExtraCerts)
		return resp.Bytes()
	}
	resp.ExtraCerts = dedupeCertificates(resp.ExtraCerts)
	if err := resp.Encode(); err != nil {
		return nil, err
	}
	return resp.Bytes()
}

func dedupeCertificates(certs []*x509.Certificate) []*x509.Certificate {
	out := certs[:0:0]
	for _, cert := range certs {
		duplicate := false
		for _, kept := range out {
			if kept.Equal(cert) {
				duplicate = true
				break
			}
		}
		if !duplicate {
			out = append(out, cert)
		}
	}
	return out
}
