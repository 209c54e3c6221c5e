package softca

import (
	"context"
	"crypto/x509"
	"encoding/asn1"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/certgate/certgate/plugins/sdk"
)

// issueCert issues one certificate and returns it.
func issueCert(t *testing.T, ca *CA) *x509.Certificate {
	t.Helper()
	res, err := ca.Issue(context.Background(), issueRequest(t, mustKey(t).Public(), ""))
	if err != nil {
		t.Fatal(err)
	}
	return res.Certificate
}

func revoke(ca *CA, cert *x509.Certificate, reason sdk.RevocationReason) error {
	return ca.Revoke(context.Background(), &sdk.RevokeRequest{
		RawIssuer:    cert.RawIssuer,
		SerialNumber: cert.SerialNumber,
		Reason:       reason,
		Requester:    sdk.Requester{Frontend: "cmp", Identity: "CN=operator", Method: "signature"},
	})
}

// fetchCRL returns the parsed CRL after checking its signature.
func fetchCRL(t *testing.T, ca *CA) *x509.RevocationList {
	t.Helper()
	der, err := ca.CRL(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		t.Fatal(err)
	}
	chain, _ := ca.CAChain(context.Background())
	if err := crl.CheckSignatureFrom(chain[0]); err != nil {
		t.Fatalf("the CRL signature does not verify: %v", err)
	}
	return crl
}

// crlEntry returns the CRL entry for serial, or nil.
func crlEntry(crl *x509.RevocationList, serial *big.Int) *x509.RevocationListEntry {
	for i, e := range crl.RevokedCertificateEntries {
		if e.SerialNumber.Cmp(serial) == 0 {
			return &crl.RevokedCertificateEntries[i]
		}
	}
	return nil
}

func TestRevokeEveryReason(t *testing.T) {
	ca := newTestCA(t, t.TempDir(), nil)
	reasons := []struct {
		reason   sdk.RevocationReason
		wantCode int // reasonCode in the CRL; 0 when the extension is absent
	}{
		{sdk.ReasonNone, 0},
		{sdk.ReasonUnspecified, 0},
		{sdk.ReasonKeyCompromise, 1},
		{sdk.ReasonCACompromise, 2},
		{sdk.ReasonAffiliationChanged, 3},
		{sdk.ReasonSuperseded, 4},
		{sdk.ReasonCessationOfOperation, 5},
		{sdk.ReasonCertificateHold, 6},
		{sdk.ReasonPrivilegeWithdrawn, 9},
		{sdk.ReasonAACompromise, 10},
	}
	certs := make([]*x509.Certificate, len(reasons))
	for i, r := range reasons {
		certs[i] = issueCert(t, ca)
		if err := revoke(ca, certs[i], r.reason); err != nil {
			t.Fatalf("revoke with %s: %v", r.reason, err)
		}
	}

	crl := fetchCRL(t, ca)
	for i, r := range reasons {
		entry := crlEntry(crl, certs[i].SerialNumber)
		if entry == nil {
			t.Errorf("%s: the CRL lacks the serial", r.reason)
			continue
		}
		if entry.ReasonCode != r.wantCode {
			t.Errorf("%s: reasonCode = %d, want %d", r.reason, entry.ReasonCode, r.wantCode)
		}
	}
}

func TestRevokeRecordsInvalidityDate(t *testing.T) {
	ca := newTestCA(t, t.TempDir(), nil)
	cert := issueCert(t, ca)
	compromised := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	err := ca.Revoke(context.Background(), &sdk.RevokeRequest{
		RawIssuer:      cert.RawIssuer,
		SerialNumber:   cert.SerialNumber,
		Reason:         sdk.ReasonKeyCompromise,
		InvalidityDate: compromised,
	})
	if err != nil {
		t.Fatal(err)
	}

	entry := crlEntry(fetchCRL(t, ca), cert.SerialNumber)
	if entry == nil {
		t.Fatal("the CRL lacks the serial")
	}
	var found bool
	for _, ext := range entry.Extensions {
		if !ext.Id.Equal(oidInvalidityDate) {
			continue
		}
		found = true
		var got time.Time
		if _, err := asn1.UnmarshalWithParams(ext.Value, &got, "generalized"); err != nil {
			t.Fatalf("invalidityDate does not parse as GeneralizedTime: %v", err)
		}
		if !got.Equal(compromised) {
			t.Errorf("invalidityDate = %s, want %s", got, compromised)
		}
	}
	if !found {
		t.Error("the CRL entry has no invalidityDate extension")
	}
}

