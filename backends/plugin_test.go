package backends_test

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
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/certgate/certgate/backends"
	"github.com/certgate/certgate/plugins/sdk"
	"github.com/certgate/certgate/plugins/softca"
)

// TestMain lets the test binary serve as a built-in plugin, the way the certgate binary
// does: run with the arguments "plugin NAME", it serves that plugin instead of running
// tests.
func TestMain(m *testing.M) {
	if len(os.Args) == 3 && os.Args[1] == "host-then-die" {
		runHostThenDie(os.Args[2])
	}
	if len(os.Args) == 3 && os.Args[1] == "plugin" {
		switch os.Args[2] {
		case "softca":
			softca.Serve()
		case "fault":
			sdk.Serve(&faultCA{})
		default:
			fmt.Fprintf(os.Stderr, "unknown test plugin %q\n", os.Args[2])
			os.Exit(2)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// faultCA is a test plugin whose Issue fails on request: the profile names the
// outcome. It embeds sdk.RevokeUnsupported, so it reports no REVOKE capability.
type faultCA struct {
	sdk.RevokeUnsupported
	dataDir string
}

func (c *faultCA) Configure(_ context.Context, dataDir string, _ map[string]any) error {
	c.dataDir = dataDir
	return nil
}

func (c *faultCA) Issue(_ context.Context, req *sdk.IssueRequest) (*sdk.IssueResult, error) {
	switch profile := req.Profile; {
	case strings.HasPrefix(profile, "category:"):
		n, _ := strconv.Atoi(strings.TrimPrefix(profile, "category:"))
		return nil, &sdk.Error{Category: sdk.Category(n), Detail: "public detail " + profile, Err: errors.New("internal cause")}
	case profile == "plain-error":
		return nil, errors.New("an error without category")
	case profile == "panic":
		panic("a bug in the CA")
	case profile == "crash-once":
		// Exit in the middle of the first call; the marker makes the retry succeed.
		marker := filepath.Join(c.dataDir, "crashed")
		if _, err := os.Stat(marker); errors.Is(err, os.ErrNotExist) {
			os.WriteFile(marker, nil, 0o600)
			os.Exit(3)
		}
		return &sdk.IssueResult{Pending: &sdk.Pending{PollReference: "after-crash"}}, nil
	default:
		return nil, sdk.Errorf(sdk.CategoryBadRequest, "unknown test profile %q", profile)
	}
}

func (c *faultCA) Poll(context.Context, *sdk.PollRequest) (*sdk.IssueResult, error) {
	return nil, sdk.Errorf(sdk.CategoryNotFound, "no such poll reference")
}

func (c *faultCA) CAChain(context.Context) ([]*x509.Certificate, error) {
	return nil, sdk.Errorf(sdk.CategoryUnavailable, "no CA yet")
}

// builtinSpec describes the test binary itself as a built-in plugin.
func builtinSpec(t *testing.T, name string, config map[string]any) backends.PluginSpec {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return backends.PluginSpec{
		Name:           "test-" + name,
		Path:           self,
		Args:           []string{"plugin", name},
		DataDir:        t.TempDir(),
		Config:         config,
		HealthInterval: 100 * time.Millisecond,
	}
}

// syncBuffer is a bytes.Buffer safe for the concurrent writes of a slog handler.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// launch starts the plugin and closes it at the end of the test. The log goes to the
// returned buffer as JSON lines.
func launch(t *testing.T, spec backends.PluginSpec) (*backends.PluginBackend, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	logger := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b, err := backends.LaunchPlugin(ctx, spec, logger)
	if err != nil {
		t.Fatalf("LaunchPlugin: %v", err)
	}
	t.Cleanup(func() {
		pid := b.Pid()
		b.Close()
		if !processGone(pid) {
			t.Errorf("plugin process %d still runs after Close", pid)
		}
		if t.Failed() {
			t.Logf("log:\n%s", logs.String())
		}
	})
	return b, logs
}

// processGone reports whether pid has exited, counting a zombie as exited: a test
// runner without a reaping init may leave reparented orphans as zombies.
func processGone(pid int) bool {
	if pid <= 0 {
		return true
	}
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return true
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return errors.Is(err, os.ErrNotExist)
	}
	// The state follows the parenthesised command name: "pid (comm) S ...".
	fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
	return len(fields) > 0 && fields[0] == "Z"
}

func waitGone(pid int, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if processGone(pid) {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return processGone(pid)
}

// waitReaped waits until pid no longer exists, not even as a zombie.
func waitReaped(pid int, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) && !errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) {
		time.Sleep(10 * time.Millisecond)
	}
}

func newKey(t *testing.T) crypto.Signer {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

var oidSubjectAltName = asn1.ObjectIdentifier{2, 5, 29, 17}

func issueRequest(t *testing.T, pub crypto.PublicKey, transactionID, profile string) *backends.IssueRequest {
	t.Helper()
	spki, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	subject, err := asn1.Marshal(pkix.Name{CommonName: "router-7"}.ToRDNSequence())
	if err != nil {
		t.Fatal(err)
	}
	san, err := asn1.Marshal([]asn1.RawValue{{Class: asn1.ClassContextSpecific, Tag: 2, Bytes: []byte("router-7.example.net")}})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().Truncate(time.Second)
	return &backends.IssueRequest{
		TransactionID: []byte(transactionID),
		Profile:       profile,
		Requester:     backends.Requester{Frontend: "cmp", Identity: "CN=router-7", Method: "signature"},
		Template: backends.Template{
			RawSubject:   subject,
			PublicKeyDER: spki,
			Extensions:   []pkix.Extension{{Id: oidSubjectAltName, Value: san}},
			NotBefore:    now,
			NotAfter:     now.Add(48 * time.Hour),
		},
	}
}

func verifyChain(t *testing.T, cert *x509.Certificate, chain []*x509.Certificate) {
	t.Helper()
	roots := x509.NewCertPool()
	roots.AddCert(chain[len(chain)-1])
	intermediates := x509.NewCertPool()
	for _, c := range chain[:len(chain)-1] {
		intermediates.AddCert(c)
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, Intermediates: intermediates}); err != nil {
		t.Fatalf("the certificate does not verify against the chain: %v", err)
	}
}

func wantCategory(t *testing.T, err error, want backends.Category) *backends.Error {
	t.Helper()
	var backendErr *backends.Error
	if !errors.As(err, &backendErr) {
		t.Fatalf("error = %v (%T), want a *backends.Error of category %s", err, err, want)
	}
	if backendErr.Category != want {
		t.Fatalf("category = %s, want %s (error: %v)", backendErr.Category, want, err)
	}
	return backendErr
}

func TestPluginContractRoundTrip(t *testing.T) {
	b, _ := launch(t, builtinSpec(t, "softca", map[string]any{"issuing_common_name": "Round Trip CA"}))
	ctx := context.Background()

	caps, err := b.Capabilities(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := backends.Capabilities{Name: "softca", Version: caps.Version, ContractVersion: 1, Revoke: true, CRL: true}
	if caps != want {
		t.Errorf("capabilities = %+v, want %+v", caps, want)
	}

	chain, err := b.CAChain(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(chain) != 2 || chain[0].Subject.CommonName != "Round Trip CA" {
		t.Fatalf("chain = %d certificates, first %q; want the issuing CA and the root", len(chain), chain[0].Subject.CommonName)
	}

	key := newKey(t)
	req := issueRequest(t, key.Public(), "rt-1", "tls-server")
	res, err := b.Issue(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if res.Pending != nil || res.Certificate == nil {
		t.Fatalf("result = %+v, want an issued certificate", res)
	}
	verifyChain(t, res.Certificate, res.Chain)
	if !key.Public().(*ecdsa.PublicKey).Equal(res.Certificate.PublicKey) {
		t.Error("the certificate does not certify the requested key")
	}
	if !bytes.Equal(res.Certificate.RawSubject, req.Template.RawSubject) {
		t.Error("the subject changed on the way")
	}
	if len(res.Certificate.DNSNames) != 1 || res.Certificate.DNSNames[0] != "router-7.example.net" {
		t.Errorf("DNS names = %v, want the template's", res.Certificate.DNSNames)
	}
	if !res.Certificate.NotAfter.Equal(req.Template.NotAfter) {
		t.Errorf("notAfter = %s, want %s", res.Certificate.NotAfter, req.Template.NotAfter)
	}

	again, err := b.Issue(ctx, issueRequest(t, key.Public(), "rt-1", "tls-server"))
	if err != nil {
		t.Fatal(err)
	}
	if !again.Certificate.Equal(res.Certificate) {
		t.Error("a repeated transaction ID returned a different certificate")
	}

	invalidity := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	_, err = b.Revoke(ctx, &backends.RevokeRequest{
		RawIssuer:      res.Certificate.RawIssuer,
		SerialNumber:   res.Certificate.SerialNumber,
		Reason:         backends.ReasonKeyCompromise,
		InvalidityDate: invalidity,
		Requester:      backends.Requester{Frontend: "cmp", Identity: "CN=ra", Method: "signature"},
	})
	if err != nil {
		t.Fatal(err)
	}
	der, err := b.CRL(ctx)
	if err != nil {
		t.Fatal(err)
	}
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		t.Fatal(err)
	}
	if err := crl.CheckSignatureFrom(chain[0]); err != nil {
		t.Fatalf("CRL signature: %v", err)
	}
	if len(crl.RevokedCertificateEntries) != 1 {
		t.Fatalf("CRL has %d entries, want 1", len(crl.RevokedCertificateEntries))
	}
	entry := crl.RevokedCertificateEntries[0]
	if entry.SerialNumber.Cmp(res.Certificate.SerialNumber) != 0 || entry.ReasonCode != int(backends.ReasonKeyCompromise) {
		t.Errorf("CRL entry = serial %x reason %d, want serial %x reason 1", entry.SerialNumber, entry.ReasonCode, res.Certificate.SerialNumber)
	}

	_, err = b.Revoke(ctx, &backends.RevokeRequest{RawIssuer: res.Certificate.RawIssuer, SerialNumber: res.Certificate.SerialNumber, Reason: backends.ReasonSuperseded})
	wantCategory(t, err, backends.CategoryAlreadyRevoked)

	_, err = b.Poll(ctx, &backends.PollRequest{TransactionID: []byte("rt-1"), PollReference: "x"})
	wantCategory(t, err, backends.CategoryUnsupported)

	_, err = b.PollRevoke(ctx, &backends.PollRequest{TransactionID: []byte("rt-1"), PollReference: "x"})
	wantCategory(t, err, backends.CategoryUnsupported)
}

func TestPluginHoldAndReleaseAcrossHop(t *testing.T) {
	b, _ := launch(t, builtinSpec(t, "softca", nil))
	ctx := context.Background()
	res, err := b.Issue(ctx, issueRequest(t, newKey(t).Public(), "", "p"))
	if err != nil {
		t.Fatal(err)
	}
	revoke := func(reason backends.RevocationReason) error {
		_, err := b.Revoke(ctx, &backends.RevokeRequest{RawIssuer: res.Certificate.RawIssuer, SerialNumber: res.Certificate.SerialNumber, Reason: reason})
		return err
	}
	listed := func() (bool, int) {
		der, err := b.CRL(ctx)
		if err != nil {
			t.Fatal(err)
		}
		crl, err := x509.ParseRevocationList(der)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range crl.RevokedCertificateEntries {
			if e.SerialNumber.Cmp(res.Certificate.SerialNumber) == 0 {
				return true, e.ReasonCode
			}
		}
		return false, 0
	}

	if err := revoke(backends.ReasonCertificateHold); err != nil {
		t.Fatal(err)
	}
	if ok, reason := listed(); !ok || reason != int(backends.ReasonCertificateHold) {
		t.Fatalf("after hold: listed %v with reason %d, want listed with reason 6", ok, reason)
	}
	if err := revoke(backends.ReasonRemoveFromCRL); err != nil {
		t.Fatal(err)
	}
	if ok, _ := listed(); ok {
		t.Fatal("the released certificate is still on the CRL")
	}
	wantCategory(t, revoke(backends.ReasonRemoveFromCRL), backends.CategoryBadRequest)

	// ReasonUnspecified travels as "no reason given"; the CRL entry has no reasonCode.
	if err := revoke(backends.ReasonUnspecified); err != nil {
		t.Fatal(err)
	}
	if ok, reason := listed(); !ok || reason != 0 {
		t.Fatalf("after unspecified: listed %v with reason %d, want listed without reason", ok, reason)
	}

	unknown := &backends.RevokeRequest{RawIssuer: res.Certificate.RawIssuer, SerialNumber: res.Certificate.SerialNumber, Reason: backends.RevocationReason(7)}
	_, err = b.Revoke(ctx, unknown)
	wantCategory(t, err, backends.CategoryBadRequest)
}

func TestPluginErrorCategoriesSurviveHop(t *testing.T) {
	b, _ := launch(t, builtinSpec(t, "fault", nil))
	ctx := context.Background()
	pub := newKey(t).Public()

	for c := backends.CategoryInternal; c <= backends.CategoryUnavailable; c++ {
		t.Run(c.String(), func(t *testing.T) {
			if got := sdk.Category(c).String(); got != c.String() {
				t.Fatalf("sdk.Category(%d) is %q but backends.Category(%d) is %q", c, got, c, c.String())
			}
			_, err := b.Issue(ctx, issueRequest(t, pub, "", "category:"+strconv.Itoa(int(c))))
			backendErr := wantCategory(t, err, c)
			if want := "public detail category:" + strconv.Itoa(int(c)); backendErr.Detail != want {
				t.Errorf("detail = %q, want %q", backendErr.Detail, want)
			}
			if !strings.Contains(err.Error(), "internal cause") {
				t.Errorf("error %q lost the internal cause text", err)
			}
		})
	}

	t.Run("error without category", func(t *testing.T) {
		_, err := b.Issue(ctx, issueRequest(t, pub, "", "plain-error"))
		wantCategory(t, err, backends.CategoryInternal)
	})
	t.Run("panic", func(t *testing.T) {
		pid := b.Pid()
		_, err := b.Issue(ctx, issueRequest(t, pub, "", "panic"))
		wantCategory(t, err, backends.CategoryInternal)
		if b.Pid() != pid {
			t.Error("a panic in the CA restarted the plugin; the SDK should turn it into an error")
		}
	})
	t.Run("poll error", func(t *testing.T) {
		_, err := b.Poll(ctx, &backends.PollRequest{PollReference: "nope"})
		wantCategory(t, err, backends.CategoryNotFound)
	})
	t.Run("revoke unsupported", func(t *testing.T) {
		caps, err := b.Capabilities(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if caps.Revoke || caps.CRL || !caps.Pending {
			t.Errorf("capabilities = %+v, want Pending only", caps)
		}
		_, err = b.Revoke(ctx, &backends.RevokeRequest{SerialNumber: big.NewInt(1), Reason: backends.ReasonSuperseded})
		wantCategory(t, err, backends.CategoryUnsupported)
	})
	t.Run("CRL not implemented", func(t *testing.T) {
		_, err := b.CRL(ctx)
		wantCategory(t, err, backends.CategoryUnsupported)
	})
	t.Run("invalid serial stays on the host", func(t *testing.T) {
		_, err := b.Revoke(ctx, &backends.RevokeRequest{Reason: backends.ReasonSuperseded})
		wantCategory(t, err, backends.CategoryBadRequest)
	})
}

func TestPluginRestartsAfterKill(t *testing.T) {
	b, logs := launch(t, builtinSpec(t, "softca", nil))
	ctx := context.Background()
	first, err := b.Issue(ctx, issueRequest(t, newKey(t).Public(), "", "p"))
	if err != nil {
		t.Fatal(err)
	}

	for round := 1; round <= 2; round++ {
		oldPID := b.Pid()
		if err := syscall.Kill(oldPID, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		if round == 2 {
			// Let go-plugin reap the process and report the exit first, so that the
			// call takes the relaunch-before-call path; round 1 races the exit.
			waitReaped(oldPID, 5*time.Second)
			time.Sleep(100 * time.Millisecond)
		}

		res, err := b.Issue(ctx, issueRequest(t, newKey(t).Public(), "", "p"))
		if err != nil {
			t.Fatalf("round %d: Issue after kill: %v", round, err)
		}
		verifyChain(t, res.Certificate, res.Chain)
		if !bytes.Equal(res.Certificate.RawIssuer, first.Certificate.RawIssuer) {
			t.Errorf("round %d: the restarted plugin uses another CA", round)
		}
		newPID := b.Pid()
		if newPID == oldPID || newPID == 0 {
			t.Errorf("round %d: pid = %d after the kill, want a new process (old %d)", round, newPID, oldPID)
		}
		if !waitGone(oldPID, 5*time.Second) {
			t.Errorf("round %d: the killed process %d was not reaped", round, oldPID)
		}
	}

	log := logs.String()
	for _, msg := range []string{"plugin exited unexpectedly", "restarting plugin", "plugin ready"} {
		if !strings.Contains(log, msg) {
			t.Errorf("the log has no %q event", msg)
		}
	}
}

func TestPluginRetriesCallAfterCrash(t *testing.T) {
	b, logs := launch(t, builtinSpec(t, "fault", nil))
	oldPID := b.Pid()
	res, err := b.Issue(context.Background(), issueRequest(t, newKey(t).Public(), "", "crash-once"))
	if err != nil {
		t.Fatalf("Issue that crashed the plugin once: %v", err)
	}
	if res.Pending == nil || res.Pending.PollReference != "after-crash" {
		t.Fatalf("result = %+v, want the retry's pending result", res)
	}
	if b.Pid() == oldPID {
		t.Error("the plugin was not restarted")
	}
	if !strings.Contains(logs.String(), "retrying once") {
		t.Error("the log does not report the retry")
	}
}

func TestPluginHungIsReplaced(t *testing.T) {
	b, logs := launch(t, builtinSpec(t, "softca", nil))
	hungPID := b.Pid()
	// A stopped process keeps its socket open but never responds, like a deadlock.
	if err := syscall.Kill(hungPID, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}

	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(logs.String(), "failed its health checks") {
		if time.Now().After(deadline) {
			syscall.Kill(hungPID, syscall.SIGKILL)
			t.Fatal("the health check did not stop the hung plugin")
		}
		time.Sleep(20 * time.Millisecond)
	}

	res, err := b.Issue(context.Background(), issueRequest(t, newKey(t).Public(), "", "p"))
	if err != nil {
		t.Fatalf("Issue after the hung plugin was killed: %v", err)
	}
	verifyChain(t, res.Certificate, res.Chain)
	if b.Pid() == hungPID {
		t.Error("the hung plugin is still in use")
	}
	if !waitGone(hungPID, 5*time.Second) {
		t.Errorf("the hung plugin process %d still exists", hungPID)
	}
}

func TestPluginCloseStopsProcess(t *testing.T) {
	self, _ := os.Executable()
	spec := backends.PluginSpec{Name: "close", Path: self, Args: []string{"plugin", "softca"}, DataDir: t.TempDir()}
	b, err := backends.LaunchPlugin(context.Background(), spec, nil)
	if err != nil {
		t.Fatal(err)
	}
	pid := b.Pid()
	if processGone(pid) {
		t.Fatalf("plugin process %d is not running after launch", pid)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if !processGone(pid) {
		t.Errorf("plugin process %d still runs after Close", pid)
	}
	_, err = b.CAChain(context.Background())
	wantCategory(t, err, backends.CategoryUnavailable)
	if err := b.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestPluginCloseKillsHungProcess(t *testing.T) {
	self, _ := os.Executable()
	spec := backends.PluginSpec{Name: "hung", Path: self, Args: []string{"plugin", "softca"},
		DataDir: t.TempDir(), HealthInterval: -1}
	b, err := backends.LaunchPlugin(context.Background(), spec, nil)
	if err != nil {
		t.Fatal(err)
	}
	pid := b.Pid()
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}

	closed := make(chan struct{})
	go func() {
		b.Close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(30 * time.Second):
		syscall.Kill(pid, syscall.SIGKILL)
		t.Fatal("Close did not return for a hung plugin")
	}
	if !processGone(pid) {
		t.Errorf("plugin process %d still runs after Close", pid)
	}
}

func TestPluginLogReachesSlog(t *testing.T) {
	_, logs := launch(t, builtinSpec(t, "softca", nil))
	var found bool
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var record map[string]any
		if err := json.Unmarshal([]byte(line), &record); err != nil {
			t.Fatalf("log line %q is not JSON: %v", line, err)
		}
		// "created a new CA" is logged by softca inside the plugin process.
		if record["msg"] == "created a new CA" {
			found = true
			if record["level"] != "INFO" || record["backend"] != "test-softca" {
				t.Errorf("plugin log record = %v, want level INFO and backend test-softca", record)
			}
		}
	}
	if !found {
		t.Errorf("the plugin's own log line did not reach the host log:\n%s", logs.String())
	}
}

func TestLaunchPluginRejectsBadSpecs(t *testing.T) {
	self, _ := os.Executable()
	dir := t.TempDir()
	other := filepath.Join(dir, "other-plugin")
	if err := os.WriteFile(other, []byte("not the certgate binary"), 0o700); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name     string
		spec     backends.PluginSpec
		wantText string
	}{
		{"missing name", backends.PluginSpec{Path: self, DataDir: dir}, "name is missing"},
		{"relative path", backends.PluginSpec{Name: "x", Path: "bin/plugin", DataDir: dir}, "not absolute"},
		{"missing data directory", backends.PluginSpec{Name: "x", Path: self}, "data directory is missing"},
		{"external plugin without checksum", backends.PluginSpec{Name: "x", Path: other, DataDir: dir}, "sha256 is missing for " + other},
		{"checksum not hex", backends.PluginSpec{Name: "x", Path: other, SHA256: "zz", DataDir: dir}, "not 64 hexadecimal digits"},
		{"unsupported config value", backends.PluginSpec{Name: "x", Path: self, Args: []string{"plugin", "softca"}, DataDir: dir,
			Config: map[string]any{"when": time.Now()}}, "config cannot be passed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := backends.LaunchPlugin(context.Background(), tt.spec, nil)
			if err == nil || !strings.Contains(err.Error(), tt.wantText) {
				t.Fatalf("error = %v, want one containing %q", err, tt.wantText)
			}
		})
	}
}

func TestLaunchPluginReportsConfigureError(t *testing.T) {
	spec := builtinSpec(t, "softca", map[string]any{"key_algorithm": "rsa-1024"})
	_, err := backends.LaunchPlugin(context.Background(), spec, nil)
	backendErr := wantCategory(t, err, backends.CategoryBadRequest)
	if !strings.Contains(backendErr.Detail, "key_algorithm") {
		t.Errorf("detail %q does not name the key", backendErr.Detail)
	}
}

func TestPluginExitsWhenHostDies(t *testing.T) {
	self, _ := os.Executable()
	host := exec.Command(self, "host-then-die", t.TempDir())
	out, err := host.Output()
	if err != nil {
		t.Fatalf("the host process failed: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil {
		t.Fatalf("the host process printed %q, want the plugin's pid", out)
	}
	// The plugin checks its parent once a second.
	if !waitGone(pid, 10*time.Second) {
		syscall.Kill(pid, syscall.SIGKILL)
		t.Fatalf("plugin process %d still runs after its host exited", pid)
	}
}

// runHostThenDie launches softca from a separate host process, prints the plugin's
// pid and exits without closing the plugin, as a crashed certgate would.
func runHostThenDie(dataDir string) {
	self, err := os.Executable()
	if err != nil {
		os.Exit(2)
	}
	spec := backends.PluginSpec{Name: "orphan", Path: self, Args: []string{"plugin", "softca"}, DataDir: dataDir}
	b, err := backends.LaunchPlugin(context.Background(), spec, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	fmt.Println(b.Pid())
	os.Exit(0)
}
