package scep

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
	"sort"
	"strings"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// ErrMalformed is wrapped by every error about a message that is not valid DER or not
// the structure RFC 8894 and RFC 5652 define. The frontend sends failInfo badRequest
// for it, or HTTP 400 when the message is too broken for a CertRep to refer to it.
var ErrMalformed = errors.New("scep: malformed message")

// ErrBadSignature is wrapped by errors about a pkiMessage whose signature or message
// digest does not verify. The frontend sends failInfo badMessageCheck for it.
var ErrBadSignature = errors.New("scep: the signature does not verify")

// Limits on counts in a request, so that a small message cannot make the decoder do
// much work. A SCEP client sends its signer certificate and at most a short chain, one
// SignerInfo, and a handful of attributes. A client that encrypts to every certificate
// of GetCACert sends one RecipientInfo per certificate.
const (
	maxCertificates = 16
	maxAttributes   = 32
	maxRecipients   = 16
)

// Context-specific tags used in CMS: [0] and [1], constructed and primitive.
var (
	tagContext0          = cbasn1.Tag(0).ContextSpecific().Constructed()
	tagContext1          = cbasn1.Tag(1).ContextSpecific().Constructed()
	tagContext0Primitive = cbasn1.Tag(0).ContextSpecific()
	tagConstructedOctets = cbasn1.OCTET_STRING.Constructed()
)

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}

// signedData is a decoded SignedData (RFC 5652 section 5.1) with its one SignerInfo.
type signedData struct {
	contentType  asn1.ObjectIdentifier // eContentType
	content      []byte                // eContent; nil when absent
	certificates []*x509.Certificate
	signer       signerInfo
}

// signerInfo is a decoded SignerInfo (RFC 5652 section 5.3).
type signerInfo struct {
	rawIssuer      []byte // sid as issuerAndSerialNumber
	serial         *big.Int
	subjectKeyID   []byte // sid as subjectKeyIdentifier
	digestOID      asn1.ObjectIdentifier
	rawSignedAttrs []byte // the [0] IMPLICIT element as received, tag included
	attributes     map[string][][]byte
	signatureOID   asn1.ObjectIdentifier
	signature      []byte
}

// readContentInfo reads a ContentInfo (RFC 5652 section 3) and returns its content
// type and the content inside the [0] EXPLICIT tag.
func readContentInfo(der []byte) (asn1.ObjectIdentifier, cryptobyte.String, error) {
	input := cryptobyte.String(der)
	var info, content cryptobyte.String
	var contentType asn1.ObjectIdentifier
	if !input.ReadASN1(&info, cbasn1.SEQUENCE) || !input.Empty() {
		return nil, nil, malformed("ContentInfo is not one DER SEQUENCE")
	}
	if !info.ReadASN1ObjectIdentifier(&contentType) {
		return nil, nil, malformed("ContentInfo.contentType is invalid")
	}
	if !info.ReadASN1(&content, tagContext0) || !info.Empty() {
		return nil, nil, malformed("ContentInfo.content is missing or followed by data")
	}
	return contentType, content, nil
}

