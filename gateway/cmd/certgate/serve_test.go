package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// gatewayProcess is a certgate serve process started by a test.
type gatewayProcess struct {
	t       *testing.T
	cmd     *exec.Cmd
	dir     string
	dataDir string
	address string
	tcp     string
	logs    chan map[string]any
	ready   bool
}

// buildCertgate compiles this command once per test binary run.
func buildCertgate(t *testing.T) string {
	t.Helper()
	binary := filepath.Join(t.TempDir(), "certgate")
	out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return binary
}

// startGateway runs certgate serve with a configuration that listens on a free loopback
// port and writes JSON logs, and waits until it is ready.
func startGateway(t *testing.T, binary string) *gatewayProcess {
	t.Helper()
	return startGatewayWithConfig(t, binary, "")
}

// startGatewayWithConfig is startGateway with YAML appended to the test configuration.
func startGatewayWithConfig(t *testing.T, binary string, extraYAML string) *gatewayProcess {
	t.Helper()
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl is not installed")
	}
	dir := t.TempDir()
	configFile := filepath.Join(dir, "certgate.yaml")
	config := "data_dir: data\nlog: {level: info, format: json}\nhttp: {listen: [\"127.0.0.1:0\"]}\ntcp: {listen: [\"127.0.0.1:0\"]}\n" + extraYAML
	if err := os.WriteFile(configFile, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	g := &gatewayProcess{t: t, dir: dir, dataDir: filepath.Join(dir, "data"), logs: make(chan map[string]any, 1000)}
	g.cmd = exec.Command(binary, "serve", "--config", configFile)
	g.cmd.Dir = dir
	stderr, err := g.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := g.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		g.cmd.Process.Signal(syscall.SIGTERM)
		g.cmd.Wait()
	})
	go g.readLogs(stderr)

	deadline := time.After(30 * time.Second)
	for g.address == "" || !g.sawReady() {
		select {
		case entry := <-g.logs:
			if entry["msg"] == "CMP over HTTP listening" {
				g.address, _ = entry["address"].(string)
			}
			if entry["msg"] == "CMP over TCP listening" {
				g.tcp, _ = entry["address"].(string)
			}
			if entry["msg"] == "certgate ready" {
				g.ready = true
			}
		case <-deadline:
			t.Fatal("certgate did not become ready within 30s")
		}
	}
	return g
}

func (g *gatewayProcess) sawReady() bool { return g.ready }

func (g *gatewayProcess) readLogs(r io.Reader) {
	scanner := bufio.NewScanner(r)
	scanner.Buffer(make([]byte, 64<<10), 1<<20)
	for scanner.Scan() {
		line := scanner.Text()
		if testing.Verbose() {
			fmt.Fprintln(os.Stderr, line)
		}
		var entry map[string]any
		if json.Unmarshal([]byte(line), &entry) == nil {
			select {
			case g.logs <- entry:
			default:
			}
		}
	}
}

// enroll runs openssl cmp ir with the generated MAC secret of the default profile.
func (g *gatewayProcess) enroll(name string) string {
	g.t.Helper()
	key := filepath.Join(g.dir, name+".key")
	if out, err := exec.Command("openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", key).CombinedOutput(); err != nil {
		g.t.Fatalf("openssl genpkey: %v\n%s", err, out)
	}
	certFile := filepath.Join(g.dir, name+".crt")
	cmd := exec.Command("openssl", "cmp", "-cmd", "ir", "-server", g.address, "-path", ".well-known/cmp",
		"-ref", "default", "-secret", "file:"+filepath.Join(g.dataDir, "secrets", "cmp-default.secret"),
		"-newkey", key, "-subject", "/CN="+name, "-recipient", "/CN=certgate", "-certout", certFile, "-msg_timeout", "20")
	if out, err := cmd.CombinedOutput(); err != nil {
		g.t.Fatalf("openssl cmp ir: %v\n%s", err, out)
	}
	return certFile
}

// pluginPids returns the pids of the processes whose parent is the gateway.
func (g *gatewayProcess) pluginPids() []int {
	g.t.Helper()
	out, err := exec.Command("ps", "-o", "pid=,args=", "--ppid", strconv.Itoa(g.cmd.Process.Pid)).Output()
	if err != nil {
		return nil
	}
	var pids []int
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		if len(fields) >= 3 && strings.Contains(line, "plugin softca") {
			pid, _ := strconv.Atoi(fields[0])
			pids = append(pids, pid)
		}
	}
	return pids
}

