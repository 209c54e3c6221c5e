package scep

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/certgate/certgate/backends"
	"github.com/certgate/certgate/gateway"
	"github.com/certgate/certgate/gateway/cmp"
)

// raKeyBits is the size of the generated RA key. 2048 bits is what SCEP clients on small
// devices handle and the default of Microsoft's NDES RA.
const raKeyBits = 2048

// raSubject is the subject of generated RA certificates.
const raSubject = "certgate SCEP RA"

// keyUsageRA is the DER of a keyUsage extension value with digitalSignature (to sign
// CertReps) and keyEncipherment (to receive the content key of requests) set. Apple
// clients check both bits on an RA certificate.
var keyUsageRA = []byte{0x03, 0x02, 0x05, 0xa0}

var oidKeyUsage = asn1.ObjectIdentifier{2, 5, 29, 15}

// LoadRA returns the RA credential of a CMP profile ("" is the router's default
// profile). The RSA key is dir/ra.key, shared by all profiles and generated on first
// use. The certificate is dir/ra-<profile>.crt; when it is missing, was not issued by
// the profile's current issuing CA, or has less than a third of its lifetime left, the
// profile's backend issues a new one through the router, as a p10cr that the profile's
// policy applies to. The profile must therefore allow rsa-2048 keys.
func LoadRA(ctx context.Context, router *gateway.Router, dir, cmpProfile string, logger *slog.Logger) (*RA, error) {
	profile, ok := router.Profile(cmpProfile)
	if !ok {
		return nil, fmt.Errorf("scep: CMP profile %q is not configured", cmpProfile)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	key, err := loadOrCreateKey(filepath.Join(dir, "ra.key"))
	if err != nil {
		return nil, err
	}
	chain, err := router.CAChain(ctx, profile.Name)
	if err != nil || len(chain) == 0 {
		return nil, fmt.Errorf("scep: reading the CA chain of profile %q: %v", profile.Name, err)
	}

	certFile := filepath.Join(dir, "ra-"+profile.Name+".crt")
	cert, err := readCertificate(certFile)
	switch {
	case err == nil && usableRA(cert, key, chain[0]):
		return &RA{Certificate: cert, Key: key}, nil
	case err == nil:
		logger.Info("replacing the SCEP RA certificate", "file", certFile, "not_after", cert.NotAfter)
	case !errors.Is(err, os.ErrNotExist):
		logger.Warn("cannot use the stored SCEP RA certificate; requesting a new one", "file", certFile, "error", err)
	}

	cert, err = issueRA(ctx, router, profile.Name, key)
	if err != nil {
		return nil, fmt.Errorf("scep: issuing the RA certificate of profile %q: %w", profile.Name, err)
	}
	var out bytes.Buffer
	for _, c := range append([]*x509.Certificate{cert}, chain...) {
		pem.Encode(&out, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	if err := writeFileAtomic(certFile, out.Bytes()); err != nil {
		return nil, err
	}
	logger.Info("created the SCEP RA certificate", "file", certFile, "profile", profile.Name, "not_after", cert.NotAfter)
	return &RA{Certificate: cert, Key: key}, nil
}

// usableRA reports whether a stored RA certificate holds key, was issued by the current
// issuing CA, and has more than a third of its lifetime left.
func usableRA(cert *x509.Certificate, key *rsa.PrivateKey, issuing *x509.Certificate) bool {
	pub, ok := cert.PublicKey.(*rsa.PublicKey)
	if !ok || !pub.Equal(key.Public()) || cert.CheckSignatureFrom(issuing) != nil {
		return false
	}
	lifetime := cert.NotAfter.Sub(cert.NotBefore)
	return time.Until(cert.NotAfter) > lifetime/3
}

// issueRA requests the RA certificate from the router, as an internal requester.
func issueRA(ctx context.Context, router *gateway.Router, profile string, key *rsa.PrivateKey) (*x509.Certificate, error) {
	usage := pkix.Extension{Id: oidKeyUsage, Critical: true, Value: keyUsageRA}
	csrDER, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: raSubject}, ExtraExtensions: []pkix.Extension{usage},
	}, key)
	if err != nil {
		return nil, err
	}
	csr, err := x509.ParseCertificateRequest(csrDER)
	if err != nil {
		return nil, err
	}
	requester := backends.Requester{Frontend: "scep", Identity: raSubject, Method: "internal"}
	tx := &transaction{
		origin: gateway.Origin{Frontend: "scep", Profile: profile, Verified: &requester},
		sender: cmp.DirectoryNameOf(csr.RawSubject),
	}
	msg := &cmp.Message{
		Header: newHeader(tx.sender, randomBytes(16), nil),
		Body:   cmp.Body{Type: cmp.BodyP10CR, P10CR: &cmp.P10Request{CSR: csr, Raw: csr.Raw}},
	}
	msg.Header.GeneralInfo = []cmp.InfoTypeAndValue{{Type: cmp.OIDITImplicitConfirm, Value: []byte{0x05, 0x00}}}
	resp, err := router.Process(ctx, tx.origin, msg)
	if err != nil {
		return nil, err
	}
	if resp.Body.Type == cmp.BodyError {
		return nil, fmt.Errorf("the router rejected the request: %s", resp.Body.Error.Status)
	}
	if resp.Body.Type != cmp.BodyCP || resp.Body.CertRep == nil || len(resp.Body.CertRep.Responses) != 1 {
		return nil, fmt.Errorf("unexpected %s response from the router", resp.Body.Type)
	}
	answer := resp.Body.CertRep.Responses[0]
	if answer.Certificate == nil {
		return nil, fmt.Errorf("the router issued no certificate: %s", answer.Status)
	}
	if err := confirm(ctx, router, tx, resp, answer.Certificate); err != nil {
		return nil, err
	}
	return answer.Certificate, nil
}

func loadOrCreateKey(path string) (*rsa.PrivateKey, error) {
	data, err := os.ReadFile(path)
	if err == nil {
		block, _ := pem.Decode(data)
		if block == nil || block.Type != "PRIVATE KEY" {
			return nil, fmt.Errorf("scep: %s contains no PEM PKCS #8 private key; delete it to have a new RA key generated", path)
		}
		parsed, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("scep: %s: %w", path, err)
		}
		key, ok := parsed.(*rsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("scep: %s contains a %T key, but the RA key must be RSA", path, parsed)
		}
		return key, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	key, err := rsa.GenerateKey(rand.Reader, raKeyBits)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	if err := writeFileAtomic(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})); err != nil {
		return nil, err
	}
	return key, nil
}

func readCertificate(path string) (*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("%s contains no PEM certificate", path)
	}
	return x509.ParseCertificate(block.Bytes)
}

// writeFileAtomic replaces path with a file of mode 0600 holding data, so that no
// reader sees a partly written key or certificate.
func writeFileAtomic(path string, data []byte) error {
	temp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(temp.Name())
	if _, err := temp.Write(data); err != nil {
		temp.Close()
		return err
	}
	if err := temp.Close(); err != nil {
		return err
	}
	return os.Rename(temp.Name(), path)
}