// parseSignedData decodes the SignedData of a pkiMessage. It does not verify the
// signature; verify does.
func parseSignedData(der []byte) (*signedData, error) {
	contentType, content, err := readContentInfo(der)
	if err != nil {
		return nil, err
	}
	if !contentType.Equal(oidSignedData) {
		return nil, malformed("the message is a %s ContentInfo, not signedData", contentType)
	}
	var sd cryptobyte.String
	if !content.ReadASN1(&sd, cbasn1.SEQUENCE) || !content.Empty() {
		return nil, malformed("SignedData is not a SEQUENCE")
	}
	var version int64
	var digestAlgorithms, encap cryptobyte.String
	if !sd.ReadASN1Integer(&version) || version < 1 || version > 5 {
		return nil, malformed("SignedData.version is invalid")
	}
	if !sd.ReadASN1(&digestAlgorithms, cbasn1.SET) {
		return nil, malformed("SignedData.digestAlgorithms is invalid")
	}
	out := &signedData{}
	if !sd.ReadASN1(&encap, cbasn1.SEQUENCE) || !encap.ReadASN1ObjectIdentifier(&out.contentType) {
		return nil, malformed("SignedData.encapContentInfo is invalid")
	}
	if encap.PeekASN1Tag(tagContext0) {
		var explicit cryptobyte.String
		if !encap.ReadASN1(&explicit, tagContext0) {
			return nil, malformed("encapContentInfo.eContent is invalid")
		}
		if out.content, err = readOctetString(&explicit, "encapContentInfo.eContent"); err != nil {
			return nil, err
		}
		if !explicit.Empty() {
			return nil, malformed("encapContentInfo.eContent is followed by data")
		}
	}
	if !encap.Empty() {
		return nil, malformed("encapContentInfo has trailing data")
	}

	if sd.PeekASN1Tag(tagContext0) {
		var certs cryptobyte.String
		if !sd.ReadASN1(&certs, tagContext0) {
			return nil, malformed("SignedData.certificates is invalid")
		}
		if out.certificates, err = parseCertificateSet(certs); err != nil {
			return nil, err
		}
	}
	if sd.PeekASN1Tag(tagContext1) && !sd.SkipASN1(tagContext1) {
		return nil, malformed("SignedData.crls is invalid")
	}

	var signerInfos, one cryptobyte.String
	if !sd.ReadASN1(&signerInfos, cbasn1.SET) || !sd.Empty() {
		return nil, malformed("SignedData.signerInfos is missing or followed by data")
	}
	// RFC 8894 section 3.2: the requester signs the pkiMessage, so there is one signer.
	if !signerInfos.ReadASN1(&one, cbasn1.SEQUENCE) || !signerInfos.Empty() {
		return nil, malformed("SignedData must carry exactly one SignerInfo")
	}
	if out.signer, err = parseSignerInfo(one); err != nil {
		return nil, err
	}
	return out, nil
}

// readOctetString reads an OCTET STRING, also in the constructed form that BER allows
// and some CMS encoders emit for content: a sequence of primitive OCTET STRINGs.
func readOctetString(s *cryptobyte.String, field string) ([]byte, error) {
	if s.PeekASN1Tag(tagConstructedOctets) {
		var parts cryptobyte.String
		if !s.ReadASN1(&parts, tagConstructedOctets) {
			return nil, malformed("%s is invalid", field)
		}
		var out []byte
		for !parts.Empty() {
			var part cryptobyte.String
			if !parts.ReadASN1(&part, cbasn1.OCTET_STRING) {
				return nil, malformed("%s has an invalid segment", field)
			}
			out = append(out, part...)
		}
		return out, nil
	}
	var octets cryptobyte.String
	if !s.ReadASN1(&octets, cbasn1.OCTET_STRING) {
		return nil, malformed("%s is not an OCTET STRING", field)
	}
	return []byte(octets), nil
}

// parseCertificateSet reads the CertificateSet of a SignedData. Only the certificate
// choice is accepted; attribute and other certificates are not used by SCEP.
func parseCertificateSet(set cryptobyte.String) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for !set.Empty() {
		if len(certs) == maxCertificates {
			return nil, malformed("SignedData carries more than %d certificates", maxCertificates)
		}
		var element cryptobyte.String
		if !set.ReadASN1Element(&element, cbasn1.SEQUENCE) {
			return nil, malformed("SignedData.certificates holds something other than a certificate")
		}
		cert, err := x509.ParseCertificate(element)
		if err != nil && strings.Contains(err.Error(), "authority key identifier incorrectly marked critical") {
			// Windows and Intune clients sign with a self-signed certificate whose
			// authority key identifier is marked critical, against RFC 5280 section
			// 4.2.1.1, and crypto/x509 rejects it. SCEP needs only the names, serial
			// number and key of such a certificate, so they are read directly.
			cert, err = parseSignerFields(element)
		}
		if err != nil {
			return nil, fmt.Errorf("%w: a certificate in SignedData: %v", ErrMalformed, err)
		}
		certs = append(certs, cert)
	}
	return certs, nil
}

