package gateway

import (
	"crypto"
	"crypto/x509"
	"crypto/x509/pkix"

	"github.com/certgate/certgate/gateway/cmp"
)

func digestByOID(alg *pkix.AlgorithmIdentifier) (crypto.Hash, bool) {
	return cmp.HashByOID(alg.Algorithm)
}

// certificateHash returns the hash of a certificate's signature algorithm, which
// certConf uses for certHash when no hashAlg is given (RFC 9810 section 5.3.18). Ed25519
// has no separate hash; RFC 9810 names SHA-512 for it.
func certificateHash(algorithm x509.SignatureAlgorithm) crypto.Hash {
	switch algorithm {
	case x509.SHA1WithRSA, x509.ECDSAWithSHA1:
		return crypto.SHA1
	case x509.SHA384WithRSA, x509.ECDSAWithSHA384, x509.SHA384WithRSAPSS:
		return crypto.SHA384
	case x509.SHA512WithRSA, x509.ECDSAWithSHA512, x509.SHA512WithRSAPSS, x509.PureEd25519:
		return crypto.SHA512
	}
	return crypto.SHA256
}
