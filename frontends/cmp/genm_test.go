package cmp

import (
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	pkicmp "github.com/certgate/certgate/gateway/cmp"
	"github.com/certgate/certgate/gateway/cmpclient"
)

func TestGeneralMessageValues(t *testing.T) {
	f := newFixture(t, nil)
	client := f.macClient(&cmpclient.HTTPTransport{URL: f.server.URL + WellKnownPath})
	ctx := context.Background()

	result, err := client.Enroll(ctx, cmpclient.EnrollRequest{Type: pkicmp.BodyIR, Key: newECKey(t), Subject: pkix.Name{CommonName: "to revoke"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := client.Revoke(ctx, result.Certificate, 1); err != nil {
		t.Fatal(err)
	}

	infos, err := client.General(ctx, pkicmp.OIDITCACerts, pkicmp.OIDITSignKeyPairTypes, pkicmp.OIDITCRLStatusList,
		pkicmp.OIDITRootCACert, pkicmp.OIDITCertReqTemplate, asn1.ObjectIdentifier{1, 2, 3, 4})
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) != 6 {
		t.Fatalf("%d genp entries, want 6", len(infos))
	}
	byType := map[string]pkicmp.InfoTypeAndValue{}
	for _, info := range infos {
		byType[info.Type.String()] = info
	}

	caCerts := byType[pkicmp.OIDITCACerts.String()].Value
	if n := countSequence(t, caCerts); n != 2 {
		t.Errorf("caCerts holds %d certificates, want 2", n)
	}
	if n := countSequence(t, byType[pkicmp.OIDITSignKeyPairTypes.String()].Value); n != 4 {
		t.Errorf("signKeyPairTypes lists %d algorithms, want 4", n)
	}
	crls, ok := byType[pkicmp.OIDITCRLs.String()]
	if !ok {
		t.Fatal("crlStatusList was not answered with crls")
	}
	input := cryptobyte.String(crls.Value)
	var list, crlDER cryptobyte.String
	if !input.ReadASN1(&list, cbasn1.SEQUENCE) || !list.ReadASN1Element(&crlDER, cbasn1.SEQUENCE) {
		t.Fatal("crls is not a SEQUENCE OF CertificateList")
	}
	assertCRLLists(t, crlDER, result.Certificate)
	if update, ok := byType[pkicmp.OIDITRootCAKeyUpdate.String()]; !ok || update.Value != nil {
		t.Errorf("rootCaCert answer = %+v, want rootCaKeyUpdate without value", update)
	}
	if template, ok := byType[pkicmp.OIDITCertReqTemplate.String()]; !ok || template.Value != nil {
		t.Errorf("certReqTemplate answer = %+v, want an entry without value", template)
	}
	if unknown, ok := byType["1.2.3.4"]; !ok || unknown.Value != nil {
		t.Errorf("unknown infoType answer = %+v, want it echoed without value", unknown)
	}

	// The same CRL over HTTP.
	crlServer := httptest.NewServer(&CRLHandler{Router: f.router})
	defer crlServer.Close()
	resp, err := http.Get(crlServer.URL + CRLPath + "/default.crl")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/pkix-crl" {
		t.Fatalf("GET CRL: HTTP %d, Content-Type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	assertCRLLists(t, body, result.Certificate)
	for path, want := range map[string]int{CRLPath + "/nope.crl": http.StatusNotFound, CRLPath + "/default": http.StatusNotFound, CRLPath: http.StatusOK} {
		resp, err := http.Get(crlServer.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s: HTTP %d, want %d", path, resp.StatusCode, want)
		}
	}
}

func countSequence(t *testing.T, der []byte) int {
	t.Helper()
	input := cryptobyte.String(der)
	var seq cryptobyte.String
	if !input.ReadASN1(&seq, cbasn1.SEQUENCE) {
		t.Fatal("not a SEQUENCE")
	}
	n := 0
	for !seq.Empty() {
		var element cryptobyte.String
		var tag cbasn1.Tag
		if !seq.ReadAnyASN1Element(&element, &tag) {
			t.Fatal("invalid element")
		}
		n++
	}
	return n
}

func assertCRLLists(t *testing.T, der []byte, revoked *x509.Certificate) {
	t.Helper()
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		t.Fatalf("CRL: %v", err)
	}
	for _, entry := range crl.RevokedCertificateEntries {
		if entry.SerialNumber.Cmp(revoked.SerialNumber) == 0 {
			return
		}
	}
	t.Errorf("CRL does not list serial %x", revoked.SerialNumber)
}
