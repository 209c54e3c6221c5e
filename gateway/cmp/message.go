package cmp

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"math/big"
	"time"
)

// Protocol versions of PKIHeader.pvno.
const (
	PVNO2000 = 2 // cmp2000: RFC 4210 and clients such as OpenSSL 3.0
	PVNO2021 = 3 // cmp2021: needed when a message uses RFC 9810 features such as hashAlg in certConf
)

// BodyType is the tag of the PKIBody CHOICE (RFC 9810 section 5.1.2).
type BodyType int

// The PKIBody choices.
const (
	BodyIR       BodyType = 0
	BodyIP       BodyType = 1
	BodyCR       BodyType = 2
	BodyCP       BodyType = 3
	BodyP10CR    BodyType = 4
	BodyPOPDecC  BodyType = 5
	BodyPOPDecR  BodyType = 6
	BodyKUR      BodyType = 7
	BodyKUP      BodyType = 8
	BodyKRR      BodyType = 9
	BodyKRP      BodyType = 10
	BodyRR       BodyType = 11
	BodyRP       BodyType = 12
	BodyCCR      BodyType = 13
	BodyCCP      BodyType = 14
	BodyCKUAnn   BodyType = 15
	BodyCAnn     BodyType = 16
	BodyRAnn     BodyType = 17
	BodyCRLAnn   BodyType = 18
	BodyPKIConf  BodyType = 19
	BodyNested   BodyType = 20
	BodyGenM     BodyType = 21
	BodyGenP     BodyType = 22
	BodyError    BodyType = 23
	BodyCertConf BodyType = 24
	BodyPollReq  BodyType = 25
	BodyPollRep  BodyType = 26
	bodyTypeMax           = 26
)

var bodyNames = [bodyTypeMax + 1]string{
	"ir", "ip", "cr", "cp", "p10cr", "popdecc", "popdecr", "kur", "kup", "krr", "krp", "rr",
	"rp", "ccr", "ccp", "ckuann", "cann", "rann", "crlann", "pkiconf", "nested", "genm",
	"genp", "error", "certConf", "pollReq", "pollRep",
}

func (t BodyType) String() string {
	if t >= 0 && t <= bodyTypeMax {
		return bodyNames[t]
	}
	return fmt.Sprintf("body(%d)", int(t))
}

// Message is a PKIMessage.
//
//	PKIMessage ::= SEQUENCE {
//	    header           PKIHeader,
//	    body             PKIBody,
//	    protection   [0] PKIProtection OPTIONAL,
//	    extraCerts   [1] SEQUENCE SIZE (1..MAX) OF CMPCertificate OPTIONAL }
type Message struct {
	Header     Header
	Body       Body
	Protection []byte // the PKIProtection BIT STRING; nil when unprotected
	ExtraCerts []*x509.Certificate

	// RawHeader and RawBody are the DER of header and body as received; protection is
	// verified over them. Marshal fills them in for messages it encodes.
	RawHeader []byte
	RawBody   []byte
}

// Header is a PKIHeader (RFC 9810 section 5.1.1).
type Header struct {
	PVNO          int
	Sender        GeneralName
	Recipient     GeneralName
	MessageTime   time.Time                 // zero when absent
	ProtectionAlg *pkix.AlgorithmIdentifier // nil when absent
	SenderKID     []byte
	RecipKID      []byte
	TransactionID []byte
	SenderNonce   []byte
	RecipNonce    []byte
	FreeText      []string
	GeneralInfo   []InfoTypeAndValue
}

// HasImplicitConfirm reports whether generalInfo carries id-it-implicitConfirm.
func (h *Header) HasImplicitConfirm() bool {
	for _, info := range h.GeneralInfo {
		if info.Type.Equal(OIDITImplicitConfirm) {
			return true
		}
	}
	return false
}

// GeneralName is a GeneralName of RFC 5280 kept as DER. CMP uses the directoryName
// choice almost everywhere; DirectoryName decodes it.
type GeneralName struct {
	Raw []byte
}

// DirectoryNameOf returns the GeneralName directoryName [4] holding the DER Name rawName.
func DirectoryNameOf(rawName []byte) GeneralName {
	return GeneralName{Raw: wrapExplicit(4, rawName)}
}

// NullDN is the directoryName with an empty Name, which RFC 9810 section 5.1.1 asks a
// sender to use when it has no name to give.
var NullDN = DirectoryNameOf([]byte{0x30, 0x00})

// InfoTypeAndValue of RFC 9810 section 5.3.19; Value is the DER of infoValue or nil when
// absent.
type InfoTypeAndValue struct {
	Type  asn1.ObjectIdentifier
	Value []byte
}

// Body is a PKIBody. Type selects which of the other fields is set.
type Body struct {
	Type BodyType

	CertReqs  []CertReqMsg      // ir, cr, kur, krr, ccr
	CertRep   *CertRepMessage   // ip, cp, kup, ccp
	KeyRecRep *KeyRecRepContent // krp
	P10CR     *P10Request       // p10cr
	RevReqs   []RevDetails      // rr
	RevRep    *RevRepContent    // rp
	Confirms  []CertStatus      // certConf
	Infos     []InfoTypeAndValue
	Error     *ErrorContent
	PollReqs  []int64        // pollReq: the certReqIds
	PollReps  []PollResponse // pollRep
	Nested    [][]byte       // nested: the DER of each inner PKIMessage

	// Raw is the DER of the body content inside its [n] tag, for every type.
	Raw []byte
}

