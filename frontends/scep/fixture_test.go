package scep

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/certgate/certgate/backends/backendtest"
	"github.com/certgate/certgate/gateway"
	"github.com/certgate/certgate/gateway/store"
)

// testChallenge is the static challenge password of the fixture's profiles.
const testChallenge = "a-test-challenge"

// fixture is a SCEP server on loopback in front of the real router, a SQLite store and
// an in-memory CA, with two profiles: "default" (RFC 8894 algorithms only) and
// "legacy" (single DES and SHA-1 turned on, for the micromdm scepclient).
type fixture struct {
	t       *testing.T
	dir     string
	ca      *backendtest.CA
	store   *store.SQLite
	router  *gateway.Router
	handler *Handler
	server  *httptest.Server
	url     string // base URL of the default profile
	ra      *RA

	mu        sync.Mutex
	recording *recorder // set by record
}

type fixtureOptions struct {
	implicitConfirm bool
	// pendingPolls makes the CA answer "pending" this many times before it issues. It
	// is set before the server starts, because the CA does not lock the field.
	pendingPolls    int
	configureRouter func(*gateway.Options)
	// memoryPending keeps pending enrollments in the handler's memory instead of the
	// store.
	memoryPending bool
}

func newFixture(t *testing.T, options *fixtureOptions) *fixture {
	t.Helper()
	if options == nil {
		options = &fixtureOptions{implicitConfirm: true}
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
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	opts := gateway.Options{
		Store:          f.store,
		DefaultProfile: "default",
		Profiles: map[string]*gateway.Profile{"default": {
			Name: "default", Backend: f.ca, BackendName: "memca", Validity: 24 * time.Hour,
			KeyTypes:        map[string]bool{"rsa-2048": true, "rsa-3072": true, "ecdsa-p256": true},
			ImplicitConfirm: options.implicitConfirm, RequireSubject: true,
			SAN: gateway.SANPolicy{AllowDNS: true, AllowIP: true, AllowEmail: true, AllowURI: true},
		}},
		MessageTimeTolerance: 10 * time.Minute,
		TransactionTimeout:   time.Minute,
		Logger:               logger,
	}
	if options.configureRouter != nil {
		options.configureRouter(&opts)
	}
	if f.router, err = gateway.New(opts); err != nil {
		t.Fatal(err)
	}
	// Every fixture uses the RA key in testdata, so that captured client messages can
	// be decrypted later with it.
	raDir := filepath.Join(f.dir, "scep")
	key, err := os.ReadFile(filepath.Join("testdata", "ra.key"))
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(raDir, 0o700)
	f.writeFile(filepath.Join("scep", "ra.key"), key)
	if f.ra, err = LoadRA(context.Background(), f.router, raDir, "", logger); err != nil {
		t.Fatal(err)
	}
	challenge := StaticChallenge([]byte(testChallenge))
	f.handler = &Handler{
		Router: f.router, DefaultProfile: "default", Logger: logger,
		Profiles: map[string]*Profile{
			"default": {Name: "default", Challenge: challenge, RA: f.ra},
			"legacy":  {Name: "legacy", Challenge: challenge, RA: f.ra, Legacy: LegacyAlgorithms{DES: true, SHA1: true}},
		},
	}
	if !options.memoryPending {
		f.handler.Store = f.store
	}
	f.ca.PendingPolls = options.pendingPolls
	f.server = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.server.Close)
	f.url = f.server.URL + DefaultPathPrefix
	return f
}

// legacyURL is the base URL of the profile with DES and SHA-1 turned on.
func (f *fixture) legacyURL() string { return f.url + "/p/legacy" }

// raFingerprint is the SHA-256 of the RA certificate in hex, which micromdm's
// scepclient takes to pick the RA among the certificates of GetCACert.
func (f *fixture) raFingerprint() string {
	sum := sha256.Sum256(f.ra.Certificate.Raw)
	return hex.EncodeToString(sum[:])
}

// writeFile writes a file into the fixture's folder and returns its path.
func (f *fixture) writeFile(name string, data []byte) string {
	path := filepath.Join(f.dir, name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		f.t.Fatal(err)
	}
	return path
}

// newRSAKey writes a new RSA key in PEM with openssl and returns its path.
func (f *fixture) newRSAKey(name string) string {
	f.t.Helper()
	path := filepath.Join(f.dir, name)
	out, err := exec.Command("openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", path).CombinedOutput()
	if err != nil {
		f.t.Fatalf("openssl genpkey: %v\n%s", err, out)
	}
	return path
}

// readCertificateFile reads the first certificate of a PEM or DER file.
func readCertificateFile(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// DER is parsed as it is: trimming it as text would cut a signature that happens
	// to end in a byte such as 0x0a or 0x20.
	if block, _ := pem.Decode(data); block != nil {
		data = block.Bytes
	}
	cert, err := x509.ParseCertificate(data)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return cert
}

// verifyIssued checks that cert chains to the fixture's CA.
func (f *fixture) verifyIssued(cert *x509.Certificate) {
	f.t.Helper()
	roots := x509.NewCertPool()
	roots.AddCert(f.ca.Root)
	intermediates := x509.NewCertPool()
	intermediates.AddCert(f.ca.Issuing)
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, Intermediates: intermediates, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		f.t.Fatalf("the issued certificate does not chain to the test CA: %v", err)
	}
}