func TestHoldAndRelease(t *testing.T) {
	ca := newTestCA(t, t.TempDir(), nil)
	cert := issueCert(t, ca)

	if err := revoke(ca, cert, sdk.ReasonCertificateHold); err != nil {
		t.Fatal(err)
	}
	holdEntry := crlEntry(fetchCRL(t, ca), cert.SerialNumber)
	if holdEntry == nil || holdEntry.ReasonCode != int(sdk.ReasonCertificateHold) {
		t.Fatalf("CRL entry after hold = %+v, want reason certificateHold", holdEntry)
	}
	wantCategory(t, revoke(ca, cert, sdk.ReasonCertificateHold), sdk.CategoryAlreadyRevoked)

	if err := revoke(ca, cert, sdk.ReasonRemoveFromCRL); err != nil {
		t.Fatalf("release from hold: %v", err)
	}
	if crlEntry(fetchCRL(t, ca), cert.SerialNumber) != nil {
		t.Fatal("the CRL still lists a released certificate")
	}
	wantCategory(t, revoke(ca, cert, sdk.ReasonRemoveFromCRL), sdk.CategoryBadRequest)

	// A held certificate can be revoked for good and keeps its hold date.
	if err := revoke(ca, cert, sdk.ReasonCertificateHold); err != nil {
		t.Fatal(err)
	}
	holdEntry = crlEntry(fetchCRL(t, ca), cert.SerialNumber)
	if err := revoke(ca, cert, sdk.ReasonKeyCompromise); err != nil {
		t.Fatalf("revoking a held certificate for good: %v", err)
	}
	final := crlEntry(fetchCRL(t, ca), cert.SerialNumber)
	if final == nil || final.ReasonCode != int(sdk.ReasonKeyCompromise) {
		t.Fatalf("CRL entry = %+v, want reason keyCompromise", final)
	}
	if !final.RevocationTime.Equal(holdEntry.RevocationTime) {
		t.Errorf("revocation date = %s, want the hold date %s", final.RevocationTime, holdEntry.RevocationTime)
	}
	wantCategory(t, revoke(ca, cert, sdk.ReasonRemoveFromCRL), sdk.CategoryBadRequest)
}

func TestRevokeErrors(t *testing.T) {
	ca := newTestCA(t, t.TempDir(), nil)
	cert := issueCert(t, ca)
	if err := revoke(ca, cert, sdk.ReasonSuperseded); err != nil {
		t.Fatal(err)
	}

	t.Run("already revoked", func(t *testing.T) {
		wantCategory(t, revoke(ca, cert, sdk.ReasonKeyCompromise), sdk.CategoryAlreadyRevoked)
	})
	t.Run("unknown serial", func(t *testing.T) {
		err := ca.Revoke(context.Background(), &sdk.RevokeRequest{
			RawIssuer: cert.RawIssuer, SerialNumber: big.NewInt(12345), Reason: sdk.ReasonSuperseded,
		})
		wantCategory(t, err, sdk.CategoryNotFound)
	})
	t.Run("unknown issuer", func(t *testing.T) {
		err := ca.Revoke(context.Background(), &sdk.RevokeRequest{
			RawIssuer: cert.RawSubject, SerialNumber: cert.SerialNumber, Reason: sdk.ReasonSuperseded,
		})
		wantCategory(t, err, sdk.CategoryNotFound)
	})
	t.Run("reason 7", func(t *testing.T) {
		other := issueCert(t, ca)
		wantCategory(t, revoke(ca, other, sdk.RevocationReason(7)), sdk.CategoryBadRequest)
	})
	t.Run("release of a certificate never held", func(t *testing.T) {
		other := issueCert(t, ca)
		wantCategory(t, revoke(ca, other, sdk.ReasonRemoveFromCRL), sdk.CategoryBadRequest)
	})
	t.Run("missing serial", func(t *testing.T) {
		err := ca.Revoke(context.Background(), &sdk.RevokeRequest{RawIssuer: cert.RawIssuer, Reason: sdk.ReasonSuperseded})
		wantCategory(t, err, sdk.CategoryBadRequest)
	})
}

func TestCRLNumberIncreasesAndPersists(t *testing.T) {
	dataDir := t.TempDir()
	first := New(nil)
	if err := first.Configure(context.Background(), dataDir, nil); err != nil {
		t.Fatal(err)
	}
	cert := issueCert(t, first)

	crl1 := fetchCRL(t, first)
	if crl1.Number.Sign() <= 0 {
		t.Fatalf("CRL number = %v, want positive", crl1.Number)
	}
	if !crl1.NextUpdate.Equal(crl1.ThisUpdate.Add(defaultCRLValidity)) {
		t.Errorf("nextUpdate = %s, want thisUpdate + %s", crl1.NextUpdate, defaultCRLValidity)
	}
	if again := fetchCRL(t, first); again.Number.Cmp(crl1.Number) != 0 {
		t.Errorf("an unchanged state produced CRL number %v after %v; want the cached CRL", again.Number, crl1.Number)
	}
	if err := revoke(first, cert, sdk.ReasonSuperseded); err != nil {
		t.Fatal(err)
	}
	crl2 := fetchCRL(t, first)
	if crl2.Number.Cmp(crl1.Number) <= 0 {
		t.Errorf("CRL number %v after a revocation is not above %v", crl2.Number, crl1.Number)
	}
	first.Close()

	second := newTestCA(t, dataDir, nil)
	crl3 := fetchCRL(t, second)
	if crl3.Number.Cmp(crl2.Number) <= 0 {
		t.Errorf("CRL number %v after a restart is not above %v", crl3.Number, crl2.Number)
	}
	if crlEntry(crl3, cert.SerialNumber) == nil {
		t.Error("the revocation was lost across the restart")
	}
}

func TestRevocationsFileIsBoundToCA(t *testing.T) {
	dataDir := t.TempDir()
	ca := New(nil)
	if err := ca.Configure(context.Background(), dataDir, nil); err != nil {
		t.Fatal(err)
	}
	if err := revoke(ca, issueCert(t, ca), sdk.ReasonSuperseded); err != nil {
		t.Fatal(err)
	}
	ca.Close()

	otherDir := t.TempDir()
	other := New(nil)
	if err := other.Configure(context.Background(), otherDir, nil); err != nil {
		t.Fatal(err)
	}
	other.Close()
	data, err := os.ReadFile(filepath.Join(dataDir, revocationsFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(otherDir, revocationsFile), data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := New(nil).Configure(context.Background(), otherDir, nil); err == nil {
		t.Fatal("a revocations.json of another CA was accepted")
	}
}
