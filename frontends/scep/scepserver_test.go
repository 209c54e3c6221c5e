package scep

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// scepserverVector is the CertRep of micromdm's scepserver captured by
// TestClientCodecAgainstScepserver with -update.
const scepserverVector = "micromdm-scepserver-2.1.0-certrep.der"

// The client side of the codec (RequestMessage, ParseCertRep, ParseDegenerate) reads the
// responses of micromdm's scepserver 2.1.0 from Debian, a server written by others:
// GetCACert, then a PKCSReq whose CertRep it verifies and decrypts.
func TestClientCodecAgainstScepserver(t *testing.T) {
	if testing.Short() {
		t.Skip("runs scepserver; skipped in -short mode")
	}
	if _, err := exec.LookPath("scepserver"); err != nil {
		t.Skip("scepserver is not installed (Debian package scep)")
	}
	dir := t.TempDir()
	if out, err := exec.Command("scepserver", "ca", "-init", "-depot", filepath.Join(dir, "depot"), "-keySize", "2048").CombinedOutput(); err != nil {
		t.Fatalf("scepserver ca -init: %v\n%s", err, out)
	}
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := listener.Addr().(*net.TCPAddr).Port
	listener.Close()
	server := exec.Command("scepserver", "-port", strconv.Itoa(port), "-depot", filepath.Join(dir, "depot"), "-challenge", testChallenge)
	server.Dir = dir
	if err := server.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { server.Process.Kill(); server.Wait() })
	base := "http://127.0.0.1:" + strconv.Itoa(port) + "/scep"

	var caDER []byte
	for deadline := time.Now().Add(10 * time.Second); ; {
		resp, err := http.Get(base + "?operation=GetCACert")
		if err == nil {
			caDER, err = io.ReadAll(resp.Body)
			resp.Body.Close()
			if err == nil && resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("scepserver did not answer GetCACert within 10s: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	ca := parseCACertResponse(t, caDER)

	client := newTestClient(t, "scepserver-device")
	message := &RequestMessage{
		Type: MessagePKCSReq, TransactionID: "scepserver-1", SenderNonce: randomBytes(nonceSize),
		Content: client.csr("scepserver-device", testChallenge), Recipient: ca, ContentEncryption: "aes128-cbc",
		Digest: crypto.SHA256, Signer: client.cert, Key: client.key,
	}
	der, err := message.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(base+"?operation=PKIOperation", "application/x-pki-message", bytes.NewReader(der))
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("PKIOperation: HTTP %d, %v", resp.StatusCode, err)
	}
	if *update {
		if err := os.WriteFile(filepath.Join("testdata", scepserverVector), body, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	rep, err := ParseCertRep(body)
	if err != nil {
		t.Fatalf("ParseCertRep: %v", err)
	}
	if rep.Status != StatusSuccess {
		t.Fatalf("status = %s, want SUCCESS", rep.Status)
	}
	if rep.TransactionID != message.TransactionID || !bytes.Equal(rep.RecipientNonce, message.SenderNonce) {
		t.Error("the CertRep does not echo the transactionID and senderNonce")
	}
	// scepserver 2.1.0 signs with SHA-1 and encrypts with single DES.
	legacy := LegacyAlgorithms{DES: true, SHA1: true}
	signer, err := rep.Verify(legacy)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if !signer.Equal(ca) {
		t.Errorf("the CertRep is signed by %s, want the CA", signer.Subject)
	}
	certs, _, err := rep.Decrypt(client.cert, client.key, legacy)
	if err != nil {
		t.Fatalf("Decrypt: %v", err)
	}
	if len(certs) == 0 || !bytes.Equal(certs[0].RawSubjectPublicKeyInfo, client.cert.RawSubjectPublicKeyInfo) {
		t.Fatal("the CertRep does not carry a certificate for the client's key")
	}
	if err := certs[0].CheckSignatureFrom(ca); err != nil {
		t.Errorf("the issued certificate does not verify against the CA: %v", err)
	}
}

// parseCACertResponse reads a GetCACert response: one DER certificate, or a
// degenerate PKCS #7 whose first certificate is used.
func parseCACertResponse(t *testing.T, der []byte) *x509.Certificate {
	t.Helper()
	if cert, err := x509.ParseCertificate(der); err == nil {
		return cert
	}
	certs, _, err := ParseDegenerate(der)
	if err != nil || len(certs) == 0 {
		t.Fatalf("GetCACert response is neither a certificate nor a degenerate PKCS #7: %v", err)
	}
	return certs[0]
}

// FuzzParseCertRep feeds the client's CertRep decoder with mutations of CertReps from
// scepserver and from certgate. None may panic.
func FuzzParseCertRep(f *testing.F) {
	der, err := os.ReadFile(filepath.Join("testdata", scepserverVector))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(der)

	ra, client := newTestClient(&testing.T{}, "ra"), newTestClient(&testing.T{}, "device1")
	request, err := newRequestMessage(&testing.T{}, client, ra, "aes128-cbc").Marshal()
	if err != nil {
		f.Fatal(err)
	}
	parsed, err := ParseRequest(request, LegacyAlgorithms{})
	if err != nil {
		f.Fatal(err)
	}
	own, err := parsed.Respond(&CertRep{Status: StatusFailure, FailInfo: FailBadRequest}, ra.cert, ra.key)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(own)

	legacy := LegacyAlgorithms{DES: true, SHA1: true, MD5: true}
	f.Fuzz(func(t *testing.T, data []byte) {
		ParseDegenerate(data)
		rep, err := ParseCertRep(data)
		if err != nil {
			return
		}
		if _, err := rep.Verify(legacy); err != nil {
			return
		}
		rep.Decrypt(client.cert, client.key, legacy)
	})
}
