package cmp

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// ErrMalformed is wrapped by every decoding error: the bytes are not a DER PKIMessage
// that this package accepts. A CMP server reports it with failInfo badDataFormat.
var ErrMalformed = errors.New("cmp: malformed message")

// Decoding limits. A PKIMessage of the transfer's maximum size could otherwise declare
// thousands of tiny elements; the limits keep the allocation proportional to what a real
// client sends. RFC 9483 profiles every request to one CertReqMsg, one RevDetails and one
// CertStatus, so 64 leaves room for batch clients without inviting abuse.
const (
	maxSequenceItems = 64 // CertReqMsgs, RevDetails, CertStatus, ITAVs, poll entries, free texts
	maxExtraCerts    = 32 // certificates in extraCerts or caPubs
	maxExtensions    = 64 // extensions in one template
	maxNested        = 16 // inner messages of a nested body
)

func malformed(field, format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrMalformed, field, fmt.Sprintf(format, args...))
}

func contextTag(n int) cbasn1.Tag {
	return cbasn1.Tag(n).Constructed().ContextSpecific()
}

// ParseMessage decodes one DER PKIMessage. It rejects trailing data, BER encodings and
// unknown body types; it does not verify protection (see VerifyMAC and VerifySignature).
func ParseMessage(der []byte) (*Message, error) {
	input := cryptobyte.String(der)
	var message cryptobyte.String
	if !input.ReadASN1(&message, cbasn1.SEQUENCE) {
		return nil, malformed("PKIMessage", "not a DER SEQUENCE")
	}
	if !input.Empty() {
		return nil, malformed("PKIMessage", "%d bytes of trailing data", len(input))
	}

	m := &Message{}
	var rawHeader, rawBody cryptobyte.String
	if !message.ReadASN1Element(&rawHeader, cbasn1.SEQUENCE) {
		return nil, malformed("header", "missing or not a SEQUENCE")
	}
	m.RawHeader = rawHeader
	if err := parseHeader(rawHeader, &m.Header); err != nil {
		return nil, err
	}

	var bodyTag cbasn1.Tag
	if !message.ReadAnyASN1Element(&rawBody, &bodyTag) {
		return nil, malformed("body", "missing")
	}
	m.RawBody = rawBody
	if err := parseBody(rawBody, bodyTag, &m.Body); err != nil {
		return nil, err
	}

	var protection cryptobyte.String
	var present bool
	if !message.ReadOptionalASN1(&protection, &present, contextTag(0)) {
		return nil, malformed("protection", "invalid encoding")
	}
	if present {
		var bits asn1.BitString
		if !protection.ReadASN1BitString(&bits) || !protection.Empty() {
			return nil, malformed("protection", "not a BIT STRING")
		}
		if bits.BitLength%8 != 0 {
			return nil, malformed("protection", "bit length %d is not a whole number of octets", bits.BitLength)
		}
		m.Protection = bits.Bytes
	}

	var extraCerts cryptobyte.String
	if !message.ReadOptionalASN1(&extraCerts, &present, contextTag(1)) {
		return nil, malformed("extraCerts", "invalid encoding")
	}
	if present {
		certs, err := parseCertificateSequence(extraCerts, "extraCerts")
		if err != nil {
			return nil, err
		}
		m.ExtraCerts = certs
	}
	if !message.Empty() {
		return nil, malformed("PKIMessage", "unexpected field after extraCerts")
	}
	return m, nil
}

// parseHeader decodes the fields of PKIHeader; der is the whole SEQUENCE element.
func parseHeader(der cryptobyte.String, h *Header) error {
	var s cryptobyte.String
	if !der.ReadASN1(&s, cbasn1.SEQUENCE) {
		return malformed("header", "not a SEQUENCE")
	}
	var pvno int64
	if !s.ReadASN1Integer(&pvno) {
		return malformed("header.pvno", "missing or not an INTEGER")
	}
	h.PVNO = int(pvno)
	var err error
	if h.Sender, err = readGeneralName(&s, "header.sender"); err != nil {
		return err
	}
	if h.Recipient, err = readGeneralName(&s, "header.recipient"); err != nil {
		return err
	}

	field, present, err := readOptionalExplicit(&s, 0, "header.messageTime")
	if err != nil {
		return err
	}
	if present {
		if !field.ReadASN1GeneralizedTime(&h.MessageTime) || !field.Empty() {
			return malformed("header.messageTime", "not a DER GeneralizedTime")
		}
	}
	if field, present, err = readOptionalExplicit(&s, 1, "header.protectionAlg"); err != nil {
		return err
	} else if present {
		alg, err := readAlgorithmIdentifier(&field, "header.protectionAlg")
		if err != nil {
			return err
		}
		if !field.Empty() {
			return malformed("header.protectionAlg", "trailing data")
		}
		h.ProtectionAlg = &alg
	}
	octetFields := []struct {
		tag  int
		name string
		dst  *[]byte
	}{
		{2, "header.senderKID", &h.SenderKID},
		{3, "header.recipKID", &h.RecipKID},
		{4, "header.transactionID", &h.TransactionID},
		{5, "header.senderNonce", &h.SenderNonce},
		{6, "header.recipNonce", &h.RecipNonce},
	}
	for _, f := range octetFields {
		field, present, err := readOptionalExplicit(&s, f.tag, f.name)
		if err != nil {
			return err
		}
		if !present {
			continue
		}
		var value cryptobyte.String
		if !field.ReadASN1(&value, cbasn1.OCTET_STRING) || !field.Empty() {
			return malformed(f.name, "not an OCTET STRING")
		}
		*f.dst = value
	}
	if field, present, err = readOptionalExplicit(&s, 7, "header.freeText"); err != nil {
		return err
	} else if present {
		if h.FreeText, err = readFreeText(&field, "header.freeText"); err != nil {
			return err
		}
		if !field.Empty() {
			return malformed("header.freeText", "trailing data")
		}
	}
	if field, present, err = readOptionalExplicit(&s, 8, "header.generalInfo"); err != nil {
		return err
	} else if present {
		if h.GeneralInfo, err = readInfoSequence(&field, "header.generalInfo"); err != nil {
			return err
		}
		if len(h.GeneralInfo) == 0 {
			return malformed("header.generalInfo", "empty, but SIZE (1..MAX) is required")
		}
		if !field.Empty() {
			return malformed("header.generalInfo", "trailing data")
		}
	}
	if !s.Empty() {
		return malformed("header", "unexpected or out-of-order field")
	}
	return nil
}

