package softca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"time"
)

// Files in the data folder that the host gives the plugin. The CA files exist only for a generated CA; an imported
// CA is read from the configured paths at every start.
const (
	rootKeyFile       = "root.key"    // PKCS#8 PEM, mode 0600; not read after creation
	rootCertFile      = "root.crt"    // PEM; the trust anchor to give to clients
	issuingKeyFile    = "issuing.key" // PKCS#8 PEM, mode 0600
	issuingCertFile   = "issuing.crt" // PEM; written last, so it marks a complete CA
	chainFile         = "chain.pem"   // PEM: issuing CA, then root
	revocationsFile   = "revocations.json"
	issuedSerialsFile = "issued-serials.log"
)

// caBackdate moves the start of a generated CA's validity into the past, so that
// clients whose clock runs behind accept certificates issued right after the first
// start.
const caBackdate = time.Hour

// authority is the issuing CA.
type authority struct {
	cert   *x509.Certificate
	signer crypto.Signer
	chain  []*x509.Certificate // cert first, root last

	// spkiHash is the SHA-256 of the issuing CA's SubjectPublicKeyInfo. The state
	// files record it, so that they are never applied to a different CA.
	spkiHash [sha256.Size]byte
}

func newAuthority(cert *x509.Certificate, signer crypto.Signer, chain []*x509.Certificate) *authority {
	if len(cert.SubjectKeyId) == 0 {
		// crypto/x509 takes the authority key identifier of issued certificates and
		// CRLs from the issuer's subject key identifier and refuses to sign a CRL
		// without one. An imported CA certificate may lack the extension, so derive the
		// identifier from the key the way RFC 7093 section 2 method 1 does.
		cert.SubjectKeyId = keyIdentifier(cert.RawSubjectPublicKeyInfo)
	}
	return &authority{
		cert:     cert,
		signer:   signer,
		chain:    chain,
		spkiHash: sha256.Sum256(cert.RawSubjectPublicKeyInfo),
	}
}

// loadOrCreateAuthority imports the configured CA, loads the CA generated on an earlier
// start, or generates a new one.
func loadOrCreateAuthority(dir string, c *Config, logger *slog.Logger) (*authority, error) {
	if c.CACertificateFile != "" {
		return importAuthority(c, logger)
	}
	_, err := os.Stat(filepath.Join(dir, issuingCertFile))
	switch {
	case err == nil:
		return loadAuthority(dir, c, logger)
	case errors.Is(err, fs.ErrNotExist):
		return createAuthority(dir, c, logger)
	default:
		return nil, err
	}
}

