package main

import (
	"io"
	"net/http"
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

// certgate serve reads scep.profiles[].next_ca_file at start and returns its
// certificate with GetNextCACert, signed by the RA, which chains to the current CA.
func TestServeGetNextCACert(t *testing.T) {
	if testing.Short() {
		t.Skip("builds certgate and runs openssl; skipped in -short mode")
	}
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl is not installed")
	}
	files := t.TempDir()
	nextCA := filepath.Join(files, "next-ca.pem")
	if out, err := exec.Command("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
		"-keyout", filepath.Join(files, "next-ca.key"), "-subj", "/CN=Next CA", "-days", "3650",
		"-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
		"-out", nextCA).CombinedOutput(); err != nil {
		t.Fatalf("openssl req -x509: %v\n%s", err, out)
	}
	binary := buildCertgate(t)
	g := startGatewayWithConfig(t, binary, "scep:\n  profiles:\n    - name: default\n      next_ca_file: "+nextCA+"\n")
	url := "http://" + g.address + "/scep"

	get := func(query string) []byte {
		t.Helper()
		resp, err := http.Get(url + query)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: HTTP %d, %v\n%s", query, resp.StatusCode, err, body)
		}
		return body
	}
	if caps := get("?operation=GetCACaps"); !strings.Contains(string(caps), "GetNextCACert\n") {
		t.Errorf("GetCACaps lacks GetNextCACert:\n%s", caps)
	}

	response := filepath.Join(files, "next-ca.der")
	if err := os.WriteFile(response, get("?operation=GetNextCACert"), 0o600); err != nil {
		t.Fatal(err)
	}
	currentCA := filepath.Join(files, "current-ca.pem")
	var chain []byte
	for _, name := range []string{"issuing.crt", "root.crt"} {
		data, err := os.ReadFile(filepath.Join(g.dataDir, "softca", name))
		if err != nil {
			t.Fatal(err)
		}
		chain = append(chain, data...)
	}
	if err := os.WriteFile(currentCA, chain, 0o600); err != nil {
		t.Fatal(err)
	}
	inner := filepath.Join(files, "inner.der")
	if out, err := exec.Command("openssl", "cms", "-verify", "-inform", "DER", "-in", response, "-binary",
		"-CAfile", currentCA, "-out", inner).CombinedOutput(); err != nil {
		t.Fatalf("openssl cms -verify: %v\n%s", err, out)
	}
	got, err := exec.Command("openssl", "pkcs7", "-inform", "DER", "-in", inner, "-print_certs", "-noout").CombinedOutput()
	if err != nil {
		t.Fatalf("openssl pkcs7 -print_certs: %v\n%s", err, got)
	}
	if !strings.Contains(string(got), "subject=CN = Next CA") {
		t.Errorf("the signed content does not carry the next CA certificate:\n%s", got)
	}
}

// A one-time challenge that authorized an enrollment the profile then rejected is put
// back, so that the device can try again. Once a certificate is issued, it is used up.
func TestOneTimeChallengeSurvivesRejection(t *testing.T) {
	if testing.Short() {
		t.Skip("builds certgate and runs strongSwan pki; skipped in -short mode")
	}
	if _, err := exec.LookPath("pki"); err != nil {
		t.Skip("strongSwan pki is not installed (Debian packages strongswan-pki and libstrongswan-extra-plugins)")
	}
	binary := buildCertgate(t)
	g := startGatewayWithConfig(t, binary, `profiles:
  - name: default
    backend: softca
    mac_secrets: [{reference: default, secret_file: secrets/cmp-default.secret, generate: true}]
    san: {dns_suffixes: [example.com]}
`)
	issue := exec.Command(binary, "scep", "challenge", "--config", filepath.Join(g.dir, "certgate.yaml"), "--ttl", "10m", "--note", "device 43")
	issue.Dir = g.dir
	out, err := issue.Output()
	if err != nil {
		t.Fatalf("certgate scep challenge: %v", err)
	}
	challenge := strings.TrimSpace(string(out))

	url := "http://" + g.address + "/scep"
	scepca := exec.Command("pki", "--scepca", "--url", url, "--caout", "ca.der", "--raout", "ra.der")
	scepca.Dir = g.dir
	if out, err := scepca.CombinedOutput(); err != nil {
		t.Fatalf("pki --scepca: %v\n%s", err, out)
	}
	enroll := func(name, san string) (string, error) {
		key := filepath.Join(g.dir, name+".key")
		if out, err := exec.Command("openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", key).CombinedOutput(); err != nil {
			t.Fatalf("openssl genpkey: %v\n%s", err, out)
		}
		cmd := exec.Command("pki", "--scep", "--url", url, "--in", key, "--dn", "CN="+name, "--san", san,
			"--password", challenge, "--cacert-enc", "ra.der", "--cacert-sig", "ra.der", "--outform", "pem")
		cmd.Dir = g.dir
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := enroll("rejected", "rejected.forbidden.test"); err == nil {
		t.Fatalf("a SAN outside the profile's DNS suffixes was accepted:\n%s", out)
	}
	if out, err := enroll("accepted", "accepted.example.com"); err != nil {
		t.Fatalf("the challenge was not usable again after the rejected enrollment: %v\n%s", err, out)
	}
	if out, err := enroll("again", "again.example.com"); err == nil {
		t.Fatalf("the challenge enrolled a second device after a certificate was issued:\n%s", out)
	}
}