func readOptionalExplicit(s *cryptobyte.String, tag int, field string) (cryptobyte.String, bool, error) {
	var out cryptobyte.String
	var present bool
	if !s.ReadOptionalASN1(&out, &present, contextTag(tag)) {
		return nil, false, malformed(field, "invalid encoding")
	}
	return out, present, nil
}

// readGeneralName reads a GeneralName CHOICE (RFC 5280 section 4.2.1.6), whose choices
// are context-specific tags 0 to 8.
func readGeneralName(s *cryptobyte.String, field string) (GeneralName, error) {
	var element cryptobyte.String
	var tag cbasn1.Tag
	if !s.ReadAnyASN1Element(&element, &tag) {
		return GeneralName{}, malformed(field, "missing")
	}
	if tag&0xc0 != 0x80 || tag&0x1f > 8 {
		return GeneralName{}, malformed(field, "tag 0x%02x is not a GeneralName choice", uint8(tag))
	}
	if tag == contextTag(4) {
		// directoryName [4] Name: the Name must be a SEQUENCE and nothing else.
		inner := element
		var name cryptobyte.String
		if !inner.ReadASN1(&name, contextTag(4)) || !name.SkipASN1(cbasn1.SEQUENCE) || !name.Empty() {
			return GeneralName{}, malformed(field, "directoryName is not a Name")
		}
	}
	return GeneralName{Raw: element}, nil
}

// DirectoryName returns the DER Name of a directoryName choice, or false for any other.
func (g GeneralName) DirectoryName() ([]byte, bool) {
	s := cryptobyte.String(g.Raw)
	var name cryptobyte.String
	if !s.ReadASN1(&name, contextTag(4)) {
		return nil, false
	}
	return name, true
}

// String renders a directoryName as an RFC 4514 string and any other choice by its tag.
func (g GeneralName) String() string {
	name, ok := g.DirectoryName()
	if !ok {
		if len(g.Raw) == 0 {
			return "<absent>"
		}
		return fmt.Sprintf("GeneralName[%d]", g.Raw[0]&0x1f)
	}
	var rdns pkix.RDNSequence
	if rest, err := asn1.Unmarshal(name, &rdns); err != nil || len(rest) != 0 {
		return "<invalid Name>"
	}
	var n pkix.Name
	n.FillFromRDNSequence(&rdns)
	if text := n.String(); text != "" {
		return text
	}
	return "<empty Name>"
}

func readAlgorithmIdentifier(s *cryptobyte.String, field string) (pkix.AlgorithmIdentifier, error) {
	var seq cryptobyte.String
	if !s.ReadASN1(&seq, cbasn1.SEQUENCE) {
		return pkix.AlgorithmIdentifier{}, malformed(field, "not an AlgorithmIdentifier")
	}
	var alg pkix.AlgorithmIdentifier
	if !seq.ReadASN1ObjectIdentifier(&alg.Algorithm) {
		return alg, malformed(field, "invalid algorithm OID")
	}
	if !seq.Empty() {
		var params cryptobyte.String
		var tag cbasn1.Tag
		if !seq.ReadAnyASN1Element(&params, &tag) || !seq.Empty() {
			return alg, malformed(field, "invalid parameters")
		}
		alg.Parameters = asn1.RawValue{FullBytes: params}
		// Keep Tag, Class and Bytes consistent for code that inspects them.
		if _, err := asn1.Unmarshal(params, &alg.Parameters); err != nil {
			return alg, malformed(field, "invalid parameters: %v", err)
		}
	}
	return alg, nil
}

func readFreeText(s *cryptobyte.String, field string) ([]string, error) {
	var seq cryptobyte.String
	if !s.ReadASN1(&seq, cbasn1.SEQUENCE) {
		return nil, malformed(field, "not a SEQUENCE OF UTF8String")
	}
	var texts []string
	for !seq.Empty() {
		if len(texts) == maxSequenceItems {
			return nil, malformed(field, "more than %d strings", maxSequenceItems)
		}
		var text cryptobyte.String
		if !seq.ReadASN1(&text, cbasn1.UTF8String) {
			return nil, malformed(field, "element is not a UTF8String")
		}
		texts = append(texts, string(text))
	}
	if len(texts) == 0 {
		return nil, malformed(field, "empty, but SIZE (1..MAX) is required")
	}
	return texts, nil
}

func readInfoSequence(s *cryptobyte.String, field string) ([]InfoTypeAndValue, error) {
	var seq cryptobyte.String
	if !s.ReadASN1(&seq, cbasn1.SEQUENCE) {
		return nil, malformed(field, "not a SEQUENCE OF InfoTypeAndValue")
	}
	var infos []InfoTypeAndValue
	for !seq.Empty() {
		if len(infos) == maxSequenceItems {
			return nil, malformed(field, "more than %d entries", maxSequenceItems)
		}
		var itav cryptobyte.String
		if !seq.ReadASN1(&itav, cbasn1.SEQUENCE) {
			return nil, malformed(field, "entry is not a SEQUENCE")
		}
		var info InfoTypeAndValue
		if !itav.ReadASN1ObjectIdentifier(&info.Type) {
			return nil, malformed(field, "entry has an invalid infoType")
		}
		if !itav.Empty() {
			var value cryptobyte.String
			var tag cbasn1.Tag
			if !itav.ReadAnyASN1Element(&value, &tag) || !itav.Empty() {
				return nil, malformed(field, "entry %s has an invalid infoValue", info.Type)
			}
			info.Value = value
		}
		infos = append(infos, info)
	}
	return infos, nil
}

