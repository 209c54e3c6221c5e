package cmp

import (
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"math/big"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// wrapTag returns content wrapped in one DER element with the given tag.
func wrapTag(tag cbasn1.Tag, content []byte) []byte {
	var b cryptobyte.Builder
	b.AddASN1(tag, func(b *cryptobyte.Builder) { b.AddBytes(content) })
	return b.BytesOrPanic() // cannot fail: the only error is a length over 2^32
}

// wrapExplicit returns element wrapped in the constructed context-specific tag [n].
func wrapExplicit(n int, element []byte) []byte {
	return wrapTag(contextTag(n), element)
}

// Encode fills RawHeader and RawBody with the DER of Header and Body. Protection must be
// computed after Encode, over ProtectedPart.
func (m *Message) Encode() error {
	header, err := encodeHeader(&m.Header)
	if err != nil {
		return err
	}
	body, err := encodeBody(&m.Body)
	if err != nil {
		return err
	}
	m.RawHeader, m.RawBody = header, body
	return nil
}

// Bytes assembles the DER PKIMessage from RawHeader, RawBody, Protection and ExtraCerts.
func (m *Message) Bytes() ([]byte, error) {
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddBytes(m.RawHeader)
		b.AddBytes(m.RawBody)
		if m.Protection != nil {
			b.AddASN1(contextTag(0), func(b *cryptobyte.Builder) {
				b.AddASN1BitString(m.Protection)
			})
		}
		if len(m.ExtraCerts) > 0 {
			b.AddASN1(contextTag(1), func(b *cryptobyte.Builder) {
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					for _, cert := range m.ExtraCerts {
						b.AddBytes(cert.Raw)
					}
				})
			})
		}
	})
	return b.Bytes()
}

// ProtectedPart returns the DER of ProtectedPart ::= SEQUENCE { header, body }, the input
// of every protection algorithm (RFC 9810 section 5.1.3).
func ProtectedPart(rawHeader, rawBody []byte) []byte {
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddBytes(rawHeader)
		b.AddBytes(rawBody)
	})
	return b.BytesOrPanic()
}

func addAlgorithmIdentifier(b *cryptobyte.Builder, alg pkix.AlgorithmIdentifier) {
	der, err := asn1.Marshal(alg)
	if err != nil {
		b.SetError(fmt.Errorf("cmp: encoding AlgorithmIdentifier %s: %w", alg.Algorithm, err))
		return
	}
	b.AddBytes(der)
}

func addFreeText(b *cryptobyte.Builder, texts []string) {
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		for _, text := range texts {
			b.AddASN1(cbasn1.UTF8String, func(b *cryptobyte.Builder) { b.AddBytes([]byte(text)) })
		}
	})
}

func addInfoSequence(b *cryptobyte.Builder, infos []InfoTypeAndValue) {
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		for _, info := range infos {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1ObjectIdentifier(info.Type)
				if info.Value != nil {
					b.AddBytes(info.Value)
				}
			})
		}
	})
}

func addStatusInfo(b *cryptobyte.Builder, info StatusInfo) {
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1Int64(int64(info.Status))
		if len(info.StatusString) > 0 {
			addFreeText(b, info.StatusString)
		}
		if info.FailInfo != 0 {
			b.AddASN1(cbasn1.BIT_STRING, func(b *cryptobyte.Builder) { b.AddBytes(info.FailInfo.bitString()) })
		}
	})
}

func encodeHeader(h *Header) ([]byte, error) {
	if h.Sender.Raw == nil || h.Recipient.Raw == nil {
		return nil, fmt.Errorf("cmp: header sender and recipient are required")
	}
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1Int64(int64(h.PVNO))
		b.AddBytes(h.Sender.Raw)
		b.AddBytes(h.Recipient.Raw)
		if !h.MessageTime.IsZero() {
			b.AddASN1(contextTag(0), func(b *cryptobyte.Builder) {
				b.AddASN1GeneralizedTime(h.MessageTime.UTC().Truncate(time.Second))
			})
		}
		if h.ProtectionAlg != nil {
			b.AddASN1(contextTag(1), func(b *cryptobyte.Builder) { addAlgorithmIdentifier(b, *h.ProtectionAlg) })
		}
		for i, value := range [][]byte{h.SenderKID, h.RecipKID, h.TransactionID, h.SenderNonce, h.RecipNonce} {
			if value == nil {
				continue
			}
			b.AddASN1(contextTag(2+i), func(b *cryptobyte.Builder) { b.AddASN1OctetString(value) })
		}
		if len(h.FreeText) > 0 {
			b.AddASN1(contextTag(7), func(b *cryptobyte.Builder) { addFreeText(b, h.FreeText) })
		}
		if len(h.GeneralInfo) > 0 {
			b.AddASN1(contextTag(8), func(b *cryptobyte.Builder) { addInfoSequence(b, h.GeneralInfo) })
		}
	})
	return b.Bytes()
}

