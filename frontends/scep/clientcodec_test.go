package scep

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"errors"
	"testing"
)

// newRequestMessage returns a PKCSReq from client to the RA ra with a fresh nonce.
func newRequestMessage(t *testing.T, client, ra *testClient, cipher string) *RequestMessage {
	t.Helper()
	return &RequestMessage{
		Type:              MessagePKCSReq,
		TransactionID:     "bench-1",
		SenderNonce:       randomBytes(nonceSize),
		Content:           client.csr("device1", "secret"),
		Recipient:         ra.cert,
		ContentEncryption: cipher,
		Digest:            crypto.SHA256,
		Signer:            client.cert,
		Key:               client.key,
	}
}

func TestRequestMessageRoundTrip(t *testing.T) {
	ra, client := newTestClient(t, "ra"), newTestClient(t, "device1")
	m := newRequestMessage(t, client, ra, "aes128-cbc")
	der, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}

	req, err := ParseRequest(der, LegacyAlgorithms{})
	if err != nil {
		t.Fatalf("ParseRequest: %v", err)
	}
	if req.MessageType != MessagePKCSReq {
		t.Errorf("MessageType = %s, want PKCSReq", req.MessageType)
	}
	if req.TransactionID != m.TransactionID {
		t.Errorf("TransactionID = %q, want %q", req.TransactionID, m.TransactionID)
	}
	if !bytes.Equal(req.SenderNonce, m.SenderNonce) {
		t.Error("SenderNonce differs from the one sent")
	}
	if !req.Signer.Equal(client.cert) {
		t.Error("Signer is not the client's certificate")
	}
	if req.Digest() != "sha-256" {
		t.Errorf("Digest = %q, want sha-256", req.Digest())
	}
	content, err := req.Decrypt(ra.cert, ra.key, LegacyAlgorithms{})
	if err != nil {
		t.Fatalf("Decrypt: %v", err)
	}
	if !bytes.Equal(content, m.Content) {
		t.Error("the decrypted content differs from the CSR sent")
	}
	if req.ContentEncryption() != "aes128-cbc" {
		t.Errorf("ContentEncryption = %q, want aes128-cbc", req.ContentEncryption())
	}

	issued := newTestClient(t, "issued").cert
	response, err := req.Respond(&CertRep{Status: StatusSuccess, Certificates: []*x509.Certificate{issued}}, ra.cert, ra.key)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := ParseCertRep(response)
	if err != nil {
		t.Fatalf("ParseCertRep: %v", err)
	}
	if rep.Status != StatusSuccess {
		t.Errorf("Status = %s, want SUCCESS", rep.Status)
	}
	if rep.TransactionID != m.TransactionID {
		t.Errorf("TransactionID = %q, want %q", rep.TransactionID, m.TransactionID)
	}
	if !bytes.Equal(rep.RecipientNonce, m.SenderNonce) {
		t.Error("RecipientNonce is not the request's senderNonce")
	}
	if len(rep.SenderNonce) != nonceSize {
		t.Errorf("SenderNonce has %d bytes, want %d", len(rep.SenderNonce), nonceSize)
	}
	if _, _, err := rep.Decrypt(client.cert, client.key, LegacyAlgorithms{}); err == nil {
		t.Error("Decrypt succeeded before Verify")
	}
	signer, err := rep.Verify(LegacyAlgorithms{})
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if !signer.Equal(ra.cert) {
		t.Error("the CertRep's signer is not the RA certificate")
	}
	certs, crls, err := rep.Decrypt(client.cert, client.key, LegacyAlgorithms{})
	if err != nil {
		t.Fatalf("Decrypt: %v", err)
	}
	if len(certs) != 1 || !certs[0].Equal(issued) {
		t.Errorf("the envelope carries %d certificates, want the issued one", len(certs))
	}
	if len(crls) != 0 {
		t.Errorf("the envelope carries %d CRLs, want none", len(crls))
	}
	if rep.ContentEncryption() != "aes128-cbc" {
		t.Errorf("CertRep ContentEncryption = %q, want aes128-cbc", rep.ContentEncryption())
	}
	if rep.Digest() != "sha-256" {
		t.Errorf("CertRep Digest = %q, want sha-256", rep.Digest())
	}
}