// parseSignerFields reads the fields of a certificate that SCEP uses from a client's
// signer certificate: issuer, serial number, validity, subject and public key. The
// result carries no extensions, so it serves to verify a signature and to encrypt a
// response, never to build a chain.
func parseSignerFields(der []byte) (*x509.Certificate, error) {
	input := cryptobyte.String(der)
	var certificate, tbs, rawTBS, issuer, validity, subject, spki cryptobyte.String
	serial := new(big.Int)
	if !input.ReadASN1(&certificate, cbasn1.SEQUENCE) || !input.Empty() ||
		!certificate.ReadASN1Element(&rawTBS, cbasn1.SEQUENCE) {
		return nil, errors.New("not a certificate")
	}
	outer := rawTBS
	if !outer.ReadASN1(&tbs, cbasn1.SEQUENCE) ||
		!tbs.SkipOptionalASN1(cbasn1.Tag(0).Constructed().ContextSpecific()) ||
		!tbs.ReadASN1Integer(serial) ||
		!tbs.SkipASN1(cbasn1.SEQUENCE) ||
		!tbs.ReadASN1Element(&issuer, cbasn1.SEQUENCE) ||
		!tbs.ReadASN1(&validity, cbasn1.SEQUENCE) ||
		!tbs.ReadASN1Element(&subject, cbasn1.SEQUENCE) ||
		!tbs.ReadASN1Element(&spki, cbasn1.SEQUENCE) {
		return nil, errors.New("invalid TBSCertificate")
	}
	cert := &x509.Certificate{
		Raw: der, RawTBSCertificate: rawTBS, RawIssuer: issuer, RawSubject: subject,
		RawSubjectPublicKeyInfo: spki, SerialNumber: serial,
	}
	for _, t := range []*time.Time{&cert.NotBefore, &cert.NotAfter} {
		switch {
		case validity.PeekASN1Tag(cbasn1.UTCTime):
			if !validity.ReadASN1UTCTime(t) {
				return nil, errors.New("invalid validity")
			}
		case !validity.ReadASN1GeneralizedTime(t):
			return nil, errors.New("invalid validity")
		}
	}
	pub, err := x509.ParsePKIXPublicKey(spki)
	if err != nil {
		return nil, err
	}
	cert.PublicKey = pub
	return cert, nil
}

// readCertificateIdentifier reads the CHOICE that names a certificate in CMS, the
// SignerIdentifier and the RecipientIdentifier of RFC 5652: issuerAndSerialNumber, or
// subjectKeyIdentifier [0]. Exactly one of the results is set: rawIssuer with serial, or
// keyID.
func readCertificateIdentifier(s *cryptobyte.String, field string) (rawIssuer []byte, serial *big.Int, keyID []byte, err error) {
	switch {
	case s.PeekASN1Tag(cbasn1.SEQUENCE):
		var id, issuer cryptobyte.String
		serial = new(big.Int)
		if !s.ReadASN1(&id, cbasn1.SEQUENCE) || !id.ReadASN1Element(&issuer, cbasn1.SEQUENCE) ||
			!id.ReadASN1Integer(serial) || !id.Empty() {
			return nil, nil, nil, malformed("%s issuerAndSerialNumber is invalid", field)
		}
		return issuer, serial, nil, nil
	case s.PeekASN1Tag(tagContext0Primitive):
		var id cryptobyte.String
		if !s.ReadASN1(&id, tagContext0Primitive) {
			return nil, nil, nil, malformed("%s subjectKeyIdentifier is invalid", field)
		}
		return nil, nil, id, nil
	}
	return nil, nil, nil, malformed("%s is neither issuerAndSerialNumber nor subjectKeyIdentifier", field)
}