func parseCertificateSequence(s cryptobyte.String, field string) ([]*x509.Certificate, error) {
	var seq cryptobyte.String
	if !s.ReadASN1(&seq, cbasn1.SEQUENCE) || !s.Empty() {
		return nil, malformed(field, "not a SEQUENCE OF CMPCertificate")
	}
	var certs []*x509.Certificate
	for !seq.Empty() {
		if len(certs) == maxExtraCerts {
			return nil, malformed(field, "more than %d certificates", maxExtraCerts)
		}
		var der cryptobyte.String
		if !seq.ReadASN1Element(&der, cbasn1.SEQUENCE) {
			return nil, malformed(field, "element is not a Certificate")
		}
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, malformed(field, "certificate %d: %v", len(certs), err)
		}
		certs = append(certs, cert)
	}
	if len(certs) == 0 {
		return nil, malformed(field, "empty, but SIZE (1..MAX) is required")
	}
	return certs, nil
}

// parseBody decodes the PKIBody CHOICE. Each choice is an EXPLICIT [n] tag around the
// content type, since the PKIXCMP module uses EXPLICIT TAGS.
func parseBody(element cryptobyte.String, tag cbasn1.Tag, b *Body) error {
	if tag&0xe0 != 0xa0 {
		return malformed("body", "tag 0x%02x is not a PKIBody choice", uint8(tag))
	}
	b.Type = BodyType(tag & 0x1f)
	if b.Type > bodyTypeMax {
		return malformed("body", "unknown PKIBody choice [%d]", int(b.Type))
	}
	var content cryptobyte.String
	if !element.ReadASN1(&content, tag) {
		return malformed("body", "invalid encoding")
	}
	b.Raw = content
	field := "body." + b.Type.String()

	var err error
	switch b.Type {
	case BodyIR, BodyCR, BodyKUR, BodyKRR, BodyCCR:
		b.CertReqs, err = parseCertReqMessages(content, field)
		return err
	case BodyIP, BodyCP, BodyKUP, BodyCCP:
		b.CertRep, err = parseCertRepMessage(content, field)
		return err
	case BodyKRP:
		b.KeyRecRep, err = parseKeyRecRepContent(content, field)
		return err
	case BodyP10CR:
		var csrDER cryptobyte.String
		if !content.ReadASN1Element(&csrDER, cbasn1.SEQUENCE) || !content.Empty() {
			return malformed(field, "not a CertificationRequest")
		}
		csr, err := x509.ParseCertificateRequest(csrDER)
		if err != nil {
			return malformed(field, "%v", err)
		}
		b.P10CR = &P10Request{CSR: csr, Raw: csrDER}
		return nil
	case BodyRR:
		b.RevReqs, err = parseRevReqContent(content, field)
		return err
	case BodyRP:
		b.RevRep, err = parseRevRepContent(content, field)
		return err
	case BodyPKIConf:
		if !content.SkipASN1(cbasn1.NULL) || !content.Empty() {
			return malformed(field, "PKIConfirmContent is not NULL")
		}
		return nil
	case BodyNested:
		b.Nested, err = parseNested(content, field)
		return err
	case BodyGenM, BodyGenP:
		b.Infos, err = readInfoSequence(&content, field)
		if err == nil && !content.Empty() {
			err = malformed(field, "trailing data")
		}
		return err
	case BodyError:
		b.Error, err = parseErrorContent(content, field)
		return err
	case BodyCertConf:
		b.Confirms, err = parseCertConfirmContent(content, field)
		return err
	case BodyPollReq:
		b.PollReqs, err = parsePollReqContent(content, field)
		return err
	case BodyPollRep:
		b.PollReps, err = parsePollRepContent(content, field)
		return err
	default:
		// Kept as raw DER; the content must still be one well-formed element.
		var element cryptobyte.String
		var elementTag cbasn1.Tag
		if !content.ReadAnyASN1Element(&element, &elementTag) || !content.Empty() {
			return malformed(field, "invalid encoding")
		}
		return nil
	}
}

// readSmallInteger reads an INTEGER that must fit an int64, such as certReqId.
func readSmallInteger(s *cryptobyte.String, field string) (int64, error) {
	var value int64
	if !s.ReadASN1Integer(&value) {
		return 0, malformed(field, "missing, not an INTEGER or out of range")
	}
	return value, nil
}

func parseCertReqMessages(content cryptobyte.String, field string) ([]CertReqMsg, error) {
	var seq cryptobyte.String
	if !content.ReadASN1(&seq, cbasn1.SEQUENCE) || !content.Empty() {
		return nil, malformed(field, "not a SEQUENCE OF CertReqMsg")
	}
	var msgs []CertReqMsg
	for !seq.Empty() {
		if len(msgs) == maxSequenceItems {
			return nil, malformed(field, "more than %d CertReqMsg", maxSequenceItems)
		}
		msg, err := parseCertReqMsg(&seq, fmt.Sprintf("%s[%d]", field, len(msgs)))
		if err != nil {
			return nil, err
		}
		msgs = append(msgs, msg)
	}
	if len(msgs) == 0 {
		return nil, malformed(field, "empty, but SIZE (1..MAX) is required")
	}
	return msgs, nil
}

func parseCertReqMsg(s *cryptobyte.String, field string) (CertReqMsg, error) {
	var msg CertReqMsg
	var seq cryptobyte.String
	if !s.ReadASN1(&seq, cbasn1.SEQUENCE) {
		return msg, malformed(field, "not a SEQUENCE")
	}

	// CertRequest ::= SEQUENCE { certReqId INTEGER, certTemplate CertTemplate, controls Controls OPTIONAL }
	var rawCertReq, certReq cryptobyte.String
	if !seq.ReadASN1Element(&rawCertReq, cbasn1.SEQUENCE) {
		return msg, malformed(field+".certReq", "not a SEQUENCE")
	}
	msg.RawCertReq = rawCertReq
	outer := rawCertReq
	outer.ReadASN1(&certReq, cbasn1.SEQUENCE)
	var err error
	if msg.CertReqID, err = readSmallInteger(&certReq, field+".certReq.certReqId"); err != nil {
		return msg, err
	}
	if msg.Template, err = parseCertTemplate(&certReq, field+".certReq.certTemplate"); err != nil {
		return msg, err
	}
	if !certReq.Empty() {
		if msg.Controls, err = readAttributes(&certReq, field+".certReq.controls"); err != nil {
			return msg, err
		}
	}
	if !certReq.Empty() {
		return msg, malformed(field+".certReq", "trailing data")
	}

	if !seq.Empty() && !seq.PeekASN1Tag(cbasn1.SEQUENCE) {
		pop, err := parsePOP(&seq, field+".popo")
		if err != nil {
			return msg, err
		}
		msg.POP = pop
	}
	if !seq.Empty() {
		if msg.RegInfo, err = readAttributes(&seq, field+".regInfo"); err != nil {
			return msg, err
		}
	}
	if !seq.Empty() {
		return msg, malformed(field, "trailing data")
	}
	return msg, nil
}

