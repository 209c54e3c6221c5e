package softca

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/certgate/certgate/plugins/sdk"
)

// newTestCA configures a CA in dataDir and closes it at the end of the test.
func newTestCA(t testing.TB, dataDir string, config map[string]any) *CA {
	t.Helper()
	ca := New(nil)
	if err := ca.Configure(context.Background(), dataDir, config); err != nil {
		t.Fatalf("Configure: %v", err)
	}
	t.Cleanup(func() {
		if err := ca.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return ca
}

func mustKey(t testing.TB) crypto.Signer {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// issueRequest returns a request for a one-day certificate with a DNS name.
func issueRequest(t testing.TB, pub crypto.PublicKey, transactionID string) *sdk.IssueRequest {
	t.Helper()
	spki, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	subject, err := asn1.Marshal(pkix.Name{CommonName: "device-1", Organization: []string{"Example"}}.ToRDNSequence())
	if err != nil {
		t.Fatal(err)
	}
	san, err := asn1.Marshal([]asn1.RawValue{{Class: asn1.ClassContextSpecific, Tag: 2, Bytes: []byte("device-1.example.com")}})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().Truncate(time.Second)
	return &sdk.IssueRequest{
		TransactionID: []byte(transactionID),
		Profile:       "tls-client",
		Template: sdk.Template{
			RawSubject:   subject,
			PublicKeyDER: spki,
			Extensions:   []pkix.Extension{{Id: asn1.ObjectIdentifier{2, 5, 29, 17}, Value: san}},
			NotBefore:    now,
			NotAfter:     now.Add(24 * time.Hour),
		},
	}
}

func wantCategory(t *testing.T, err error, want sdk.Category) {
	t.Helper()
	var sdkErr *sdk.Error
	if !errors.As(err, &sdkErr) {
		t.Fatalf("error = %v (%T), want an *sdk.Error of category %s", err, err, want)
	}
	if sdkErr.Category != want {
		t.Fatalf("category = %s, want %s (error: %v)", sdkErr.Category, want, err)
	}
}

// verifyLeaf checks that cert chains to the root of chain and certifies pub.
func verifyLeaf(t *testing.T, cert *x509.Certificate, chain []*x509.Certificate, pub crypto.PublicKey) {
	t.Helper()
	roots := x509.NewCertPool()
	roots.AddCert(chain[len(chain)-1])
	intermediates := x509.NewCertPool()
	for _, c := range chain[:len(chain)-1] {
		intermediates.AddCert(c)
	}
	if _, err := cert.Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: intermediates,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	}); err != nil {
		t.Fatalf("the certificate does not verify against the CA chain: %v", err)
	}
	if !pub.(interface{ Equal(crypto.PublicKey) bool }).Equal(cert.PublicKey) {
		t.Fatal("the certificate's public key is not the requested one")
	}
}

func TestConfigureCreatesThenReloadsCA(t *testing.T) {
	dataDir := t.TempDir()
	first := New(nil)
	if err := first.Configure(context.Background(), dataDir, nil); err != nil {
		t.Fatal(err)
	}
	chain1, _ := first.CAChain(context.Background())
	key := mustKey(t)
	res, err := first.Issue(context.Background(), issueRequest(t, key.Public(), "t1"))
	if err != nil {
		t.Fatal(err)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}

	dir := dataDir
	info, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o700 {
		t.Errorf("%s has mode %v, want 0700", dir, info.Mode().Perm())
	}
	for _, name := range []string{rootKeyFile, issuingKeyFile} {
		info, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if info.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", name, info.Mode().Perm())
		}
	}
	chainPEM, err := os.ReadFile(filepath.Join(dir, chainFile))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(chainPEM, encodeCertificatesPEM(chain1...)) {
		t.Error("chain.pem is not the issuing CA followed by the root")
	}
	if got := chain1[0].Subject.CommonName; got != defaultIssuingCommonName {
		t.Errorf("issuing CA common name = %q, want %q", got, defaultIssuingCommonName)
	}
	if got := chain1[1].Subject.CommonName; got != defaultRootCommonName {
		t.Errorf("root common name = %q, want %q", got, defaultRootCommonName)
	}
	if got := keyAlgorithmOf(chain1[0].PublicKey); got != defaultKeyAlgorithm {
		t.Errorf("key algorithm = %s, want %s", got, defaultKeyAlgorithm)
	}

	second := newTestCA(t, dataDir, nil)
	chain2, _ := second.CAChain(context.Background())
	for i := range chain1 {
		if !chain1[i].Equal(chain2[i]) {
			t.Fatalf("chain certificate %d changed across restarts", i)
		}
	}
	// The serial recorded by the first start is known to the second.
	err = second.Revoke(context.Background(), &sdk.RevokeRequest{
		RawIssuer:    res.Certificate.RawIssuer,
		SerialNumber: res.Certificate.SerialNumber,
		Reason:       sdk.ReasonSuperseded,
	})
	if err != nil {
		t.Fatalf("revoking a certificate of the first start: %v", err)
	}
}

