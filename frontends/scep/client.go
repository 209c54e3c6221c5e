package scep

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"strconv"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// This file is the client side of the codec: it builds request pkiMessages and reads
// CertReps, for load generators and tests that talk to a SCEP server.

// RequestMessage is a request pkiMessage to build (RFC 8894 section 3.2): content
// encrypted to the server's certificate, in a SignedData signed by the client.
type RequestMessage struct {
	Type          MessageType
	TransactionID string
	SenderNonce   []byte // exactly 16 bytes
	// Content is the plaintext of the pkcsPKIEnvelope: the PKCS #10 request of a
	// PKCSReq or RenewalReq, for example.
	Content []byte
	// Recipient is the certificate from GetCACert that the content is encrypted to:
	// the RA certificate when the server has one, else the CA certificate. It must
	// hold an RSA key.
	Recipient *x509.Certificate
	// ContentEncryption names the content-encryption algorithm: des-cbc,
	// des-ede3-cbc, aes128-cbc, aes192-cbc or aes256-cbc.
	ContentEncryption string
	// Digest is the message-digest algorithm of the signature: crypto.SHA256, for
	// example.
	Digest crypto.Hash
	// Signer is the client's certificate, self-signed for a first PKCSReq, and Key
	// its private key. The server encrypts its response to Signer.
	Signer *x509.Certificate
	Key    crypto.Signer
}

// Marshal encrypts the content and signs the message. It returns the DER of the
// pkiMessage, which a client sends as the body of a PKIOperation POST.
func (m *RequestMessage) Marshal() ([]byte, error) {
	if m.TransactionID == "" || len(m.TransactionID) > maxTransactionIDLength {
		return nil, fmt.Errorf("scep: the transactionID must have 1 to %d characters, got %d", maxTransactionIDLength, len(m.TransactionID))
	}
	if len(m.SenderNonce) != nonceSize {
		return nil, fmt.Errorf("scep: the senderNonce must be %d bytes, got %d", nonceSize, len(m.SenderNonce))
	}
	if m.Recipient == nil || m.Signer == nil || m.Key == nil {
		return nil, errors.New("scep: the RequestMessage is missing Recipient, Signer or Key")
	}
	c := cipherByName(m.ContentEncryption)
	if c == nil {
		return nil, &AlgorithmError{Field: "contentEncryptionAlgorithm", Algorithm: m.ContentEncryption}
	}
	digest := digestByHash(m.Digest)
	if digest == nil {
		return nil, &AlgorithmError{Field: "digestAlgorithm", Algorithm: m.Digest.String()}
	}
	envelope, err := encryptEnvelope(m.Content, m.Recipient, c)
	if err != nil {
		return nil, err
	}
	attrs := []attribute{
		{oidTransactionID, printableString(m.TransactionID)},
		{oidMessageType, printableString(strconv.Itoa(int(m.Type)))},
		{oidSenderNonce, octetString(m.SenderNonce)},
	}
	return signSignedData(envelope, attrs, m.Signer, m.Key, digest, []*x509.Certificate{m.Signer})
}

func cipherByName(name string) *contentCipher {
	for i := range contentCiphers {
		if contentCiphers[i].name == name {
			return &contentCiphers[i]
		}
	}
	return nil
}

// CertRepMessage is a CertRep pkiMessage as a client receives it (RFC 8894 section
// 3.3.2). ParseCertRep fills in the fields from the signed attributes without checking
// the signature, so they are not authenticated until Verify succeeds.
type CertRepMessage struct {
	TransactionID  string
	SenderNonce    []byte
	RecipientNonce []byte
	Status         PKIStatus
	// FailInfo and FailInfoText are set with StatusFailure. FailInfoText is "" when
	// the server sent no failInfoText attribute.
	FailInfo     FailInfo
	FailInfoText string

	sd     *signedData
	signer *x509.Certificate // set by Verify
	digest *digestAlgorithm  // set by Verify
	cipher *contentCipher    // set by Decrypt
}

// ParseCertRep decodes a CertRep and reads its signed attributes. It does not verify
// the signature, which costs an RSA or ECDSA verification; Verify does.
func ParseCertRep(der []byte) (*CertRepMessage, error) {
	sd, err := parseSignedData(der)
	if err != nil {
		return nil, err
	}
	si := &sd.signer
	messageType, err := si.stringValue(oidMessageType, "messageType")
	if err != nil {
		return nil, err
	}
	if messageType != strconv.Itoa(int(MessageCertRep)) {
		return nil, malformed("messageType is %q, expected %d (CertRep)", messageType, MessageCertRep)
	}

	m := &CertRepMessage{sd: sd}
	if m.TransactionID, err = si.stringValue(oidTransactionID, "transactionID"); err != nil {
		return nil, err
	}
	if m.SenderNonce, err = si.octetsValue(oidSenderNonce, "senderNonce"); err != nil {
		return nil, err
	}
	if m.RecipientNonce, err = si.octetsValue(oidRecipientNonce, "recipientNonce"); err != nil {
		return nil, err
	}

	status, err := si.stringValue(oidPKIStatus, "pkiStatus")
	if err != nil {
		return nil, err
	}
	n, err := strconv.Atoi(status)
	if err != nil {
		return nil, malformed("pkiStatus %q is not a number", status)
	}
	m.Status = PKIStatus(n)
	if m.Status != StatusFailure {
		return m, nil
	}

	info, err := si.stringValue(oidFailInfo, "failInfo")
	if err != nil {
		return nil, err
	}
	if n, err = strconv.Atoi(info); err != nil {
		return nil, malformed("failInfo %q is not a number", info)
	}
	m.FailInfo = FailInfo(n)

	text, ok, err := si.singleValue(oidFailInfoText, "failInfoText")
	if err != nil {
		return nil, err
	}
	if ok {
		input := cryptobyte.String(text)
		var s cryptobyte.String
		if !input.ReadASN1(&s, cbasn1.UTF8String) || !input.Empty() {
			return nil, malformed("failInfoText is not a UTF8String")
		}
		m.FailInfoText = string(s)
	}
	return m, nil
}