func parseSignerInfo(si cryptobyte.String) (signerInfo, error) {
	var out signerInfo
	var version int64
	if !si.ReadASN1Integer(&version) || (version != 1 && version != 3) {
		return out, malformed("SignerInfo.version must be 1 or 3")
	}
	var err error
	if out.rawIssuer, out.serial, out.subjectKeyID, err = readCertificateIdentifier(&si, "SignerInfo.sid"); err != nil {
		return out, err
	}
	if out.digestOID, _, err = readAlgorithmIdentifier(&si, "SignerInfo.digestAlgorithm"); err != nil {
		return out, err
	}
	if si.PeekASN1Tag(tagContext0) {
		var element, attrs cryptobyte.String
		if !si.ReadASN1Element(&element, tagContext0) {
			return out, malformed("SignerInfo.signedAttrs is invalid")
		}
		if inner := element; !inner.ReadASN1(&attrs, tagContext0) {
			return out, malformed("SignerInfo.signedAttrs is invalid")
		}
		out.rawSignedAttrs = element
		if out.attributes, err = parseAttributes(attrs); err != nil {
			return out, err
		}
	}
	if out.signatureOID, _, err = readAlgorithmIdentifier(&si, "SignerInfo.signatureAlgorithm"); err != nil {
		return out, err
	}
	var signature cryptobyte.String
	if !si.ReadASN1(&signature, cbasn1.OCTET_STRING) {
		return out, malformed("SignerInfo.signature is invalid")
	}
	out.signature = signature
	if si.PeekASN1Tag(tagContext1) && !si.SkipASN1(tagContext1) {
		return out, malformed("SignerInfo.unsignedAttrs is invalid")
	}
	if !si.Empty() {
		return out, malformed("SignerInfo has trailing data")
	}
	return out, nil
}

// readAlgorithmIdentifier reads an AlgorithmIdentifier and returns its OID and the DER
// of its parameters (nil when absent).
func readAlgorithmIdentifier(s *cryptobyte.String, field string) (asn1.ObjectIdentifier, []byte, error) {
	var alg cryptobyte.String
	var oid asn1.ObjectIdentifier
	if !s.ReadASN1(&alg, cbasn1.SEQUENCE) || !alg.ReadASN1ObjectIdentifier(&oid) {
		return nil, nil, malformed("%s is invalid", field)
	}
	if alg.Empty() {
		return oid, nil, nil
	}
	var params cryptobyte.String
	if !alg.ReadAnyASN1Element(&params, nil) || !alg.Empty() {
		return nil, nil, malformed("%s has invalid parameters", field)
	}
	return oid, params, nil
}

// parseAttributes reads a SET OF Attribute into a map from OID text to the DER of each
// value. RFC 5652 section 5.3 and RFC 8894 section 3.2.1 use each attribute once, so a
// repeated attribute is rejected, and no two readers can see different values.
func parseAttributes(set cryptobyte.String) (map[string][][]byte, error) {
	attributes := map[string][][]byte{}
	for !set.Empty() {
		if len(attributes) == maxAttributes {
			return nil, malformed("more than %d signed attributes", maxAttributes)
		}
		var attr, values cryptobyte.String
		var oid asn1.ObjectIdentifier
		if !set.ReadASN1(&attr, cbasn1.SEQUENCE) || !attr.ReadASN1ObjectIdentifier(&oid) ||
			!attr.ReadASN1(&values, cbasn1.SET) || !attr.Empty() {
			return nil, malformed("a signed attribute is invalid")
		}
		key := oid.String()
		if _, dup := attributes[key]; dup {
			return nil, malformed("signed attribute %s appears twice", key)
		}
		var list [][]byte
		for !values.Empty() {
			var value cryptobyte.String
			if !values.ReadAnyASN1Element(&value, nil) {
				return nil, malformed("a value of signed attribute %s is invalid", key)
			}
			list = append(list, value)
		}
		attributes[key] = list
	}
	return attributes, nil
}

