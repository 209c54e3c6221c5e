// Package cmp is certgate's model and DER codec of the Certificate Management Protocol:
// PKIMessage, PKIHeader and PKIBody of RFC 9810 (which obsoletes RFC 4210 and RFC 9480),
// the CRMF structures of RFC 4211 that CMP carries, and message protection with
// PasswordBasedMac (RFC 4211 section 4.4), PBMAC1 (RFC 8018, profiled by RFC 9481) and
// signatures (ECDSA, RSA PKCS #1 v1.5, RSA-PSS, Ed25519).
//
// No maintained Go library implements CMP, so this one is written by hand. It imports
// nothing else of certgate: the router, every frontend, the CMP client and the upstream-CMP
// backend all speak it.
//
// # Decoding and encoding
//
// ParseMessage decodes peer bytes with golang.org/x/crypto/cryptobyte, strictly: DER
// only, no trailing data after any structure, every field named in its error, and limits
// on counts so that a small message cannot expand into a large allocation. Errors wrap
// ErrMalformed, so callers can answer with failInfo badDataFormat without reading text.
// Marshal encodes with a cryptobyte.Builder. The PKIXCMP module is EXPLICIT TAGS and the
// CRMF module is IMPLICIT TAGS; writing the tags out by hand in one place keeps that
// mix visible, where encoding/asn1 struct tags make it easy to mark one field wrongly.
//
// A decoded Message keeps the raw DER of its header and body, because protection is
// computed over exactly the bytes the sender produced (RFC 9810 section 5.1.3).
//
// # What is implemented
//
// Bodies decoded into Go types: ir, ip, cr, cp, p10cr, kur, kup, krr, krp, rr, rp, pkiconf, nested,
// genm, genp, error, certConf, pollReq, pollRep. Bodies kept as raw DER only (the router
// rejects them with an error message): popdecc, popdecr, ccr, ccp, ckuann, cann, rann,
// crlann.
//
// Proof of possession: signature POP with and without poposkInput, raVerified; the
// keyEncipherment and keyAgreement choices are decoded to their type only.
package cmp
