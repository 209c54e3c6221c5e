package upstreamcmp

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/certgate/certgate/backends"
	"github.com/certgate/certgate/gateway/cmp"
)

// netnsVariable marks the test process that runs inside its own network namespace.
const netnsVariable = "CERTGATE_TEST_NETNS"

// runInLoopbackNamespace re-runs the calling test inside a new network namespace that
// has only the loopback interface, because OpenSSL 3.0's mock CMP server listens on
// every interface and must not be reachable from outside. It returns true in the
// namespace, where the test goes on; outside, it waits for the inner run.
func runInLoopbackNamespace(t *testing.T) bool {
	t.Helper()
	if os.Getenv(netnsVariable) == "1" {
		return true
	}
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl is not installed")
	}
	if os.Geteuid() != 0 {
		t.Skip("creating a network namespace for OpenSSL's mock server needs root")
	}
	for _, tool := range []string{"unshare", "ip"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed", tool)
		}
	}
	cmd := exec.Command("unshare", "-n", "sh", "-c", `ip link set lo up && exec "$0" -test.run "^$1\$" -test.v`,
		os.Args[0], t.Name())
	cmd.Env = append(os.Environ(), netnsVariable+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("test in the loopback namespace failed: %v\n%s", err, out)
	}
	t.Logf("inner run:\n%s", out)
	return false
}

// mockPKI is what OpenSSL's mock server needs: its signing credential and the fixed
// certificate it returns, for the key the test asks to certify.
type mockPKI struct {
	dir       string
	root      *x509.Certificate
	rspCert   *x509.Certificate
	eeKeySPKI []byte
}

func writePEMFile(t *testing.T, path, blockType string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: blockType, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

func newMockPKI(t *testing.T) *mockPKI {
	t.Helper()
	dir := t.TempDir()
	now := time.Now()
	rootKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rootTemplate := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "mock root"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
	rootDER, _ := x509.CreateCertificate(rand.Reader, rootTemplate, rootTemplate, rootKey.Public(), rootKey)
	root, _ := x509.ParseCertificate(rootDER)

	issue := func(serial int64, cn string, pub any) *x509.Certificate {
		template := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature}
		der, err := x509.CreateCertificate(rand.Reader, template, root, pub, rootKey)
		if err != nil {
			t.Fatal(err)
		}
		cert, _ := x509.ParseCertificate(der)
		return cert
	}
	serverKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	server := issue(2, "mock server", serverKey.Public())
	eeKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rsp := issue(3, "mock end entity", eeKey.Public())

	serverKeyDER, _ := x509.MarshalPKCS8PrivateKey(serverKey)
	writePEMFile(t, filepath.Join(dir, "server.key"), "PRIVATE KEY", serverKeyDER)
	writePEMFile(t, filepath.Join(dir, "server.crt"), "CERTIFICATE", server.Raw)
	writePEMFile(t, filepath.Join(dir, "rsp.crt"), "CERTIFICATE", rsp.Raw)
	writePEMFile(t, filepath.Join(dir, "root.crt"), "CERTIFICATE", root.Raw)
	spki, _ := x509.MarshalPKIXPublicKey(eeKey.Public())
	return &mockPKI{dir: dir, root: root, rspCert: rsp, eeKeySPKI: spki}
}

var acceptPattern = regexp.MustCompile(`ACCEPT\s+\S*:(\d+)`)

// startMock runs OpenSSL's mock CMP server with extra options and returns its URL.
func (p *mockPKI) startMock(t *testing.T, options ...string) string {
	t.Helper()
	args := append([]string{"cmp", "-port", "0", "-srv_ref", "ra", "-srv_secret", "pass:mock secret",
		"-srv_cert", "server.crt", "-srv_key", "server.key", "-rsp_cert", "rsp.crt", "-rsp_capubs", "root.crt",
		"-accept_raverified", "-no_check_time"}, options...)
	cmd := exec.Command("openssl", args...)
	cmd.Dir = p.dir
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	ports := make(chan string, 1)
	go func() {
		scanner := bufio.NewScanner(stdout)
		for scanner.Scan() {
			if m := acceptPattern.FindStringSubmatch(scanner.Text()); m != nil {
				ports <- m[1]
			}
		}
	}()
	select {
	case port := <-ports:
		return "http://127.0.0.1:" + port + "/pkix/"
	case <-time.After(10 * time.Second):
		t.Fatal("OpenSSL's mock server did not report its port")
	}
	return ""
}

func (p *mockPKI) backend(t *testing.T, server, secret string) *Backend {
	t.Helper()
	backend, err := New(&Config{Server: server, Reference: "ra", Secret: []byte(secret), RequestType: cmp.BodyCR,
		CAChain: []*x509.Certificate{p.root}, Timeout: 20 * time.Second}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return backend
}

func (p *mockPKI) issueRequest() *backends.IssueRequest {
	subject, _ := asn1.Marshal(pkix.Name{CommonName: "mock end entity"}.ToRDNSequence())
	return &backends.IssueRequest{TransactionID: []byte("0123456789abcdef"), Profile: "default",
		Template: backends.Template{RawSubject: subject, PublicKeyDER: p.eeKeySPKI,
			NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}}
}

func TestUpstreamOpenSSLMock(t *testing.T) {
	if !runInLoopbackNamespace(t) {
		return
	}
	pki := newMockPKI(t)
	ctx := context.Background()

	t.Run("issue and revoke", func(t *testing.T) {
		backend := pki.backend(t, pki.startMock(t), "mock secret")
		result, err := backend.Issue(ctx, pki.issueRequest())
		if err != nil {
			t.Fatalf("Issue: %v", err)
		}
		if !result.Certificate.Equal(pki.rspCert) {
			t.Error("the certificate is not the one the mock returns")
		}
		if _, err := backend.Revoke(ctx, &backends.RevokeRequest{RawIssuer: pki.rspCert.RawIssuer, SerialNumber: pki.rspCert.SerialNumber, Reason: backends.ReasonKeyCompromise}); err != nil {
			t.Errorf("Revoke: %v", err)
		}
	})

	t.Run("polling", func(t *testing.T) {
		backend := pki.backend(t, pki.startMock(t, "-poll_count", "2", "-check_after", "1"), "mock secret")
		if _, err := backend.Issue(ctx, pki.issueRequest()); err != nil {
			t.Fatalf("Issue with polling: %v", err)
		}
	})

	t.Run("rejection keeps its reason", func(t *testing.T) {
		// -failure 19 is badCertTemplate.
		backend := pki.backend(t, pki.startMock(t, "-pkistatus", "2", "-failure", "19", "-statusstring", "template rejected"), "mock secret")
		_, err := backend.Issue(ctx, pki.issueRequest())
		if got := backends.CategoryOf(err); got != backends.CategoryBadTemplate {
			t.Errorf("category %s (%v), want bad template", got, err)
		}
	})

	t.Run("wrong RA secret", func(t *testing.T) {
		backend := pki.backend(t, pki.startMock(t), "wrong secret")
		_, err := backend.Issue(ctx, pki.issueRequest())
		var backendErr *backends.Error
		if !errors.As(err, &backendErr) {
			t.Fatalf("Issue with a wrong secret = %v, want a backend error", err)
		}
	})
}
