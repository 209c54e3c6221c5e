package gateway_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/certgate/certgate/backends"
	"github.com/certgate/certgate/gateway"
	"github.com/certgate/certgate/gateway/cmp"
	"github.com/certgate/certgate/gateway/store"
	"github.com/certgate/certgate/plugins/softca"
)

// TestMain lets the test binary serve as the softca plugin, the way the certgate binary
// does: run with the arguments "plugin softca", it serves the plugin instead of
// running tests.
func TestMain(m *testing.M) {
	if len(os.Args) == 3 && os.Args[1] == "plugin" && os.Args[2] == "softca" {
		softca.Serve()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

const benchSecret = "a benchmark secret"

// BenchmarkEnrollIR runs MAC-protected ir enrollments with implicitConfirm through the
// router, a SQLite store and the softca plugin in its own process, as certgate serve
// wires them, from 4×GOMAXPROCS goroutines. It leaves out HTTP, so that a CPU profile
// of it shows the router, the store and the plugin client:
//
//	go test -run '^$' -bench EnrollIR -cpuprofile cpu.out ./gateway
//
// The plugin process does not appear in the profile.
func BenchmarkEnrollIR(b *testing.B) {
	ctx := context.Background()
	dir := b.TempDir()
	db, err := store.OpenSQLite(ctx, filepath.Join(dir, "certgate.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	self, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	backend, err := backends.LaunchPlugin(ctx, backends.PluginSpec{
		Name: "softca", Path: self, Args: []string{"plugin", "softca"}, DataDir: filepath.Join(dir, "softca"),
	}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer backend.Close()
	router, err := gateway.New(gateway.Options{
		Store:          db,
		DefaultProfile: "default",
		Profiles: map[string]*gateway.Profile{"default": {
			Name: "default", Backend: backend, BackendName: "softca", Validity: 24 * time.Hour,
			KeyTypes: map[string]bool{"ecdsa-p256": true}, ImplicitConfirm: true, RequireSubject: true,
			MACSecrets: map[string][]byte{"bench": []byte(benchSecret)},
		}},
		MessageTimeTolerance: 10 * time.Minute,
	})
	if err != nil {
		b.Fatal(err)
	}

	requests := prepareIR(b, b.N)
	var next atomic.Int64
	b.SetParallelism(4)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			response := router.Handle(ctx, gateway.Origin{Frontend: "cmp"}, requests[next.Add(1)-1])
			if !accepted(response) {
				b.Errorf("the response is not an accepted ip: % x", response)
				return
			}
		}
	})
}

// prepareIR builds n ir requests for one P-256 key, each with its own transactionID
// and senderNonce.
func prepareIR(b *testing.B, n int) [][]byte {
	b.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	spki, _ := x509.MarshalPKIXPublicKey(key.Public())
	subject, _ := asn1.Marshal(pkix.Name{CommonName: "bench"}.ToRDNSequence())
	crm := cmp.CertReqMsg{Template: cmp.CertTemplate{RawSubject: subject, RawPublicKey: spki}}
	if crm.RawCertReq, err = crm.EncodeCertRequest(); err != nil {
		b.Fatal(err)
	}
	algorithm, hash, _ := cmp.SignatureAlgorithmFor(key.Public())
	signature, err := cmp.Sign(key, hash, crm.RawCertReq)
	if err != nil {
		b.Fatal(err)
	}
	crm.POP = &cmp.ProofOfPossession{Type: cmp.POPSignature, Algorithm: algorithm, Signature: signature}
	macKey, err := cmp.NewPBMKey([]byte(benchSecret), crypto.SHA256, crypto.SHA1, 500)
	if err != nil {
		b.Fatal(err)
	}

	out := make([][]byte, n)
	for i := range out {
		ids := make([]byte, 32)
		rand.Read(ids)
		m := &cmp.Message{
			Header: cmp.Header{
				PVNO: cmp.PVNO2000, Sender: cmp.DirectoryNameOf(subject), Recipient: cmp.NullDN,
				MessageTime: time.Now(), SenderKID: []byte("bench"), TransactionID: ids[:16], SenderNonce: ids[16:],
				GeneralInfo: []cmp.InfoTypeAndValue{{Type: cmp.OIDITImplicitConfirm, Value: []byte{0x05, 0x00}}},
			},
			Body: cmp.Body{Type: cmp.BodyIR, CertReqs: []cmp.CertReqMsg{crm}},
		}
		if out[i], err = macKey.Protect(m); err != nil {
			b.Fatal(err)
		}
	}
	return out
}

// accepted reports whether der is an ip whose first CertResponse is accepted.
func accepted(der []byte) bool {
	input := cryptobyte.String(der)
	var message, body, rep, responses, first, status cryptobyte.String
	var id, value int64
	return input.ReadASN1(&message, cbasn1.SEQUENCE) && message.SkipASN1(cbasn1.SEQUENCE) &&
		message.ReadASN1(&body, cbasn1.Tag(1).Constructed().ContextSpecific()) &&
		body.ReadASN1(&rep, cbasn1.SEQUENCE) && rep.SkipOptionalASN1(cbasn1.Tag(1).Constructed().ContextSpecific()) &&
		rep.ReadASN1(&responses, cbasn1.SEQUENCE) && responses.ReadASN1(&first, cbasn1.SEQUENCE) &&
		first.ReadASN1Integer(&id) && first.ReadASN1(&status, cbasn1.SEQUENCE) &&
		status.ReadASN1Integer(&value) && value == int64(cmp.StatusAccepted)
}
