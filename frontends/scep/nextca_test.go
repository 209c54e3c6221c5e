package scep

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"log/slog"
	"math/big"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// newNextCA returns the certificates of a CA that could replace the fixture's: an
// issuing CA and its new self-signed root, in that order.
func newNextCA(t *testing.T) []*x509.Certificate {
	t.Helper()
	rootKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	issuingKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()

	rootTemplate := &x509.Certificate{
		SerialNumber: big.NewInt(101), Subject: pkix.Name{CommonName: "Next Root CA"},
		NotBefore: now.Add(-time.Minute), NotAfter: now.Add(20 * 365 * 24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	rootDER, err := x509.CreateCertificate(rand.Reader, rootTemplate, rootTemplate, rootKey.Public(), rootKey)
	if err != nil {
		t.Fatal(err)
	}
	root, err := x509.ParseCertificate(rootDER)
	if err != nil {
		t.Fatal(err)
	}

	issuingTemplate := &x509.Certificate{
		SerialNumber: big.NewInt(102), Subject: pkix.Name{CommonName: "Next Issuing CA"},
		NotBefore: now.Add(-time.Minute), NotAfter: now.Add(10 * 365 * 24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, MaxPathLenZero: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	issuingDER, err := x509.CreateCertificate(rand.Reader, issuingTemplate, root, issuingKey.Public(), rootKey)
	if err != nil {
		t.Fatal(err)
	}
	issuing, err := x509.ParseCertificate(issuingDER)
	if err != nil {
		t.Fatal(err)
	}
	return []*x509.Certificate{issuing, root}
}

// getNextCACert sends GetNextCACert to url and returns the response and its body.
func getNextCACert(t *testing.T, url string) (*http.Response, []byte) {
	t.Helper()
	return httpGet(t, url+"/cgi-bin/pkiclient.exe?operation=GetNextCACert&message=0")
}

func pemCertificates(certs ...*x509.Certificate) []byte {
	var out bytes.Buffer
	for _, cert := range certs {
		pem.Encode(&out, &pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})
	}
	return out.Bytes()
}

func sameCertificates(got, want []*x509.Certificate) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if !got[i].Equal(want[i]) {
			return false
		}
	}
	return true
}

func TestGetNextCACertSignedByRA(t *testing.T) {
	f := newFixture(t, nil)
	next := newNextCA(t)
	f.handler.Profiles["default"].NextCA = next

	resp, body := getNextCACert(t, f.url)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("HTTP %d: %s", resp.StatusCode, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/x-x509-next-ca-cert" {
		t.Errorf("Content-Type = %q, want application/x-x509-next-ca-cert", ct)
	}

	sd, err := parseSignedData(body)
	if err != nil {
		t.Fatalf("the response is not a SignedData with one signer: %v", err)
	}
	signer, digest, err := sd.verify(LegacyAlgorithms{})
	if err != nil {
		t.Fatalf("the signature does not verify: %v", err)
	}
	if !signer.Equal(f.ra.Certificate) {
		t.Errorf("signed by %s, want the RA certificate", signer.Subject)
	}
	if digest.name != "sha-256" {
		t.Errorf("digest = %s, want sha-256", digest.name)
	}
	if !sd.contentType.Equal(oidData) {
		t.Errorf("eContentType = %s, want id-data", sd.contentType)
	}
	inner, crls := parseDegenerate(t, sd.content)
	if !sameCertificates(inner, next) {
		t.Errorf("the signed content carries %d certificates, want the next issuing CA and root", len(inner))
	}
	if len(crls) != 0 {
		t.Errorf("the signed content carries %d CRLs, want none", len(crls))
	}
	if want := append([]*x509.Certificate{f.ra.Certificate}, next...); !sameCertificates(sd.certificates, want) {
		t.Errorf("SignedData.certificates has %d certificates, want the RA certificate and the next CA certificates", len(sd.certificates))
	}
}

func TestGetNextCACertSignatureCoversCertificates(t *testing.T) {
	f := newFixture(t, nil)
	next := newNextCA(t)
	f.handler.Profiles["default"].NextCA = next
	_, body := getNextCACert(t, f.url)

	// Change one byte of the next issuing CA's signature inside the signed content.
	// The outer copy of the certificate comes later in the message, so the first match
	// is the signed one.
	signature := next[0].Signature
	at := bytes.Index(body, signature)
	if at < 0 {
		t.Fatal("the response does not contain the next CA certificate")
	}
	tampered := bytes.Clone(body)
	tampered[at+len(signature)-1] ^= 0x01
	sd, err := parseSignedData(tampered)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := sd.verify(LegacyAlgorithms{}); !errors.Is(err, ErrBadSignature) {
		t.Errorf("verify of a changed next CA certificate: %v, want ErrBadSignature", err)
	}
}

func TestGetCACapsListsGetNextCACert(t *testing.T) {
	f := newFixture(t, nil)
	f.handler.Profiles["default"].NextCA = newNextCA(t)

	_, body := httpGet(t, f.url+"?operation=GetCACaps")
	if !strings.Contains(string(body), "\nGetNextCACert\n") {
		t.Errorf("GetCACaps of a profile with a next CA lacks GetNextCACert: %q", body)
	}
	_, legacy := httpGet(t, f.legacyURL()+"?operation=GetCACaps")
	if strings.Contains(string(legacy), "GetNextCACert") {
		t.Errorf("GetCACaps of a profile without a next CA lists GetNextCACert: %q", legacy)
	}
}

func TestGetNextCACertNotConfigured(t *testing.T) {
	f := newFixture(t, nil)
	var logs bytes.Buffer
	f.handler.Logger = slog.New(slog.NewTextHandler(&logs, nil))

	resp, body := getNextCACert(t, f.url)
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("HTTP %d, want 404", resp.StatusCode)
	}
	if !strings.Contains(string(body), "no next CA certificate") {
		t.Errorf("body = %q, want it to say that there is no next CA certificate", body)
	}
	line := logs.String()
	for _, want := range []string{"level=WARN", "op=GetNextCACert", "profile=default", "http_status=404", "no next CA certificate"} {
		if !strings.Contains(line, want) {
			t.Errorf("log line lacks %q: %s", want, line)
		}
	}
}