func readAttributes(s *cryptobyte.String, field string) ([]AttributeTypeAndValue, error) {
	var seq cryptobyte.String
	if !s.ReadASN1(&seq, cbasn1.SEQUENCE) {
		return nil, malformed(field, "not a SEQUENCE OF AttributeTypeAndValue")
	}
	var attrs []AttributeTypeAndValue
	for !seq.Empty() {
		if len(attrs) == maxSequenceItems {
			return nil, malformed(field, "more than %d entries", maxSequenceItems)
		}
		var attr cryptobyte.String
		var a AttributeTypeAndValue
		var value cryptobyte.String
		if !seq.ReadASN1(&attr, cbasn1.SEQUENCE) || !attr.ReadASN1ObjectIdentifier(&a.Type) ||
			!attr.ReadAnyASN1Element(&value, nil) || !attr.Empty() {
			return nil, malformed(field, "invalid AttributeTypeAndValue")
		}
		a.Value = value
		attrs = append(attrs, a)
	}
	if len(attrs) == 0 {
		return nil, malformed(field, "empty, but SIZE (1..MAX) is required")
	}
	return attrs, nil
}

// parseCertTemplate decodes CertTemplate of RFC 4211 section 5. The CRMF module uses
// IMPLICIT TAGS, except where the tagged type is a CHOICE (Name, Time), whose tags are
// always explicit.
func parseCertTemplate(s *cryptobyte.String, field string) (CertTemplate, error) {
	var t CertTemplate
	var raw, seq cryptobyte.String
	if !s.ReadASN1Element(&raw, cbasn1.SEQUENCE) {
		return t, malformed(field, "not a SEQUENCE")
	}
	t.Raw = raw
	outer := raw
	outer.ReadASN1(&seq, cbasn1.SEQUENCE)

	// version [0] IMPLICIT INTEGER
	if seq.PeekASN1Tag(cbasn1.Tag(0).ContextSpecific()) {
		var version int64
		if !seq.ReadASN1Int64WithTag(&version, cbasn1.Tag(0).ContextSpecific()) {
			return t, malformed(field+".version", "invalid INTEGER")
		}
		t.Version = &version
	}
	// serialNumber [1] IMPLICIT INTEGER
	if seq.PeekASN1Tag(cbasn1.Tag(1).ContextSpecific()) {
		var serial cryptobyte.String
		seq.ReadASN1(&serial, cbasn1.Tag(1).ContextSpecific())
		value, err := parseIntegerContent(serial)
		if err != nil {
			return t, malformed(field+".serialNumber", "%v", err)
		}
		t.SerialNumber = value
	}
	// signingAlg [2] IMPLICIT AlgorithmIdentifier
	if seq.PeekASN1Tag(contextTag(2)) {
		var content cryptobyte.String
		seq.ReadASN1(&content, contextTag(2))
		wrapped := cryptobyte.String(wrapTag(cbasn1.SEQUENCE, content))
		alg, err := readAlgorithmIdentifier(&wrapped, field+".signingAlg")
		if err != nil {
			return t, err
		}
		t.SigningAlg = &alg
	}
	// issuer [3] EXPLICIT Name
	if seq.PeekASN1Tag(contextTag(3)) {
		name, err := readExplicitName(&seq, 3, field+".issuer")
		if err != nil {
			return t, err
		}
		t.RawIssuer = name
	}
	// validity [4] IMPLICIT OptionalValidity
	if seq.PeekASN1Tag(contextTag(4)) {
		var validity cryptobyte.String
		seq.ReadASN1(&validity, contextTag(4))
		var err error
		if t.NotBefore, err = readOptionalTime(&validity, 0, field+".validity.notBefore"); err != nil {
			return t, err
		}
		if t.NotAfter, err = readOptionalTime(&validity, 1, field+".validity.notAfter"); err != nil {
			return t, err
		}
		if !validity.Empty() {
			return t, malformed(field+".validity", "trailing data")
		}
	}
	// subject [5] EXPLICIT Name
	if seq.PeekASN1Tag(contextTag(5)) {
		name, err := readExplicitName(&seq, 5, field+".subject")
		if err != nil {
			return t, err
		}
		t.RawSubject = name
	}
	// publicKey [6] IMPLICIT SubjectPublicKeyInfo
	if seq.PeekASN1Tag(contextTag(6)) {
		var content cryptobyte.String
		seq.ReadASN1(&content, contextTag(6))
		t.RawPublicKey = wrapTag(cbasn1.SEQUENCE, content)
	}
	// issuerUID [7] and subjectUID [8] IMPLICIT UniqueIdentifier (BIT STRING), obsolete;
	// skipped when present.
	for _, tag := range []int{7, 8} {
		if seq.PeekASN1Tag(cbasn1.Tag(tag).ContextSpecific()) {
			seq.SkipASN1(cbasn1.Tag(tag).ContextSpecific())
		}
	}
	// extensions [9] IMPLICIT Extensions
	if seq.PeekASN1Tag(contextTag(9)) {
		var content cryptobyte.String
		seq.ReadASN1(&content, contextTag(9))
		exts, err := parseExtensionList(content, field+".extensions")
		if err != nil {
			return t, err
		}
		t.Extensions = exts
	}
	if !seq.Empty() {
		return t, malformed(field, "unexpected, duplicate or out-of-order field")
	}
	return t, nil
}