// encodeBody returns the DER of the PKIBody CHOICE element [n] EXPLICIT content.
func encodeBody(body *Body) ([]byte, error) {
	if body.Type < 0 || body.Type > bodyTypeMax {
		return nil, fmt.Errorf("cmp: unknown body type %d", int(body.Type))
	}
	var b cryptobyte.Builder
	b.AddASN1(contextTag(int(body.Type)), func(b *cryptobyte.Builder) {
		switch body.Type {
		case BodyIR, BodyCR, BodyKUR, BodyKRR, BodyCCR:
			addCertReqMessages(b, body.CertReqs)
		case BodyIP, BodyCP, BodyKUP, BodyCCP:
			if body.CertRep == nil {
				b.SetError(fmt.Errorf("cmp: %s body without CertRep", body.Type))
				return
			}
			addCertRepMessage(b, body.CertRep)
		case BodyKRP:
			if body.KeyRecRep == nil {
				b.SetError(fmt.Errorf("cmp: krp body without KeyRecRep"))
				return
			}
			addKeyRecRepContent(b, body.KeyRecRep)
		case BodyP10CR:
			if body.P10CR == nil {
				b.SetError(fmt.Errorf("cmp: p10cr body without request"))
				return
			}
			b.AddBytes(body.P10CR.Raw)
		case BodyRR:
			addRevReqContent(b, body.RevReqs)
		case BodyRP:
			if body.RevRep == nil {
				b.SetError(fmt.Errorf("cmp: rp body without RevRep"))
				return
			}
			addRevRepContent(b, body.RevRep)
		case BodyPKIConf:
			b.AddASN1NULL()
		case BodyNested:
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				for _, inner := range body.Nested {
					b.AddBytes(inner)
				}
			})
		case BodyGenM, BodyGenP:
			addInfoSequence(b, body.Infos)
		case BodyError:
			if body.Error == nil {
				b.SetError(fmt.Errorf("cmp: error body without content"))
				return
			}
			addErrorContent(b, body.Error)
		case BodyCertConf:
			addCertConfirmContent(b, body.Confirms)
		case BodyPollReq:
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				for _, id := range body.PollReqs {
					b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { b.AddASN1Int64(id) })
				}
			})
		case BodyPollRep:
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				for _, rep := range body.PollReps {
					b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
						b.AddASN1Int64(rep.CertReqID)
						b.AddASN1Int64(rep.CheckAfter)
						if len(rep.Reason) > 0 {
							addFreeText(b, rep.Reason)
						}
					})
				}
			})
		default:
			if body.Raw == nil {
				b.SetError(fmt.Errorf("cmp: encoding %s bodies is not supported", body.Type))
				return
			}
			b.AddBytes(body.Raw)
		}
	})
	return b.Bytes()
}

func addCertReqMessages(b *cryptobyte.Builder, msgs []CertReqMsg) {
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		for i := range msgs {
			msg := &msgs[i]
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				if msg.RawCertReq == nil {
					raw, err := msg.EncodeCertRequest()
					if err != nil {
						b.SetError(err)
						return
					}
					msg.RawCertReq = raw
				}
				b.AddBytes(msg.RawCertReq)
				if msg.POP != nil {
					addPOP(b, msg.POP)
				}
				if len(msg.RegInfo) > 0 {
					addAttributes(b, msg.RegInfo)
				}
			})
		}
	})
}

// EncodeCertRequest returns the DER of the CertRequest of m, which a signature POP
// without poposkInput signs. It does not change m.
func (m *CertReqMsg) EncodeCertRequest() ([]byte, error) {
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1Int64(m.CertReqID)
		addCertTemplate(b, &m.Template)
		if len(m.Controls) > 0 {
			addAttributes(b, m.Controls)
		}
	})
	return b.Bytes()
}

