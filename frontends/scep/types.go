package scep

import (
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/des"
	"encoding/asn1"
	"fmt"
	"strconv"

	_ "crypto/md5" // registers crypto.MD5 for profiles that allow it
	_ "crypto/sha1"
	_ "crypto/sha256"
	_ "crypto/sha512"
)

// Object identifiers of the SCEP attributes (RFC 8894 section 3.2.1, the arc
// id-VeriSign 2.16.840.1.113733 pki(1) attributes(9)) and of the CMS structures they
// travel in.
var (
	oidMessageType    = asn1.ObjectIdentifier{2, 16, 840, 1, 113733, 1, 9, 2}
	oidPKIStatus      = asn1.ObjectIdentifier{2, 16, 840, 1, 113733, 1, 9, 3}
	oidFailInfo       = asn1.ObjectIdentifier{2, 16, 840, 1, 113733, 1, 9, 4}
	oidSenderNonce    = asn1.ObjectIdentifier{2, 16, 840, 1, 113733, 1, 9, 5}
	oidRecipientNonce = asn1.ObjectIdentifier{2, 16, 840, 1, 113733, 1, 9, 6}
	oidTransactionID  = asn1.ObjectIdentifier{2, 16, 840, 1, 113733, 1, 9, 7}
	// id-scep-failInfoText of RFC 8894 section 3.2.1.4: id-pkix 24 1.
	oidFailInfoText = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 24, 1}

	// RFC 5652 section 14: content types and the signed attributes every SignedData
	// with signed attributes carries.
	oidData          = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 1}
	oidSignedData    = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 2}
	oidEnvelopedData = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 3}
	oidContentType   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 3}
	oidMessageDigest = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 4}

	// PKCS #9 challengePassword (RFC 2985 section 5.4.1).
	oidChallengePassword = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 7}

	// Key transport: rsaEncryption (RFC 3370 section 4.2.1) and RSAES-OAEP (RFC 3560).
	oidRSAEncryption = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 1}
	oidRSAESOAEP     = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 7}
	oidMGF1          = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 8}

	// Signature algorithms a SignerInfo may name besides rsaEncryption.
	oidMD5WithRSA      = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 4}
	oidSHA1WithRSA     = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 5}
	oidSHA256WithRSA   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 11}
	oidSHA384WithRSA   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 12}
	oidSHA512WithRSA   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 13}
	oidSHA224WithRSA   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 14}
	oidECPublicKey     = asn1.ObjectIdentifier{1, 2, 840, 10045, 2, 1}
	oidECDSAWithSHA1   = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 1}
	oidECDSAWithSHA224 = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 1}
	oidECDSAWithSHA256 = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 2}
	oidECDSAWithSHA384 = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 3}
	oidECDSAWithSHA512 = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 4}
)

// MessageType is the SCEP messageType attribute (RFC 8894 section 3.2.1.2), sent as
// the decimal value in a PrintableString.
type MessageType int

// The message types of RFC 8894. UpdateReq (18) came from an earlier draft and is not
// accepted.
const (
	MessageCertRep    MessageType = 3
	MessageRenewalReq MessageType = 17
	MessagePKCSReq    MessageType = 19
	MessageCertPoll   MessageType = 20
	MessageGetCert    MessageType = 21
	MessageGetCRL     MessageType = 22
)

var messageTypeNames = map[MessageType]string{
	MessageCertRep:    "CertRep",
	MessageRenewalReq: "RenewalReq",
	MessagePKCSReq:    "PKCSReq",
	MessageCertPoll:   "CertPoll",
	MessageGetCert:    "GetCert",
	MessageGetCRL:     "GetCRL",
}

func (t MessageType) String() string {
	if name, ok := messageTypeNames[t]; ok {
		return name
	}
	return "messageType(" + strconv.Itoa(int(t)) + ")"
}

// PKIStatus is the pkiStatus attribute of a CertRep (RFC 8894 section 3.2.1.3).
type PKIStatus int

// The pkiStatus values.
const (
	StatusSuccess PKIStatus = 0
	StatusFailure PKIStatus = 2
	StatusPending PKIStatus = 3
)

