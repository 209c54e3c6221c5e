package cmp

import "encoding/asn1"

// Object identifiers. The CMP ones come from the PKIXCMP-2023 module of RFC 9810
// section A.2 (id-pkix 1.3.6.1.5.5.7; id-it ::= { id-pkix 4 }), CRMF's from RFC 4211
// (id-regCtrl ::= { id-pkip 1 }, id-pkip ::= { id-pkix 5 }), the MAC algorithms from RFC 9481.
var (
	// Protection algorithms.
	OIDPasswordBasedMAC = asn1.ObjectIdentifier{1, 2, 840, 113533, 7, 66, 13} // RFC 4211 section 4.4
	OIDPBMAC1           = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 14}  // RFC 8018 appendix A.5
	OIDPBKDF2           = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 12}  // RFC 8018 appendix A.2

	// One-way functions for PasswordBasedMac.
	OIDSHA1   = asn1.ObjectIdentifier{1, 3, 14, 3, 2, 26}
	OIDSHA224 = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 4}
	OIDSHA256 = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}
	OIDSHA384 = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 2}
	OIDSHA512 = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 3}

	// MAC algorithms. OpenSSL 3.0's `openssl cmp` uses hmac-sha1 by default.
	OIDHMACSHA1   = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 8, 1, 2} // RFC 3370 section 3.1
	OIDHMACSHA224 = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 8}   // RFC 4231
	OIDHMACSHA256 = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 9}
	OIDHMACSHA384 = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 10}
	OIDHMACSHA512 = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 11}

	// Signature algorithms.
	OIDSHA1WithRSA      = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 5}
	OIDSHA256WithRSA    = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 11}
	OIDSHA384WithRSA    = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 12}
	OIDSHA512WithRSA    = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 13}
	OIDRSASSAPSS        = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 10}
	OIDMGF1             = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 8}
	OIDECDSAWithSHA1    = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 1}
	OIDECDSAWithSHA256  = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 2}
	OIDECDSAWithSHA384  = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 3}
	OIDECDSAWithSHA512  = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 4}
	OIDEd25519          = asn1.ObjectIdentifier{1, 3, 101, 112}
	OIDPublicKeyRSA     = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 1}
	OIDPublicKeyECDSA   = asn1.ObjectIdentifier{1, 2, 840, 10045, 2, 1}
	OIDNamedCurveP256   = asn1.ObjectIdentifier{1, 2, 840, 10045, 3, 1, 7}
	OIDNamedCurveP384   = asn1.ObjectIdentifier{1, 3, 132, 0, 34}
	OIDNamedCurveP521   = asn1.ObjectIdentifier{1, 3, 132, 0, 35}
	OIDExtensionRequest = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 14} // PKCS #9

	// CRMF registration controls (RFC 4211 section 6).
	OIDRegCtrlRegToken  = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 5, 1, 1}
	OIDRegCtrlOldCertID = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 5, 1, 5}

	// InfoTypeAndValue types (RFC 9810 section 5.3.19, RFC 9483 section 4.3).
	OIDITImplicitConfirm  = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 4, 13}
	OIDITConfirmWaitTime  = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 4, 14}
	OIDITSignKeyPairTypes = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 4, 2}
	OIDITCurrentCRL       = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 4, 6}
	OIDITCACerts          = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 4, 17}
	OIDITRootCAKeyUpdate  = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 4, 18}
	OIDITCertReqTemplate  = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 4, 19}
	OIDITRootCACert       = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 4, 20}
	OIDITCertProfile      = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 4, 21}
	OIDITCRLStatusList    = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 4, 22}
	OIDITCRLs             = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 4, 23}

	// Certificate extensions the router inspects.
	OIDExtensionReasonCode = asn1.ObjectIdentifier{2, 5, 29, 21}
)