// singleValue returns the one value of an attribute, or nil and false when the
// attribute is absent. More than one value is malformed.
func (si *signerInfo) singleValue(oid asn1.ObjectIdentifier, name string) ([]byte, bool, error) {
	values, ok := si.attributes[oid.String()]
	if !ok {
		return nil, false, nil
	}
	if len(values) != 1 {
		return nil, false, malformed("attribute %s must have exactly one value, has %d", name, len(values))
	}
	return values[0], true, nil
}

// stringValue decodes a required attribute whose value is a PrintableString.
func (si *signerInfo) stringValue(oid asn1.ObjectIdentifier, name string) (string, error) {
	value, ok, err := si.singleValue(oid, name)
	if err != nil {
		return "", err
	}
	if !ok {
		return "", malformed("attribute %s is missing", name)
	}
	input := cryptobyte.String(value)
	var text cryptobyte.String
	if !input.ReadASN1(&text, cbasn1.PrintableString) || !input.Empty() {
		return "", malformed("attribute %s is not a PrintableString", name)
	}
	return string(text), nil
}

// octetsValue decodes an attribute whose value is an OCTET STRING; absent is nil.
func (si *signerInfo) octetsValue(oid asn1.ObjectIdentifier, name string) ([]byte, error) {
	value, ok, err := si.singleValue(oid, name)
	if err != nil || !ok {
		return nil, err
	}
	input := cryptobyte.String(value)
	var octets cryptobyte.String
	if !input.ReadASN1(&octets, cbasn1.OCTET_STRING) || !input.Empty() {
		return nil, malformed("attribute %s is not an OCTET STRING", name)
	}
	return octets, nil
}

// verify checks the SignerInfo of sd against the certificate it names and returns that
// certificate and the digest algorithm used. RFC 8894 section 3.2 requires signed
// attributes, so a SignerInfo without them is rejected.
func (sd *signedData) verify(legacy LegacyAlgorithms) (*x509.Certificate, *digestAlgorithm, error) {
	si := &sd.signer
	signerCert := sd.signerCertificate()
	if signerCert == nil {
		return nil, nil, malformed("SignedData does not carry the certificate of its signer")
	}
	digest := digestByOID(si.digestOID)
	if digest == nil {
		return nil, nil, &AlgorithmError{Field: "digestAlgorithm", Algorithm: si.digestOID.String()}
	}
	if !digest.allowed(legacy) {
		return nil, nil, &AlgorithmError{Field: "digestAlgorithm", Algorithm: digest.name, Disabled: true}
	}
	if si.rawSignedAttrs == nil {
		return nil, nil, malformed("SignerInfo has no signed attributes")
	}

	// RFC 5652 section 5.3: contentType must equal eContentType, and messageDigest is
	// the digest of eContent.
	value, ok, err := si.singleValue(oidContentType, "contentType")
	if err != nil {
		return nil, nil, err
	}
	var contentType asn1.ObjectIdentifier
	input := cryptobyte.String(value)
	if !ok || !input.ReadASN1ObjectIdentifier(&contentType) || !input.Empty() || !contentType.Equal(sd.contentType) {
		return nil, nil, malformed("the contentType attribute is missing or differs from eContentType")
	}
	messageDigest, err := si.octetsValue(oidMessageDigest, "messageDigest")
	if err != nil {
		return nil, nil, err
	}
	h := digest.hash.New()
	h.Write(sd.content)
	if !bytes.Equal(h.Sum(nil), messageDigest) {
		return nil, nil, fmt.Errorf("%w: messageDigest does not match the content", ErrBadSignature)
	}

	kind, err := signatureKindOf(si.signatureOID, digest)
	if err != nil {
		return nil, nil, err
	}
	// The signature covers the DER of the attributes with the SET OF tag, not the
	// [0] IMPLICIT tag they are sent with (RFC 5652 section 5.4).
	signed := bytes.Clone(si.rawSignedAttrs)
	signed[0] = 0x31
	if err := verifySignature(signerCert.PublicKey, kind, digest.hash, signed, si.signature); err != nil {
		return nil, nil, err
	}
	return signerCert, digest, nil
}