// CertReqMsg of RFC 4211 section 3.
//
//	CertReqMsg ::= SEQUENCE {
//	    certReq   CertRequest,
//	    popo      ProofOfPossession  OPTIONAL,
//	    regInfo   SEQUENCE SIZE(1..MAX) OF AttributeTypeAndValue OPTIONAL }
type CertReqMsg struct {
	CertReqID  int64
	Template   CertTemplate
	Controls   []AttributeTypeAndValue
	POP        *ProofOfPossession // nil when absent
	RegInfo    []AttributeTypeAndValue
	RawCertReq []byte // DER of CertRequest, which a signature POP without poposkInput signs
}

// OldCertID returns the oldCertID control of a kur, if present.
func (m *CertReqMsg) OldCertID() (*CertID, error) {
	for _, control := range m.Controls {
		if control.Type.Equal(OIDRegCtrlOldCertID) {
			return parseCertID(control.Value)
		}
	}
	return nil, nil
}

// AttributeTypeAndValue of RFC 4211; Value is DER.
type AttributeTypeAndValue struct {
	Type  asn1.ObjectIdentifier
	Value []byte
}

// CertTemplate of RFC 4211 section 5. Absent fields are nil or zero.
type CertTemplate struct {
	Version      *int64
	SerialNumber *big.Int
	SigningAlg   *pkix.AlgorithmIdentifier
	RawIssuer    []byte // DER Name
	NotBefore    time.Time
	NotAfter     time.Time
	RawSubject   []byte // DER Name
	RawPublicKey []byte // DER SubjectPublicKeyInfo
	Extensions   []pkix.Extension
	Raw          []byte
}

// POPType is the ProofOfPossession CHOICE of RFC 4211 section 4.
type POPType int

// The ProofOfPossession choices.
const (
	POPRAVerified      POPType = 0
	POPSignature       POPType = 1
	POPKeyEncipherment POPType = 2
	POPKeyAgreement    POPType = 3
)

// ProofOfPossession of RFC 4211 section 4. For POPSignature, Algorithm and Signature
// are set; RawPOPOSKInput is the DER of poposkInput when the client sent one.
type ProofOfPossession struct {
	Type           POPType
	RawPOPOSKInput []byte
	Algorithm      pkix.AlgorithmIdentifier
	Signature      []byte
}

// P10Request is a PKCS #10 CertificationRequest carried in a p10cr.
type P10Request struct {
	CSR *x509.CertificateRequest
	Raw []byte
}

// CertRepMessage of RFC 9810 section 5.3.4.
type CertRepMessage struct {
	CAPubs    []*x509.Certificate
	Responses []CertResponse
}

// CertResponse of RFC 9810 section 5.3.4. Certificate is set when the CA returned one.
// EncryptedPrivateKey is the DER of the EnvelopedData of a centrally generated key.
type CertResponse struct {
	CertReqID           int64
	Status              StatusInfo
	Certificate         *x509.Certificate
	EncryptedPrivateKey []byte
	RspInfo             []byte
}

// CertifiedKeyPair of RFC 9810 section 5.3.4: a certificate and, for a centrally
// generated or recovered key, the EncryptedKey that carries its private key.
type CertifiedKeyPair struct {
	Certificate         *x509.Certificate
	EncryptedPrivateKey []byte
}

// KeyRecRepContent of RFC 9810 section 5.3.8, the content of a krp: the recovered key
// pairs in KeyPairHist.
type KeyRecRepContent struct {
	Status      StatusInfo
	NewSigCert  *x509.Certificate
	CACerts     []*x509.Certificate
	KeyPairHist []CertifiedKeyPair
}

// RevDetails of RFC 9810 section 5.3.9: the certificate to revoke as a template (issuer
// and serialNumber, or subject and publicKey) and the CRL entry extensions such as the
// reason code.
type RevDetails struct {
	CertDetails     CertTemplate
	CRLEntryDetails []pkix.Extension
}

// Reason returns the CRLReason of the reasonCode entry extension, or -1 when absent.
func (r *RevDetails) Reason() (int, error) {
	for _, ext := range r.CRLEntryDetails {
		if !ext.Id.Equal(OIDExtensionReasonCode) {
			continue
		}
		var reason asn1.Enumerated
		rest, err := asn1.Unmarshal(ext.Value, &reason)
		if err != nil || len(rest) != 0 {
			return 0, fmt.Errorf("%w: invalid reasonCode extension", ErrMalformed)
		}
		if reason < 0 || reason > 10 || reason == 7 {
			return 0, fmt.Errorf("%w: reasonCode %d is not a CRLReason", ErrMalformed, reason)
		}
		return int(reason), nil
	}
	return -1, nil
}

// RevRepContent of RFC 9810 section 5.3.10, one status per RevDetails.
type RevRepContent struct {
	Status  []StatusInfo
	RevCert []CertID
}

// CertID names a certificate by issuer and serial number (RFC 4211 section 6.5).
type CertID struct {
	Issuer       GeneralName
	SerialNumber *big.Int
}

// CertStatus of RFC 9810 section 5.3.18: the client's acceptance or rejection of one
// certificate. HashAlg is set only in cmp2021 messages.
type CertStatus struct {
	CertHash   []byte
	CertReqID  int64
	StatusInfo *StatusInfo // nil means accepted
	HashAlg    *pkix.AlgorithmIdentifier
}

// ErrorContent is ErrorMsgContent of RFC 9810 section 5.3.21.
type ErrorContent struct {
	Status       StatusInfo
	ErrorCode    *int64
	ErrorDetails []string
}

// PollResponse is one entry of PollRepContent (RFC 9810 section 5.3.22).
type PollResponse struct {
	CertReqID  int64
	CheckAfter int64 // seconds
	Reason     []string
}