// parseIntegerContent decodes the content octets of a DER INTEGER.
func parseIntegerContent(content []byte) (*big.Int, error) {
	if len(content) == 0 {
		return nil, errors.New("empty INTEGER")
	}
	if len(content) > 1 && (content[0] == 0 && content[1]&0x80 == 0 || content[0] == 0xff && content[1]&0x80 != 0) {
		return nil, errors.New("INTEGER not minimally encoded")
	}
	value := new(big.Int).SetBytes(content)
	if content[0]&0x80 != 0 {
		value.Sub(value, new(big.Int).Lsh(big.NewInt(1), uint(len(content))*8))
	}
	return value, nil
}

func readExplicitName(s *cryptobyte.String, tag int, field string) ([]byte, error) {
	var wrapper, name cryptobyte.String
	if !s.ReadASN1(&wrapper, contextTag(tag)) || !wrapper.ReadASN1Element(&name, cbasn1.SEQUENCE) || !wrapper.Empty() {
		return nil, malformed(field, "not a Name")
	}
	var rdns pkix.RDNSequence
	if rest, err := asn1.Unmarshal(name, &rdns); err != nil || len(rest) != 0 {
		return nil, malformed(field, "invalid Name")
	}
	return name, nil
}

func readOptionalTime(s *cryptobyte.String, tag int, field string) (time.Time, error) {
	var wrapper cryptobyte.String
	var present bool
	if !s.ReadOptionalASN1(&wrapper, &present, contextTag(tag)) {
		return time.Time{}, malformed(field, "invalid encoding")
	}
	if !present {
		return time.Time{}, nil
	}
	var t time.Time
	switch {
	case wrapper.PeekASN1Tag(cbasn1.UTCTime):
		if !wrapper.ReadASN1UTCTime(&t) {
			return t, malformed(field, "invalid UTCTime")
		}
	case wrapper.PeekASN1Tag(cbasn1.GeneralizedTime):
		if !wrapper.ReadASN1GeneralizedTime(&t) {
			return t, malformed(field, "invalid GeneralizedTime")
		}
	default:
		return t, malformed(field, "not a Time")
	}
	if !wrapper.Empty() {
		return t, malformed(field, "trailing data")
	}
	return t, nil
}

// parseExtensionList decodes the content of Extensions (SEQUENCE OF Extension) and
// rejects duplicate extension OIDs, as RFC 5280 section 4.2 requires.
func parseExtensionList(content cryptobyte.String, field string) ([]pkix.Extension, error) {
	var exts []pkix.Extension
	seen := make(map[string]bool)
	for !content.Empty() {
		if len(exts) == maxExtensions {
			return nil, malformed(field, "more than %d extensions", maxExtensions)
		}
		var extension cryptobyte.String
		var ext pkix.Extension
		var value cryptobyte.String
		if !content.ReadASN1(&extension, cbasn1.SEQUENCE) || !extension.ReadASN1ObjectIdentifier(&ext.Id) {
			return nil, malformed(field, "invalid Extension")
		}
		// critical BOOLEAN DEFAULT FALSE. DER omits FALSE, but some clients encode it;
		// accepting it changes nothing about the meaning.
		// cryptobyte's ReadOptionalASN1Boolean strips the tag twice (x/crypto v0.59.0), so
		// the BOOLEAN is read directly.
		if extension.PeekASN1Tag(cbasn1.BOOLEAN) && !extension.ReadASN1Boolean(&ext.Critical) {
			return nil, malformed(field, "extension %s has an invalid critical flag", ext.Id)
		}
		if !extension.ReadASN1(&value, cbasn1.OCTET_STRING) || !extension.Empty() {
			return nil, malformed(field, "extension %s is invalid", ext.Id)
		}
		ext.Value = value
		key := ext.Id.String()
		if seen[key] {
			return nil, malformed(field, "duplicate extension %s", key)
		}
		seen[key] = true
		exts = append(exts, ext)
	}
	return exts, nil
}

// parseExtensions decodes a whole Extensions SEQUENCE element.
func parseExtensions(s *cryptobyte.String, field string) ([]pkix.Extension, error) {
	var content cryptobyte.String
	if !s.ReadASN1(&content, cbasn1.SEQUENCE) {
		return nil, malformed(field, "not a SEQUENCE OF Extension")
	}
	return parseExtensionList(content, field)
}

func parsePOP(s *cryptobyte.String, field string) (*ProofOfPossession, error) {
	var element cryptobyte.String
	var tag cbasn1.Tag
	if !s.ReadAnyASN1Element(&element, &tag) {
		return nil, malformed(field, "invalid encoding")
	}
	pop := &ProofOfPossession{}
	switch tag {
	case cbasn1.Tag(0).ContextSpecific(): // raVerified [0] NULL
		var null cryptobyte.String
		if !element.ReadASN1(&null, tag) || !null.Empty() {
			return nil, malformed(field+".raVerified", "not NULL")
		}
		pop.Type = POPRAVerified
	case contextTag(1): // signature [1] POPOSigningKey
		var content cryptobyte.String
		element.ReadASN1(&content, tag)
		pop.Type = POPSignature
		if content.PeekASN1Tag(contextTag(0)) {
			// poposkInput [0] IMPLICIT POPOSigningKeyInput; the signature covers its DER
			// with the universal SEQUENCE tag (RFC 4211 section 4.1).
			var input cryptobyte.String
			content.ReadASN1(&input, contextTag(0))
			pop.RawPOPOSKInput = wrapTag(cbasn1.SEQUENCE, input)
		}
		alg, err := readAlgorithmIdentifier(&content, field+".signature.algorithmIdentifier")
		if err != nil {
			return nil, err
		}
		pop.Algorithm = alg
		var signature asn1.BitString
		if !content.ReadASN1BitString(&signature) || signature.BitLength%8 != 0 || !content.Empty() {
			return nil, malformed(field+".signature", "invalid signature BIT STRING")
		}
		pop.Signature = signature.Bytes
	case contextTag(2):
		pop.Type = POPKeyEncipherment
	case contextTag(3):
		pop.Type = POPKeyAgreement
	default:
		return nil, malformed(field, "tag 0x%02x is not a ProofOfPossession choice", uint8(tag))
	}
	return pop, nil
}