func TestConfigureWithoutRootKey(t *testing.T) {
	dataDir := t.TempDir()
	first := New(nil)
	if err := first.Configure(context.Background(), dataDir, nil); err != nil {
		t.Fatal(err)
	}
	first.Close()
	if err := os.Remove(filepath.Join(dataDir, rootKeyFile)); err != nil {
		t.Fatal(err)
	}
	ca := newTestCA(t, dataDir, nil)
	key := mustKey(t)
	if _, err := ca.Issue(context.Background(), issueRequest(t, key.Public(), "")); err != nil {
		t.Fatalf("issuing with the root key moved offline: %v", err)
	}
}

func TestIssueEveryKeyAlgorithm(t *testing.T) {
	for _, algorithm := range KeyAlgorithms() {
		t.Run(algorithm, func(t *testing.T) {
			if testing.Short() && algorithm == "rsa-4096" {
				t.Skip("RSA-4096 key generation is slow")
			}
			ca := newTestCA(t, t.TempDir(), map[string]any{"key_algorithm": algorithm})
			chain, err := ca.CAChain(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if got := keyAlgorithmOf(chain[0].PublicKey); got != algorithm {
				t.Fatalf("issuing CA key = %s, want %s", got, algorithm)
			}

			// The leaf key uses the same algorithm, so every key type is certified once.
			leafKey, err := keyGenerators[algorithm]()
			if err != nil {
				t.Fatal(err)
			}
			req := issueRequest(t, leafKey.Public(), "tx-"+algorithm)
			res, err := ca.Issue(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			cert := res.Certificate
			verifyLeaf(t, cert, res.Chain, leafKey.Public())

			if !bytes.Equal(cert.RawSubject, req.Template.RawSubject) {
				t.Error("the subject was not copied byte for byte")
			}
			if !cert.BasicConstraintsValid || cert.IsCA {
				t.Error("basicConstraints is not cA FALSE")
			}
			if !bytes.Equal(cert.AuthorityKeyId, chain[0].SubjectKeyId) {
				t.Error("the authority key identifier is not the issuing CA's subject key identifier")
			}
			if len(cert.SubjectKeyId) == 0 {
				t.Error("the subject key identifier is missing")
			}
			if len(cert.DNSNames) != 1 || cert.DNSNames[0] != "device-1.example.com" {
				t.Errorf("DNS names = %v, want the template's subjectAltName", cert.DNSNames)
			}
			if !cert.NotBefore.Equal(req.Template.NotBefore) || !cert.NotAfter.Equal(req.Template.NotAfter) {
				t.Errorf("validity = %s to %s, want the template's", cert.NotBefore, cert.NotAfter)
			}
		})
	}
}

func TestIssueSerialNumbers(t *testing.T) {
	ca := newTestCA(t, t.TempDir(), nil)
	key := mustKey(t)
	seen := make(map[string]bool)
	for i := range 200 {
		res, err := ca.Issue(context.Background(), issueRequest(t, key.Public(), ""))
		if err != nil {
			t.Fatal(err)
		}
		serial := res.Certificate.SerialNumber
		if serial.Sign() <= 0 {
			t.Fatalf("certificate %d: serial %v is not positive", i, serial)
		}
		// 127 random bits: fewer than 64 significant bits has probability 2^-63.
		if serial.BitLen() < 64 || serial.BitLen() > 127 {
			t.Fatalf("certificate %d: serial has %d bits, want 64 to 127", i, serial.BitLen())
		}
		if seen[serial.String()] {
			t.Fatalf("certificate %d: serial %x repeats", i, serial)
		}
		seen[serial.String()] = true
	}
}

func TestIssueIdempotentPerTransaction(t *testing.T) {
	ca := newTestCA(t, t.TempDir(), nil)
	key := mustKey(t)
	req := issueRequest(t, key.Public(), "tx-1")

	first, err := ca.Issue(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	again, err := ca.Issue(context.Background(), issueRequest(t, key.Public(), "tx-1"))
	if err != nil {
		t.Fatal(err)
	}
	if !first.Certificate.Equal(again.Certificate) {
		t.Error("a repeated transaction got a different certificate")
	}

	other := issueRequest(t, mustKey(t).Public(), "tx-1")
	_, err = ca.Issue(context.Background(), other)
	wantCategory(t, err, sdk.CategoryBadRequest)

	// Concurrent repeats of a new transaction share one signature.
	var wg sync.WaitGroup
	results := make([]*x509.Certificate, 8)
	for i := range results {
		wg.Go(func() {
			res, err := ca.Issue(context.Background(), issueRequest(t, key.Public(), "tx-2"))
			if err != nil {
				t.Error(err)
				return
			}
			results[i] = res.Certificate
		})
	}
	wg.Wait()
	for i, cert := range results {
		if cert == nil || !cert.Equal(results[0]) {
			t.Fatalf("concurrent repeat %d got a different certificate", i)
		}
	}
}

func TestIssueCacheEvictsOldest(t *testing.T) {
	cache := newIssueCache(2)
	var fp [32]byte
	for _, key := range []string{"a", "b", "c"} {
		entry, leader, err := cache.begin(key, fp)
		if err != nil || !leader {
			t.Fatalf("begin(%q) = leader %v, error %v", key, leader, err)
		}
		cache.finish(key, entry, &x509.Certificate{}, nil)
	}
	if _, ok := cache.entries["a"]; ok {
		t.Error("the oldest entry was not evicted")
	}
	if len(cache.entries) != 2 {
		t.Errorf("cache holds %d entries, want 2", len(cache.entries))
	}
}

func TestIssueClampsValidityToCA(t *testing.T) {
	ca := newTestCA(t, t.TempDir(), map[string]any{"issuing_validity": "48h", "root_validity": "96h"})
	chain, _ := ca.CAChain(context.Background())
	key := mustKey(t)
	req := issueRequest(t, key.Public(), "")
	req.Template.NotBefore = chain[0].NotBefore.Add(-24 * time.Hour)
	req.Template.NotAfter = chain[0].NotAfter.Add(24 * time.Hour)

	res, err := ca.Issue(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Certificate.NotBefore.Equal(chain[0].NotBefore) {
		t.Errorf("notBefore = %s, want the CA's %s", res.Certificate.NotBefore, chain[0].NotBefore)
	}
	if !res.Certificate.NotAfter.Equal(chain[0].NotAfter) {
		t.Errorf("notAfter = %s, want the CA's %s", res.Certificate.NotAfter, chain[0].NotAfter)
	}

	req = issueRequest(t, key.Public(), "")
	req.Template.NotBefore = chain[0].NotAfter.Add(time.Hour)
	req.Template.NotAfter = chain[0].NotAfter.Add(2 * time.Hour)
	_, err = ca.Issue(context.Background(), req)
	wantCategory(t, err, sdk.CategoryBadTemplate)
}

func TestIssueRejectsBadTemplates(t *testing.T) {
	ca := newTestCA(t, t.TempDir(), nil)
	key := mustKey(t)
	caBasicConstraints, _ := asn1.Marshal(struct{ IsCA bool }{true})

	tests := []struct {
		name   string
		modify func(*sdk.Template)
	}{
		{"unparsable public key", func(tp *sdk.Template) { tp.PublicKeyDER = []byte{0x30, 0x03, 0x02, 0x01, 0x01} }},
		{"subject with trailing data", func(tp *sdk.Template) { tp.RawSubject = append(tp.RawSubject, 0x00) }},
		{"subject not a Name", func(tp *sdk.Template) { tp.RawSubject = []byte{0x04, 0x01, 0x00} }},
		{"missing notAfter", func(tp *sdk.Template) { tp.NotAfter = time.Time{} }},
		{"notAfter before notBefore", func(tp *sdk.Template) { tp.NotAfter = tp.NotBefore.Add(-time.Hour) }},
		{"duplicate extension", func(tp *sdk.Template) { tp.Extensions = append(tp.Extensions, tp.Extensions[0]) }},
		{"CA basic constraints", func(tp *sdk.Template) {
			tp.Extensions = append(tp.Extensions, pkix.Extension{Id: oidBasicConstraints, Critical: true, Value: caBasicConstraints})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := issueRequest(t, key.Public(), "")
			tt.modify(&req.Template)
			_, err := ca.Issue(context.Background(), req)
			wantCategory(t, err, sdk.CategoryBadTemplate)
		})
	}
}

func TestIssueReplacesCAControlledExtensions(t *testing.T) {
	ca := newTestCA(t, t.TempDir(), nil)
	chain, _ := ca.CAChain(context.Background())
	key := mustKey(t)
	eeBasicConstraints, _ := asn1.Marshal(struct{}{})
	foreignAKI, _ := asn1.Marshal(struct {
		ID []byte `asn1:"optional,tag:0"`
	}{[]byte("not the issuer")})

	req := issueRequest(t, key.Public(), "")
	req.Template.Extensions = append(req.Template.Extensions,
		pkix.Extension{Id: oidBasicConstraints, Value: eeBasicConstraints},
		pkix.Extension{Id: oidAuthorityKeyIdentifier, Value: foreignAKI},
	)
	res, err := ca.Issue(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(res.Certificate.AuthorityKeyId, chain[0].SubjectKeyId) {
		t.Error("the template's authority key identifier was not replaced by the issuer's")
	}
	if !res.Certificate.BasicConstraintsValid || res.Certificate.IsCA {
		t.Error("basicConstraints is not cA FALSE")
	}
}

// testCA is a CA hierarchy written to files for import tests.
type testCA struct {
	root, intermediate       *x509.Certificate
	rootKey, intermediateKey crypto.Signer
}

func newTestHierarchy(t *testing.T, intermediateKey crypto.Signer, notAfter time.Time) *testCA {
	t.Helper()
	rootKey := mustKey(t)
	notBefore := time.Now().Add(-48 * time.Hour)
	rootTemplate := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Imported Root"},
		NotBefore: notBefore, NotAfter: time.Now().Add(10 * 24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	root, err := createCertificate(rootTemplate, rootTemplate, rootKey.Public(), rootKey)
	if err != nil {
		t.Fatal(err)
	}
	intermediateTemplate := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "Imported Issuing CA"},
		NotBefore: notBefore, NotAfter: notAfter,
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	intermediate, err := createCertificate(intermediateTemplate, root, intermediateKey.Public(), rootKey)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{root: root, intermediate: intermediate, rootKey: rootKey, intermediateKey: intermediateKey}
}

func writePEM(t *testing.T, path, blockType string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: blockType, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestImportCA(t *testing.T) {
	ecKey := mustKey(t).(*ecdsa.PrivateKey)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pkcs8, _ := x509.MarshalPKCS8PrivateKey(ecKey)
	sec1, _ := x509.MarshalECPrivateKey(ecKey)

	tests := []struct {
		name      string
		key       crypto.Signer
		blockType string
		der       []byte
	}{
		{"PKCS#8", ecKey, "PRIVATE KEY", pkcs8},
		{"SEC 1", ecKey, "EC PRIVATE KEY", sec1},
		{"PKCS#1", rsaKey, "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rsaKey)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hierarchy := newTestHierarchy(t, tt.key, time.Now().Add(5*24*time.Hour))
			dataDir := t.TempDir()
			writePEM(t, filepath.Join(dataDir, "ca.crt"), "CERTIFICATE", hierarchy.intermediate.Raw)
			writePEM(t, filepath.Join(dataDir, "root.pem"), "CERTIFICATE", hierarchy.root.Raw)
			writePEM(t, filepath.Join(dataDir, "ca.key"), tt.blockType, tt.der)

			ca := newTestCA(t, dataDir, map[string]any{
				"ca_certificate_file": "ca.crt", // relative to the data directory
				"ca_key_file":         "ca.key",
				"ca_chain_file":       filepath.Join(dataDir, "root.pem"),
			})
			chain, _ := ca.CAChain(context.Background())
			if len(chain) != 2 || !chain[0].Equal(hierarchy.intermediate) || !chain[1].Equal(hierarchy.root) {
				t.Fatal("the chain is not the imported issuing CA followed by the root")
			}
			leafKey := mustKey(t)
			res, err := ca.Issue(context.Background(), issueRequest(t, leafKey.Public(), ""))
			if err != nil {
				t.Fatal(err)
			}
			verifyLeaf(t, res.Certificate, res.Chain, leafKey.Public())
			if _, err := os.Stat(filepath.Join(dataDir, issuingKeyFile)); !errors.Is(err, os.ErrNotExist) {
				t.Error("an imported CA must not write its own CA files")
			}
		})
	}
}

func TestImportCAChainInCertificateFile(t *testing.T) {
	hierarchy := newTestHierarchy(t, mustKey(t), time.Now().Add(5*24*time.Hour))
	dataDir := t.TempDir()
	bundle := encodeCertificatesPEM(hierarchy.intermediate, hierarchy.root)
	if err := os.WriteFile(filepath.Join(dataDir, "bundle.pem"), bundle, 0o600); err != nil {
		t.Fatal(err)
	}
	pkcs8, _ := x509.MarshalPKCS8PrivateKey(hierarchy.intermediateKey)
	writePEM(t, filepath.Join(dataDir, "ca.key"), "PRIVATE KEY", pkcs8)

	ca := newTestCA(t, dataDir, map[string]any{"ca_certificate_file": "bundle.pem", "ca_key_file": "ca.key"})
	chain, _ := ca.CAChain(context.Background())
	if len(chain) != 2 {
		t.Fatalf("chain has %d certificates, want 2", len(chain))
	}
}

func TestImportCARejectsBadFiles(t *testing.T) {
	good := newTestHierarchy(t, mustKey(t), time.Now().Add(5*24*time.Hour))
	expired := newTestHierarchy(t, mustKey(t), time.Now().Add(-time.Hour))
	goodKey, _ := x509.MarshalPKCS8PrivateKey(good.intermediateKey)
	otherKey, _ := x509.MarshalPKCS8PrivateKey(mustKey(t))
	expiredKey, _ := x509.MarshalPKCS8PrivateKey(expired.intermediateKey)
	leafTemplate := &x509.Certificate{SerialNumber: big.NewInt(3), Subject: pkix.Name{CommonName: "leaf"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	leaf, err := createCertificate(leafTemplate, good.intermediate, good.intermediateKey.Public(), good.intermediateKey)
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name     string
		cert     *x509.Certificate
		keyType  string
		key      []byte
		chain    *x509.Certificate
		wantText string
	}{
		{"key of another certificate", good.intermediate, "PRIVATE KEY", otherKey, good.root, "does not belong"},
		{"expired CA", expired.intermediate, "PRIVATE KEY", expiredKey, expired.root, "expired"},
		{"not a CA", leaf, "PRIVATE KEY", goodKey, good.intermediate, "not a CA certificate"},
		{"chain of another CA", good.intermediate, "PRIVATE KEY", goodKey, expired.root, "not signed by"},
		{"encrypted key", good.intermediate, "ENCRYPTED PRIVATE KEY", []byte{0x30, 0x00}, good.root, "encrypted"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dataDir := t.TempDir()
			writePEM(t, filepath.Join(dataDir, "ca.crt"), "CERTIFICATE", tt.cert.Raw)
			writePEM(t, filepath.Join(dataDir, "chain.crt"), "CERTIFICATE", tt.chain.Raw)
			writePEM(t, filepath.Join(dataDir, "ca.key"), tt.keyType, tt.key)
			err := New(nil).Configure(context.Background(), dataDir, map[string]any{
				"ca_certificate_file": "ca.crt", "ca_key_file": "ca.key", "ca_chain_file": "chain.crt",
			})
			wantCategory(t, err, sdk.CategoryBadRequest)
			if !strings.Contains(err.Error(), tt.wantText) {
				t.Errorf("error %q does not mention %q", err, tt.wantText)
			}
		})
	}
}

func TestConfigureRejectsBadConfig(t *testing.T) {
	tests := []struct {
		name     string
		config   map[string]any
		wantText string
	}{
		{"unknown key", map[string]any{"key_algo": "rsa-2048"}, "valid keys are key_algorithm, root_common_name"},
		{"unsupported algorithm", map[string]any{"key_algorithm": "dsa-1024"}, "use one of ecdsa-p256, ecdsa-p384, ed25519, rsa-2048, rsa-3072, rsa-4096"},
		{"number instead of string", map[string]any{"root_validity": 5.0}, "root_validity must be a string"},
		{"invalid duration", map[string]any{"crl_validity": "7 days"}, "not a Go duration"},
		{"negative duration", map[string]any{"issuing_validity": "-1h"}, "not positive"},
		{"empty common name", map[string]any{"root_common_name": " "}, "root_common_name: the common name is empty"},
		{"issuing outlives root", map[string]any{"root_validity": "24h", "issuing_validity": "48h"}, "exceeds root_validity"},
		{"certificate without key", map[string]any{"ca_certificate_file": "ca.crt"}, "ca_key_file is missing"},
		{"key without certificate", map[string]any{"ca_key_file": "ca.key"}, "ca_certificate_file is missing"},
		{"chain without certificate", map[string]any{"ca_chain_file": "chain.crt"}, "ca_certificate_file is missing"},
		{"import with generation key", map[string]any{"ca_certificate_file": "ca.crt", "ca_key_file": "ca.key", "key_algorithm": "rsa-2048"}, "key_algorithm applies only to a generated CA"},
		{"missing import file", map[string]any{"ca_certificate_file": "absent.crt", "ca_key_file": "absent.key"}, "ca_certificate_file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := New(nil).Configure(context.Background(), t.TempDir(), tt.config)
			wantCategory(t, err, sdk.CategoryBadRequest)
			if !strings.Contains(err.Error(), tt.wantText) {
				t.Errorf("error %q does not contain %q", err, tt.wantText)
			}
		})
	}

	t.Run("missing data directory", func(t *testing.T) {
		err := New(nil).Configure(context.Background(), "", nil)
		wantCategory(t, err, sdk.CategoryBadRequest)
	})
	t.Run("configured twice", func(t *testing.T) {
		ca := newTestCA(t, t.TempDir(), nil)
		err := ca.Configure(context.Background(), t.TempDir(), nil)
		wantCategory(t, err, sdk.CategoryBadRequest)
	})
}

func TestCallsBeforeConfigure(t *testing.T) {
	ca := New(nil)
	_, err := ca.Issue(context.Background(), issueRequest(t, mustKey(t).Public(), ""))
	wantCategory(t, err, sdk.CategoryUnavailable)
	_, err = ca.CAChain(context.Background())
	wantCategory(t, err, sdk.CategoryUnavailable)
}

func TestSerialLogDropsIncompleteLine(t *testing.T) {
	dataDir := t.TempDir()
	first := New(nil)
	if err := first.Configure(context.Background(), dataDir, nil); err != nil {
		t.Fatal(err)
	}
	res, err := first.Issue(context.Background(), issueRequest(t, mustKey(t).Public(), ""))
	if err != nil {
		t.Fatal(err)
	}
	first.Close()

	path := filepath.Join(dataDir, issuedSerialsFile)
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("7f3a") // a write cut short by a crash
	f.Close()

	second := newTestCA(t, dataDir, nil)
	res2, err := second.Issue(context.Background(), issueRequest(t, mustKey(t).Public(), ""))
	if err != nil {
		t.Fatal(err)
	}
	for _, cert := range []*x509.Certificate{res.Certificate, res2.Certificate} {
		if !second.state.Load().serials.contains(cert.SerialNumber) {
			t.Errorf("serial %x is not recorded", cert.SerialNumber)
		}
	}
}

func TestStateFilesOfAnotherCA(t *testing.T) {
	dataDir := t.TempDir()
	first := New(nil)
	if err := first.Configure(context.Background(), dataDir, nil); err != nil {
		t.Fatal(err)
	}
	first.Close()
	// Replace the CA but keep its state files, as an operator might by mistake.
	dir := dataDir
	for _, name := range []string{rootKeyFile, rootCertFile, issuingKeyFile, issuingCertFile, chainFile} {
		if err := os.Remove(filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	err := New(nil).Configure(context.Background(), dataDir, nil)
	if err == nil || !strings.Contains(err.Error(), "belongs to another CA") {
		t.Fatalf("error = %v, want one saying the issued-serials file belongs to another CA", err)
	}
}

func BenchmarkIssueECDSAP256(b *testing.B) {
	ca := newTestCA(b, b.TempDir(), nil)
	req := issueRequest(b, mustKey(b).Public(), "")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ca.Issue(context.Background(), req); err != nil {
			b.Fatal(err)
		}
	}
}
