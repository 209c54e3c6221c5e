package main

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
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
	"github.com/certgate/certgate/gateway/config"
)

// The generated responder certificate: its lifetime, and how long before its end it is
// replaced at start.
const (
	responderValidity = 365 * 24 * time.Hour
	responderRenewal  = 30 * 24 * time.Hour
)

// keyUsageDigitalSignature is the DER of a keyUsage extension value with only
// digitalSignature set, which RFC 9483 section 3.1 requires of a CMP protection
// certificate.
var keyUsageDigitalSignature = []byte{0x03, 0x02, 0x07, 0x80}

// loadResponder returns the credential that signs CMP responses. A configured
// certificate and key are loaded as they are. Otherwise certgate keeps its own in
// <data_dir>/cmp: a P-256 key generated on first start and a certificate that the
// default profile's backend issues for it, so that clients which trust the CA root also
// trust the responses.
func loadResponder(ctx context.Context, cfg *config.Config, profile *gateway.Profile, logger *slog.Logger) (*gateway.Responder, error) {
	if cfg.CMP.Responder.IsSet() {
		responder, err := readResponder(cfg.CMP.Responder.CertificateFile, cfg.CMP.Responder.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("cmp.responder: %w", err)
		}
		return responder, nil
	}

	dir := filepath.Join(cfg.DataDir, "cmp")
	certFile, keyFile := filepath.Join(dir, "responder.crt"), filepath.Join(dir, "responder.key")
	if profile == nil || profile.Backend == nil {
		return nil, errNoResponderBackend
	}
	chain, err := profile.Backend.CAChain(ctx)
	if err != nil || len(chain) == 0 {
		return nil, fmt.Errorf("reading the CA chain for the CMP responder: %v", err)
	}
	if responder, err := readResponder(certFile, keyFile); err == nil {
		cert := responder.Certificate
		if time.Until(cert.NotAfter) > responderRenewal && cert.CheckSignatureFrom(chain[0]) == nil {
			return responder, nil
		}
		logger.Info("replacing the CMP responder certificate", "not_after", cert.NotAfter, "file", certFile)
	} else if !errors.Is(err, os.ErrNotExist) {
		logger.Warn("cannot use the stored CMP responder credential; creating a new one", "file", certFile, "error", err)
	}

	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	spki, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return nil, err
	}
	subject, err := asn1.Marshal(pkix.Name{CommonName: "certgate CMP responder"}.ToRDNSequence())
	if err != nil {
		return nil, err
	}
	transactionID := make([]byte, 16)
	rand.Read(transactionID)
	now := time.Now()
	result, err := profile.Backend.Issue(ctx, &backends.IssueRequest{
		TransactionID: transactionID, Profile: profile.Name,
		Requester: backends.Requester{Frontend: "certgate", Identity: "cmp-responder", Method: "internal"},
		Template: backends.Template{
			RawSubject: subject, PublicKeyDER: spki, NotBefore: now.Add(-time.Minute), NotAfter: now.Add(responderValidity),
			Extensions: []pkix.Extension{{Id: asn1.ObjectIdentifier{2, 5, 29, 15}, Critical: true, Value: keyUsageDigitalSignature}},
		},
	})
	if err != nil {
		return nil, fmt.Errorf("issuing the CMP responder certificate: %w", err)
	}
	if result.Certificate == nil {
		return nil, errors.New("issuing the CMP responder certificate: the backend returned a pending result, which a responder certificate cannot wait for")
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	if err := writeFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})); err != nil {
		return nil, err
	}
	var certPEM bytes.Buffer
	for _, cert := range append([]*x509.Certificate{result.Certificate}, result.Chain...) {
		pem.Encode(&certPEM, &pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})
	}
	if err := writeFile(certFile, certPEM.Bytes()); err != nil {
		return nil, err
	}
	logger.Info("created the CMP responder certificate", "file", certFile, "subject", result.Certificate.Subject.String())
	return &gateway.Responder{Signer: key, Certificate: result.Certificate, Chain: result.Chain}, nil
}

// writeFile replaces path atomically with a file of mode 0600.
func writeFile(path string, data []byte) error {
	temp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(temp.Name())
	if err := temp.Chmod(0o600); err != nil {
		temp.Close()
		return err
	}
	if _, err := temp.Write(data); err != nil {
		temp.Close()
		return err
	}
	if err := temp.Close(); err != nil {
		return err
	}
	return os.Rename(temp.Name(), path)
}

// readResponder loads a PEM certificate chain (responder first) and its private key.
func readResponder(certFile, keyFile string) (*gateway.Responder, error) {
	chain, err := readCertificates(certFile)
	if err != nil {
		return nil, err
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, err
	}
	signer, err := parsePrivateKey(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", keyFile, err)
	}
	spki, err := x509.MarshalPKIXPublicKey(signer.Public())
	if err != nil || !bytes.Equal(spki, chain[0].RawSubjectPublicKeyInfo) {
		return nil, fmt.Errorf("%s does not hold the key of the certificate in %s", keyFile, certFile)
	}
	if chain[0].KeyUsage != 0 && chain[0].KeyUsage&x509.KeyUsageDigitalSignature == 0 {
		return nil, fmt.Errorf("%s: the responder certificate lacks the digitalSignature key usage", certFile)
	}
	return &gateway.Responder{Signer: signer, Certificate: chain[0], Chain: chain[1:]}, nil
}

// parsePrivateKey reads the first private key of a PEM file in PKCS #8, SEC 1 or
// PKCS #1 form.
func parsePrivateKey(data []byte) (crypto.Signer, error) {
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, errors.New("no PEM private key found")
		}
		var key any
		var err error
		switch block.Type {
		case "PRIVATE KEY":
			key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
		case "EC PRIVATE KEY":
			key, err = x509.ParseECPrivateKey(block.Bytes)
		case "RSA PRIVATE KEY":
			key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
		default:
			continue
		}
		if err != nil {
			return nil, err
		}
		signer, ok := key.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("a %T key cannot sign", key)
		}
		return signer, nil
	}
}
