package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/certgate/certgate/gateway/cmp"
)

// floorResult is the crypto floor, as one line of the results file.
type floorResult struct {
	Kind                 string  `json:"kind"` // "floor"
	Target               string  `json:"target"`
	Description          string  `json:"description"`
	Workers              int     `json:"workers"`
	Enrollments          int64   `json:"enrollments"`
	ElapsedSeconds       float64 `json:"elapsed_s"`
	EnrollmentsPerSecond float64 `json:"enrollments_per_s"`
	CPUSeconds           float64 `json:"cpu_s"`
}

// floorCA is an issuing CA as softca creates it by default: an ECDSA P-256 key that signs
// with ecdsa-with-SHA256.
type floorCA struct {
	key  *ecdsa.PrivateKey
	cert *x509.Certificate
}

func newFloorCA() (*floorCA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	template := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "certgate-bench floor CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, template, template, key.Public(), key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &floorCA{key: key, cert: cert}, nil
}

// enroll does the crypto of one enrollment and nothing else: it verifies the
// proof-of-possession signature of the request and creates the certificate. The
// certificate has the fields softca puts into one: a random 127-bit serial number, the
// requested subject, basic constraints with cA FALSE and a subject key identifier.
func (ca *floorCA) enroll(crm *cmp.CertReqMsg) error {
	pub, err := x509.ParsePKIXPublicKey(crm.Template.RawPublicKey)
	if err != nil {
		return err
	}
	if err := cmp.VerifySignatureWithKey(pub, crm.POP.Algorithm, crm.RawCertReq, crm.POP.Signature); err != nil {
		return err
	}
	var serial [16]byte
	rand.Read(serial[:])
	serial[0] &= 0x7f
	keyID := sha1.Sum(crm.Template.RawPublicKey)
	now := time.Now()
	template := &x509.Certificate{
		SerialNumber:          new(big.Int).SetBytes(serial[:]),
		RawSubject:            crm.Template.RawSubject,
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(365 * 24 * time.Hour),
		BasicConstraintsValid: true,
		SubjectKeyId:          keyID[:],
	}
	_, err = x509.CreateCertificate(rand.Reader, template, ca.cert, pub, ca.key)
	return err
}

// runFloor enrolls on all workers for duration, with no protocol, transport or storage.
func runFloor(duration time.Duration, workers int) (*floorResult, error) {
	ca, err := newFloorCA()
	if err != nil {
		return nil, err
	}
	var requests []cmp.CertReqMsg
	for i := range 64 {
		template, err := newCMPTemplate(fmt.Sprintf("certgate-bench %d", i))
		if err != nil {
			return nil, err
		}
		requests = append(requests, template.body.CertReqs[0])
	}

	var count atomic.Int64
	errs := make([]error, workers)
	cpuBefore := selfCPUSeconds()
	start := time.Now()
	deadline := start.Add(duration)
	var wg sync.WaitGroup
	for worker := range workers {
		wg.Go(func() {
			for i := worker; time.Now().Before(deadline); i += workers {
				if err := ca.enroll(&requests[i%len(requests)]); err != nil {
					errs[worker] = err
					return
				}
				count.Add(1)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	for _, err := range errs {
		if err != nil {
			return nil, fmt.Errorf("floor enrollment: %w", err)
		}
	}
	return &floorResult{
		Kind:   "floor",
		Target: "floor",
		Description: fmt.Sprintf("verify the P-256 proof-of-possession signature and create a certificate signed by a P-256 CA "+
			"(x509.CreateCertificate), in one process on %d workers", workers),
		Workers:              workers,
		Enrollments:          count.Load(),
		ElapsedSeconds:       elapsed.Seconds(),
		EnrollmentsPerSecond: float64(count.Load()) / elapsed.Seconds(),
		CPUSeconds:           selfCPUSeconds() - cpuBefore,
	}, nil
}

// defaultWorkers is the floor's worker count: one per core Go may use.
func defaultWorkers() int { return runtime.GOMAXPROCS(0) }
