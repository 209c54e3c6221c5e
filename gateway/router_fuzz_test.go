package gateway

import (
	"context"
	"crypto/rand"
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
			KeyTypes: map[string]bool{"ecdsa-p256": true, "rsa-2048": true, "ed25519": true},
			SAN:      SANPolicy{AllowDNS: true, AllowIP: true, AllowEmail: true, AllowURI: true, DNSSuffixes: []string{"example"}},
		}},
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