func TestServeEnrollsWithOpenSSL(t *testing.T) {
	binary := buildCertgate(t)
	g := startGateway(t, binary)

	pids := g.pluginPids()
	if len(pids) != 1 {
		t.Fatalf("found %d softca plugin processes under the gateway, want 1", len(pids))
	}

	certFile := g.enroll("device1")
	root := filepath.Join(g.dataDir, "softca", "root.crt")
	issuing := filepath.Join(g.dataDir, "softca", "issuing.crt")
	if out, err := exec.Command("openssl", "verify", "-CAfile", root, "-untrusted", issuing, certFile).CombinedOutput(); err != nil {
		t.Fatalf("openssl verify: %v\n%s", err, out)
	}

	// A crashed plugin is started again, and the next enrollment succeeds.
	if err := syscall.Kill(pids[0], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	g.enroll("device2")
	after := g.pluginPids()
	if len(after) != 1 || after[0] == pids[0] {
		t.Errorf("plugin pids after the kill = %v, want one new process (old %d)", after, pids[0])
	}

	// SIGTERM stops the gateway and its plugin.
	g.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- g.cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		t.Fatal("certgate did not stop within 15s of SIGTERM")
	}
	for _, pid := range after {
		if syscall.Kill(pid, 0) == nil {
			t.Errorf("plugin process %d still runs after the gateway stopped", pid)
		}
	}
}

func TestCMPCommandOverEveryTransport(t *testing.T) {
	binary := buildCertgate(t)
	g := startGateway(t, binary)
	if g.tcp == "" {
		t.Fatal("certgate logged no TCP listener")
	}
	secret := filepath.Join(g.dataDir, "secrets", "cmp-default.secret")
	root := filepath.Join(g.dataDir, "softca", "root.crt")
	issuing := filepath.Join(g.dataDir, "softca", "issuing.crt")
	key := filepath.Join(g.dir, "client.key")
	if out, err := exec.Command("openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", key).CombinedOutput(); err != nil {
		t.Fatalf("openssl genpkey: %v\n%s", err, out)
	}
	servers := map[string]string{
		"http":             "http://" + g.address + "/.well-known/cmp",
		"rfc2510":          "tcp://" + g.tcp,
		"tcp-v10":          "tcp10://" + g.tcp,
		"http-on-tcp-port": "http://" + g.tcp + "/.well-known/cmp",
	}
	for name, server := range servers {
		t.Run(name, func(t *testing.T) {
			certFile := filepath.Join(g.dir, name+".crt")
			out, err := exec.Command(binary, "cmp", "ir", "--server", server, "--ref", "default", "--secret-file", secret,
				"--newkey", key, "--subject", "/CN="+name+"/O=certgate test", "--out", certFile).CombinedOutput()
			if err != nil {
				t.Fatalf("certgate cmp ir: %v\n%s", err, out)
			}
			if out, err := exec.Command("openssl", "verify", "-CAfile", root, "-untrusted", issuing, certFile).CombinedOutput(); err != nil {
				t.Fatalf("openssl verify: %v\n%s", err, out)
			}
			chain := filepath.Join(g.dir, name+"-chain.pem")
			certPEM, _ := os.ReadFile(certFile)
			issuingPEM, _ := os.ReadFile(issuing)
			os.WriteFile(chain, append(certPEM, issuingPEM...), 0o600)
			out, err = exec.Command(binary, "cmp", "rr", "--server", server, "--cert", chain, "--key", key, "--trusted", root,
				"--oldcert", certFile, "--reason", "4").CombinedOutput()
			if err != nil {
				t.Fatalf("certgate cmp rr: %v\n%s", err, out)
			}
			out, err = exec.Command(binary, "cmp", "genm", "--server", server, "--ref", "default", "--secret-file", secret,
				"--infotype", "caCerts,signKeyPairTypes").CombinedOutput()
			if err != nil || !strings.Contains(string(out), "certgate Issuing CA") {
				t.Fatalf("certgate cmp genm: %v\n%s", err, out)
			}
		})
	}
}

