package scep

import (
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"math/big"
	"strconv"
	"unicode/utf16"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// nonceSize is the size of senderNonce and recipientNonce: "a 16-byte random number"
// (RFC 8894 section 3.2.1.5).
const nonceSize = 16

// maxTransactionIDLength bounds the transactionID. RFC 8894 section 3.2.1.1 sets no
// limit. Clients send a hash of the public key as hex or base64, which is at most 128
// characters for SHA-512 in hex.
const maxTransactionIDLength = 128

// Request is a pkiMessage from a client (RFC 8894 section 3.2).
type Request struct {
	MessageType   MessageType
	TransactionID string
	SenderNonce   []byte
	// Signer is the certificate that signed the message: self-signed for a first
	// PKCSReq, the certificate to renew for a RenewalReq. The CertRep is encrypted to it.
	Signer *x509.Certificate

	envelope []byte           // eContent: the DER of the pkcsPKIEnvelope
	digest   *digestAlgorithm // of the request's signature; the CertRep uses it too
	cipher   *contentCipher   // of the pkcsPKIEnvelope, set by Decrypt
}

// ParseRequest decodes a pkiMessage and verifies its signature with the certificate
// it carries. It does not check who that certificate belongs to.
//
// When the message decodes far enough to name its transaction but its signature does
// not verify or uses an algorithm that legacy leaves off, ParseRequest returns the
// Request together with the error, so that the caller can respond with a CertRep
// FAILURE. The fields of such a Request are not authenticated.
func ParseRequest(der []byte, legacy LegacyAlgorithms) (*Request, error) {
	sd, err := parseSignedData(der)
	if err != nil {
		return nil, err
	}
	si := &sd.signer
	req := &Request{}
	messageType, err := si.stringValue(oidMessageType, "messageType")
	if err != nil {
		return nil, err
	}
	n, err := strconv.Atoi(messageType)
	if err != nil || n < 0 || n > 99 {
		return nil, malformed("messageType %q is not a number", messageType)
	}
	req.MessageType = MessageType(n)
	if req.TransactionID, err = si.stringValue(oidTransactionID, "transactionID"); err != nil {
		return nil, err
	}
	if req.TransactionID == "" || len(req.TransactionID) > maxTransactionIDLength {
		return nil, malformed("transactionID must have 1 to %d characters", maxTransactionIDLength)
	}
	if req.SenderNonce, err = si.octetsValue(oidSenderNonce, "senderNonce"); err != nil {
		return nil, err
	}
	if len(req.SenderNonce) != nonceSize {
		return nil, malformed("senderNonce must be %d bytes, got %d", nonceSize, len(req.SenderNonce))
	}

	signer, digest, err := sd.verify(legacy)
	if err != nil {
		return req, err
	}
	req.Signer, req.digest = signer, digest
	if _, ok := messageTypeNames[req.MessageType]; !ok || req.MessageType == MessageCertRep {
		return req, malformed("messageType %d is not a request", n)
	}
	if !sd.contentType.Equal(oidData) || sd.content == nil {
		return req, malformed("the pkiMessage has no data content for its pkcsPKIEnvelope")
	}
	req.envelope = sd.content
	return req, nil
}

// Decrypt decrypts the pkcsPKIEnvelope of r with the RA's certificate and key, and
// returns its content: a PKCS #10 request for PKCSReq and RenewalReq, an
// IssuerAndSubject for CertPoll, an IssuerAndSerialNumber for GetCert and GetCRL.
// The CertRep to r is encrypted with the same content-encryption algorithm.
func (r *Request) Decrypt(ra *x509.Certificate, key crypto.Decrypter, legacy LegacyAlgorithms) ([]byte, error) {
	env, err := parseEnvelope(r.envelope)
	if err != nil {
		return nil, err
	}
	content, c, err := env.decrypt(ra, key, legacy)
	if err != nil {
		return nil, err
	}
	r.cipher = c
	return content, nil
}

// ContentEncryption names the content-encryption algorithm of the request's
// pkcsPKIEnvelope, or "" before Decrypt succeeded.
func (r *Request) ContentEncryption() string {
	if r.cipher == nil {
		return ""
	}
	return r.cipher.name
}

// Digest names the digest algorithm of the request's signature, or "" when the
// signature did not verify.
func (r *Request) Digest() string {
	if r.digest == nil {
		return ""
	}
	return r.digest.name
}

// ParseCSR decodes the PKCS #10 request of a PKCSReq or RenewalReq and returns it with
// its challengePassword attribute (RFC 8894 section 2.4), "" when absent. It does not
// check the request's signature; the router does.
func ParseCSR(der []byte) (*x509.CertificateRequest, string, error) {
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return nil, "", errors.Join(ErrMalformed, err)
	}
	challenge, err := challengePassword(csr.RawTBSCertificateRequest)
	if err != nil {
		return nil, "", err
	}
	return csr, challenge, nil
}

