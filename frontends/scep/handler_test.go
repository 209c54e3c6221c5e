package scep

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/certgate/certgate/backends"
	"github.com/certgate/certgate/gateway/cmp"
	"github.com/certgate/certgate/gateway/store"
)

// enroll runs a PKCSReq of a new test client against the default profile and returns
// the client, now holding the issued certificate, and the certificate.
func (f *fixture) enroll(cn string) (*testClient, *x509.Certificate) {
	f.t.Helper()
	client := newTestClient(f.t, cn)
	der := client.message(f.ra.Certificate, MessagePKCSReq, "tx-"+cn, client.csr(cn, testChallenge), cipherAES128, digestSHA256)
	rep := client.post(f.url, der)
	if rep.status != StatusSuccess || len(rep.certificates) != 1 {
		f.t.Fatalf("PKCSReq for %s: %s %s %s", cn, rep.status, rep.failInfo, rep.failInfoText)
	}
	client.cert = rep.certificates[0]
	return client, rep.certificates[0]
}

func httpGet(t *testing.T, url string) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, body
}

func TestGetCACaps(t *testing.T) {
	f := newFixture(t, nil)
	resp, body := httpGet(t, f.url+"/cgi-bin/pkiclient.exe?operation=GetCACaps")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("HTTP %d", resp.StatusCode)
	}
	caps := strings.Fields(string(body))
	for _, want := range []string{"AES", "POSTPKIOperation", "SHA-256", "SHA-512", "SCEPStandard", "Renewal"} {
		if !strings.Contains(string(body), want+"\n") {
			t.Errorf("GetCACaps lacks %s: %v", want, caps)
		}
	}
	if strings.Contains(string(body), "SHA-1") {
		t.Errorf("the default profile advertises SHA-1: %v", caps)
	}
	_, legacy := httpGet(t, f.legacyURL()+"?operation=GetCACaps")
	if !strings.Contains(string(legacy), "SHA-1\n") {
		t.Errorf("the legacy profile does not advertise SHA-1: %q", legacy)
	}
}

func TestGetCACertReturnsRAAndChain(t *testing.T) {
	f := newFixture(t, nil)
	resp, body := httpGet(t, f.url+"?operation=GetCACert&message=anything")
	if ct := resp.Header.Get("Content-Type"); ct != contentTypeCARA {
		t.Errorf("Content-Type = %q, want %q", ct, contentTypeCARA)
	}
	certs, _ := parseDegenerate(t, body)
	if len(certs) != 3 || !certs[0].Equal(f.ra.Certificate) || !certs[1].Equal(f.ca.Issuing) || !certs[2].Equal(f.ca.Root) {
		t.Fatalf("GetCACert returned %d certificates, want RA, issuing CA, root", len(certs))
	}
	if certs[0].KeyUsage != x509.KeyUsageDigitalSignature|x509.KeyUsageKeyEncipherment {
		t.Errorf("RA key usage = %b, want digitalSignature and keyEncipherment", certs[0].KeyUsage)
	}
}

func TestHTTPErrors(t *testing.T) {
	f := newFixture(t, nil)
	cases := []struct {
		name, method, path string
		status             int
	}{
		{"unknown profile", "GET", "/scep/p/nope?operation=GetCACaps", http.StatusNotFound},
		{"empty profile name", "GET", "/scep/p/?operation=GetCACaps", http.StatusNotFound},
		{"outside the prefix", "GET", "/scepx?operation=GetCACaps", http.StatusNotFound},
		{"method", "PUT", "/scep?operation=GetCACaps", http.StatusMethodNotAllowed},
		{"no operation", "GET", "/scep", http.StatusBadRequest},
		{"unknown operation", "GET", "/scep?operation=Nope", http.StatusBadRequest},
		{"GetNextCACert without a next CA", "GET", "/scep?operation=GetNextCACert", http.StatusNotFound},
		{"GET without message", "GET", "/scep?operation=PKIOperation", http.StatusBadRequest},
		{"GET message not base64", "GET", "/scep?operation=PKIOperation&message=%25%25", http.StatusBadRequest},
		{"not a pkiMessage", "GET", "/scep?operation=PKIOperation&message=MAA", http.StatusBadRequest},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req, _ := http.NewRequest(c.method, f.server.URL+c.path, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != c.status {
				t.Errorf("HTTP %d, want %d", resp.StatusCode, c.status)
			}
		})
	}
}

