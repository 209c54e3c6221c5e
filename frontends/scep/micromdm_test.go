package scep

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The micromdm scepclient in two versions: 2.1.0 from the Debian package scep, and
// 2.3.0 built from its Go module, pinned in .ci/peers/go.mod. Both encrypt with single
// DES and sign with SHA-1, so they enroll only at the legacy profile. Both also encrypt
// to every certificate of GetCACert unless -ca-fingerprint selects the RA, and they
// cannot encrypt to the ECDSA keys of the test CA.

// micromdmClient is one scepclient to run: the command and its leading arguments.
type micromdmClient struct {
	name    string // for test vectors: client and version
	command []string
	dir     string // working folder; "" is the fixture's
}

func debianScepclient(t *testing.T) micromdmClient {
	t.Helper()
	if testing.Short() {
		t.Skip("runs the micromdm scepclient; skipped in -short mode")
	}
	path, err := exec.LookPath("scepclient")
	if err != nil {
		t.Skip("scepclient is not installed (Debian package scep)")
	}
	return micromdmClient{name: "micromdm-scepclient-2.1.0", command: []string{path}}
}

func moduleScepclient(t *testing.T) micromdmClient {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the micromdm scepclient 2.3.0; skipped in -short mode")
	}
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	modfile := filepath.Join(root, ".ci", "peers", "go.mod")
	if _, err := os.Stat(modfile); err != nil {
		t.Fatalf("the peer module file is missing: %v", err)
	}
	// Build once, so that the timeouts below do not include compiling.
	binary := filepath.Join(t.TempDir(), "scepclient")
	build := exec.Command("go", "build", "-modfile="+modfile, "-o", binary, "github.com/micromdm/scep/v2/cmd/scepclient")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building scepclient 2.3.0 from %s: %v\n%s", modfile, err, out)
	}
	return micromdmClient{name: "micromdm-scepclient-2.3.0", command: []string{binary}}
}

// run runs the client against url with its key and certificate in the folder dir. A
// certificate that exists is renewed.
func (c micromdmClient) run(f *fixture, url, dir, challenge string, extra ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	args := append(c.command[1:], "-server-url", url, "-private-key", filepath.Join(dir, "client.key"),
		"-certificate", filepath.Join(dir, "client.pem"), "-cn", "mdm-device", "-ca-fingerprint", f.raFingerprint())
	if challenge != "" {
		args = append(args, "-challenge", challenge)
	}
	cmd := exec.CommandContext(ctx, c.command[0], append(args, extra...)...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func testMicromdmEnrollAndRenew(t *testing.T, client micromdmClient) {
	f := newFixture(t, nil)
	recorder := f.record()
	dir := filepath.Join(f.dir, "device")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := client.run(f, f.legacyURL(), dir, testChallenge); err != nil {
		t.Fatalf("%s enroll: %v\n%s", client.name, err, out)
	}
	cert := readCertificateFile(t, filepath.Join(dir, "client.pem"))
	f.verifyIssued(cert)
	if cert.Subject.CommonName != "mdm-device" {
		t.Errorf("subject = %s, want CN=mdm-device", cert.Subject)
	}

	// With client.pem present the client sends a RenewalReq signed with it.
	if out, err := client.run(f, f.legacyURL(), dir, ""); err != nil {
		t.Fatalf("%s renew: %v\n%s", client.name, err, out)
	}
	renewed := readCertificateFile(t, filepath.Join(dir, "client.pem"))
	f.verifyIssued(renewed)
	if renewed.SerialNumber.Cmp(cert.SerialNumber) == 0 {
		t.Errorf("renewal returned the old certificate, serial %x", cert.SerialNumber)
	}
	recorder.save(t, client.name, []string{"pkcsreq", "renewalreq"})
}

func TestMicromdmDebianEnrollAndRenew(t *testing.T) {
	testMicromdmEnrollAndRenew(t, debianScepclient(t))
}

func TestMicromdmModuleEnrollAndRenew(t *testing.T) {
	testMicromdmEnrollAndRenew(t, moduleScepclient(t))
}

func TestMicromdmWrongChallenge(t *testing.T) {
	client := moduleScepclient(t)
	f := newFixture(t, nil)
	dir := filepath.Join(f.dir, "device")
	os.MkdirAll(dir, 0o700)
	out, err := client.run(f, f.legacyURL(), dir, "wrong")
	if err == nil {
		t.Fatalf("enrollment with a wrong challenge succeeded:\n%s", out)
	}
	if !strings.Contains(out, "badRequest") {
		t.Errorf("scepclient output does not name failInfo badRequest:\n%s", out)
	}
}

func TestMicromdmSingleDESRejectedByDefault(t *testing.T) {
	client := debianScepclient(t)
	f := newFixture(t, nil)
	dir := filepath.Join(f.dir, "device")
	os.MkdirAll(dir, 0o700)
	out, err := client.run(f, f.url, dir, testChallenge)
	if err == nil {
		t.Fatalf("single DES and SHA-1 were accepted by the default profile:\n%s", out)
	}
	if !strings.Contains(out, "badAlg") {
		t.Errorf("scepclient output does not name failInfo badAlg:\n%s", out)
	}
}