var statusNames = map[PKIStatus]string{StatusSuccess: "SUCCESS", StatusFailure: "FAILURE", StatusPending: "PENDING"}

func (s PKIStatus) String() string {
	if name, ok := statusNames[s]; ok {
		return name
	}
	return "pkiStatus(" + strconv.Itoa(int(s)) + ")"
}

// FailInfo is the failInfo attribute of a CertRep with status FAILURE (RFC 8894 section
// 3.2.1.4).
type FailInfo int

// The failInfo values. RFC 8894 defines no others, and clients treat unknown values as
// errors.
const (
	FailBadAlg          FailInfo = 0 // unrecognized or unsupported algorithm
	FailBadMessageCheck FailInfo = 1 // integrity check (signature) failed
	FailBadRequest      FailInfo = 2 // transaction not permitted or supported
	FailBadTime         FailInfo = 3 // signingTime too far from the server's time
	FailBadCertID       FailInfo = 4 // no certificate matches the given criteria
)

var failInfoNames = map[FailInfo]string{
	FailBadAlg: "badAlg", FailBadMessageCheck: "badMessageCheck", FailBadRequest: "badRequest",
	FailBadTime: "badTime", FailBadCertID: "badCertId",
}

func (f FailInfo) String() string {
	if name, ok := failInfoNames[f]; ok {
		return name
	}
	return "failInfo(" + strconv.Itoa(int(f)) + ")"
}

// LegacyAlgorithms turns on algorithms that RFC 8894 section 2.9 rules out or leaves
// optional, for clients that cannot do better. Each one is off when false.
type LegacyAlgorithms struct {
	// DES accepts single DES-CBC content encryption, which RFC 8894 says implementations
	// MUST NOT support. The micromdm scepclient (2.1 and 2.3) encrypts with nothing else.
	DES bool
	// MD5 accepts MD5 message digests, which RFC 8894 says implementations MUST NOT
	// support.
	MD5 bool
	// SHA1 accepts SHA-1 message digests (a MAY in RFC 8894) and advertises SHA-1 in
	// GetCACaps. The micromdm scepclient signs with SHA-1.
	SHA1 bool
}

// contentCipher is one content-encryption algorithm of an EnvelopedData: the block
// ciphers in CBC mode that SCEP clients use (RFC 8894 section 3.5.2 names DES3 and AES).
type contentCipher struct {
	name     string
	oid      asn1.ObjectIdentifier
	keySize  int
	newBlock func(key []byte) (cipher.Block, error)
	legacy   func(LegacyAlgorithms) bool // nil: always allowed
}

// contentCiphers is the table of content-encryption algorithms. Each one is decrypted,
// and the CertRep to a request is encrypted with the request's.
var contentCiphers = []contentCipher{
	{"des-cbc", asn1.ObjectIdentifier{1, 3, 14, 3, 2, 7}, 8, des.NewCipher, func(l LegacyAlgorithms) bool { return l.DES }},
	{"des-ede3-cbc", asn1.ObjectIdentifier{1, 2, 840, 113549, 3, 7}, 24, des.NewTripleDESCipher, nil},
	{"aes128-cbc", asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 2}, 16, aes.NewCipher, nil},
	{"aes192-cbc", asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 22}, 24, aes.NewCipher, nil},
	{"aes256-cbc", asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 42}, 32, aes.NewCipher, nil},
}

// cipherAES128 is the content encryption that RFC 8894 section 2.9 makes mandatory,
// used when a response has no request algorithm to follow.
var cipherAES128 = &contentCiphers[2]

func cipherByOID(oid asn1.ObjectIdentifier) *contentCipher {
	for i := range contentCiphers {
		if contentCiphers[i].oid.Equal(oid) {
			return &contentCiphers[i]
		}
	}
	return nil
}

func (c *contentCipher) allowed(legacy LegacyAlgorithms) bool {
	return c.legacy == nil || c.legacy(legacy)
}