func TestRequestSizeLimit(t *testing.T) {
	f := newFixture(t, nil)
	f.handler.MaxRequestBytes = 4096
	resp, err := http.Post(f.url+"?operation=PKIOperation", contentTypeMessage, bytes.NewReader(make([]byte, 5000)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("a 5000-byte POST: HTTP %d, want 413", resp.StatusCode)
	}
	resp, _ = httpGet(t, f.url+"?operation=PKIOperation&message="+strings.Repeat("A", 8000))
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("an 8000-character GET message: HTTP %d, want 413", resp.StatusCode)
	}
}

// GET messages in the encodings that clients send: RFC 8894's escaped base64, '+' and
// '/' left unescaped (macOS), line breaks inside (old Cisco IOS), the URL-safe
// alphabet (micromdm), and no padding.
func TestGETMessageEncodings(t *testing.T) {
	f := newFixture(t, nil)
	encodings := map[string]func([]byte) string{
		"escaped":     queryEscapeStrict,
		"unescaped":   func(der []byte) string { return base64.StdEncoding.EncodeToString(der) },
		"line breaks": func(der []byte) string { return wrapWith(base64.StdEncoding.EncodeToString(der), "%0A") },
		"CRLF escaped": func(der []byte) string {
			return url.QueryEscape(wrapWith(base64.StdEncoding.EncodeToString(der), "\r\n"))
		},
		"url-safe":   func(der []byte) string { return base64.URLEncoding.EncodeToString(der) },
		"no padding": func(der []byte) string { return base64.RawStdEncoding.EncodeToString(der) },
	}
	for name, encode := range encodings {
		t.Run(name, func(t *testing.T) {
			client := newTestClient(t, "get-"+strings.ReplaceAll(name, " ", "-"))
			der := client.message(f.ra.Certificate, MessagePKCSReq, "tx-get-"+name, client.csr("get", testChallenge), cipherAES128, digestSHA256)
			rep := client.get(f.url+"/cgi-bin/pkiclient.exe", encode(der))
			if rep.status != StatusSuccess {
				t.Fatalf("%s %s: %s", rep.status, rep.failInfo, rep.failInfoText)
			}
		})
	}
}

func wrapWith(text, separator string) string {
	var b strings.Builder
	for len(text) > 64 {
		b.WriteString(text[:64] + separator)
		text = text[64:]
	}
	b.WriteString(text)
	return b.String()
}

// The CertRep to each content-encryption algorithm uses the same algorithm. Single DES
// is accepted only by a profile that allows it.
func TestContentEncryptionMirrored(t *testing.T) {
	f := newFixture(t, nil)
	for i := range contentCiphers {
		c := &contentCiphers[i]
		t.Run(c.name, func(t *testing.T) {
			client := newTestClient(t, "cipher")
			der := client.message(f.ra.Certificate, MessagePKCSReq, "tx-"+c.name, client.csr("cipher", testChallenge), c, digestSHA256)
			rep := client.post(f.url, der)
			if c.name == "des-cbc" {
				if rep.status != StatusFailure || rep.failInfo != "badAlg" {
					t.Fatalf("single DES on the default profile: %s %s, want FAILURE badAlg", rep.status, rep.failInfo)
				}
				rep = client.post(f.legacyURL(), client.message(f.ra.Certificate, MessagePKCSReq, "tx-des-legacy", client.csr("cipher", testChallenge), c, digestSHA256))
			}
			if rep.status != StatusSuccess {
				t.Fatalf("%s %s: %s", rep.status, rep.failInfo, rep.failInfoText)
			}
		})
	}
}

func TestWrongAndMissingChallenge(t *testing.T) {
	f := newFixture(t, nil)
	for name, challenge := range map[string]string{"wrong": "not the challenge", "missing": ""} {
		t.Run(name, func(t *testing.T) {
			client := newTestClient(t, "nochallenge")
			rep := client.post(f.url, client.message(f.ra.Certificate, MessagePKCSReq, "tx-"+name, client.csr("x", challenge), cipherAES128, digestSHA256))
			if rep.status != StatusFailure || rep.failInfo != "badRequest" {
				t.Errorf("%s %s, want FAILURE badRequest", rep.status, rep.failInfo)
			}
			if strings.Contains(rep.failInfoText, testChallenge) {
				t.Error("failInfoText reveals the challenge")
			}
		})
	}
}