func addAttributes(b *cryptobyte.Builder, attrs []AttributeTypeAndValue) {
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		for _, attr := range attrs {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1ObjectIdentifier(attr.Type)
				b.AddBytes(attr.Value)
			})
		}
	})
}

func addPOP(b *cryptobyte.Builder, pop *ProofOfPossession) {
	switch pop.Type {
	case POPRAVerified:
		b.AddASN1(cbasn1.Tag(0).ContextSpecific(), func(*cryptobyte.Builder) {})
	case POPSignature:
		b.AddASN1(contextTag(1), func(b *cryptobyte.Builder) {
			if pop.RawPOPOSKInput != nil {
				input := cryptobyte.String(pop.RawPOPOSKInput)
				var content cryptobyte.String
				if !input.ReadASN1(&content, cbasn1.SEQUENCE) {
					b.SetError(fmt.Errorf("cmp: poposkInput is not a SEQUENCE"))
					return
				}
				b.AddASN1(contextTag(0), func(b *cryptobyte.Builder) { b.AddBytes(content) })
			}
			addAlgorithmIdentifier(b, pop.Algorithm)
			b.AddASN1BitString(pop.Signature)
		})
	default:
		b.SetError(fmt.Errorf("cmp: encoding POP type %d is not supported", pop.Type))
	}
}

// addTime encodes a Time as RFC 5280 section 4.1.2.5 requires: UTCTime through 2049,
// GeneralizedTime from 2050.
func addTime(b *cryptobyte.Builder, t time.Time) {
	t = t.UTC().Truncate(time.Second)
	if t.Year() < 2050 {
		b.AddASN1UTCTime(t)
	} else {
		b.AddASN1GeneralizedTime(t)
	}
}

func addCertTemplate(b *cryptobyte.Builder, t *CertTemplate) {
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		if t.Version != nil {
			b.AddASN1Int64WithTag(*t.Version, cbasn1.Tag(0).ContextSpecific())
		}
		if t.SerialNumber != nil {
			b.AddASN1(cbasn1.Tag(1).ContextSpecific(), func(b *cryptobyte.Builder) {
				b.AddBytes(integerContent(t.SerialNumber))
			})
		}
		if t.SigningAlg != nil {
			der, err := asn1.Marshal(*t.SigningAlg)
			if err != nil {
				b.SetError(err)
				return
			}
			b.AddASN1(contextTag(2), func(b *cryptobyte.Builder) { b.AddBytes(stripTag(der)) })
		}
		if t.RawIssuer != nil {
			b.AddASN1(contextTag(3), func(b *cryptobyte.Builder) { b.AddBytes(t.RawIssuer) })
		}
		if !t.NotBefore.IsZero() || !t.NotAfter.IsZero() {
			b.AddASN1(contextTag(4), func(b *cryptobyte.Builder) {
				if !t.NotBefore.IsZero() {
					b.AddASN1(contextTag(0), func(b *cryptobyte.Builder) { addTime(b, t.NotBefore) })
				}
				if !t.NotAfter.IsZero() {
					b.AddASN1(contextTag(1), func(b *cryptobyte.Builder) { addTime(b, t.NotAfter) })
				}
			})
		}
		if t.RawSubject != nil {
			b.AddASN1(contextTag(5), func(b *cryptobyte.Builder) { b.AddBytes(t.RawSubject) })
		}
		if t.RawPublicKey != nil {
			b.AddASN1(contextTag(6), func(b *cryptobyte.Builder) { b.AddBytes(stripTag(t.RawPublicKey)) })
		}
		if len(t.Extensions) > 0 {
			b.AddASN1(contextTag(9), func(b *cryptobyte.Builder) { addExtensionList(b, t.Extensions) })
		}
	})
}

func addExtensionList(b *cryptobyte.Builder, exts []pkix.Extension) {
	for _, ext := range exts {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1ObjectIdentifier(ext.Id)
			if ext.Critical {
				b.AddASN1Boolean(true)
			}
			b.AddASN1OctetString(ext.Value)
		})
	}
}

// stripTag returns the content octets of a single DER element.
func stripTag(der []byte) []byte {
	s := cryptobyte.String(der)
	var content cryptobyte.String
	var tag cbasn1.Tag
	if !s.ReadAnyASN1(&content, &tag) {
		return nil
	}
	return content
}