func TestRAForwardsToUpstreamCA(t *testing.T) {
	binary := buildCertgate(t)
	ca := startGatewayWithConfig(t, binary, `
profiles:
  - name: default
    backend: softca
    mac_secrets:
      - {reference: default, secret_file: secrets/cmp-default.secret, generate: true}
      - {reference: ra, secret_file: secrets/ra.secret, generate: true}
    trusted_ras: ["mac:ra"]
`)
	caRoot := filepath.Join(ca.dataDir, "softca", "root.crt")
	caIssuing := filepath.Join(ca.dataDir, "softca", "issuing.crt")
	ra := startGatewayWithConfig(t, binary, fmt.Sprintf(`
backends:
  - name: upstream
    plugin: builtin:upstream-cmp
    config:
      server: tcp10://%s
      reference: ra
      secret_file: %s
      trusted_roots_file: %s
profiles:
  - name: default
    backend: upstream
    mac_secrets:
      - {reference: default, secret_file: secrets/cmp-default.secret, generate: true}
`, ca.tcp, filepath.Join(ca.dataDir, "secrets", "ra.secret"), caRoot))

	// openssl cmp enrolls at the RA; the certificate comes from the CA behind it.
	certFile := ra.enroll("bridged")
	if out, err := exec.Command("openssl", "verify", "-CAfile", caRoot, "-untrusted", caIssuing, certFile).CombinedOutput(); err != nil {
		t.Fatalf("openssl verify against the upstream CA: %v\n%s", err, out)
	}

	// A revocation at the RA reaches the CA, which knows the certificate.
	cmd := exec.Command("openssl", "cmp", "-cmd", "rr", "-server", ra.address, "-path", ".well-known/cmp",
		"-ref", "default", "-secret", "file:"+filepath.Join(ra.dataDir, "secrets", "cmp-default.secret"),
		"-oldcert", certFile, "-revreason", "1", "-recipient", "/CN=certgate")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("openssl cmp rr at the RA: %v\n%s", err, out)
	}
	out, err := exec.Command(binary, "cmp", "genm", "--server", "http://"+ca.address+"/.well-known/cmp", "--ref", "default",
		"--secret-file", filepath.Join(ca.dataDir, "secrets", "cmp-default.secret"), "--infotype", "currentCRL").CombinedOutput()
	if err != nil {
		t.Fatalf("genm currentCRL at the CA: %v\n%s", err, out)
	}
	crlFile := filepath.Join(ra.dir, "ca.crl")
	if out, err := exec.Command("curl", "-sf", "-o", crlFile, "http://"+ca.address+"/crl").CombinedOutput(); err != nil {
		t.Fatalf("fetching the CA's CRL: %v\n%s", err, out)
	}
	serial, _ := exec.Command("openssl", "x509", "-in", certFile, "-noout", "-serial").Output()
	crlText, _ := exec.Command("openssl", "crl", "-inform", "DER", "-in", crlFile, "-noout", "-text").Output()
	want := strings.TrimPrefix(strings.TrimSpace(string(serial)), "serial=")
	if !strings.Contains(strings.ToUpper(string(crlText)), strings.ToUpper(want)) {
		t.Errorf("the CA's CRL does not list serial %s:\n%s", want, crlText)
	}
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(t *testing.T) string {
	t.Helper()
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer listener.Close()
	_, port, _ := net.SplitHostPort(listener.Addr().String())
	return port
}

func TestSCEPToCMPBridgeExample(t *testing.T) {
	if testing.Short() {
		t.Skip("runs two gateways and SCEP clients; skipped in -short mode")
	}
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl is not installed")
	}
	script := filepath.Join("..", "..", "..", "examples", "scep-to-cmp", "run.sh")
	clients := map[string]string{"strongswan": "pki", "micromdm-2.1": "scepclient", "micromdm-2.3": "go", "certmonger": "certmonger"}
	for client, program := range clients {
		t.Run(client, func(t *testing.T) {
			if _, err := exec.LookPath(program); err != nil {
				t.Skipf("%s is not installed", program)
			}
			cmd := exec.Command("bash", script, freePort(t), freePort(t), freePort(t))
			cmd.Env = append(os.Environ(), "CLIENT="+client)
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("%s: %v\n%s", script, err, out)
			}
			if !strings.Contains(string(out), "device.crt: OK") || !strings.Contains(string(out), "renewed.crt: OK") {
				t.Errorf("the bridged certificates were not verified:\n%s", out)
			}
		})
	}
}