func (sd *signedData) signerCertificate() *x509.Certificate {
	si := &sd.signer
	for _, cert := range sd.certificates {
		if si.rawIssuer != nil && bytes.Equal(cert.RawIssuer, si.rawIssuer) && cert.SerialNumber.Cmp(si.serial) == 0 {
			return cert
		}
		if si.subjectKeyID != nil && bytes.Equal(cert.SubjectKeyId, si.subjectKeyID) {
			return cert
		}
	}
	return nil
}

func signatureKindOf(oid asn1.ObjectIdentifier, digest *digestAlgorithm) (signatureKind, error) {
	for _, row := range signatureAlgorithms {
		if !row.oid.Equal(oid) {
			continue
		}
		if row.hash != 0 && row.hash != digest.hash {
			return 0, malformed("signatureAlgorithm %s does not use digestAlgorithm %s", oid, digest.name)
		}
		return row.kind, nil
	}
	return 0, &AlgorithmError{Field: "signatureAlgorithm", Algorithm: oid.String()}
}

func verifySignature(pub any, kind signatureKind, hash crypto.Hash, signed, signature []byte) error {
	h := hash.New()
	h.Write(signed)
	sum := h.Sum(nil)
	switch key := pub.(type) {
	case *rsa.PublicKey:
		if kind != signatureRSA {
			return malformed("an RSA signer certificate with an ECDSA signatureAlgorithm")
		}
		if err := rsa.VerifyPKCS1v15(key, hash, sum, signature); err != nil {
			return fmt.Errorf("%w: %v", ErrBadSignature, err)
		}
		return nil
	case *ecdsa.PublicKey:
		if kind != signatureECDSA {
			return malformed("an ECDSA signer certificate with an RSA signatureAlgorithm")
		}
		if !ecdsa.VerifyASN1(key, sum, signature) {
			return fmt.Errorf("%w: ECDSA signature", ErrBadSignature)
		}
		return nil
	}
	return &AlgorithmError{Field: "signer public key", Algorithm: fmt.Sprintf("%T", pub)}
}

// attribute is one signed attribute to encode: its OID and the DER of its one value.
type attribute struct {
	oid   asn1.ObjectIdentifier
	value []byte
}

// marshalAttributes returns the DER contents of a SET OF Attribute, sorted as DER
// requires for SET OF (X.690 section 11.6).
func marshalAttributes(attrs []attribute) ([]byte, error) {
	encoded := make([][]byte, 0, len(attrs))
	for _, a := range attrs {
		var b cryptobyte.Builder
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1ObjectIdentifier(a.oid)
			b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) { b.AddBytes(a.value) })
		})
		der, err := b.Bytes()
		if err != nil {
			return nil, err
		}
		encoded = append(encoded, der)
	}
	sort.Slice(encoded, func(i, j int) bool { return bytes.Compare(encoded[i], encoded[j]) < 0 })
	return bytes.Join(encoded, nil), nil
}