func parseCertID(der []byte) (*CertID, error) {
	s := cryptobyte.String(der)
	var seq cryptobyte.String
	if !s.ReadASN1(&seq, cbasn1.SEQUENCE) || !s.Empty() {
		return nil, malformed("oldCertID", "not a CertId")
	}
	issuer, err := readGeneralName(&seq, "oldCertID.issuer")
	if err != nil {
		return nil, err
	}
	serial := new(big.Int)
	if !seq.ReadASN1Integer(serial) || !seq.Empty() {
		return nil, malformed("oldCertID.serialNumber", "not an INTEGER")
	}
	return &CertID{Issuer: issuer, SerialNumber: serial}, nil
}

func readStatusInfo(s *cryptobyte.String, field string) (StatusInfo, error) {
	var info StatusInfo
	var seq cryptobyte.String
	if !s.ReadASN1(&seq, cbasn1.SEQUENCE) {
		return info, malformed(field, "not a PKIStatusInfo")
	}
	status, err := readSmallInteger(&seq, field+".status")
	if err != nil {
		return info, err
	}
	if status < 0 || status > int64(StatusKeyUpdateWarning) {
		return info, malformed(field+".status", "unknown PKIStatus %d", status)
	}
	info.Status = PKIStatus(status)
	if seq.PeekASN1Tag(cbasn1.SEQUENCE) {
		if info.StatusString, err = readFreeText(&seq, field+".statusString"); err != nil {
			return info, err
		}
	}
	if seq.PeekASN1Tag(cbasn1.BIT_STRING) {
		var bits asn1.BitString
		if !seq.ReadASN1BitString(&bits) {
			return info, malformed(field+".failInfo", "invalid BIT STRING")
		}
		for i := 0; i < bits.BitLength && i < 32; i++ {
			if bits.At(i) == 1 {
				info.FailInfo |= 1 << i
			}
		}
	}
	if !seq.Empty() {
		return info, malformed(field, "trailing data")
	}
	return info, nil
}

func parseCertRepMessage(content cryptobyte.String, field string) (*CertRepMessage, error) {
	var seq cryptobyte.String
	if !content.ReadASN1(&seq, cbasn1.SEQUENCE) || !content.Empty() {
		return nil, malformed(field, "not a CertRepMessage")
	}
	rep := &CertRepMessage{}
	var caPubs cryptobyte.String
	var present bool
	if !seq.ReadOptionalASN1(&caPubs, &present, contextTag(1)) {
		return nil, malformed(field+".caPubs", "invalid encoding")
	}
	if present {
		certs, err := parseCertificateSequence(caPubs, field+".caPubs")
		if err != nil {
			return nil, err
		}
		rep.CAPubs = certs
	}
	var responses cryptobyte.String
	if !seq.ReadASN1(&responses, cbasn1.SEQUENCE) || !seq.Empty() {
		return nil, malformed(field+".response", "not a SEQUENCE OF CertResponse")
	}
	for !responses.Empty() {
		if len(rep.Responses) == maxSequenceItems {
			return nil, malformed(field+".response", "more than %d entries", maxSequenceItems)
		}
		resp, err := parseCertResponse(&responses, fmt.Sprintf("%s.response[%d]", field, len(rep.Responses)))
		if err != nil {
			return nil, err
		}
		rep.Responses = append(rep.Responses, resp)
	}
	return rep, nil
}

func parseCertResponse(s *cryptobyte.String, field string) (CertResponse, error) {
	var resp CertResponse
	var seq cryptobyte.String
	if !s.ReadASN1(&seq, cbasn1.SEQUENCE) {
		return resp, malformed(field, "not a SEQUENCE")
	}
	var err error
	if resp.CertReqID, err = readSmallInteger(&seq, field+".certReqId"); err != nil {
		return resp, err
	}
	if resp.Status, err = readStatusInfo(&seq, field+".status"); err != nil {
		return resp, err
	}
	if seq.PeekASN1Tag(cbasn1.SEQUENCE) {
		pair, err := parseCertifiedKeyPair(&seq, field+".certifiedKeyPair")
		if err != nil {
			return resp, err
		}
		resp.Certificate, resp.EncryptedPrivateKey = pair.Certificate, pair.EncryptedPrivateKey
	}
	if seq.PeekASN1Tag(cbasn1.OCTET_STRING) {
		var info cryptobyte.String
		seq.ReadASN1(&info, cbasn1.OCTET_STRING)
		resp.RspInfo = info
	}
	if !seq.Empty() {
		return resp, malformed(field, "trailing data")
	}
	return resp, nil
}

func parseRevReqContent(content cryptobyte.String, field string) ([]RevDetails, error) {
	var seq cryptobyte.String
	if !content.ReadASN1(&seq, cbasn1.SEQUENCE) || !content.Empty() {
		return nil, malformed(field, "not a SEQUENCE OF RevDetails")
	}
	var details []RevDetails
	for !seq.Empty() {
		if len(details) == maxSequenceItems {
			return nil, malformed(field, "more than %d RevDetails", maxSequenceItems)
		}
		name := fmt.Sprintf("%s[%d]", field, len(details))
		var entry cryptobyte.String
		if !seq.ReadASN1(&entry, cbasn1.SEQUENCE) {
			return nil, malformed(name, "not a SEQUENCE")
		}
		var d RevDetails
		var err error
		if d.CertDetails, err = parseCertTemplate(&entry, name+".certDetails"); err != nil {
			return nil, err
		}
		if !entry.Empty() {
			if d.CRLEntryDetails, err = parseExtensions(&entry, name+".crlEntryDetails"); err != nil {
				return nil, err
			}
		}
		if !entry.Empty() {
			return nil, malformed(name, "trailing data")
		}
		details = append(details, d)
	}
	if len(details) == 0 {
		return nil, malformed(field, "empty")
	}
	return details, nil
}