// Verify checks the signature of the CertRep with the certificate it carries and
// returns that certificate. The caller checks that it is the server's: one of the
// certificates of GetCACert.
func (m *CertRepMessage) Verify(legacy LegacyAlgorithms) (*x509.Certificate, error) {
	signer, digest, err := m.sd.verify(legacy)
	if err != nil {
		return nil, err
	}
	m.signer, m.digest = signer, digest
	return signer, nil
}

// Decrypt decrypts the pkcsPKIEnvelope of a SUCCESS CertRep with the client's signer
// certificate and key, and returns the certificates and CRLs (DER) of the degenerate
// SignedData inside. It fails unless Verify succeeded before.
func (m *CertRepMessage) Decrypt(cert *x509.Certificate, key crypto.Decrypter, legacy LegacyAlgorithms) ([]*x509.Certificate, [][]byte, error) {
	if m.signer == nil {
		return nil, nil, errors.New("scep: verify the CertRep before decrypting it")
	}
	if m.Status != StatusSuccess {
		return nil, nil, fmt.Errorf("scep: a %s CertRep has no pkcsPKIEnvelope", m.Status)
	}
	if m.sd.content == nil {
		return nil, nil, malformed("the SUCCESS CertRep has no pkcsPKIEnvelope")
	}
	env, err := parseEnvelope(m.sd.content)
	if err != nil {
		return nil, nil, err
	}
	content, c, err := env.decrypt(cert, key, legacy)
	if err != nil {
		return nil, nil, err
	}
	m.cipher = c
	return ParseDegenerate(content)
}

// ContentEncryption names the content-encryption algorithm of the CertRep's
// pkcsPKIEnvelope, or "" before Decrypt succeeded.
func (m *CertRepMessage) ContentEncryption() string {
	if m.cipher == nil {
		return ""
	}
	return m.cipher.name
}

// Digest names the digest algorithm of the CertRep's signature, or "" before Verify
// succeeded.
func (m *CertRepMessage) Digest() string {
	if m.digest == nil {
		return ""
	}
	return m.digest.name
}

// ParseDegenerate returns the certificates and CRLs (DER) of a degenerate certs-only
// SignedData (RFC 8894 section 3.4): the GetCACert response of a server with an RA
// certificate or a chain, and the content of a SUCCESS CertRep.
func ParseDegenerate(der []byte) ([]*x509.Certificate, [][]byte, error) {
	contentType, content, err := readContentInfo(der)
	if err != nil {
		return nil, nil, err
	}
	if !contentType.Equal(oidSignedData) {
		return nil, nil, malformed("the degenerate PKCS #7 is a %s ContentInfo, not signedData", contentType)
	}
	var sd cryptobyte.String
	if !content.ReadASN1(&sd, cbasn1.SEQUENCE) || !content.Empty() ||
		!sd.SkipASN1(cbasn1.INTEGER) || !sd.SkipASN1(cbasn1.SET) || !sd.SkipASN1(cbasn1.SEQUENCE) {
		return nil, nil, malformed("the degenerate SignedData is invalid")
	}

	var certs []*x509.Certificate
	if sd.PeekASN1Tag(tagContext0) {
		var set cryptobyte.String
		if !sd.ReadASN1(&set, tagContext0) {
			return nil, nil, malformed("SignedData.certificates is invalid")
		}
		if certs, err = parseCertificateSet(set); err != nil {
			return nil, nil, err
		}
	}

	var crls [][]byte
	if sd.PeekASN1Tag(tagContext1) {
		var set cryptobyte.String
		if !sd.ReadASN1(&set, tagContext1) {
			return nil, nil, malformed("SignedData.crls is invalid")
		}
		for !set.Empty() {
			var crl cryptobyte.String
			if !set.ReadASN1Element(&crl, cbasn1.SEQUENCE) {
				return nil, nil, malformed("SignedData.crls holds something other than a CRL")
			}
			crls = append(crls, bytes.Clone(crl))
		}
	}

	var signerInfos cryptobyte.String
	if !sd.ReadASN1(&signerInfos, cbasn1.SET) || !sd.Empty() {
		return nil, nil, malformed("SignedData.signerInfos is missing or followed by data")
	}
	return certs, crls, nil
}