func TestChallengeValidatorFunc(t *testing.T) {
	f := newFixture(t, nil)
	var seen *ChallengeRequest
	f.handler.Profiles["default"].Challenge = ChallengeValidatorFunc(func(_ context.Context, req *ChallengeRequest) error {
		seen = req
		if req.Challenge != "one-time-1" {
			return ErrChallengeInvalid
		}
		return nil
	})
	client := newTestClient(t, "validator")
	rep := client.post(f.url, client.message(f.ra.Certificate, MessagePKCSReq, "tx-validator", client.csr("validator", "one-time-1"), cipherAES128, digestSHA256))
	if rep.status != StatusSuccess {
		t.Fatalf("%s %s: %s", rep.status, rep.failInfo, rep.failInfoText)
	}
	if seen == nil || seen.Profile != "default" || seen.TransactionID != "tx-validator" || seen.CSR.Subject.CommonName != "validator" {
		t.Errorf("the validator saw %+v", seen)
	}
}

func TestBadSignatureIsBadMessageCheck(t *testing.T) {
	f := newFixture(t, nil)
	client := newTestClient(t, "tampered")
	der := client.message(f.ra.Certificate, MessagePKCSReq, "tx-tampered", client.csr("t", testChallenge), cipherAES128, digestSHA256)
	// The last bytes are the signature; flipping one breaks it but keeps the DER.
	der[len(der)-5] ^= 0xff
	rep := client.post(f.url, der)
	if rep.status != StatusFailure || rep.failInfo != "badMessageCheck" {
		t.Errorf("%s %s, want FAILURE badMessageCheck", rep.status, rep.failInfo)
	}
}

func TestRenewalChecks(t *testing.T) {
	f := newFixture(t, nil)
	client, cert := f.enroll("device-a")

	// A renewal for another subject is refused.
	rep := client.post(f.url, client.message(f.ra.Certificate, MessageRenewalReq, "tx-r1", client.csr("device-b", ""), cipherAES128, digestSHA256))
	if rep.status != StatusFailure || rep.failInfo != "badRequest" {
		t.Errorf("renewal to another subject: %s %s, want FAILURE badRequest", rep.status, rep.failInfo)
	}

	// A self-signed certificate cannot renew.
	stranger := newTestClient(t, "device-a")
	rep = stranger.post(f.url, stranger.message(f.ra.Certificate, MessageRenewalReq, "tx-r2", stranger.csr("device-a", ""), cipherAES128, digestSHA256))
	if rep.status != StatusFailure || rep.failInfo != "badCertId" {
		t.Errorf("renewal signed by a self-signed certificate: %s %s, want FAILURE badCertId", rep.status, rep.failInfo)
	}

	// A revoked certificate cannot renew.
	if _, err := f.ca.Revoke(context.Background(), &backends.RevokeRequest{RawIssuer: cert.RawIssuer, SerialNumber: cert.SerialNumber, Reason: backends.ReasonKeyCompromise}); err != nil {
		t.Fatal(err)
	}
	rep = client.post(f.url, client.message(f.ra.Certificate, MessageRenewalReq, "tx-r3", client.csr("device-a", ""), cipherAES128, digestSHA256))
	if rep.status != StatusFailure || rep.failInfo != "badCertId" || !strings.Contains(rep.failInfoText, "revoked") {
		t.Errorf("renewal signed by a revoked certificate: %s %s %q, want FAILURE badCertId", rep.status, rep.failInfo, rep.failInfoText)
	}
}

func TestGetCertAndGetCRL(t *testing.T) {
	f := newFixture(t, nil)
	client, cert := f.enroll("device-c")

	rep := client.post(f.url, client.message(f.ra.Certificate, MessageGetCert, "tx-gc", marshalIssuerAndSerial(cert.RawIssuer, cert.SerialNumber), cipherAES128, digestSHA256))
	if rep.status != StatusSuccess || len(rep.certificates) != 1 || !rep.certificates[0].Equal(cert) {
		t.Errorf("GetCert: %s %s, want SUCCESS with the certificate", rep.status, rep.failInfo)
	}
	rep = client.post(f.url, client.message(f.ra.Certificate, MessageGetCert, "tx-gc2", marshalIssuerAndSerial(cert.RawIssuer, big.NewInt(12345)), cipherAES128, digestSHA256))
	if rep.status != StatusFailure || rep.failInfo != "badCertId" {
		t.Errorf("GetCert of an unknown serial: %s %s, want FAILURE badCertId", rep.status, rep.failInfo)
	}

	rep = client.post(f.url, client.message(f.ra.Certificate, MessageGetCRL, "tx-crl", marshalIssuerAndSerial(cert.RawIssuer, cert.SerialNumber), cipherAES128, digestSHA256))
	if rep.status != StatusSuccess || len(rep.crls) != 1 {
		t.Fatalf("GetCRL: %s %s, want SUCCESS with one CRL", rep.status, rep.failInfo)
	}
	if _, err := x509.ParseRevocationList(rep.crls[0]); err != nil {
		t.Errorf("GetCRL returned an invalid CRL: %v", err)
	}
	rep = client.post(f.url, client.message(f.ra.Certificate, MessageGetCRL, "tx-crl2", marshalIssuerAndSerial(cert.RawSubject, big.NewInt(1)), cipherAES128, digestSHA256))
	if rep.status != StatusFailure || rep.failInfo != "badCertId" {
		t.Errorf("GetCRL for another issuer: %s %s, want FAILURE badCertId", rep.status, rep.failInfo)
	}
}