func parseRevRepContent(content cryptobyte.String, field string) (*RevRepContent, error) {
	var seq, statuses cryptobyte.String
	if !content.ReadASN1(&seq, cbasn1.SEQUENCE) || !content.Empty() || !seq.ReadASN1(&statuses, cbasn1.SEQUENCE) {
		return nil, malformed(field, "not a RevRepContent")
	}
	rep := &RevRepContent{}
	for !statuses.Empty() {
		if len(rep.Status) == maxSequenceItems {
			return nil, malformed(field+".status", "more than %d entries", maxSequenceItems)
		}
		info, err := readStatusInfo(&statuses, field+".status")
		if err != nil {
			return nil, err
		}
		rep.Status = append(rep.Status, info)
	}
	if len(rep.Status) == 0 {
		return nil, malformed(field+".status", "empty, but SIZE (1..MAX) is required")
	}
	var revCerts cryptobyte.String
	var present bool
	if !seq.ReadOptionalASN1(&revCerts, &present, contextTag(0)) {
		return nil, malformed(field+".revCerts", "invalid encoding")
	}
	if present {
		var list cryptobyte.String
		if !revCerts.ReadASN1(&list, cbasn1.SEQUENCE) || !revCerts.Empty() {
			return nil, malformed(field+".revCerts", "not a SEQUENCE OF CertId")
		}
		for !list.Empty() {
			if len(rep.RevCert) == maxSequenceItems {
				return nil, malformed(field+".revCerts", "more than %d entries", maxSequenceItems)
			}
			var element cryptobyte.String
			if !list.ReadASN1Element(&element, cbasn1.SEQUENCE) {
				return nil, malformed(field+".revCerts", "entry is not a CertId")
			}
			id, err := parseCertID(element)
			if err != nil {
				return nil, err
			}
			rep.RevCert = append(rep.RevCert, *id)
		}
	}
	if seq.PeekASN1Tag(contextTag(1)) {
		seq.SkipASN1(contextTag(1)) // crls: not used by the router's client side
	}
	if !seq.Empty() {
		return nil, malformed(field, "trailing data")
	}
	return rep, nil
}

func parseNested(content cryptobyte.String, field string) ([][]byte, error) {
	var seq cryptobyte.String
	if !content.ReadASN1(&seq, cbasn1.SEQUENCE) || !content.Empty() {
		return nil, malformed(field, "not a SEQUENCE OF PKIMessage")
	}
	var inner [][]byte
	for !seq.Empty() {
		if len(inner) == maxNested {
			return nil, malformed(field, "more than %d inner messages", maxNested)
		}
		var element cryptobyte.String
		if !seq.ReadASN1Element(&element, cbasn1.SEQUENCE) {
			return nil, malformed(field, "entry is not a PKIMessage")
		}
		inner = append(inner, element)
	}
	if len(inner) == 0 {
		return nil, malformed(field, "empty, but SIZE (1..MAX) is required")
	}
	return inner, nil
}

func parseErrorContent(content cryptobyte.String, field string) (*ErrorContent, error) {
	var seq cryptobyte.String
	if !content.ReadASN1(&seq, cbasn1.SEQUENCE) || !content.Empty() {
		return nil, malformed(field, "not an ErrorMsgContent")
	}
	e := &ErrorContent{}
	var err error
	if e.Status, err = readStatusInfo(&seq, field+".pKIStatusInfo"); err != nil {
		return nil, err
	}
	if seq.PeekASN1Tag(cbasn1.INTEGER) {
		code, err := readSmallInteger(&seq, field+".errorCode")
		if err != nil {
			return nil, err
		}
		e.ErrorCode = &code
	}
	if seq.PeekASN1Tag(cbasn1.SEQUENCE) {
		if e.ErrorDetails, err = readFreeText(&seq, field+".errorDetails"); err != nil {
			return nil, err
		}
	}
	if !seq.Empty() {
		return nil, malformed(field, "trailing data")
	}
	return e, nil
}

func parseCertConfirmContent(content cryptobyte.String, field string) ([]CertStatus, error) {
	var seq cryptobyte.String
	if !content.ReadASN1(&seq, cbasn1.SEQUENCE) || !content.Empty() {
		return nil, malformed(field, "not a SEQUENCE OF CertStatus")
	}
	var confirms []CertStatus
	for !seq.Empty() {
		if len(confirms) == maxSequenceItems {
			return nil, malformed(field, "more than %d CertStatus", maxSequenceItems)
		}
		name := fmt.Sprintf("%s[%d]", field, len(confirms))
		var entry, hash cryptobyte.String
		if !seq.ReadASN1(&entry, cbasn1.SEQUENCE) || !entry.ReadASN1(&hash, cbasn1.OCTET_STRING) {
			return nil, malformed(name, "invalid certHash")
		}
		status := CertStatus{CertHash: hash}
		var err error
		if status.CertReqID, err = readSmallInteger(&entry, name+".certReqId"); err != nil {
			return nil, err
		}
		if entry.PeekASN1Tag(cbasn1.SEQUENCE) {
			info, err := readStatusInfo(&entry, name+".statusInfo")
			if err != nil {
				return nil, err
			}
			status.StatusInfo = &info
		}
		if entry.PeekASN1Tag(contextTag(0)) {
			var wrapper cryptobyte.String
			entry.ReadASN1(&wrapper, contextTag(0))
			alg, err := readAlgorithmIdentifier(&wrapper, name+".hashAlg")
			if err != nil {
				return nil, err
			}
			if !wrapper.Empty() {
				return nil, malformed(name+".hashAlg", "trailing data")
			}
			status.HashAlg = &alg
		}
		if !entry.Empty() {
			return nil, malformed(name, "trailing data")
		}
		confirms = append(confirms, status)
	}
	return confirms, nil
}