// digestAlgorithm is one message-digest algorithm of a SignerInfo.
type digestAlgorithm struct {
	name   string
	oid    asn1.ObjectIdentifier
	hash   crypto.Hash
	legacy func(LegacyAlgorithms) bool // nil: always allowed
}

var digestAlgorithms = []digestAlgorithm{
	{"md5", asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 5}, crypto.MD5, func(l LegacyAlgorithms) bool { return l.MD5 }},
	{"sha-1", asn1.ObjectIdentifier{1, 3, 14, 3, 2, 26}, crypto.SHA1, func(l LegacyAlgorithms) bool { return l.SHA1 }},
	{"sha-224", asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 4}, crypto.SHA224, nil},
	{"sha-256", asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}, crypto.SHA256, nil},
	{"sha-384", asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 2}, crypto.SHA384, nil},
	{"sha-512", asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 3}, crypto.SHA512, nil},
}

// digestSHA256 signs responses when a request gives no digest to follow.
var digestSHA256 = &digestAlgorithms[3]

func digestByOID(oid asn1.ObjectIdentifier) *digestAlgorithm {
	for i := range digestAlgorithms {
		if digestAlgorithms[i].oid.Equal(oid) {
			return &digestAlgorithms[i]
		}
	}
	return nil
}

func digestByHash(h crypto.Hash) *digestAlgorithm {
	for i := range digestAlgorithms {
		if digestAlgorithms[i].hash == h {
			return &digestAlgorithms[i]
		}
	}
	return nil
}

func (d *digestAlgorithm) allowed(legacy LegacyAlgorithms) bool {
	return d.legacy == nil || d.legacy(legacy)
}

// signatureKind is the public-key algorithm of a SignerInfo signature.
type signatureKind int

const (
	signatureRSA   signatureKind = iota + 1 // RSASSA-PKCS1-v1_5
	signatureECDSA                          // ECDSA with a DER Ecdsa-Sig-Value
)

// signatureAlgorithms maps the signatureAlgorithm of a SignerInfo to its key type and,
// for the combined OIDs, the digest it implies, which must equal the digestAlgorithm.
// RFC 5652 section 5.3 lets a SignerInfo name rsaEncryption or id-ecPublicKey alone.
var signatureAlgorithms = []struct {
	oid  asn1.ObjectIdentifier
	kind signatureKind
	hash crypto.Hash // 0: taken from digestAlgorithm
}{
	{oidRSAEncryption, signatureRSA, 0},
	{oidMD5WithRSA, signatureRSA, crypto.MD5},
	{oidSHA1WithRSA, signatureRSA, crypto.SHA1},
	{oidSHA224WithRSA, signatureRSA, crypto.SHA224},
	{oidSHA256WithRSA, signatureRSA, crypto.SHA256},
	{oidSHA384WithRSA, signatureRSA, crypto.SHA384},
	{oidSHA512WithRSA, signatureRSA, crypto.SHA512},
	{oidECPublicKey, signatureECDSA, 0},
	{oidECDSAWithSHA1, signatureECDSA, crypto.SHA1},
	{oidECDSAWithSHA224, signatureECDSA, crypto.SHA224},
	{oidECDSAWithSHA256, signatureECDSA, crypto.SHA256},
	{oidECDSAWithSHA384, signatureECDSA, crypto.SHA384},
	{oidECDSAWithSHA512, signatureECDSA, crypto.SHA512},
}

// AlgorithmError reports an algorithm that the decoder does not support or that the
// profile has not turned on. The frontend sends failInfo badAlg for it.
type AlgorithmError struct {
	Field     string // the field that names the algorithm, such as "contentEncryptionAlgorithm"
	Algorithm string // the algorithm's name, or its OID when unknown
	Disabled  bool   // known, but off in the profile's LegacyAlgorithms
}

func (e *AlgorithmError) Error() string {
	if e.Disabled {
		return fmt.Sprintf("scep: %s %s is turned off for this profile", e.Field, e.Algorithm)
	}
	return fmt.Sprintf("scep: %s %s is not supported", e.Field, e.Algorithm)
}
