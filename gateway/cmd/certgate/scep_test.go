package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// certgate serve on the default scep section serves SCEP at /scep with a challenge
// generated on first start, and strongSwan's pki enrolls with it.
func TestServeEnrollsWithSCEP(t *testing.T) {
	if testing.Short() {
		t.Skip("builds certgate and runs strongSwan pki; skipped in -short mode")
	}
	if _, err := exec.LookPath("pki"); err != nil {
		t.Skip("strongSwan pki is not installed (Debian packages strongswan-pki and libstrongswan-extra-plugins)")
	}
	binary := buildCertgate(t)
	g := startGateway(t, binary)
	challengeFile := filepath.Join(g.dataDir, "secrets", "scep-default.challenge")
	info, err := os.Stat(challengeFile)
	if err != nil {
		t.Fatalf("the SCEP challenge was not generated: %v", err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Errorf("challenge file mode = %04o, want 0600", info.Mode().Perm())
	}
	challenge, err := os.ReadFile(challengeFile)
	if err != nil {
		t.Fatal(err)
	}

	url := "http://" + g.address + "/scep"
	key := filepath.Join(g.dir, "scep-device.key")
	if out, err := exec.Command("openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", key).CombinedOutput(); err != nil {
		t.Fatalf("openssl genpkey: %v\n%s", err, out)
	}
	scepca := exec.Command("pki", "--scepca", "--url", url, "--caout", "ca.der", "--raout", "ra.der")
	scepca.Dir = g.dir
	if out, err := scepca.CombinedOutput(); err != nil {
		t.Fatalf("pki --scepca: %v\n%s", err, out)
	}
	certFile := filepath.Join(g.dir, "scep-device.crt")
	enroll := exec.Command("pki", "--scep", "--url", url, "--in", key, "--dn", "CN=scep-device",
		"--password", string(challenge[:len(challenge)-1]), "--cacert-enc", "ra.der", "--cacert-sig", "ra.der", "--outform", "pem")
	enroll.Dir = g.dir
	out, err := enroll.Output()
	if err != nil {
		t.Fatalf("pki --scep: %v", err)
	}
	if err := os.WriteFile(certFile, out, 0o600); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(g.dataDir, "softca", "root.crt")
	issuing := filepath.Join(g.dataDir, "softca", "issuing.crt")
	if out, err := exec.Command("openssl", "verify", "-CAfile", root, "-untrusted", issuing, certFile).CombinedOutput(); err != nil {
		t.Fatalf("openssl verify: %v\n%s", err, out)
	}
}

// A challenge issued with "certgate scep challenge" enrolls one device, once.
func TestOneTimeSCEPChallenge(t *testing.T) {
	if testing.Short() {
		t.Skip("builds certgate and runs strongSwan pki; skipped in -short mode")
	}
	if _, err := exec.LookPath("pki"); err != nil {
		t.Skip("strongSwan pki is not installed (Debian packages strongswan-pki and libstrongswan-extra-plugins)")
	}
	binary := buildCertgate(t)
	g := startGateway(t, binary)

	issue := exec.Command(binary, "scep", "challenge", "--config", filepath.Join(g.dir, "certgate.yaml"), "--ttl", "10m", "--note", "device 42")
	issue.Dir = g.dir
	out, err := issue.Output()
	if err != nil {
		t.Fatalf("certgate scep challenge: %v", err)
	}
	challenge := strings.TrimSpace(string(out))
	if len(challenge) != 32 {
		t.Fatalf("challenge %q is not 32 characters", challenge)
	}

	url := "http://" + g.address + "/scep"
	scepca := exec.Command("pki", "--scepca", "--url", url, "--caout", "ca.der", "--raout", "ra.der")
	scepca.Dir = g.dir
	if out, err := scepca.CombinedOutput(); err != nil {
		t.Fatalf("pki --scepca: %v\n%s", err, out)
	}
	enroll := func(name string) (string, error) {
		key := filepath.Join(g.dir, name+".key")
		if out, err := exec.Command("openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", key).CombinedOutput(); err != nil {
			t.Fatalf("openssl genpkey: %v\n%s", err, out)
		}
		cmd := exec.Command("pki", "--scep", "--url", url, "--in", key, "--dn", "CN="+name,
			"--password", challenge, "--cacert-enc", "ra.der", "--cacert-sig", "ra.der", "--outform", "pem")
		cmd.Dir = g.dir
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := enroll("first-device"); err != nil {
		t.Fatalf("enrollment with a fresh one-time challenge failed: %v\n%s", err, out)
	}
	out2, err := enroll("second-device")
	if err == nil {
		t.Fatalf("a used one-time challenge enrolled a second device:\n%s", out2)
	}
	if !strings.Contains(out2, "badRequest") {
		t.Errorf("the second enrollment was not rejected with failInfo badRequest:\n%s", out2)
	}
}