func TestCertPollAfterPending(t *testing.T) {
	for _, mode := range []struct {
		name   string
		memory bool
	}{{"store", false}, {"memory", true}} {
		t.Run(mode.name, func(t *testing.T) { testCertPollAfterPending(t, mode.memory) })
	}
}

func testCertPollAfterPending(t *testing.T, memoryPending bool) {
	f := newFixture(t, &fixtureOptions{implicitConfirm: true, pendingPolls: 1, memoryPending: memoryPending})
	client := newTestClient(t, "polled")
	rep := client.post(f.url, client.message(f.ra.Certificate, MessagePKCSReq, "tx-poll", client.csr("polled", testChallenge), cipherAES128, digestSHA256))
	if rep.status != StatusPending {
		t.Fatalf("PKCSReq with a pending CA: %s, want PENDING", rep.status)
	}
	// CertPoll from another key is refused.
	other := newTestClient(t, "polled")
	poll := marshalIssuerAndSubject(f.ca.Issuing.RawSubject, client.cert.RawSubject)
	rep = other.post(f.url, other.message(f.ra.Certificate, MessageCertPoll, "tx-poll", poll, cipherAES128, digestSHA256))
	if rep.status != StatusFailure || rep.failInfo != "badRequest" {
		t.Errorf("CertPoll with another key: %s %s, want FAILURE badRequest", rep.status, rep.failInfo)
	}
	rep = client.post(f.url, client.message(f.ra.Certificate, MessageCertPoll, "tx-poll", poll, cipherAES128, digestSHA256))
	if rep.status != StatusSuccess || len(rep.certificates) != 1 {
		t.Fatalf("CertPoll: %s %s %s, want SUCCESS", rep.status, rep.failInfo, rep.failInfoText)
	}
	rep = client.post(f.url, client.message(f.ra.Certificate, MessageCertPoll, "tx-unknown", poll, cipherAES128, digestSHA256))
	if rep.status != StatusFailure || rep.failInfo != "badCertId" {
		t.Errorf("CertPoll for an unknown transaction: %s %s, want FAILURE badCertId", rep.status, rep.failInfo)
	}
}

// Without implicitConfirm the frontend confirms the certificate itself, so that it is
// recorded as confirmed.
func TestEnrollmentWithoutImplicitConfirm(t *testing.T) {
	f := newFixture(t, &fixtureOptions{implicitConfirm: false})
	_, cert := f.enroll("confirmed")
	record, err := f.store.Certificate(context.Background(), cert.RawIssuer, cert.SerialNumber)
	if err != nil {
		t.Fatal(err)
	}
	if record.Status != "confirmed" {
		t.Errorf("stored status = %s, want confirmed", record.Status)
	}
}

func TestProfileWithoutRA(t *testing.T) {
	f := newFixture(t, nil)
	f.handler.Profiles["legacy"].RA = nil
	resp, _ := httpGet(t, f.legacyURL()+"?operation=GetCACaps")
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("HTTP %d, want 503", resp.StatusCode)
	}
}

// Every PKIFailureInfo bit maps to one of the five SCEP failInfo values.
func TestFailInfoTableCoversEveryBit(t *testing.T) {
	for bit := 0; bit < 27; bit++ {
		info := cmp.FailureInfo(1) << bit
		found := false
		for _, row := range failInfoTable {
			if row.cmp == info {
				found = true
			}
		}
		if !found {
			t.Errorf("PKIFailureInfo %s has no row", info)
		}
		if got := failInfoOf(info); got < FailBadAlg || got > FailBadCertID {
			t.Errorf("failInfoOf(%s) = %s", info, got)
		}
	}
	if got := failInfoOf(0); got != FailBadRequest {
		t.Errorf("failInfoOf(none) = %s, want badRequest", got)
	}
	if got := failInfoOf(cmp.FailNotAuthorized | cmp.FailBadAlg); got != FailBadAlg {
		t.Errorf("failInfoOf(notAuthorized|badAlg) = %s, want badAlg from the lower bit", got)
	}
	for _, f := range []FailInfo{FailBadAlg, FailBadMessageCheck, FailBadRequest, FailBadTime, FailBadCertID, FailInfo(9)} {
		if f.String() == "" {
			t.Errorf("FailInfo(%d) has no name", int(f))
		}
	}
	if MessageType(99).String() != "messageType(99)" || PKIStatus(7).String() != "pkiStatus(7)" {
		t.Error("unknown values do not print as numbers")
	}
}

