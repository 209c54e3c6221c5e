package main

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// publicKeyOf returns the PEM public key of a certificate or private key file, as
// openssl prints it, so that keys are compared by a tool other than certgate.
func publicKeyOf(t *testing.T, kind, file string) []byte {
	t.Helper()
	var cmd *exec.Cmd
	if kind == "cert" {
		cmd = exec.Command("openssl", "x509", "-in", file, "-pubkey", "-noout")
	} else {
		cmd = exec.Command("openssl", "pkey", "-in", file, "-pubout")
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("openssl reading %s: %v\n%s", file, err, out)
	}
	return out
}

func TestCentralKeyGenerationAndRecovery(t *testing.T) {
	binary := buildCertgate(t)
	g := startGateway(t, binary)
	server := "http://" + g.address + "/.well-known/cmp"
	secret := filepath.Join(g.dataDir, "secrets", "cmp-default.secret")
	root := filepath.Join(g.dataDir, "softca", "root.crt")
	chain := filepath.Join(g.dataDir, "softca", "chain.pem")
	file := func(name string) string { return filepath.Join(g.dir, name) }
	run := func(args ...string) (string, error) {
		out, err := exec.Command(binary, append([]string{"cmp"}, args...)...).CombinedOutput()
		return string(out), err
	}
	mustRun := func(args ...string) {
		t.Helper()
		if out, err := run(args...); err != nil {
			t.Fatalf("certgate cmp %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	checkPair := func(certFile, keyFile string) {
		t.Helper()
		if out, err := exec.Command("openssl", "verify", "-CAfile", chain, certFile).CombinedOutput(); err != nil {
			t.Fatalf("openssl verify %s: %v\n%s", certFile, err, out)
		}
		if !bytes.Equal(publicKeyOf(t, "cert", certFile), publicKeyOf(t, "key", keyFile)) {
			t.Errorf("the key in %s does not belong to %s", keyFile, certFile)
		}
	}

	// MAC-protected ir: the key comes back encrypted to the shared secret (PWRI).
	mustRun("ir", "--server", server, "--ref", "default", "--secret-file", secret, "--trusted", root,
		"--subject", "/CN=generated", "--centralkeygen", "default", "--newkeyout", file("gen1.key"), "--out", file("gen1.crt"))
	checkPair(file("gen1.crt"), file("gen1.key"))

	// Signed cr: the RSA key comes back encrypted to the ECDSA signer by key agreement.
	mustRun("cr", "--server", server, "--cert", file("gen1.crt"), "--key", file("gen1.key"), "--trusted", root,
		"--subject", "/CN=generated", "--centralkeygen", "rsa", "--newkeyout", file("gen2.key"), "--out", file("gen2.crt"))
	checkPair(file("gen2.crt"), file("gen2.key"))

	// The requester recovers the first key with its MAC secret.
	mustRun("krr", "--server", server, "--ref", "default", "--secret-file", secret, "--trusted", root,
		"--oldcert", file("gen1.crt"), "--newkeyout", file("recovered1.key"))
	checkPair(file("gen1.crt"), file("recovered1.key"))

	// A later certificate of the same subject recovers it too, by key transport to RSA.
	mustRun("krr", "--server", server, "--cert", file("gen2.crt"), "--key", file("gen2.key"), "--trusted", root,
		"--oldcert", file("gen1.crt"), "--newkeyout", file("recovered2.key"))
	checkPair(file("gen1.crt"), file("recovered2.key"))

	// Another subject may not recover it.
	mustRun("ir", "--server", server, "--ref", "default", "--secret-file", secret, "--trusted", root,
		"--subject", "/CN=someone else", "--centralkeygen", "ecdsa-p384", "--newkeyout", file("other.key"), "--out", file("other.crt"))
	out, err := run("krr", "--server", server, "--cert", file("other.crt"), "--key", file("other.key"), "--trusted", root,
		"--oldcert", file("gen1.crt"), "--newkeyout", file("stolen.key"))
	if err == nil || !strings.Contains(out, "notAuthorized") {
		t.Errorf("krr by another subject: err %v, want notAuthorized\n%s", err, out)
	}
}
