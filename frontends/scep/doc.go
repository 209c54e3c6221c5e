// Package scep is certgate's SCEP frontend: the Simple Certificate Enrolment Protocol
// of RFC 8894, translated into CMP requests for the router.
//
// The codec (types.go, cms.go, envelope.go, message.go) is pure: it decodes and
// verifies a pkiMessage, decrypts its pkcsPKIEnvelope and builds CertRep messages,
// with no HTTP and no router. It is written by hand on encoding/asn1 and
// golang.org/x/crypto/cryptobyte because the Go PKCS #7 libraries choose the content
// encryption through a package variable, cannot encrypt with triple DES and do not
// report which algorithm a request used, while a SCEP server has to encrypt each
// response with the algorithm of its request. The HTTP handler and the translation to CMP are in
// handler.go, transport.go and operation.go.
//
// # Operations
//
// GetCACaps, GetCACert (the RA certificate and the CA chain as a degenerate
// certs-only SignedData), and PKIOperation with PKCSReq, RenewalReq, CertPoll, GetCert
// and GetCRL, over GET and POST. PKCSReq and RenewalReq become a p10cr that the router
// runs with Origin.Verified set: PKCSReq after the challenge password was checked,
// RenewalReq after the signer certificate was found among the certificates the gateway
// issued and not on the CA's CRL. A CMP waiting status becomes PENDING, and CertPoll
// (or the same PKCSReq sent again) becomes a pollReq.
//
// # CA rollover
//
// GetNextCACert (RFC 8894 section 4.7) returns Profile.NextCA, the certificates of
// the CA that replaces the current one, which the operator names in the
// configuration. The gateway holds no CA key, so it can neither create the next CA
// nor sign with the current CA key as RFC 8894 section 4.7.1 describes. The RA key
// signs the response instead, the key that clients already verify CertReps with, so
// no client needs a new trust anchor to check it. GetCACaps lists GetNextCACert only
// for profiles with a next CA. The others respond to GetNextCACert with HTTP 404,
// because the operation exists but the profile has no next CA, and RFC 8894 defines
// no error for this case. NextCAResponse describes where the response carries the
// certificates. Requests are still decrypted with the RA key only: a PKCSReq
// encrypted to the next CA certificate, as in figure 9 of RFC 8894, gets FAILURE
// badRequest. Certificates come from the new CA once the CMP profile's backend issues
// with it.
//
// # Not implemented
//
// UpdateReq (messageType 18, from a draft before RFC 8894), RSASSA-PSS signatures on
// requests, AES-GCM content encryption, key agreement and KEK recipient infos, and BER
// indefinite-length encodings: requests must be DER. SCEP encrypts to RSA keys only,
// so a client's signer certificate must hold an RSA key for a CertRep that carries a
// certificate or CRL.
package scep