func TestParseCertRepFailure(t *testing.T) {
	ra, client := newTestClient(t, "ra"), newTestClient(t, "device1")
	der, err := newRequestMessage(t, client, ra, "des-ede3-cbc").Marshal()
	if err != nil {
		t.Fatal(err)
	}
	req, err := ParseRequest(der, LegacyAlgorithms{})
	if err != nil {
		t.Fatal(err)
	}
	response, err := req.Respond(&CertRep{Status: StatusFailure, FailInfo: FailBadRequest, FailInfoText: "wrong challenge"}, ra.cert, ra.key)
	if err != nil {
		t.Fatal(err)
	}

	rep, err := ParseCertRep(response)
	if err != nil {
		t.Fatalf("ParseCertRep: %v", err)
	}
	if rep.Status != StatusFailure {
		t.Errorf("Status = %s, want FAILURE", rep.Status)
	}
	if rep.FailInfo != FailBadRequest {
		t.Errorf("FailInfo = %s, want badRequest", rep.FailInfo)
	}
	if rep.FailInfoText != "wrong challenge" {
		t.Errorf("FailInfoText = %q, want %q", rep.FailInfoText, "wrong challenge")
	}
	if _, err := rep.Verify(LegacyAlgorithms{}); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if _, _, err := rep.Decrypt(client.cert, client.key, LegacyAlgorithms{}); err == nil {
		t.Error("Decrypt of a FAILURE CertRep succeeded")
	}
}

func TestParseCertRepRejectsRequest(t *testing.T) {
	ra, client := newTestClient(t, "ra"), newTestClient(t, "device1")
	der, err := newRequestMessage(t, client, ra, "aes128-cbc").Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ParseCertRep(der); !errors.Is(err, ErrMalformed) {
		t.Errorf("ParseCertRep of a PKCSReq: err = %v, want ErrMalformed", err)
	}
}

func TestRequestMessageMarshalRejectsInvalid(t *testing.T) {
	ra, client := newTestClient(t, "ra"), newTestClient(t, "device1")

	m := newRequestMessage(t, client, ra, "aes128-gcm")
	var algorithmErr *AlgorithmError
	if _, err := m.Marshal(); !errors.As(err, &algorithmErr) {
		t.Errorf("unknown cipher: err = %v, want *AlgorithmError", err)
	}

	m = newRequestMessage(t, client, ra, "aes128-cbc")
	m.SenderNonce = m.SenderNonce[:8]
	if _, err := m.Marshal(); err == nil {
		t.Error("an 8-byte senderNonce was accepted")
	}

	m = newRequestMessage(t, client, ra, "aes128-cbc")
	m.TransactionID = ""
	if _, err := m.Marshal(); err == nil {
		t.Error("an empty transactionID was accepted")
	}

	m = newRequestMessage(t, client, ra, "aes128-cbc")
	m.Recipient = nil
	if _, err := m.Marshal(); err == nil {
		t.Error("a message without Recipient was accepted")
	}
}

func TestParseDegenerateRoundTrip(t *testing.T) {
	first, second := newTestClient(t, "first").cert, newTestClient(t, "second").cert
	crl := []byte{0x30, 0x03, 0x02, 0x01, 0x01} // a SEQUENCE, which is all ParseDegenerate checks
	der, err := Degenerate([]*x509.Certificate{first, second}, [][]byte{crl})
	if err != nil {
		t.Fatal(err)
	}

	certs, crls, err := ParseDegenerate(der)
	if err != nil {
		t.Fatalf("ParseDegenerate: %v", err)
	}
	if len(certs) != 2 || !certs[0].Equal(first) || !certs[1].Equal(second) {
		t.Errorf("got %d certificates, want the two in order", len(certs))
	}
	if len(crls) != 1 || !bytes.Equal(crls[0], crl) {
		t.Errorf("got CRLs %x, want [%x]", crls, crl)
	}
	if _, _, err := ParseDegenerate(first.Raw); !errors.Is(err, ErrMalformed) {
		t.Errorf("ParseDegenerate of a certificate: err = %v, want ErrMalformed", err)
	}
}
