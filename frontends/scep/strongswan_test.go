package scep

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// strongSwan's pki is a strict SCEP client: it rejects a CA that does not advertise AES
// and checks the CertRep signature against the RA certificate it is given. These tests
// were written with 5.9.8 from Debian: strongswan-pki, libstrongswan-extra-plugins for
// the curl fetcher and libstrongswan-standard-plugins for ECDSA certificates.

func requirePKI(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("runs the strongSwan pki client; skipped in -short mode")
	}
	if _, err := exec.LookPath("pki"); err != nil {
		t.Skip("strongSwan pki is not installed (Debian packages strongswan-pki and libstrongswan-extra-plugins)")
	}
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl is not installed")
	}
}

// pki runs strongSwan's pki in the fixture's folder and returns its standard output and
// its combined output for messages.
func (f *fixture) pki(args ...string) (string, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "pki", args...)
	cmd.Dir = f.dir
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.String(), stdout.String() + stderr.String(), err
}

// scepCA runs pki --scepca and returns the paths of the RA and CA certificates it wrote.
func (f *fixture) scepCA(url string) (ra, ca string) {
	f.t.Helper()
	_, out, err := f.pki("--scepca", "--url", url, "--caout", "ca.der", "--raout", "ra.der", "--force")
	if err != nil {
		f.t.Fatalf("pki --scepca: %v\n%s", err, out)
	}
	return filepath.Join(f.dir, "ra.der"), filepath.Join(f.dir, "ca.der")
}

func TestStrongSwanEnrollAndRenew(t *testing.T) {
	requirePKI(t)
	f := newFixture(t, nil)
	recorder := f.record()
	ra, _ := f.scepCA(f.url)
	if got := readCertificateFile(t, ra); !got.Equal(f.ra.Certificate) {
		t.Fatalf("pki --scepca stored %s as RA certificate, want the gateway's RA", got.Subject)
	}

	key := f.newRSAKey("sw1.key")
	certPEM, out, err := f.pki("--scep", "--url", f.url, "--in", key, "--dn", "CN=sw1,O=certgate test",
		"--password", testChallenge, "--cacert-enc", ra, "--cacert-sig", ra, "--outform", "pem")
	if err != nil {
		t.Fatalf("pki --scep: %v\n%s", err, out)
	}
	certFile := f.writeFile("sw1.crt", []byte(certPEM))
	cert := readCertificateFile(t, certFile)
	f.verifyIssued(cert)
	if cert.Subject.CommonName != "sw1" {
		t.Errorf("subject = %s, want CN=sw1", cert.Subject)
	}

	// Renewal: signed with the old certificate and key, for a new key.
	newKey := f.newRSAKey("sw1-new.key")
	renewedPEM, out, err := f.pki("--scep", "--url", f.url, "--in", newKey, "--dn", "CN=sw1,O=certgate test",
		"--cacert-enc", ra, "--cacert-sig", ra, "--cert", certFile, "--key", key, "--outform", "pem")
	if err != nil {
		t.Fatalf("pki --scep renewal: %v\n%s", err, out)
	}
	renewed := readCertificateFile(t, f.writeFile("sw1-new.crt", []byte(renewedPEM)))
	f.verifyIssued(renewed)
	if renewed.SerialNumber.Cmp(cert.SerialNumber) == 0 {
		t.Errorf("renewal returned serial %x, want a new certificate", renewed.SerialNumber)
	}
	recorder.save(t, "strongswan-pki-5.9.8", []string{"pkcsreq", "renewalreq"})
}

func TestStrongSwanWrongChallenge(t *testing.T) {
	requirePKI(t)
	f := newFixture(t, nil)
	ra, _ := f.scepCA(f.url)
	key := f.newRSAKey("bad.key")
	_, out, err := f.pki("--scep", "--url", f.url, "--in", key, "--dn", "CN=bad", "--password", "wrong",
		"--cacert-enc", ra, "--cacert-sig", ra)
	if err == nil {
		t.Fatalf("pki --scep with a wrong challenge succeeded:\n%s", out)
	}
	// pki prints the failInfo by name.
	if !strings.Contains(out, "badRequest") {
		t.Errorf("pki output does not name failInfo badRequest:\n%s", out)
	}
}

