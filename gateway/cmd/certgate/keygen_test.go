package main

import (
	"bytes"
	"os"
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

// bouncyCastleJars lists the BouncyCastle jars of Debian's libbcpkix-java, or skips.
func bouncyCastleJars(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("javac"); err != nil {
		t.Skip("javac is not installed (Debian package openjdk-17-jdk-headless)")
	}
	var jars []string
	for _, name := range []string{"bcprov", "bcpkix", "bcutil"} {
		path := filepath.Join("/usr/share/java", name+".jar")
		if _, err := os.Stat(path); err != nil {
			t.Skipf("%s is missing (Debian package libbcpkix-java)", path)
		}
		jars = append(jars, path)
	}
	return strings.Join(jars, string(os.PathListSeparator))
}

// BouncyCastle 1.72, whose CMP, CRMF and CMS classes EJBCA builds on, requests central key
// generation with MAC protection (the key comes back by PWRI), signed with an ECDSA
// certificate (KARI) and signed with an RSA certificate (KTRI). Its client verifies the
// response's protection and the key package's signature, and it opens the envelope with
// its own recipients. openssl then checks the certificate and the key.
func TestBouncyCastleCentralKeyGeneration(t *testing.T) {
	jars := bouncyCastleJars(t)
	binary := buildCertgate(t)
	g := startGateway(t, binary)
	classes := t.TempDir()
	if out, err := exec.Command("javac", "-d", classes, "-cp", jars, filepath.Join("testdata", "bcpeer", "CentralKeyGen.java")).CombinedOutput(); err != nil {
		t.Fatalf("javac: %v\n%s", err, out)
	}
	server := "http://" + g.address + "/.well-known/cmp"
	secret := filepath.Join(g.dataDir, "secrets", "cmp-default.secret")
	chain := filepath.Join(g.dataDir, "softca", "chain.pem")
	file := func(name string) string { return filepath.Join(g.dir, name) }

	// Signer certificates for the two signature cases, enrolled with certgate's client.
	for name, keyArgs := range map[string][]string{
		"ec-signer":  {"-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"},
		"rsa-signer": {"-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"},
	} {
		if out, err := exec.Command("openssl", append([]string{"genpkey", "-out", file(name + ".key")}, keyArgs...)...).CombinedOutput(); err != nil {
			t.Fatalf("openssl genpkey: %v\n%s", err, out)
		}
		out, err := exec.Command(binary, "cmp", "ir", "--server", server, "--ref", "default", "--secret-file", secret,
			"--newkey", file(name+".key"), "--subject", "/CN="+name, "--out", file(name+".crt")).CombinedOutput()
		if err != nil {
			t.Fatalf("certgate cmp ir for %s: %v\n%s", name, err, out)
		}
	}

	cases := []struct {
		name string
		args []string
	}{
		{"pwri", []string{"mac", "default", secret}},
		{"kari", []string{"sig", file("ec-signer.crt"), file("ec-signer.key")}},
		{"ktri", []string{"sig", file("rsa-signer.crt"), file("rsa-signer.key")}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			certFile, keyFile := file(c.name+".crt"), file(c.name+".key")
			args := append([]string{"-cp", jars + string(os.PathListSeparator) + classes, "CentralKeyGen", server}, c.args...)
			out, err := exec.Command("java", append(args, certFile, keyFile)...).CombinedOutput()
			if err != nil {
				t.Fatalf("BouncyCastle client: %v\n%s", err, out)
			}
			if out, err := exec.Command("openssl", "verify", "-CAfile", chain, certFile).CombinedOutput(); err != nil {
				t.Fatalf("openssl verify: %v\n%s", err, out)
			}
			if !bytes.Equal(publicKeyOf(t, "cert", certFile), publicKeyOf(t, "key", keyFile)) {
				t.Error("the key that BouncyCastle opened does not belong to the certificate")
			}
		})
	}

	// BouncyCastle reads certgate's krp: the key recovered for the PWRI case is the key
	// it received at enrollment.
	recovered := file("recovered-pwri.key")
	args := []string{"-cp", jars + string(os.PathListSeparator) + classes, "CentralKeyGen", server, "krr", "default", secret, file("pwri.crt"), recovered}
	if out, err := exec.Command("java", args...).CombinedOutput(); err != nil {
		t.Fatalf("BouncyCastle krr: %v\n%s", err, out)
	}
	if !bytes.Equal(publicKeyOf(t, "key", recovered), publicKeyOf(t, "key", file("pwri.key"))) {
		t.Error("the recovered key differs from the generated one")
	}
}