// challengePassword finds the challengePassword attribute in a CertificationRequestInfo
// (RFC 2986 section 4.1). crypto/x509 does not return it, because its value is a
// DirectoryString and not the SET OF AttributeTypeAndValue that Attributes expects.
func challengePassword(tbs []byte) (string, error) {
	input := cryptobyte.String(tbs)
	var info, attrs cryptobyte.String
	if !input.ReadASN1(&info, cbasn1.SEQUENCE) || !info.SkipASN1(cbasn1.INTEGER) ||
		!info.SkipASN1(cbasn1.SEQUENCE) || !info.SkipASN1(cbasn1.SEQUENCE) {
		return "", malformed("CertificationRequestInfo is invalid")
	}
	if !info.ReadASN1(&attrs, tagContext0) || !info.Empty() {
		return "", malformed("CertificationRequestInfo.attributes is invalid")
	}
	found := ""
	seen := false
	for !attrs.Empty() {
		var attr, values, value cryptobyte.String
		var oid asn1.ObjectIdentifier
		if !attrs.ReadASN1(&attr, cbasn1.SEQUENCE) || !attr.ReadASN1ObjectIdentifier(&oid) || !attr.ReadASN1(&values, cbasn1.SET) {
			return "", malformed("a CSR attribute is invalid")
		}
		if !oid.Equal(oidChallengePassword) {
			continue
		}
		if seen {
			return "", malformed("the CSR carries challengePassword twice")
		}
		seen = true
		var tag cbasn1.Tag
		if !values.ReadAnyASN1(&value, &tag) || !values.Empty() {
			return "", malformed("challengePassword must have exactly one value")
		}
		switch tag {
		case cbasn1.PrintableString, cbasn1.UTF8String, cbasn1.IA5String, cbasn1.T61String:
			found = string(value)
		case cbasn1.Tag(30): // BMPString: UTF-16 big endian
			if len(value)%2 != 0 {
				return "", malformed("challengePassword is an invalid BMPString")
			}
			units := make([]uint16, len(value)/2)
			for i := range units {
				units[i] = uint16(value[2*i])<<8 | uint16(value[2*i+1])
			}
			found = string(utf16.Decode(units))
		default:
			return "", malformed("challengePassword is not a DirectoryString")
		}
	}
	return found, nil
}

// ParseIssuerAndSubject decodes the content of a CertPoll (RFC 8894 section 3.3.3) and
// returns the DER of both names.
func ParseIssuerAndSubject(der []byte) (issuer, subject []byte, err error) {
	input := cryptobyte.String(der)
	var seq, rawIssuer, rawSubject cryptobyte.String
	if !input.ReadASN1(&seq, cbasn1.SEQUENCE) || !input.Empty() || !seq.ReadASN1Element(&rawIssuer, cbasn1.SEQUENCE) ||
		!seq.ReadASN1Element(&rawSubject, cbasn1.SEQUENCE) || !seq.Empty() {
		return nil, nil, malformed("IssuerAndSubject is invalid")
	}
	return rawIssuer, rawSubject, nil
}

// ParseIssuerAndSerial decodes the content of a GetCert or GetCRL (RFC 8894 section
// 3.3.4): the DER of the issuer name and the serial number.
func ParseIssuerAndSerial(der []byte) ([]byte, *big.Int, error) {
	input := cryptobyte.String(der)
	var seq, rawIssuer cryptobyte.String
	serial := new(big.Int)
	if !input.ReadASN1(&seq, cbasn1.SEQUENCE) || !input.Empty() || !seq.ReadASN1Element(&rawIssuer, cbasn1.SEQUENCE) ||
		!seq.ReadASN1Integer(serial) || !seq.Empty() {
		return nil, nil, malformed("IssuerAndSerialNumber is invalid")
	}
	return rawIssuer, serial, nil
}