// signSignedData builds a ContentInfo with a SignedData of one SignerInfo over content
// (absent when nil) with the given signed attributes, contentType and messageDigest
// added. certs go into SignedData.certificates; callers list the signer's certificate
// first.
func signSignedData(content []byte, attrs []attribute, cert *x509.Certificate, key crypto.Signer,
	digest *digestAlgorithm, certs []*x509.Certificate) ([]byte, error) {
	h := digest.hash.New()
	h.Write(content)
	contentTypeDER, _ := asn1.Marshal(oidData)
	digestDER, _ := asn1.Marshal(h.Sum(nil))
	attrs = append([]attribute{{oidContentType, contentTypeDER}, {oidMessageDigest, digestDER}}, attrs...)
	attrsDER, err := marshalAttributes(attrs)
	if err != nil {
		return nil, err
	}

	// The signature covers the attributes as a SET OF.
	var set cryptobyte.Builder
	set.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) { b.AddBytes(attrsDER) })
	signed, err := set.Bytes()
	if err != nil {
		return nil, err
	}
	h = digest.hash.New()
	h.Write(signed)
	signature, err := key.Sign(rand.Reader, h.Sum(nil), digest.hash)
	if err != nil {
		return nil, fmt.Errorf("scep: signing the response: %w", err)
	}
	signatureOID, err := signatureOIDFor(key, digest)
	if err != nil {
		return nil, err
	}

	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1ObjectIdentifier(oidSignedData)
		b.AddASN1(tagContext0, func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1Int64(1)
				b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) { addAlgorithm(b, digest.oid, true) })
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					b.AddASN1ObjectIdentifier(oidData)
					if content != nil {
						b.AddASN1(tagContext0, func(b *cryptobyte.Builder) { b.AddASN1OctetString(content) })
					}
				})
				addCertificates(b, certs)
				b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) {
					b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
						b.AddASN1Int64(1)
						addIssuerAndSerial(b, cert)
						addAlgorithm(b, digest.oid, true)
						b.AddASN1(tagContext0, func(b *cryptobyte.Builder) { b.AddBytes(attrsDER) })
						addAlgorithm(b, signatureOID, signatureOID.Equal(oidRSAEncryption))
						b.AddASN1OctetString(signature)
					})
				})
			})
		})
	})
	return b.Bytes()
}

// signatureOIDFor names the signature of a SignerInfo: rsaEncryption for RSA, the form
// that RFC 8894 clients expect, and ecdsa-with-SHA* for ECDSA.
func signatureOIDFor(key crypto.Signer, digest *digestAlgorithm) (asn1.ObjectIdentifier, error) {
	switch key.Public().(type) {
	case *rsa.PublicKey:
		return oidRSAEncryption, nil
	case *ecdsa.PublicKey:
		for _, row := range signatureAlgorithms {
			if row.kind == signatureECDSA && row.hash == digest.hash {
				return row.oid, nil
			}
		}
		return nil, fmt.Errorf("scep: no ECDSA signature algorithm for %s", digest.name)
	}
	return nil, fmt.Errorf("scep: a %T key cannot sign SCEP responses", key.Public())
}

// addAlgorithm adds an AlgorithmIdentifier, with NULL parameters when nullParams is set
// (RFC 3370 section 2.1 allows both forms for the SHA family; rsaEncryption needs NULL).
func addAlgorithm(b *cryptobyte.Builder, oid asn1.ObjectIdentifier, nullParams bool) {
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1ObjectIdentifier(oid)
		if nullParams {
			b.AddASN1NULL()
		}
	})
}

func addIssuerAndSerial(b *cryptobyte.Builder, cert *x509.Certificate) {
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddBytes(cert.RawIssuer)
		b.AddASN1BigInt(cert.SerialNumber)
	})
}

func addCertificates(b *cryptobyte.Builder, certs []*x509.Certificate) {
	if len(certs) == 0 {
		return
	}
	b.AddASN1(tagContext0, func(b *cryptobyte.Builder) {
		for _, cert := range certs {
			b.AddBytes(cert.Raw)
		}
	})
}

// Degenerate returns a degenerate certs-only SignedData (RFC 8894 section 3.4): no
// content and no signers, only certificates and CRLs (each CRL as DER). GetCACert
// returns the CA and RA certificates this way, and a CertRep carries the issued
// certificate or a CRL this way inside its encrypted envelope.
func Degenerate(certs []*x509.Certificate, crls [][]byte) ([]byte, error) {
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1ObjectIdentifier(oidSignedData)
		b.AddASN1(tagContext0, func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1Int64(1)
				b.AddASN1(cbasn1.SET, func(*cryptobyte.Builder) {})
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { b.AddASN1ObjectIdentifier(oidData) })
				addCertificates(b, certs)
				if len(crls) > 0 {
					b.AddASN1(tagContext1, func(b *cryptobyte.Builder) {
						for _, crl := range crls {
							b.AddBytes(crl)
						}
					})
				}
				b.AddASN1(cbasn1.SET, func(*cryptobyte.Builder) {})
			})
		})
	})
	return b.Bytes()
}
