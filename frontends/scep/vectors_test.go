package scep

import (
	"bytes"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"flag"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

var update = flag.Bool("update", false, "write the PKIOperation messages of the real clients into testdata")

// allLegacy turns on every algorithm, for decoding captured messages whatever they use.
var allLegacy = LegacyAlgorithms{DES: true, MD5: true, SHA1: true}

// recorder keeps the pkiMessages that reach a fixture, in order.
type recorder struct {
	mu       sync.Mutex
	messages [][]byte
	ra       *x509.Certificate
}

// record starts keeping the PKIOperation messages the fixture receives.
func (f *fixture) record() *recorder {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.recording = &recorder{ra: f.ra.Certificate}
	return f.recording
}

// serve is the fixture's HTTP handler: the SCEP handler, with recording.
func (f *fixture) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	rec := f.recording
	f.mu.Unlock()
	if rec != nil && strings.Contains(r.URL.RawQuery, "operation=PKIOperation") {
		var der []byte
		if r.Method == http.MethodPost {
			der, _ = io.ReadAll(r.Body)
			r.Body = io.NopCloser(bytes.NewReader(der))
		} else if text, ok, _ := rawQueryValue(r.URL.RawQuery, "message"); ok {
			der, _ = decodeBase64(text)
		}
		rec.mu.Lock()
		rec.messages = append(rec.messages, der)
		rec.mu.Unlock()
	}
	f.handler.ServeHTTP(w, r)
}

// save writes the recorded messages into testdata when the test runs with -update:
// the i-th PKCSReq or RenewalReq as <client>-<labels[i]>.der, and the RA certificate
// they are encrypted to as <client>-ra.pem.
func (rec *recorder) save(t *testing.T, client string, labels []string) {
	t.Helper()
	if !*update {
		return
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	i := 0
	for _, der := range rec.messages {
		req, err := ParseRequest(der, allLegacy)
		if err != nil || (req.MessageType != MessagePKCSReq && req.MessageType != MessageRenewalReq) || i == len(labels) {
			continue
		}
		if err := os.WriteFile(filepath.Join("testdata", client+"-"+labels[i]+".der"), der, 0o644); err != nil {
			t.Fatal(err)
		}
		i++
	}
	raPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: rec.ra.Raw})
	if err := os.WriteFile(filepath.Join("testdata", client+"-ra.pem"), raPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if i != len(labels) {
		t.Errorf("recorded %d PKCSReq and RenewalReq messages, want %d", i, len(labels))
	}
}

// testRA returns the RA key of testdata and the RA certificate a client's messages
// were encrypted to.
func testRA(t testing.TB, client string) (*x509.Certificate, *rsa.PrivateKey) {
	t.Helper()
	key, err := loadOrCreateKey(filepath.Join("testdata", "ra.key"))
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join("testdata", client+"-ra.pem"))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(data)
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}

// capturedVectors lists the captured messages: file, client, message type, and the
// content encryption and digest the client used.
var capturedVectors = []struct {
	file, client string
	messageType  MessageType
	cipher       string
	digest       string
}{
	{"micromdm-scepclient-2.1.0-pkcsreq.der", "micromdm-scepclient-2.1.0", MessagePKCSReq, "des-cbc", "sha-1"},
	{"micromdm-scepclient-2.1.0-renewalreq.der", "micromdm-scepclient-2.1.0", MessageRenewalReq, "des-cbc", "sha-1"},
	{"micromdm-scepclient-2.3.0-pkcsreq.der", "micromdm-scepclient-2.3.0", MessagePKCSReq, "des-cbc", "sha-1"},
	{"micromdm-scepclient-2.3.0-renewalreq.der", "micromdm-scepclient-2.3.0", MessageRenewalReq, "des-cbc", "sha-1"},
	{"strongswan-pki-5.9.8-pkcsreq.der", "strongswan-pki-5.9.8", MessagePKCSReq, "aes128-cbc", "sha-256"},
	{"strongswan-pki-5.9.8-renewalreq.der", "strongswan-pki-5.9.8", MessageRenewalReq, "aes128-cbc", "sha-256"},
}

func TestCapturedClientMessages(t *testing.T) {
	for _, v := range capturedVectors {
		t.Run(v.file, func(t *testing.T) {
			der, err := os.ReadFile(filepath.Join("testdata", v.file))
			if err != nil {
				t.Fatal(err)
			}
			req, err := ParseRequest(der, allLegacy)
			if err != nil {
				t.Fatalf("ParseRequest: %v", err)
			}
			if req.MessageType != v.messageType {
				t.Errorf("messageType = %s, want %s", req.MessageType, v.messageType)
			}
			if req.Digest() != v.digest {
				t.Errorf("digest = %s, want %s", req.Digest(), v.digest)
			}
			ra, key := testRA(t, v.client)
			content, err := req.Decrypt(ra, key, allLegacy)
			if err != nil {
				t.Fatalf("Decrypt: %v", err)
			}
			if req.ContentEncryption() != v.cipher {
				t.Errorf("content encryption = %s, want %s", req.ContentEncryption(), v.cipher)
			}
			csr, challenge, err := ParseCSR(content)
			if err != nil {
				t.Fatalf("ParseCSR: %v", err)
			}
			if err := csr.CheckSignature(); err != nil {
				t.Errorf("the CSR signature does not verify: %v", err)
			}
			if v.messageType == MessagePKCSReq && challenge != testChallenge {
				t.Errorf("challengePassword = %q, want the test challenge", challenge)
			}
		})
	}
}

// A profile without legacy algorithms rejects the micromdm messages for their
// algorithms, with an error that becomes failInfo badAlg.
func TestCapturedLegacyMessageRejectedByDefault(t *testing.T) {
	der, err := os.ReadFile(filepath.Join("testdata", "micromdm-scepclient-2.3.0-pkcsreq.der"))
	if err != nil {
		t.Fatal(err)
	}
	req, err := ParseRequest(der, LegacyAlgorithms{})
	if req == nil || err == nil {
		t.Fatalf("ParseRequest = %v, %v; want the request and an error", req, err)
	}
	if got := failInfoOf(failureOf(err).info); got != FailBadAlg {
		t.Errorf("failInfo = %s, want badAlg (error: %v)", got, err)
	}

	req, err = ParseRequest(der, LegacyAlgorithms{SHA1: true})
	if err != nil {
		t.Fatal(err)
	}
	ra, key := testRA(t, "micromdm-scepclient-2.3.0")
	_, err = req.Decrypt(ra, key, LegacyAlgorithms{SHA1: true})
	if got := failInfoOf(failureOf(err).info); got != FailBadAlg {
		t.Errorf("decrypting DES with DES off: failInfo = %s, want badAlg (error: %v)", got, err)
	}
}

// FuzzParseRequest feeds the decoder, the decryption and the content parsers with
// mutations of the captured client messages. None may panic.
func FuzzParseRequest(f *testing.F) {
	for _, v := range capturedVectors {
		der, err := os.ReadFile(filepath.Join("testdata", v.file))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(der)
	}
	ra, key := testRA(f, "strongswan-pki-5.9.8")
	f.Fuzz(func(t *testing.T, der []byte) {
		req, err := ParseRequest(der, allLegacy)
		if err != nil {
			return
		}
		content, err := req.Decrypt(ra, key, allLegacy)
		if err != nil {
			return
		}
		ParseCSR(content)
		ParseIssuerAndSerial(content)
		ParseIssuerAndSubject(content)
	})
}