// CertRep is the content of a response (RFC 8894 section 3.3.2).
type CertRep struct {
	Status PKIStatus
	// FailInfo and FailInfoText are sent with StatusFailure. FailInfoText goes into
	// the failInfoText attribute when not empty; it must not carry internal detail.
	FailInfo     FailInfo
	FailInfoText string
	// With StatusSuccess, Certificates (the issued or requested certificate first)
	// and CRLs (DER) are sent in a degenerate SignedData encrypted to the signer of
	// the request.
	Certificates []*x509.Certificate
	CRLs         [][]byte
}

// Respond builds the signed CertRep to r. It is signed with the RA's certificate and
// key, with the digest algorithm of the request (SHA-256 when the request's could not
// be used), and a SUCCESS envelope is encrypted with the request's content-encryption
// algorithm (AES-128-CBC when unknown).
func (r *Request) Respond(rep *CertRep, raCert *x509.Certificate, key crypto.Signer) ([]byte, error) {
	if r.TransactionID == "" || len(r.SenderNonce) == 0 {
		return nil, errors.New("scep: a CertRep needs the transactionID and senderNonce of its request")
	}
	senderNonce := make([]byte, nonceSize)
	rand.Read(senderNonce)
	attrs := []attribute{
		{oidTransactionID, printableString(r.TransactionID)},
		{oidMessageType, printableString(strconv.Itoa(int(MessageCertRep)))},
		{oidPKIStatus, printableString(strconv.Itoa(int(rep.Status)))},
		{oidSenderNonce, octetString(senderNonce)},
		{oidRecipientNonce, octetString(r.SenderNonce)},
	}
	var content []byte
	switch rep.Status {
	case StatusFailure:
		attrs = append(attrs, attribute{oidFailInfo, printableString(strconv.Itoa(int(rep.FailInfo)))})
		if rep.FailInfoText != "" {
			attrs = append(attrs, attribute{oidFailInfoText, utf8String(rep.FailInfoText)})
		}
	case StatusSuccess:
		if r.Signer == nil {
			return nil, errors.New("scep: a SUCCESS CertRep needs the verified signer of its request")
		}
		degenerate, err := Degenerate(rep.Certificates, rep.CRLs)
		if err != nil {
			return nil, err
		}
		c := r.cipher
		if c == nil {
			c = cipherAES128
		}
		if content, err = encryptEnvelope(degenerate, r.Signer, c); err != nil {
			return nil, err
		}
	}
	digest := r.digest
	if digest == nil {
		digest = digestSHA256
	}
	return signSignedData(content, attrs, raCert, key, digest, []*x509.Certificate{raCert})
}

func printableString(s string) []byte {
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.PrintableString, func(b *cryptobyte.Builder) { b.AddBytes([]byte(s)) })
	return b.BytesOrPanic()
}

func utf8String(s string) []byte {
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.UTF8String, func(b *cryptobyte.Builder) { b.AddBytes([]byte(s)) })
	return b.BytesOrPanic()
}

func octetString(data []byte) []byte {
	var b cryptobyte.Builder
	b.AddASN1OctetString(data)
	return b.BytesOrPanic()
}

// NextCAResponse builds the response to GetNextCACert (RFC 8894 section 4.7.1): a
// SignedData, signed by the RA with SHA-256, whose content is a degenerate certs-only
// SignedData with next, the certificates of the CA that replaces the current one.
//
// Clients read the certificates from different places. sscep 0.10 parses the signed
// content as PKCS #7 and takes its certificates, while jscep takes the certificates
// of the outer SignedData. So next is in both, after the RA certificate in the outer
// one. The content has eContentType id-data, as in a pkiMessage, because the PKCS #7
// parser of OpenSSL 3.0, which sscep uses, rejects an OCTET STRING content of type
// signedData.
func NextCAResponse(next []*x509.Certificate, raCert *x509.Certificate, key crypto.Signer) ([]byte, error) {
	if len(next) == 0 {
		return nil, errors.New("scep: a GetNextCACert response needs at least one certificate")
	}
	degenerate, err := Degenerate(next, nil)
	if err != nil {
		return nil, err
	}
	certs := append([]*x509.Certificate{raCert}, next...)
	return signSignedData(degenerate, nil, raCert, key, digestSHA256, certs)
}