// Windows and Intune clients sign with a self-signed certificate whose authority key
// identifier is marked critical, which crypto/x509 rejects; the request must still
// enroll, and the response must be encrypted to that certificate.
func TestSignerWithCriticalAKI(t *testing.T) {
	f := newFixture(t, nil)
	client := newTestClient(t, "windows")
	template := &x509.Certificate{
		SerialNumber: big.NewInt(77), Subject: pkix.Name{CommonName: "windows"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtraExtensions: []pkix.Extension{{Id: asn1.ObjectIdentifier{2, 5, 29, 35}, Critical: true, Value: []byte{0x30, 0x03, 0x80, 0x01, 0x01}}},
	}
	der, err := x509.CreateCertificate(rand.Reader, template, template, client.key.Public(), client.key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := x509.ParseCertificate(der); err == nil {
		t.Fatal("crypto/x509 accepts a critical authority key identifier now; this test no longer covers the fallback")
	}
	lenient, err := parseSignerFields(der)
	if err != nil {
		t.Fatal(err)
	}
	client.cert = lenient

	rep := client.post(f.url, client.message(f.ra.Certificate, MessagePKCSReq, "tx-windows", client.csr("windows", testChallenge), cipherAES128, digestSHA256))
	if rep.status != StatusSuccess {
		t.Fatalf("%s %s: %s", rep.status, rep.failInfo, rep.failInfoText)
	}
}

// A certificate that the gateway recorded as on hold cannot renew, even while the CA's
// CRL does not list it yet: the recorded status is checked first, and it is all there
// is for a backend without CRLs.
func TestRenewalRejectedByRecordedStatus(t *testing.T) {
	f := newFixture(t, nil)
	client, cert := f.enroll("device-held")
	if err := f.store.SetCertificateStatus(context.Background(), cert.RawIssuer, cert.SerialNumber, store.CertOnHold, int(backends.ReasonCertificateHold), time.Now()); err != nil {
		t.Fatal(err)
	}
	rep := client.post(f.url, client.message(f.ra.Certificate, MessageRenewalReq, "tx-held", client.csr("device-held", ""), cipherAES128, digestSHA256))
	if rep.status != StatusFailure || !strings.Contains(rep.failInfoText, "revoked") {
		t.Errorf("renewal signed by a certificate on hold: %s %s %q, want FAILURE naming the revocation", rep.status, rep.failInfo, rep.failInfoText)
	}
}

// A pending enrollment lives in the store, so a client polls successfully after the
// gateway restarted, and the row is gone once the certificate is delivered.
func TestCertPollAfterRestart(t *testing.T) {
	f := newFixture(t, &fixtureOptions{implicitConfirm: true, pendingPolls: 1})
	client := newTestClient(t, "restarted")
	rep := client.post(f.url, client.message(f.ra.Certificate, MessagePKCSReq, "tx-restart", client.csr("restarted", testChallenge), cipherAES128, digestSHA256))
	if rep.status != StatusPending {
		t.Fatalf("PKCSReq with a pending CA: %s, want PENDING", rep.status)
	}
	old := f.handler
	f.handler = &Handler{Router: old.Router, DefaultProfile: old.DefaultProfile, Logger: old.Logger, Profiles: old.Profiles, Store: f.store}

	poll := marshalIssuerAndSubject(f.ca.Issuing.RawSubject, client.cert.RawSubject)
	rep = client.post(f.url, client.message(f.ra.Certificate, MessageCertPoll, "tx-restart", poll, cipherAES128, digestSHA256))
	if rep.status != StatusSuccess || len(rep.certificates) != 1 {
		t.Fatalf("CertPoll after the restart: %s %s %s, want SUCCESS", rep.status, rep.failInfo, rep.failInfoText)
	}
	if n, err := f.store.CountPending(context.Background(), "scep", time.Now()); err != nil || n != 0 {
		t.Errorf("pending rows after delivery = %d, %v; want 0", n, err)
	}
}