func TestStrongSwanTripleDESAndSHA512(t *testing.T) {
	requirePKI(t)
	f := newFixture(t, nil)
	ra, _ := f.scepCA(f.url)
	key := f.newRSAKey("des3.key")
	certPEM, out, err := f.pki("--scep", "--url", f.url, "--in", key, "--dn", "CN=des3", "--password", testChallenge,
		"--cacert-enc", ra, "--cacert-sig", ra, "--cipher", "des3", "--digest", "sha512", "--outform", "pem")
	if err != nil {
		t.Fatalf("pki --scep --cipher des3: %v\n%s", err, out)
	}
	f.verifyIssued(readCertificateFile(t, f.writeFile("des3.crt", []byte(certPEM))))
}

func TestStrongSwanSHA1OnlyWithLegacyProfile(t *testing.T) {
	requirePKI(t)
	f := newFixture(t, nil)
	ra, _ := f.scepCA(f.url)
	key := f.newRSAKey("sha1.key")
	args := []string{"--in", key, "--dn", "CN=sha1", "--password", testChallenge,
		"--cacert-enc", ra, "--cacert-sig", ra, "--digest", "sha1", "--outform", "pem"}
	_, out, err := f.pki(append([]string{"--scep", "--url", f.url}, args...)...)
	if err == nil || !strings.Contains(out, "badAlg") {
		t.Errorf("a SHA-1 request to the default profile: err %v, want failInfo badAlg:\n%s", err, out)
	}
	certPEM, out, err := f.pki(append([]string{"--scep", "--url", f.legacyURL()}, args...)...)
	if err != nil {
		t.Fatalf("a SHA-1 request to the legacy profile: %v\n%s", err, out)
	}
	f.verifyIssued(readCertificateFile(t, f.writeFile("sha1.crt", []byte(certPEM))))
}

func TestStrongSwanPendingThenPoll(t *testing.T) {
	requirePKI(t)
	f := newFixture(t, &fixtureOptions{implicitConfirm: true, pendingPolls: 2})
	ra, _ := f.scepCA(f.url)
	key := f.newRSAKey("pending.key")
	certPEM, out, err := f.pki("--scep", "--url", f.url, "--in", key, "--dn", "CN=pending", "--password", testChallenge,
		"--cacert-enc", ra, "--cacert-sig", ra, "--interval", "1", "--maxpolltime", "30", "--outform", "pem")
	if err != nil {
		t.Fatalf("pki --scep with a pending CA: %v\n%s", err, out)
	}
	f.verifyIssued(readCertificateFile(t, f.writeFile("pending.crt", []byte(certPEM))))
	if !strings.Contains(strings.ToLower(out), "pending") {
		t.Errorf("pki did not report a pending request:\n%s", out)
	}
}

// pki 5.9.8 reads the GetCACaps keywords into bit flags, so listing GetNextCACert must
// not change which algorithms it picks: it still enrolls with AES.
func TestStrongSwanEnrollsWithGetNextCACertListed(t *testing.T) {
	requirePKI(t)
	f := newFixture(t, nil)
	f.handler.Profiles["default"].NextCA = newNextCA(t)
	recorder := f.record()
	ra, _ := f.scepCA(f.url)
	key := f.newRSAKey("rollover.key")
	certPEM, out, err := f.pki("--scep", "--url", f.url, "--in", key, "--dn", "CN=rollover", "--password", testChallenge,
		"--cacert-enc", ra, "--cacert-sig", ra, "--outform", "pem")
	if err != nil {
		t.Fatalf("pki --scep against a profile that lists GetNextCACert: %v\n%s", err, out)
	}
	f.verifyIssued(readCertificateFile(t, f.writeFile("rollover.crt", []byte(certPEM))))

	recorder.mu.Lock()
	defer recorder.mu.Unlock()
	if len(recorder.messages) == 0 {
		t.Fatal("no PKIOperation was recorded")
	}
	req, err := ParseRequest(recorder.messages[0], LegacyAlgorithms{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := req.Decrypt(f.ra.Certificate, f.ra.Key, LegacyAlgorithms{}); err != nil {
		t.Fatal(err)
	}
	if got := req.ContentEncryption(); got != "aes128-cbc" {
		t.Errorf("pki encrypted with %s, want aes128-cbc", got)
	}
}