func parsePollReqContent(content cryptobyte.String, field string) ([]int64, error) {
	var seq cryptobyte.String
	if !content.ReadASN1(&seq, cbasn1.SEQUENCE) || !content.Empty() {
		return nil, malformed(field, "not a PollReqContent")
	}
	var ids []int64
	for !seq.Empty() {
		if len(ids) == maxSequenceItems {
			return nil, malformed(field, "more than %d entries", maxSequenceItems)
		}
		var entry cryptobyte.String
		if !seq.ReadASN1(&entry, cbasn1.SEQUENCE) {
			return nil, malformed(field, "entry is not a SEQUENCE")
		}
		id, err := readSmallInteger(&entry, field+".certReqId")
		if err != nil {
			return nil, err
		}
		if !entry.Empty() {
			return nil, malformed(field, "trailing data in entry")
		}
		ids = append(ids, id)
	}
	if len(ids) == 0 {
		return nil, malformed(field, "empty")
	}
	return ids, nil
}

func parsePollRepContent(content cryptobyte.String, field string) ([]PollResponse, error) {
	var seq cryptobyte.String
	if !content.ReadASN1(&seq, cbasn1.SEQUENCE) || !content.Empty() {
		return nil, malformed(field, "not a PollRepContent")
	}
	var reps []PollResponse
	for !seq.Empty() {
		if len(reps) == maxSequenceItems {
			return nil, malformed(field, "more than %d entries", maxSequenceItems)
		}
		var entry cryptobyte.String
		if !seq.ReadASN1(&entry, cbasn1.SEQUENCE) {
			return nil, malformed(field, "entry is not a SEQUENCE")
		}
		var rep PollResponse
		var err error
		if rep.CertReqID, err = readSmallInteger(&entry, field+".certReqId"); err != nil {
			return nil, err
		}
		if rep.CheckAfter, err = readSmallInteger(&entry, field+".checkAfter"); err != nil {
			return nil, err
		}
		if !entry.Empty() {
			if rep.Reason, err = readFreeText(&entry, field+".reason"); err != nil {
				return nil, err
			}
		}
		if !entry.Empty() {
			return nil, malformed(field, "trailing data in entry")
		}
		reps = append(reps, rep)
	}
	return reps, nil
}

// parseCertifiedKeyPair reads a CertifiedKeyPair (RFC 9810 section 5.3.4).
//
//	CertifiedKeyPair ::= SEQUENCE { certOrEncCert CertOrEncCert,
//	    privateKey [0] EncryptedKey OPTIONAL, publicationInfo [1] PKIPublicationInfo OPTIONAL }
func parseCertifiedKeyPair(s *cryptobyte.String, field string) (CertifiedKeyPair, error) {
	var out CertifiedKeyPair
	var pair cryptobyte.String
	if !s.ReadASN1(&pair, cbasn1.SEQUENCE) {
		return out, malformed(field, "not a SEQUENCE")
	}
	var certOrEnc, certDER cryptobyte.String
	switch {
	case pair.PeekASN1Tag(contextTag(0)):
		if !pair.ReadASN1(&certOrEnc, contextTag(0)) || !certOrEnc.ReadASN1Element(&certDER, cbasn1.SEQUENCE) || !certOrEnc.Empty() {
			return out, malformed(field+".certificate", "not a Certificate")
		}
		cert, err := x509.ParseCertificate(certDER)
		if err != nil {
			return out, malformed(field+".certificate", "%v", err)
		}
		out.Certificate = cert
	case pair.PeekASN1Tag(contextTag(1)):
		pair.SkipASN1(contextTag(1)) // encryptedCert: not supported, kept out
	default:
		return out, malformed(field, "missing certOrEncCert")
	}
	if pair.PeekASN1Tag(contextTag(0)) {
		var key cryptobyte.String
		pair.ReadASN1(&key, contextTag(0))
		out.EncryptedPrivateKey = key
	}
	if pair.PeekASN1Tag(contextTag(1)) {
		pair.SkipASN1(contextTag(1))
	}
	if !pair.Empty() {
		return out, malformed(field, "trailing data")
	}
	return out, nil
}

// parseKeyRecRepContent reads the content of a krp (RFC 9810 section 5.3.8).
func parseKeyRecRepContent(content cryptobyte.String, field string) (*KeyRecRepContent, error) {
	var seq cryptobyte.String
	if !content.ReadASN1(&seq, cbasn1.SEQUENCE) || !content.Empty() {
		return nil, malformed(field, "not a KeyRecRepContent")
	}
	rep := &KeyRecRepContent{}
	var err error
	if rep.Status, err = readStatusInfo(&seq, field+".status"); err != nil {
		return nil, err
	}
	if seq.PeekASN1Tag(contextTag(0)) {
		var wrapped, certDER cryptobyte.String
		seq.ReadASN1(&wrapped, contextTag(0))
		if !wrapped.ReadASN1Element(&certDER, cbasn1.SEQUENCE) || !wrapped.Empty() {
			return nil, malformed(field+".newSigCert", "not a Certificate")
		}
		if rep.NewSigCert, err = x509.ParseCertificate(certDER); err != nil {
			return nil, malformed(field+".newSigCert", "%v", err)
		}
	}
	if seq.PeekASN1Tag(contextTag(1)) {
		var wrapped cryptobyte.String
		seq.ReadASN1(&wrapped, contextTag(1))
		if rep.CACerts, err = parseCertificateSequence(wrapped, field+".caCerts"); err != nil {
			return nil, err
		}
	}
	if seq.PeekASN1Tag(contextTag(2)) {
		var wrapped, history cryptobyte.String
		seq.ReadASN1(&wrapped, contextTag(2))
		if !wrapped.ReadASN1(&history, cbasn1.SEQUENCE) || !wrapped.Empty() {
			return nil, malformed(field+".keyPairHist", "not a SEQUENCE")
		}
		for !history.Empty() {
			if len(rep.KeyPairHist) == maxSequenceItems {
				return nil, malformed(field+".keyPairHist", "more than %d entries", maxSequenceItems)
			}
			pair, err := parseCertifiedKeyPair(&history, field+".keyPairHist")
			if err != nil {
				return nil, err
			}
			rep.KeyPairHist = append(rep.KeyPairHist, pair)
		}
	}
	if !seq.Empty() {
		return nil, malformed(field, "trailing data")
	}
	return rep, nil
}