// A client that follows figure 9 of RFC 8894 encrypts its PKCSReq to the next CA
// certificate, which the gateway cannot decrypt.
func TestPKCSReqToNextCARejected(t *testing.T) {
	f := newFixture(t, nil)
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	template := &x509.Certificate{
		SerialNumber: big.NewInt(103), Subject: pkix.Name{CommonName: "Next RSA CA"},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageKeyEncipherment,
	}
	der, err := x509.CreateCertificate(rand.Reader, template, template, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	nextCA, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	f.handler.Profiles["default"].NextCA = []*x509.Certificate{nextCA}

	client := newTestClient(t, "rollover-device")
	request := client.message(nextCA, MessagePKCSReq, "tx-rollover", client.csr("rollover-device", testChallenge), cipherAES128, digestSHA256)
	rep := client.post(f.url, request)
	if rep.status != StatusFailure || rep.failInfo != "badRequest" {
		t.Errorf("PKCSReq encrypted to the next CA: %s %s, want FAILURE badRequest", rep.status, rep.failInfo)
	}
	if !strings.Contains(rep.failInfoText, "RA certificate of GetCACert") {
		t.Errorf("failInfoText = %q, want it to name the RA certificate of GetCACert", rep.failInfoText)
	}
}

func TestNextCAResponseNeedsCertificates(t *testing.T) {
	f := newFixture(t, nil)
	if _, err := NextCAResponse(nil, f.ra.Certificate, f.ra.Key); err == nil {
		t.Error("NextCAResponse without certificates succeeded")
	}
}

// openssl reads the GetNextCACert response with its CMS and its PKCS #7 code, the
// second being what sscep uses. Like sscep, it trusts the current CA chain, the
// issuing CA and root of GetCACert, to which the RA certificate chains.
func TestOpenSSLVerifiesNextCA(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl is not installed")
	}
	f := newFixture(t, nil)
	next := newNextCA(t)
	f.handler.Profiles["default"].NextCA = next
	_, body := getNextCACert(t, f.url)

	dir := t.TempDir()
	write := func(name string, data []byte) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	response := write("next-ca.der", body)
	currentCA := write("current-ca.pem", pemCertificates(f.ca.Issuing, f.ca.Root))
	openssl := func(args ...string) ([]byte, error) {
		return exec.Command("openssl", args...).CombinedOutput()
	}

	inner, signer := filepath.Join(dir, "inner.der"), filepath.Join(dir, "signer.pem")
	if out, err := openssl("cms", "-verify", "-inform", "DER", "-in", response, "-binary", "-CAfile", currentCA,
		"-signer", signer, "-out", inner); err != nil {
		t.Fatalf("openssl cms -verify: %v\n%s", err, out)
	}
	if got := readCertificateFile(t, signer); !got.Equal(f.ra.Certificate) {
		t.Errorf("openssl cms names %s as signer, want the RA certificate", got.Subject)
	}
	out, err := openssl("pkcs7", "-inform", "DER", "-in", inner, "-print_certs")
	if err != nil {
		t.Fatalf("openssl pkcs7 -print_certs of the signed content: %v\n%s", err, out)
	}
	if got := decodePEMCertificates(t, out); !sameCertificates(got, next) {
		t.Errorf("openssl found %d certificates in the signed content, want the next issuing CA and root:\n%s", len(got), out)
	}

	pkcs7Inner := filepath.Join(dir, "inner-smime.der")
	if out, err := openssl("smime", "-verify", "-inform", "DER", "-in", response, "-binary", "-CAfile", currentCA,
		"-out", pkcs7Inner); err != nil {
		t.Fatalf("openssl smime -verify: %v\n%s", err, out)
	}
	if a, b := readFile(t, inner), readFile(t, pkcs7Inner); !bytes.Equal(a, b) {
		t.Error("openssl smime and openssl cms return different signed content")
	}

	// The next CA's root is no trust anchor for the current RA certificate.
	if out, err := openssl("cms", "-verify", "-inform", "DER", "-in", response, "-binary",
		"-CAfile", write("next-root.pem", pemCertificates(next[1])), "-out", filepath.Join(dir, "untrusted.der")); err == nil {
		t.Errorf("openssl cms -verify trusted the response with the next CA's root as anchor:\n%s", out)
	} else if !strings.Contains(string(out), "certificate verify error") {
		t.Errorf("openssl cms -verify with the next CA's root as anchor failed for another reason: %v\n%s", err, out)
	}
}

func decodePEMCertificates(t *testing.T, data []byte) []*x509.Certificate {
	t.Helper()
	var certs []*x509.Certificate
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return certs
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		certs = append(certs, cert)
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}