// createAuthority generates a root and an issuing CA and writes them to dir. Files of
// an earlier, interrupted creation are overwritten: without issuing.crt no certificate
// was ever issued from them.
func createAuthority(dir string, c *Config, logger *slog.Logger) (*authority, error) {
	generate := keyGenerators[c.KeyAlgorithm]
	rootKey, err := generate()
	if err != nil {
		return nil, fmt.Errorf("generating the root key: %w", err)
	}
	issuingKey, err := generate()
	if err != nil {
		return nil, fmt.Errorf("generating the issuing CA key: %w", err)
	}

	notBefore := time.Now().Add(-caBackdate).Truncate(time.Second)
	rootTemplate := &x509.Certificate{
		SerialNumber:          randomSerial(),
		Subject:               pkix.Name{CommonName: c.RootCommonName},
		NotBefore:             notBefore,
		NotAfter:              notBefore.Add(c.RootValidity),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLen:            1,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	root, err := createCertificate(rootTemplate, rootTemplate, rootKey.Public(), rootKey)
	if err != nil {
		return nil, fmt.Errorf("creating the root certificate: %w", err)
	}
	issuingTemplate := &x509.Certificate{
		SerialNumber:          randomSerial(),
		Subject:               pkix.Name{CommonName: c.IssuingCommonName},
		NotBefore:             notBefore,
		NotAfter:              notBefore.Add(c.IssuingValidity),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	issuing, err := createCertificate(issuingTemplate, root, issuingKey.Public(), rootKey)
	if err != nil {
		return nil, fmt.Errorf("creating the issuing CA certificate: %w", err)
	}

	rootKeyPEM, err := encodeKeyPEM(rootKey)
	if err != nil {
		return nil, err
	}
	issuingKeyPEM, err := encodeKeyPEM(issuingKey)
	if err != nil {
		return nil, err
	}
	files := []struct {
		name string
		data []byte
		mode os.FileMode
	}{
		{rootKeyFile, rootKeyPEM, 0o600},
		{rootCertFile, encodeCertificatesPEM(root), 0o644},
		{issuingKeyFile, issuingKeyPEM, 0o600},
		{chainFile, encodeCertificatesPEM(issuing, root), 0o644},
		{issuingCertFile, encodeCertificatesPEM(issuing), 0o644}, // last: marks the CA complete
	}
	for _, f := range files {
		if err := writeFileAtomic(filepath.Join(dir, f.name), f.data, f.mode); err != nil {
			return nil, err
		}
	}

	logger.Info("created a new CA", "dir", dir, "key_algorithm", c.KeyAlgorithm,
		"root", root.Subject.String(), "issuing", issuing.Subject.String(), "not_after", issuing.NotAfter)
	return newAuthority(issuing, issuingKey, []*x509.Certificate{issuing, root}), nil
}

func createCertificate(template, parent *x509.Certificate, pub crypto.PublicKey, signer crypto.Signer) (*x509.Certificate, error) {
	der, err := x509.CreateCertificate(rand.Reader, template, parent, pub, signer)
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}

// loadAuthority loads the CA that createAuthority wrote to dir. The root key is not
// needed, so an operator may move it offline.
func loadAuthority(dir string, c *Config, logger *slog.Logger) (*authority, error) {
	key, err := readKeyFile(filepath.Join(dir, issuingKeyFile))
	if err != nil {
		return nil, err
	}
	issuing, err := readCertificatesFile(filepath.Join(dir, issuingCertFile))
	if err != nil {
		return nil, err
	}
	root, err := readCertificatesFile(filepath.Join(dir, rootCertFile))
	if err != nil {
		return nil, err
	}
	chain := []*x509.Certificate{issuing[0], root[0]}
	if err := checkCA(chain, key, time.Now(), logger); err != nil {
		return nil, fmt.Errorf("the CA in %s: %w", dir, err)
	}

	// The generation settings apply only when the CA is created. Say so when they no
	// longer match, so that a changed key_algorithm does not pass unnoticed.
	if got := keyAlgorithmOf(issuing[0].PublicKey); got != c.KeyAlgorithm {
		logger.Warn("key_algorithm differs from the existing CA, which stays in use",
			"configured", c.KeyAlgorithm, "existing", got, "dir", dir)
	}
	if issuing[0].Subject.CommonName != c.IssuingCommonName || root[0].Subject.CommonName != c.RootCommonName {
		logger.Warn("the configured common names differ from the existing CA, which stays in use", "dir", dir)
	}
	logger.Info("loaded the CA", "dir", dir, "issuing", issuing[0].Subject.String(), "not_after", issuing[0].NotAfter)
	return newAuthority(issuing[0], key, chain), nil
}

// importAuthority reads an existing CA from the configured files. The first
// certificate of ca_certificate_file is the issuing CA; further certificates there, or
// those of ca_chain_file, are its issuers in order up to the root.
func importAuthority(c *Config, logger *slog.Logger) (*authority, error) {
	certs, err := readCertificatesFile(c.CACertificateFile)
	if err != nil {
		return nil, badConfig("ca_certificate_file", err)
	}
	key, err := readKeyFile(c.CAKeyFile)
	if err != nil {
		return nil, badConfig("ca_key_file", err)
	}
	if c.CAChainFile != "" {
		if len(certs) > 1 {
			return nil, badConfig("ca_chain_file", fmt.Errorf("%s already contains %d certificates; put the issuers either there or in ca_chain_file", c.CACertificateFile, len(certs)))
		}
		issuers, err := readCertificatesFile(c.CAChainFile)
		if err != nil {
			return nil, badConfig("ca_chain_file", err)
		}
		certs = append(certs, issuers...)
	}
	if err := checkCA(certs, key, time.Now(), logger); err != nil {
		return nil, badConfig("ca_certificate_file", err)
	}
	logger.Info("imported the CA", "file", c.CACertificateFile, "issuing", certs[0].Subject.String(),
		"not_after", certs[0].NotAfter, "chain_length", len(certs))
	return newAuthority(certs[0], key, certs), nil
}

// checkCA checks that chain[0] is a usable CA certificate for key and that each
// certificate is signed by the next.
func checkCA(chain []*x509.Certificate, key crypto.Signer, now time.Time, logger *slog.Logger) error {
	ca := chain[0]
	switch {
	case !ca.BasicConstraintsValid || !ca.IsCA:
		return fmt.Errorf("certificate %q is not a CA certificate (basicConstraints cA is not set)", ca.Subject)
	case ca.KeyUsage != 0 && ca.KeyUsage&x509.KeyUsageCertSign == 0:
		return fmt.Errorf("certificate %q lacks the keyCertSign key usage", ca.Subject)
	case !keyMatches(ca, key):
		return fmt.Errorf("the private key does not belong to certificate %q", ca.Subject)
	case now.After(ca.NotAfter):
		return fmt.Errorf("certificate %q expired at %s", ca.Subject, ca.NotAfter.Format(time.RFC3339))
	case now.Before(ca.NotBefore):
		return fmt.Errorf("certificate %q is not valid before %s", ca.Subject, ca.NotBefore.Format(time.RFC3339))
	}
	if ca.KeyUsage != 0 && ca.KeyUsage&x509.KeyUsageCRLSign == 0 {
		logger.Warn("the CA certificate lacks the cRLSign key usage; CRL requests will fail", "subject", ca.Subject.String())
	}

	for i := 0; i+1 < len(chain); i++ {
		if err := chain[i].CheckSignatureFrom(chain[i+1]); err != nil {
			return fmt.Errorf("certificate %q is not signed by the next certificate in the chain, %q: %w",
				chain[i].Subject, chain[i+1].Subject, err)
		}
	}
	last := chain[len(chain)-1]
	if last.CheckSignatureFrom(last) != nil {
		logger.Warn("the CA chain does not end with a self-signed root", "last", last.Subject.String())
	}
	return nil
}

// keyAlgorithmOf names a public key the way key_algorithm does, or describes its type.
func keyAlgorithmOf(pub crypto.PublicKey) string {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve.Params().BitSize {
		case 256:
			return "ecdsa-p256"
		case 384:
			return "ecdsa-p384"
		}
		return "ecdsa-" + k.Curve.Params().Name
	case *rsa.PublicKey:
		return fmt.Sprintf("rsa-%d", k.N.BitLen())
	case ed25519.PublicKey:
		return "ed25519"
	default:
		return fmt.Sprintf("%T", pub)
	}
}

// keyIdentifier is the leftmost 160 bits of the SHA-256 hash of the subjectPublicKey
// BIT STRING value (RFC 7093 section 2, method 1), or of the whole SPKI if it does not
// parse.
func keyIdentifier(spki []byte) []byte {
	var info struct {
		Algorithm pkix.AlgorithmIdentifier
		PublicKey asn1.BitString
	}
	input := spki
	if rest, err := asn1.Unmarshal(spki, &info); err == nil && len(rest) == 0 {
		input = info.PublicKey.Bytes
	}
	sum := sha256.Sum256(input)
	return sum[:20]
}

// randomSerial returns a positive serial number with 127 random bits: 16 random bytes
// with the top bit cleared, so that the DER INTEGER needs no sign byte and stays within
// the 20 octets of RFC 5280 section 4.1.2.2.
func randomSerial() *big.Int {
	for {
		var b [16]byte
		// crypto/rand.Read does not return errors since Go 1.24; it aborts the
		// program when the system's random source fails.
		_, _ = rand.Read(b[:])
		b[0] &= 0x7f
		if serial := new(big.Int).SetBytes(b[:]); serial.Sign() > 0 {
			return serial
		}
	}
}
