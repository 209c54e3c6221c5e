package gateway

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/certgate/certgate/backends"
	"github.com/certgate/certgate/backends/backendtest"
	"github.com/certgate/certgate/gateway/cmp"
	"github.com/certgate/certgate/gateway/store"
)

// FuzzProcess sends every message the codec accepts through the router as if a frontend
// had authenticated it, so that policy, SAN checks, revocation and genm handling see
// hostile content past the MAC check that stops FuzzParseMessage's inputs. Whatever
// arrives, the router must answer with a message and not panic.
func FuzzProcess(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("cmp", "testdata", "*.der"))
	for _, file := range files {
		der, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(der)
	}

	for _, seed := range keyGenerationSeeds(f) {
		f.Add(seed)
	}

	ca, err := backendtest.New()
	if err != nil {
		f.Fatal(err)
	}
	db, err := store.OpenSQLite(context.Background(), filepath.Join(f.TempDir(), "fuzz.db"))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { db.Close() })
	router, err := New(Options{
		Store: db, DefaultProfile: "default", TransactionTimeout: time.Minute,
		Profiles: map[string]*Profile{"default": {
			Name: "default", Backend: ca, BackendName: "memca", Validity: time.Hour,
			KeyTypes:      map[string]bool{"ecdsa-p256": true, "rsa-2048": true, "ed25519": true},
			SAN:           SANPolicy{AllowDNS: true, AllowIP: true, AllowEmail: true, AllowURI: true, DNSSuffixes: []string{"example"}},
			CentralKeyGen: true, CentralKeyType: "ecdsa-p256", KeyRecovery: true,
		}},
		Responder:  testResponder(f),
		ArchiveKey: make([]byte, 32),
	})
	if err != nil {
		f.Fatal(err)
	}
	origin := Origin{Frontend: "fuzz", Verified: &backends.Requester{Frontend: "fuzz", Identity: "fuzzer", Method: "test"}}

	f.Fuzz(func(t *testing.T, der []byte) {
		msg, err := cmp.ParseMessage(der)
		if err != nil {
			return
		}
		// Fresh identifiers, so that replay and transaction checks do not end every
		// input early.
		msg.Header.TransactionID = append([]byte("fuzz-transaction"), der[:min(len(der), 16)]...)
		msg.Header.SenderNonce = randomNonce()
		resp, err := router.Process(context.Background(), origin, msg)
		if err != nil {
			t.Fatalf("Process: %v", err)
		}
		if resp == nil {
			t.Fatal("no response")
		}
		if err := resp.Encode(); err != nil {
			t.Fatalf("the response does not encode: %v", err)
		}
	})
}

func randomNonce() []byte {
	nonce := make([]byte, 16)
	rand.Read(nonce)
	return nonce
}

// testResponder returns a self-signed responder, which central key generation needs.
func testResponder(t testing.TB) *Responder {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	template := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "fuzz responder"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), SubjectKeyId: []byte("responder")}
	der, err := x509.CreateCertificate(rand.Reader, template, template, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &Responder{Signer: key, Certificate: cert}
}

// keyGenerationSeeds returns an ir and a cr that request central key generation, and a
// krr, all unprotected, because FuzzProcess skips protection.
func keyGenerationSeeds(t testing.TB) [][]byte {
	subject, _ := asn1.Marshal(pkix.Name{CommonName: "seed"}.ToRDNSequence())
	oldCertID, err := cmp.EncodeCertID(cmp.CertID{Issuer: cmp.DirectoryNameOf(subject), SerialNumber: big.NewInt(7)})
	if err != nil {
		t.Fatal(err)
	}
	algorithmOnly, _ := asn1.Marshal(struct {
		Algorithm pkix.AlgorithmIdentifier
		PublicKey asn1.BitString
	}{Algorithm: pkix.AlgorithmIdentifier{Algorithm: cmp.OIDPublicKeyRSA, Parameters: asn1.NullRawValue}})
	bodies := []cmp.Body{
		{Type: cmp.BodyIR, CertReqs: []cmp.CertReqMsg{{Template: cmp.CertTemplate{RawSubject: subject}}}},
		{Type: cmp.BodyCR, CertReqs: []cmp.CertReqMsg{{Template: cmp.CertTemplate{RawSubject: subject, RawPublicKey: algorithmOnly}}}},
		{Type: cmp.BodyKRR, CertReqs: []cmp.CertReqMsg{{Template: cmp.CertTemplate{RawSubject: subject},
			Controls: []cmp.AttributeTypeAndValue{{Type: cmp.OIDRegCtrlOldCertID, Value: oldCertID}}}}},
	}
	var seeds [][]byte
	for _, body := range bodies {
		m := &cmp.Message{Header: cmp.Header{PVNO: cmp.PVNO2000, Sender: cmp.NullDN, Recipient: cmp.NullDN,
			TransactionID: randomNonce(), SenderNonce: randomNonce()}, Body: body}
		if err := m.Encode(); err != nil {
			t.Fatal(err)
		}
		der, err := m.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		seeds = append(seeds, der)
	}
	return seeds
}
