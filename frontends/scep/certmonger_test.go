package scep

import (
	"bufio"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// certmonger (0.79.17 from Debian) enrolls through its scep-submit helper. Its daemon
// runs here on a private D-Bus session bus, with its request and CA state in the test's
// folder, so nothing of the machine's own certmonger is touched. certmonger renews by
// sending a new PKCSReq for the same key, so both certificates are checked.
func TestCertmongerEnrollAndResubmit(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the certmonger daemon; skipped in -short mode")
	}
	for _, program := range []string{"certmonger", "getcert", "dbus-daemon"} {
		if _, err := exec.LookPath(program); err != nil {
			t.Skipf("%s is not installed (Debian packages certmonger and dbus-daemon)", program)
		}
	}
	f := newFixture(t, nil)
	dir := t.TempDir()
	for _, sub := range []string{"requests", "cas"} {
		if err := os.Mkdir(filepath.Join(dir, sub), 0o700); err != nil {
			t.Fatal(err)
		}
	}

	bus := exec.Command("dbus-daemon", "--session", "--nofork", "--print-address=1")
	stdout, err := bus.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := bus.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bus.Process.Kill(); bus.Wait() })
	address, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("reading the D-Bus address: %v", err)
	}
	env := append(os.Environ(), "DBUS_SESSION_BUS_ADDRESS="+strings.TrimSpace(address),
		"CERTMONGER_REQUESTS_DIR="+filepath.Join(dir, "requests"), "CERTMONGER_CAS_DIR="+filepath.Join(dir, "cas"))

	daemon := exec.Command("certmonger", "-s", "-n")
	daemon.Env = env
	if err := daemon.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { daemon.Process.Kill(); daemon.Wait() })

	getcert := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("getcert", args...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("getcert %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	raFile := filepath.Join(dir, "ra.pem")
	if err := os.WriteFile(raFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: f.ra.Certificate.Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	// The daemon may take a moment to register on the new bus, so wait until it responds
	// before adding the CA. A slow first reply can still arrive after getcert gave up
	// waiting; the CA then exists already, which is the state this step wants.
	deadline := time.Now().Add(30 * time.Second)
	for {
		cmd := exec.Command("getcert", "list-cas", "-s")
		cmd.Env = env
		if err := cmd.Run(); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the certmonger daemon did not respond on its D-Bus session within 30s")
		}
		time.Sleep(200 * time.Millisecond)
	}
	for {
		cmd := exec.Command("getcert", "add-scep-ca", "-s", "-c", "certgate-test", "-u", f.url, "-r", raFile)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if err == nil || strings.Contains(string(out), "already a CA with the nickname") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("getcert add-scep-ca: %v\n%s", err, out)
		}
		t.Logf("getcert add-scep-ca, trying again: %v: %s", err, out)
		time.Sleep(200 * time.Millisecond)
	}
	// certmonger fetches the CA certificates in the background; a request added before
	// they arrive waits in state NEED_SCEP_ENCRYPTION_CERT.
	for deadline = time.Now().Add(20 * time.Second); !strings.Contains(getcert("list-cas", "-s", "-c", "certgate-test"), "SCEP CA certificate thumbprint"); {
		if time.Now().After(deadline) {
			t.Fatal("certmonger did not fetch the CA certificates within 20s")
		}
		time.Sleep(200 * time.Millisecond)
	}

	keyFile, certFile := filepath.Join(dir, "device.key"), filepath.Join(dir, "device.crt")
	if out, err := exec.Command("openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", keyFile).CombinedOutput(); err != nil {
		t.Fatalf("openssl genpkey: %v\n%s", err, out)
	}
	getcert("request", "-s", "-c", "certgate-test", "-k", keyFile, "-f", certFile, "-N", "CN=certmonger-device", "-L", testChallenge, "-w")
	first := readCertificateFile(t, certFile)
	f.verifyIssued(first)
	if first.Subject.CommonName != "certmonger-device" {
		t.Errorf("subject = %s, want CN=certmonger-device", first.Subject)
	}

	id := regexp.MustCompile(`Request ID '([^']+)'`).FindStringSubmatch(getcert("list", "-s"))
	if id == nil {
		t.Fatal("getcert list shows no request")
	}
	getcert("resubmit", "-s", "-i", id[1], "-w")
	second := readCertificateFile(t, certFile)
	f.verifyIssued(second)
	if second.SerialNumber.Cmp(first.SerialNumber) == 0 {
		t.Error("resubmit returned the first certificate again")
	}
	if status := getcert("list", "-s"); !strings.Contains(status, "status: MONITORING") {
		t.Errorf("request not in state MONITORING after the resubmit:\n%s", status)
	}
}
