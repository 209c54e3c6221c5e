package cmp

import (
	"context"
	"crypto"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"testing"
	"time"

	"github.com/certgate/certgate/backends"
	pkicmp "github.com/certgate/certgate/gateway/cmp"
	"github.com/certgate/certgate/gateway/cmpclient"
)

// recordingTransport keeps the request instead of sending it.
type recordingTransport struct{ requests [][]byte }

var errRecorded = errors.New("recorded, not sent")

func (t *recordingTransport) Exchange(_ context.Context, request []byte) ([]byte, error) {
	t.requests = append(t.requests, request)
	return nil, errRecorded
}

func (t *recordingTransport) Close() error { return nil }

func TestNestedRequestFromRA(t *testing.T) {
	f := newFixture(t, nil)

	// Two end-entity requests, each MAC-protected by its client.
	recorder := &recordingTransport{}
	client := f.macClient(recorder)
	for _, name := range []string{"batched-1", "batched-2"} {
		_, err := client.Enroll(context.Background(), cmpclient.EnrollRequest{Type: pkicmp.BodyCR, Key: newECKey(t), Subject: pkix.Name{CommonName: name}})
		if !errors.Is(err, errRecorded) {
			t.Fatalf("recording %s: %v", name, err)
		}
	}

	// The RA signs the nested envelope with a certificate of the test CA.
	raKey := newECKey(t)
	spki, _ := x509.MarshalPKIXPublicKey(raKey.Public())
	subject, _ := asn1Name("test RA")
	issued, err := f.ca.Issue(context.Background(), &backends.IssueRequest{Template: backends.Template{
		RawSubject: subject, PublicKeyDER: spki, NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
	}})
	if err != nil {
		t.Fatal(err)
	}
	envelope := &pkicmp.Message{
		Header: pkicmp.Header{
			PVNO: pkicmp.PVNO2000, Sender: pkicmp.DirectoryNameOf(issued.Certificate.RawSubject), Recipient: pkicmp.NullDN,
			MessageTime: time.Now(), TransactionID: []byte("nested-transaction-01"), SenderNonce: []byte("nested-sender-nonce-01"),
		},
		Body: pkicmp.Body{Type: pkicmp.BodyNested, Nested: recorder.requests},
	}
	der, err := (&pkicmp.SignatureProtector{Signer: raKey, Certificate: issued.Certificate, Chain: []*x509.Certificate{f.ca.Issuing}}).Protect(envelope)
	if err != nil {
		t.Fatal(err)
	}

	_, resp := f.post(WellKnownPath, ContentType, der)
	if resp.Body.Type != pkicmp.BodyNested {
		t.Fatalf("response is %s (%s), want nested", resp.Body.Type, failInfoOf(resp))
	}
	if err := pkicmp.VerifySignature(resp, resp.ExtraCerts[0]); err != nil {
		t.Errorf("outer response protection: %v", err)
	}
	if len(resp.Body.Nested) != 2 {
		t.Fatalf("%d inner responses, want 2", len(resp.Body.Nested))
	}
	for i, innerDER := range resp.Body.Nested {
		inner, err := pkicmp.ParseMessage(innerDER)
		if err != nil {
			t.Fatal(err)
		}
		if inner.Body.Type != pkicmp.BodyCP || inner.Body.CertRep.Responses[0].Certificate == nil {
			t.Errorf("inner response %d is %s (%s), want cp with a certificate", i, inner.Body.Type, failInfoOf(inner))
		}
		key, err := pkicmp.DeriveMACKey(*inner.Header.ProtectionAlg, []byte(testSecret))
		if err != nil {
			t.Fatal(err)
		}
		if err := key.Verify(inner); err != nil {
			t.Errorf("inner response %d is not MAC-protected for its client: %v", i, err)
		}
	}
}

func TestNestedInnerProtectionStillChecked(t *testing.T) {
	f := newFixture(t, nil)
	recorder := &recordingTransport{}
	client := &cmpclient.Client{Transport: recorder, MAC: &cmpclient.MACCredential{Reference: testReference, Secret: []byte("wrong secret")}}
	// The inner request carries a MAC over a secret the profile does not know.
	client.Enroll(context.Background(), cmpclient.EnrollRequest{Type: pkicmp.BodyIR, Key: newECKey(t), Subject: pkix.Name{CommonName: "x"}})

	envelope := &pkicmp.Message{
		Header: pkicmp.Header{PVNO: pkicmp.PVNO2000, Sender: pkicmp.NullDN, Recipient: pkicmp.NullDN, MessageTime: time.Now(),
			SenderKID: []byte(testReference), TransactionID: []byte("nested-transaction-02"), SenderNonce: []byte("nested-sender-nonce-02")},
		Body: pkicmp.Body{Type: pkicmp.BodyNested, Nested: recorder.requests[:1]},
	}
	key, err := pkicmp.NewPBMKey([]byte(testSecret), crypto.SHA256, crypto.SHA256, 500)
	if err != nil {
		t.Fatal(err)
	}
	der, err := key.Protect(envelope)
	if err != nil {
		t.Fatal(err)
	}
	_, resp := f.post(WellKnownPath, ContentType, der)
	if resp.Body.Type != pkicmp.BodyNested || len(resp.Body.Nested) != 1 {
		t.Fatalf("response is %s, want nested with one entry", resp.Body.Type)
	}
	inner, err := pkicmp.ParseMessage(resp.Body.Nested[0])
	if err != nil {
		t.Fatal(err)
	}
	if got := failInfoOf(inner); got != pkicmp.FailBadMessageCheck {
		t.Errorf("inner request with a wrong MAC: failInfo %s, want badMessageCheck", got)
	}
}