// integerContent returns the two's-complement content octets of a DER INTEGER.
func integerContent(n *big.Int) []byte {
	var b cryptobyte.Builder
	b.AddASN1BigInt(n)
	return stripTag(b.BytesOrPanic())
}

func addCertRepMessage(b *cryptobyte.Builder, rep *CertRepMessage) {
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		if len(rep.CAPubs) > 0 {
			b.AddASN1(contextTag(1), func(b *cryptobyte.Builder) {
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					for _, cert := range rep.CAPubs {
						b.AddBytes(cert.Raw)
					}
				})
			})
		}
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			for _, resp := range rep.Responses {
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					b.AddASN1Int64(resp.CertReqID)
					addStatusInfo(b, resp.Status)
					if resp.Certificate != nil {
						addCertifiedKeyPair(b, CertifiedKeyPair{Certificate: resp.Certificate, EncryptedPrivateKey: resp.EncryptedPrivateKey})
					}
					if resp.RspInfo != nil {
						b.AddASN1OctetString(resp.RspInfo)
					}
				})
			}
		})
	})
}

func addRevReqContent(b *cryptobyte.Builder, details []RevDetails) {
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		for i := range details {
			d := &details[i]
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				addCertTemplate(b, &d.CertDetails)
				if len(d.CRLEntryDetails) > 0 {
					b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { addExtensionList(b, d.CRLEntryDetails) })
				}
			})
		}
	})
}

func addRevRepContent(b *cryptobyte.Builder, rep *RevRepContent) {
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			for _, status := range rep.Status {
				addStatusInfo(b, status)
			}
		})
		if len(rep.RevCert) > 0 {
			b.AddASN1(contextTag(0), func(b *cryptobyte.Builder) {
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					for _, id := range rep.RevCert {
						addCertID(b, id)
					}
				})
			})
		}
	})
}

func addCertID(b *cryptobyte.Builder, id CertID) {
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddBytes(id.Issuer.Raw)
		b.AddASN1BigInt(id.SerialNumber)
	})
}

// EncodeCertID returns the DER of a CertId, the value of the oldCertID control.
func EncodeCertID(id CertID) ([]byte, error) {
	var b cryptobyte.Builder
	addCertID(&b, id)
	return b.Bytes()
}

func addErrorContent(b *cryptobyte.Builder, e *ErrorContent) {
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		addStatusInfo(b, e.Status)
		if e.ErrorCode != nil {
			b.AddASN1Int64(*e.ErrorCode)
		}
		if len(e.ErrorDetails) > 0 {
			addFreeText(b, e.ErrorDetails)
		}
	})
}

func addCertConfirmContent(b *cryptobyte.Builder, confirms []CertStatus) {
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		for _, status := range confirms {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1OctetString(status.CertHash)
				b.AddASN1Int64(status.CertReqID)
				if status.StatusInfo != nil {
					addStatusInfo(b, *status.StatusInfo)
				}
				if status.HashAlg != nil {
					b.AddASN1(contextTag(0), func(b *cryptobyte.Builder) { addAlgorithmIdentifier(b, *status.HashAlg) })
				}
			})
		}
	})
}

func addCertifiedKeyPair(b *cryptobyte.Builder, pair CertifiedKeyPair) {
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1(contextTag(0), func(b *cryptobyte.Builder) { b.AddBytes(pair.Certificate.Raw) })
		if pair.EncryptedPrivateKey != nil {
			b.AddASN1(contextTag(0), func(b *cryptobyte.Builder) { b.AddBytes(pair.EncryptedPrivateKey) })
		}
	})
}

func addKeyRecRepContent(b *cryptobyte.Builder, rep *KeyRecRepContent) {
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		addStatusInfo(b, rep.Status)
		if rep.NewSigCert != nil {
			b.AddASN1(contextTag(0), func(b *cryptobyte.Builder) { b.AddBytes(rep.NewSigCert.Raw) })
		}
		if len(rep.CACerts) > 0 {
			b.AddASN1(contextTag(1), func(b *cryptobyte.Builder) {
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					for _, cert := range rep.CACerts {
						b.AddBytes(cert.Raw)
					}
				})
			})
		}
		if len(rep.KeyPairHist) > 0 {
			b.AddASN1(contextTag(2), func(b *cryptobyte.Builder) {
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					for _, pair := range rep.KeyPairHist {
						addCertifiedKeyPair(b, pair)
					}
				})
			})
		}
	})
}
