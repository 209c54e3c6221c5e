package cmp

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"

	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certgate/certgate/backends"
	"github.com/certgate/certgate/backends/backendtest"
	"github.com/certgate/certgate/gateway"
	pkicmp "github.com/certgate/certgate/gateway/cmp"
	"github.com/certgate/certgate/gateway/store"
)

// testSecret is the MAC secret of reference testReference in the test profile.
const (
	testReference = "ref-1"
	testSecret    = "a test secret"
)

// fixture is a CMP-over-HTTP server on loopback with a SQLite store and an in-memory CA.
type fixture struct {
	t      *testing.T
	dir    string
	ca     *backendtest.CA
	store  *store.SQLite
	router *gateway.Router
	server *httptest.Server
	url    string // host:port
	root   string // PEM file of the CA root
	chain  string // PEM file of the issuing CA
}

func writePEM(t *testing.T, path, blockType string, der ...[]byte) {
	t.Helper()
	var buf bytes.Buffer
	for _, d := range der {
		pem.Encode(&buf, &pem.Block{Type: blockType, Bytes: d})
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
}

func newFixture(t *testing.T, configure func(*gateway.Options)) *fixture {
	t.Helper()
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl is not installed")
	}
	f := &fixture{t: t, dir: t.TempDir()}
	var err error
	if f.ca, err = backendtest.New(); err != nil {
		t.Fatal(err)
	}
	if f.store, err = store.OpenSQLite(context.Background(), filepath.Join(f.dir, "certgate.db")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.store.Close() })

	roots := x509.NewCertPool()
	roots.AddCert(f.ca.Root)
	opts := gateway.Options{
		Store:          f.store,
		DefaultProfile: "default",
		Profiles: map[string]*gateway.Profile{"default": {
			Name: "default", Backend: f.ca, BackendName: "memca", Validity: 24 * time.Hour,
			KeyTypes:        map[string]bool{"ecdsa-p256": true, "ecdsa-p384": true, "rsa-2048": true, "ed25519": true},
			ImplicitConfirm: true, RequireSubject: true,
			SAN:        gateway.SANPolicy{AllowDNS: true, AllowIP: true, AllowEmail: true, AllowURI: true},
			MACSecrets: map[string][]byte{testReference: []byte(testSecret)},
		}},
		Responder:            f.newResponder(),
		TrustedRoots:         roots,
		MessageTimeTolerance: 10 * time.Minute,
		TransactionTimeout:   time.Minute,
		Logger:               slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	if testing.Verbose() {
		opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	if configure != nil {
		configure(&opts)
	}
	router, err := gateway.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	f.router = router
	f.server = httptest.NewServer(&Handler{Router: router, MaxBodyBytes: 64 << 10, Logger: opts.Logger})
	t.Cleanup(f.server.Close)
	f.url = strings.TrimPrefix(f.server.URL, "http://")
	f.root = filepath.Join(f.dir, "root.pem")
	writePEM(t, f.root, "CERTIFICATE", f.ca.Root.Raw)
	f.chain = filepath.Join(f.dir, "issuing.pem")
	writePEM(t, f.chain, "CERTIFICATE", f.ca.Issuing.Raw)
	return f
}

// newResponder has the test CA issue a CMP responder certificate.
func (f *fixture) newResponder() *gateway.Responder {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	spki, _ := x509.MarshalPKIXPublicKey(key.Public())
	subject, _ := asn1Name("certgate test responder")
	result, err := f.ca.Issue(context.Background(), &backends.IssueRequest{Template: backends.Template{
		RawSubject: subject, PublicKeyDER: spki, NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
	}})
	if err != nil {
		f.t.Fatal(err)
	}
	return &gateway.Responder{Signer: key, Certificate: result.Certificate, Chain: result.Chain[:1]}
}

func asn1Name(cn string) ([]byte, error) {
	return asn1Marshal(pkix.Name{CommonName: cn}.ToRDNSequence())
}

// newKey writes a fresh key of the given openssl genpkey algorithm options and returns its path.
func (f *fixture) newKey(name string, args ...string) string {
	path := filepath.Join(f.dir, name)
	cmd := exec.Command("openssl", append([]string{"genpkey", "-out", path}, args...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		f.t.Fatalf("openssl genpkey: %v\n%s", err, out)
	}
	return path
}

// cmp runs openssl cmp against the fixture and returns its output and error.
func (f *fixture) cmp(args ...string) (string, error) {
	base := []string{"cmp", "-server", f.url, "-path", ".well-known/cmp", "-msg_timeout", "10", "-total_timeout", "30"}
	cmd := exec.Command("openssl", append(base, args...)...)
	cmd.Dir = f.dir
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (f *fixture) mustCMP(args ...string) string {
	f.t.Helper()
	out, err := f.cmp(args...)
	if err != nil {
		f.t.Fatalf("openssl cmp %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// verify checks with openssl verify that the certificate in certFile chains to the CA.
func (f *fixture) verify(certFile string) {
	f.t.Helper()
	cmd := exec.Command("openssl", "verify", "-CAfile", f.root, "-untrusted", f.chain, certFile)
	if out, err := cmd.CombinedOutput(); err != nil {
		f.t.Fatalf("openssl verify %s: %v\n%s", certFile, err, out)
	}
}

func readCertificate(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		t.Fatalf("%s: no PEM block", path)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

func (f *fixture) certificateStatus(cert *x509.Certificate) store.CertificateStatus {
	f.t.Helper()
	record, err := f.store.Certificate(context.Background(), cert.RawIssuer, cert.SerialNumber)
	if err != nil {
		f.t.Fatalf("store lookup of %x: %v", cert.SerialNumber, err)
	}
	return record.Status
}

func macArgs() []string {
	return []string{"-ref", testReference, "-secret", "pass:" + testSecret, "-recipient", "/CN=certgate"}
}

func TestOpenSSLEnrollmentFlow(t *testing.T) {
	f := newFixture(t, nil)
	key := f.newKey("ee.key", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256")

	// ir with MAC protection, then certConf.
	f.mustCMP(append(macArgs(), "-cmd", "ir", "-newkey", key, "-subject", "/CN=ir.example", "-certout", "ir.pem", "-cacertsout", "capubs.pem")...)
	ir := readCertificate(t, filepath.Join(f.dir, "ir.pem"))
	f.verify(filepath.Join(f.dir, "ir.pem"))
	if ir.Subject.CommonName != "ir.example" {
		t.Errorf("ir subject = %q", ir.Subject)
	}
	if got := f.certificateStatus(ir); got != store.CertConfirmed {
		t.Errorf("after certConf the certificate is %q, want confirmed", got)
	}
	if capubs := readCertificate(t, filepath.Join(f.dir, "capubs.pem")); !capubs.Equal(f.ca.Root) {
		t.Error("caPubs is not the root")
	}

	// cr protected with a signature of the ir certificate; the response is signed by the
	// responder, which the client checks against the root.
	key2 := f.newKey("cr.key", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384")
	f.mustCMP("-cmd", "cr", "-cert", "ir.pem", "-key", key, "-extracerts", f.chain, "-trusted", f.root, "-untrusted", f.chain,
		"-newkey", key2, "-subject", "/CN=cr.example", "-certout", "cr.pem", "-recipient", "/CN=certgate")
	f.verify(filepath.Join(f.dir, "cr.pem"))

	// p10cr from an openssl CSR.
	csrKey := f.newKey("p10.key", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048")
	csr := filepath.Join(f.dir, "p10.csr")
	if out, err := exec.Command("openssl", "req", "-new", "-key", csrKey, "-subj", "/CN=p10.example", "-addext", "subjectAltName=DNS:p10.example", "-out", csr).CombinedOutput(); err != nil {
		t.Fatalf("openssl req: %v\n%s", err, out)
	}
	f.mustCMP(append(macArgs(), "-cmd", "p10cr", "-csr", csr, "-certout", "p10.pem")...)
	p10 := readCertificate(t, filepath.Join(f.dir, "p10.pem"))
	f.verify(filepath.Join(f.dir, "p10.pem"))
	if len(p10.DNSNames) != 1 || p10.DNSNames[0] != "p10.example" {
		t.Errorf("p10cr DNS names = %v", p10.DNSNames)
	}

	// kur signed with the old key, for a new key.
	key3 := f.newKey("kur.key", "-algorithm", "ED25519")
	f.mustCMP("-cmd", "kur", "-cert", "ir.pem", "-key", key, "-extracerts", f.chain, "-trusted", f.root, "-untrusted", f.chain,
		"-newkey", key3, "-certout", "kur.pem", "-recipient", "/CN=certgate")
	kur := readCertificate(t, filepath.Join(f.dir, "kur.pem"))
	f.verify(filepath.Join(f.dir, "kur.pem"))
	if kur.Subject.CommonName != "ir.example" {
		t.Errorf("kur subject = %q, want the old certificate's", kur.Subject)
	}

	// rr of the ir certificate, signed with its own key.
	f.mustCMP("-cmd", "rr", "-cert", "ir.pem", "-key", key, "-extracerts", f.chain, "-trusted", f.root, "-untrusted", f.chain,
		"-oldcert", "ir.pem", "-revreason", "1", "-recipient", "/CN=certgate")
	if reason, revoked := f.ca.Revoked(ir.SerialNumber); !revoked || reason != backends.ReasonKeyCompromise {
		t.Errorf("backend revocation = %v, %v; want keyCompromise", reason, revoked)
	}
	if got := f.certificateStatus(ir); got != store.CertRevoked {
		t.Errorf("after rr the certificate is %q, want revoked", got)
	}
	// A second revocation is rejected.
	if out, err := f.cmp("-cmd", "rr", "-cert", "cr.pem", "-key", key2, "-extracerts", f.chain, "-trusted", f.root, "-untrusted", f.chain,
		"-oldcert", "ir.pem", "-revreason", "1", "-recipient", "/CN=certgate"); err == nil {
		t.Errorf("rr of a revoked certificate by another key succeeded:\n%s", out)
	}
}

func TestOpenSSLImplicitConfirm(t *testing.T) {
	f := newFixture(t, nil)
	key := f.newKey("ee.key", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256")
	f.mustCMP(append(macArgs(), "-cmd", "ir", "-newkey", key, "-subject", "/CN=implicit", "-implicit_confirm", "-certout", "ic.pem")...)
	cert := readCertificate(t, filepath.Join(f.dir, "ic.pem"))
	if got := f.certificateStatus(cert); got != store.CertConfirmed {
		t.Errorf("implicitly confirmed certificate is %q, want confirmed", got)
	}
}

func TestOpenSSLHoldAndRelease(t *testing.T) {
	f := newFixture(t, nil)
	key := f.newKey("ee.key", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256")
	f.mustCMP(append(macArgs(), "-cmd", "ir", "-newkey", key, "-subject", "/CN=hold", "-certout", "hold.pem")...)
	cert := readCertificate(t, filepath.Join(f.dir, "hold.pem"))
	for _, step := range []struct {
		reason string
		status store.CertificateStatus
	}{{"6", store.CertOnHold}, {"8", store.CertConfirmed}, {"5", store.CertRevoked}} {
		f.mustCMP(append(macArgs(), "-cmd", "rr", "-oldcert", "hold.pem", "-revreason", step.reason)...)
		if got := f.certificateStatus(cert); got != step.status {
			t.Errorf("after rr with reason %s the certificate is %q, want %q", step.reason, got, step.status)
		}
	}
}

func TestOpenSSLPolling(t *testing.T) {
	f := newFixture(t, nil)
	f.ca.PendingPolls = 2
	key := f.newKey("ee.key", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256")
	start := time.Now()
	f.mustCMP(append(macArgs(), "-cmd", "ir", "-newkey", key, "-subject", "/CN=polled", "-certout", "polled.pem")...)
	f.verify(filepath.Join(f.dir, "polled.pem"))
	if polls := f.ca.Calls["Poll"]; polls != 2 {
		t.Errorf("backend polled %d times, want 2", polls)
	}
	if elapsed := time.Since(start); elapsed < time.Second {
		t.Errorf("client finished in %s; it should have waited checkAfter", elapsed)
	}
}

func TestOpenSSLGeneralMessage(t *testing.T) {
	f := newFixture(t, nil)
	// The infotype names that OpenSSL 3.0 knows; rootCaCert and crlStatusList came
	// with later releases and are covered by TestGeneralMessageValues.
	for _, infoType := range []string{"caCerts", "signKeyPairTypes", "currentCRL", "rootCaKeyUpdate", "certReqTemplate"} {
		out := f.mustCMP(append(macArgs(), "-cmd", "genm", "-infotype", infoType)...)
		if !strings.Contains(out, "genp contains ITAV of type: id-it-"+infoType) {
			t.Errorf("genm %s: no genp entry of that type in the output:\n%s", infoType, out)
		}
	}
}

func TestOpenSSLRejections(t *testing.T) {
	f := newFixture(t, nil)
	key := f.newKey("ee.key", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256")

	out, err := f.cmp("-cmd", "ir", "-ref", testReference, "-secret", "pass:wrong", "-recipient", "/CN=x", "-newkey", key, "-subject", "/CN=x", "-certout", "x.pem", "-unprotected_errors")
	if err == nil || !strings.Contains(out, "badMessageCheck") {
		t.Errorf("wrong secret: err %v, want a badMessageCheck rejection\n%s", err, out)
	}
	out, err = f.cmp("-cmd", "ir", "-unprotected_requests", "-recipient", "/CN=x", "-newkey", key, "-subject", "/CN=x", "-certout", "x.pem", "-unprotected_errors")
	if err == nil || !strings.Contains(out, "badMessageCheck") {
		t.Errorf("unprotected request: err %v, want a badMessageCheck rejection\n%s", err, out)
	}
	out, err = f.cmp(append(macArgs(), "-cmd", "ir", "-newkey", key, "-subject", "/CN=x", "-popo", "0", "-certout", "x.pem")...)
	if err == nil || !strings.Contains(out, "badPOP") {
		t.Errorf("raVerified from an end entity: err %v, want a badPOP rejection\n%s", err, out)
	}
}

// post sends body to path and returns the HTTP status and the decoded CMP response.
func (f *fixture) post(path, contentType string, body []byte) (int, *pkicmp.Message) {
	f.t.Helper()
	resp, err := http.Post(f.server.URL+path, contentType, bytes.NewReader(body))
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 500 {
		f.t.Errorf("%s: HTTP %d", path, resp.StatusCode)
	}
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, nil
	}
	if got := resp.Header.Get("Content-Type"); got != ContentType {
		f.t.Errorf("Content-Type = %q", got)
	}
	m, err := pkicmp.ParseMessage(data)
	if err != nil {
		f.t.Fatalf("response is not a PKIMessage: %v", err)
	}
	return resp.StatusCode, m
}

func failInfoOf(m *pkicmp.Message) pkicmp.FailureInfo {
	if m == nil || m.Body.Type != pkicmp.BodyError {
		return 0
	}
	return m.Body.Error.Status.FailInfo
}

func TestHTTPRejectionsCarryFailInfo(t *testing.T) {
	// The captured OpenSSL requests use the secret "test", which the fixture's profile
	// does not have, and they are more than 10 minutes old, so the time check is off.
	f := newFixture(t, func(o *gateway.Options) { o.MessageTimeTolerance = 0 })
	vector := func(name string) []byte {
		data, err := os.ReadFile(filepath.Join("..", "..", "gateway", "cmp", "testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	valid := vector("ir_pbm_sha1.der")
	tests := []struct {
		name string
		body []byte
		want pkicmp.FailureInfo
	}{
		{"garbage", []byte("not a PKIMessage"), pkicmp.FailBadDataFormat},
		{"truncated", valid[:len(valid)/2], pkicmp.FailBadDataFormat},
		{"unprotected", vector("ir_unprotected.der"), pkicmp.FailBadMessageCheck},
		{"unknown senderKID", valid, pkicmp.FailBadMessageCheck},
		{"oversized", bytes.Repeat([]byte{0x30}, 65<<10), pkicmp.FailBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, m := f.post(WellKnownPath, ContentType, tt.body)
			if status != http.StatusOK {
				t.Fatalf("HTTP %d, want 200 with a CMP error", status)
			}
			if got := failInfoOf(m); got != tt.want {
				t.Errorf("failInfo = %s, want %s", got, tt.want)
			}
		})
	}

	for path, want := range map[string]int{
		WellKnownPath + "/p/nosuchprofile":    http.StatusNotFound,
		"/publicweb/cmp/example":              http.StatusNotFound,
		WellKnownPath + "/p/default/whatever": http.StatusNotFound,
	} {
		if status, _ := f.post(path, ContentType, valid); status != want {
			t.Errorf("POST %s: HTTP %d, want %d", path, status, want)
		}
	}
	if status, _ := f.post(WellKnownPath, "text/plain", valid); status != http.StatusUnsupportedMediaType {
		t.Errorf("wrong Content-Type: HTTP %d, want 415", status)
	}
	resp, err := http.Get(f.server.URL + WellKnownPath)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET: HTTP %d, want 405", resp.StatusCode)
	}
}

func TestReplayedRequestRejected(t *testing.T) {
	f := newFixture(t, func(o *gateway.Options) {
		o.MessageTimeTolerance = 0
		o.Profiles["default"].MACSecrets["1234"] = []byte("test")
	})
	ir, err := os.ReadFile(filepath.Join("..", "..", "gateway", "cmp", "testdata", "ir_pbm_sha1.der"))
	if err != nil {
		t.Fatal(err)
	}
	_, first := f.post(WellKnownPath, ContentType, ir)
	if first.Body.Type != pkicmp.BodyIP {
		t.Fatalf("first ir answered with %s (%s)", first.Body.Type, failInfoOf(first))
	}
	_, second := f.post(WellKnownPath, ContentType, ir)
	if got := failInfoOf(second); got != pkicmp.FailBadSenderNonce {
		t.Errorf("replayed ir: failInfo %s, want badSenderNonce", got)
	}
}

func TestProfileFromPath(t *testing.T) {
	tests := []struct {
		path    string
		profile string
		ok      bool
	}{
		{"/.well-known/cmp", "", true},
		{"/.well-known/cmp/", "", true},
		{"/.well-known/cmp////", "", true},
		{"/.well-known/cmp/p/tls", "tls", true},
		{"/.well-known/cmp/p/tls/initialization", "tls", true},
		{"/.well-known/cmp/initialization", "", true},
		{"/.well-known/cmp/p/", "", false},
		{"/.well-known/cmp/unknown", "", false},
		{"/.well-known/CMP", "", false},
		{"/.well-known/cmpx", "", false},
	}
	for _, tt := range tests {
		profile, ok := ProfileFromPath(tt.path)
		if profile != tt.profile || ok != tt.ok {
			t.Errorf("ProfileFromPath(%q) = %q, %v; want %q, %v", tt.path, profile, ok, tt.profile, tt.ok)
		}
	}
}

// OpenSSL 3.0 polls only for ip, cp and kup. certgate responds to an rr that the
// backend leaves pending with an error message of status waiting, and OpenSSL reports it
// and exits.
func TestOpenSSLSeesPendingRevocation(t *testing.T) {
	f := newFixture(t, nil)
	key := f.newKey("ee.key", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256")
	f.mustCMP(append(macArgs(), "-cmd", "ir", "-newkey", key, "-subject", "/CN=pending revocation", "-certout", "pending.pem")...)
	f.ca.PendingRevokePolls = 1
	out, err := f.cmp(append(macArgs(), "-cmd", "rr", "-oldcert", "pending.pem", "-revreason", "1")...)
	if err == nil {
		t.Fatalf("openssl cmp rr succeeded against a pending revocation:\n%s", out)
	}
	if !strings.Contains(out, "waiting") {
		t.Errorf("openssl cmp rr output does not mention the waiting status:\n%s", out)
	}
}
