package main

import (
	"os"
	"os/exec"
	"path/filepath"
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
