package scep

import (
	"bytes"
	"crypto"
	"crypto/cipher"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// ErrNoRecipient means that the pkcsPKIEnvelope is not encrypted to the certificate that
// the server decrypts with: the client chose another certificate of GetCACert.
var ErrNoRecipient = errors.New("scep: the pkcsPKIEnvelope is not encrypted to the RA certificate")

// ErrDecrypt means that the content-encryption key or the content of a pkcsPKIEnvelope
// does not decrypt. Every cause gets this one error, so that a client learns nothing
// about which step failed.
var ErrDecrypt = errors.New("scep: the pkcsPKIEnvelope does not decrypt")

// envelope is a decoded EnvelopedData (RFC 5652 section 6.1) reduced to what SCEP uses:
// the key transport recipient infos and the encrypted content.
type envelope struct {
	recipients []keyTransRecipient
	cipherOID  asn1.ObjectIdentifier
	iv         []byte
	ciphertext []byte
}

// keyTransRecipient is a KeyTransRecipientInfo (RFC 5652 section 6.2.1).
type keyTransRecipient struct {
	rawIssuer    []byte
	serial       *big.Int
	subjectKeyID []byte
	algorithm    asn1.ObjectIdentifier
	params       []byte
	encryptedKey []byte
}

// parseEnvelope decodes a ContentInfo that holds an EnvelopedData.
func parseEnvelope(der []byte) (*envelope, error) {
	contentType, content, err := readContentInfo(der)
	if err != nil {
		return nil, err
	}
	if !contentType.Equal(oidEnvelopedData) {
		return nil, malformed("pkcsPKIEnvelope is a %s ContentInfo, not envelopedData", contentType)
	}
	var ed, recipientInfos, encrypted cryptobyte.String
	var version int64
	if !content.ReadASN1(&ed, cbasn1.SEQUENCE) || !content.Empty() || !ed.ReadASN1Integer(&version) || version < 0 || version > 4 {
		return nil, malformed("EnvelopedData or its version is invalid")
	}
	if ed.PeekASN1Tag(tagContext0) && !ed.SkipASN1(tagContext0) {
		return nil, malformed("EnvelopedData.originatorInfo is invalid")
	}
	if !ed.ReadASN1(&recipientInfos, cbasn1.SET) {
		return nil, malformed("EnvelopedData.recipientInfos is invalid")
	}
	out := &envelope{}
	for count := 0; !recipientInfos.Empty(); count++ {
		if count == maxRecipients {
			return nil, malformed("more than %d recipient infos", maxRecipients)
		}
		if !recipientInfos.PeekASN1Tag(cbasn1.SEQUENCE) {
			// Key agreement, KEK, password and other recipient infos have a
			// context-specific tag; SCEP uses key transport only.
			if !skipAny(&recipientInfos) {
				return nil, malformed("a recipient info is invalid")
			}
			continue
		}
		recipient, err := parseKeyTransRecipient(&recipientInfos)
		if err != nil {
			return nil, err
		}
		out.recipients = append(out.recipients, recipient)
	}

	var contentType2 asn1.ObjectIdentifier
	if !ed.ReadASN1(&encrypted, cbasn1.SEQUENCE) || !encrypted.ReadASN1ObjectIdentifier(&contentType2) {
		return nil, malformed("EnvelopedData.encryptedContentInfo is invalid")
	}
	var params []byte
	if out.cipherOID, params, err = readAlgorithmIdentifier(&encrypted, "contentEncryptionAlgorithm"); err != nil {
		return nil, err
	}
	// The CBC ciphers carry their IV as an OCTET STRING parameter (RFC 3370 section
	// 5.2 for DES and triple DES, RFC 3565 section 4.1 for AES).
	ivInput := cryptobyte.String(params)
	var iv cryptobyte.String
	if !ivInput.ReadASN1(&iv, cbasn1.OCTET_STRING) || !ivInput.Empty() {
		return nil, malformed("contentEncryptionAlgorithm has no IV parameter")
	}
	out.iv = iv
	switch {
	case encrypted.PeekASN1Tag(tagContext0Primitive):
		var ciphertext cryptobyte.String
		if !encrypted.ReadASN1(&ciphertext, tagContext0Primitive) {
			return nil, malformed("encryptedContent is invalid")
		}
		out.ciphertext = ciphertext
	case encrypted.PeekASN1Tag(tagContext0):
		// The constructed form: [0] holding primitive OCTET STRING segments.
		var parts cryptobyte.String
		if !encrypted.ReadASN1(&parts, tagContext0) {
			return nil, malformed("encryptedContent is invalid")
		}
		for !parts.Empty() {
			var part cryptobyte.String
			if !parts.ReadASN1(&part, cbasn1.OCTET_STRING) {
				return nil, malformed("encryptedContent has an invalid segment")
			}
			out.ciphertext = append(out.ciphertext, part...)
		}
	default:
		return nil, malformed("encryptedContent is missing")
	}
	if !encrypted.Empty() {
		return nil, malformed("encryptedContentInfo has trailing data")
	}
	if ed.PeekASN1Tag(tagContext1) && !ed.SkipASN1(tagContext1) {
		return nil, malformed("EnvelopedData.unprotectedAttrs is invalid")
	}
	if !ed.Empty() {
		return nil, malformed("EnvelopedData has trailing data")
	}
	return out, nil
}

// skipAny skips one element of any tag.
func skipAny(s *cryptobyte.String) bool {
	var element cryptobyte.String
	return s.ReadAnyASN1Element(&element, nil)
}

func parseKeyTransRecipient(s *cryptobyte.String) (keyTransRecipient, error) {
	var out keyTransRecipient
	var ri cryptobyte.String
	var version int64
	if !s.ReadASN1(&ri, cbasn1.SEQUENCE) || !ri.ReadASN1Integer(&version) || (version != 0 && version != 2) {
		return out, malformed("KeyTransRecipientInfo or its version is invalid")
	}
	var err error
	if out.rawIssuer, out.serial, out.subjectKeyID, err = readCertificateIdentifier(&ri, "KeyTransRecipientInfo.rid"); err != nil {
		return out, err
	}
	if out.algorithm, out.params, err = readAlgorithmIdentifier(&ri, "keyEncryptionAlgorithm"); err != nil {
		return out, err
	}
	var encryptedKey cryptobyte.String
	if !ri.ReadASN1(&encryptedKey, cbasn1.OCTET_STRING) || !ri.Empty() {
		return out, malformed("KeyTransRecipientInfo.encryptedKey is invalid")
	}
	out.encryptedKey = encryptedKey
	return out, nil
}

func (r *keyTransRecipient) matches(cert *x509.Certificate) bool {
	if r.rawIssuer != nil {
		return bytes.Equal(r.rawIssuer, cert.RawIssuer) && r.serial.Cmp(cert.SerialNumber) == 0
	}
	return len(cert.SubjectKeyId) > 0 && bytes.Equal(r.subjectKeyID, cert.SubjectKeyId)
}

// decrypt returns the content of the envelope, decrypted with the key of recipient,
// and the content-encryption algorithm the sender chose. An algorithm that is unknown or
// turned off is an *AlgorithmError; a failure to decrypt is ErrDecrypt.
func (e *envelope) decrypt(recipient *x509.Certificate, key crypto.Decrypter, legacy LegacyAlgorithms) ([]byte, *contentCipher, error) {
	c := cipherByOID(e.cipherOID)
	if c == nil {
		return nil, nil, &AlgorithmError{Field: "contentEncryptionAlgorithm", Algorithm: e.cipherOID.String()}
	}
	if !c.allowed(legacy) {
		return nil, nil, &AlgorithmError{Field: "contentEncryptionAlgorithm", Algorithm: c.name, Disabled: true}
	}
	var info *keyTransRecipient
	for i := range e.recipients {
		if e.recipients[i].matches(recipient) {
			info = &e.recipients[i]
			break
		}
	}
	if info == nil {
		return nil, nil, ErrNoRecipient
	}
	opts, err := keyTransportOptions(info, c.keySize)
	if err != nil {
		return nil, nil, err
	}
	contentKey, err := key.Decrypt(rand.Reader, info.encryptedKey, opts)
	if err != nil || len(contentKey) != c.keySize {
		return nil, nil, ErrDecrypt
	}
	block, err := c.newBlock(contentKey)
	if err != nil {
		return nil, nil, ErrDecrypt
	}
	if len(e.iv) != block.BlockSize() || len(e.ciphertext) == 0 || len(e.ciphertext)%block.BlockSize() != 0 {
		return nil, nil, ErrDecrypt
	}
	plaintext := make([]byte, len(e.ciphertext))
	cipher.NewCBCDecrypter(block, e.iv).CryptBlocks(plaintext, e.ciphertext)
	plaintext, ok := unpad(plaintext, block.BlockSize())
	if !ok {
		return nil, nil, ErrDecrypt
	}
	return plaintext, c, nil
}

// keyTransportOptions returns the decryption options for the keyEncryptionAlgorithm of
// a recipient info: RSAES-PKCS1-v1_5 (rsaEncryption) or RSAES-OAEP.
func keyTransportOptions(info *keyTransRecipient, keySize int) (crypto.DecrypterOpts, error) {
	switch {
	case info.algorithm.Equal(oidRSAEncryption):
		// SessionKeyLen makes a wrong key indistinguishable from a padding error
		// (a random key comes back), which defeats Bleichenbacher's attack.
		return &rsa.PKCS1v15DecryptOptions{SessionKeyLen: keySize}, nil
	case info.algorithm.Equal(oidRSAESOAEP):
		return oaepOptions(info.params)
	}
	return nil, &AlgorithmError{Field: "keyEncryptionAlgorithm", Algorithm: info.algorithm.String()}
}

// oaepOptions decodes RSAES-OAEP-params (RFC 8017 appendix A.2.1). Absent fields take
// their defaults: SHA-1 and MGF1 with SHA-1. A label (pSourceAlgorithm) is not
// supported.
func oaepOptions(params []byte) (*rsa.OAEPOptions, error) {
	opts := &rsa.OAEPOptions{Hash: crypto.SHA1, MGFHash: crypto.SHA1}
	if len(params) == 0 {
		return opts, nil
	}
	input := cryptobyte.String(params)
	var seq cryptobyte.String
	if !input.ReadASN1(&seq, cbasn1.SEQUENCE) || !input.Empty() {
		return nil, malformed("RSAES-OAEP parameters are invalid")
	}
	if seq.PeekASN1Tag(tagContext0) {
		var explicit cryptobyte.String
		if !seq.ReadASN1(&explicit, tagContext0) {
			return nil, malformed("RSAES-OAEP hashAlgorithm is invalid")
		}
		oid, _, err := readAlgorithmIdentifier(&explicit, "RSAES-OAEP hashAlgorithm")
		if err != nil {
			return nil, err
		}
		d := digestByOID(oid)
		if d == nil || d.hash == crypto.MD5 {
			return nil, &AlgorithmError{Field: "RSAES-OAEP hashAlgorithm", Algorithm: oid.String()}
		}
		opts.Hash, opts.MGFHash = d.hash, d.hash
	}
	if seq.PeekASN1Tag(tagContext1) {
		var explicit, mgf cryptobyte.String
		var mgfOID asn1.ObjectIdentifier
		if !seq.ReadASN1(&explicit, tagContext1) || !explicit.ReadASN1(&mgf, cbasn1.SEQUENCE) ||
			!mgf.ReadASN1ObjectIdentifier(&mgfOID) || !mgfOID.Equal(oidMGF1) {
			return nil, &AlgorithmError{Field: "RSAES-OAEP maskGenAlgorithm", Algorithm: mgfOID.String()}
		}
		oid, _, err := readAlgorithmIdentifier(&mgf, "RSAES-OAEP MGF1 hash")
		if err != nil {
			return nil, err
		}
		d := digestByOID(oid)
		if d == nil || d.hash == crypto.MD5 {
			return nil, &AlgorithmError{Field: "RSAES-OAEP MGF1 hash", Algorithm: oid.String()}
		}
		opts.MGFHash = d.hash
	}
	if !seq.Empty() {
		return nil, &AlgorithmError{Field: "RSAES-OAEP pSourceAlgorithm", Algorithm: "a label"}
	}
	return opts, nil
}

// unpad removes PKCS #7 padding (RFC 5652 section 6.3) and reports whether it was
// valid.
func unpad(data []byte, blockSize int) ([]byte, bool) {
	n := int(data[len(data)-1])
	if n == 0 || n > blockSize || n > len(data) {
		return nil, false
	}
	for _, b := range data[len(data)-n:] {
		if int(b) != n {
			return nil, false
		}
	}
	return data[:len(data)-n], true
}

// encryptEnvelope returns a ContentInfo with an EnvelopedData that carries content for
// recipient, encrypted with c under a fresh key that RSAES-PKCS1-v1_5 transports. Each
// client tested with certgate reads that key transport; none was tested with OAEP.
func encryptEnvelope(content []byte, recipient *x509.Certificate, c *contentCipher) ([]byte, error) {
	pub, ok := recipient.PublicKey.(*rsa.PublicKey)
	if !ok {
		return nil, &AlgorithmError{Field: "recipient public key", Algorithm: fmt.Sprintf("%T", recipient.PublicKey)}
	}
	contentKey := make([]byte, c.keySize)
	rand.Read(contentKey)
	block, err := c.newBlock(contentKey)
	if err != nil {
		return nil, err
	}
	iv := make([]byte, block.BlockSize())
	rand.Read(iv)
	padding := block.BlockSize() - len(content)%block.BlockSize()
	ciphertext := append(bytes.Clone(content), bytes.Repeat([]byte{byte(padding)}, padding)...)
	cipher.NewCBCEncrypter(block, iv).CryptBlocks(ciphertext, ciphertext)
	encryptedKey, err := rsa.EncryptPKCS1v15(rand.Reader, pub, contentKey)
	if err != nil {
		return nil, fmt.Errorf("scep: encrypting the content key: %w", err)
	}

	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1ObjectIdentifier(oidEnvelopedData)
		b.AddASN1(tagContext0, func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1Int64(0)
				b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) {
					b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
						b.AddASN1Int64(0)
						addIssuerAndSerial(b, recipient)
						addAlgorithm(b, oidRSAEncryption, true)
						b.AddASN1OctetString(encryptedKey)
					})
				})
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					b.AddASN1ObjectIdentifier(oidData)
					b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
						b.AddASN1ObjectIdentifier(c.oid)
						b.AddASN1OctetString(iv)
					})
					b.AddASN1(tagContext0Primitive, func(b *cryptobyte.Builder) { b.AddBytes(ciphertext) })
				})
			})
		})
	})
	return b.Bytes()
}
