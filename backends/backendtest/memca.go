// Package backendtest provides an in-process Backend for tests of the router and the
// frontends: a small CA that keeps everything in memory and can be set to return
// "pending" before it issues, so that polling paths can be exercised.
package backendtest

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"sync"
	"time"

	"github.com/certgate/certgate/backends"
)

// CA is an in-memory backends.Backend.
type CA struct {
	Root, Issuing *x509.Certificate
	issuingKey    crypto.Signer

	// PendingPolls is how many times Issue and Poll return "pending" before a request is
	// issued. Zero issues at once.
	PendingPolls int
	// PendingRevokePolls is how many times Revoke and PollRevoke return "pending"
	// before a revocation takes effect.
	PendingRevokePolls int
	// Delay is added to every Issue call, to make a slow CA.
	Delay time.Duration

	mu                 sync.Mutex
	pending            map[string]*pendingIssue      // by poll reference
	pendingRevocations map[string]*pendingRevocation // by poll reference
	revoked            map[string]backends.RevocationReason
	issued             map[string]bool
	Calls              map[string]int // method name to call count
}

type pendingIssue struct {
	req   *backends.IssueRequest
	polls int
}

// New returns a CA with a fresh P-256 root and issuing CA.
func New() (*CA, error) {
	rootKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	issuingKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	rootTemplate := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "backendtest Root CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	rootDER, err := x509.CreateCertificate(rand.Reader, rootTemplate, rootTemplate, rootKey.Public(), rootKey)
	if err != nil {
		return nil, err
	}
	root, _ := x509.ParseCertificate(rootDER)
	issuingTemplate := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "backendtest Issuing CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, MaxPathLenZero: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	issuingDER, err := x509.CreateCertificate(rand.Reader, issuingTemplate, root, issuingKey.Public(), rootKey)
	if err != nil {
		return nil, err
	}
	issuing, _ := x509.ParseCertificate(issuingDER)
	return &CA{
		Root: root, Issuing: issuing, issuingKey: issuingKey,
		pending: map[string]*pendingIssue{}, revoked: map[string]backends.RevocationReason{},
		pendingRevocations: map[string]*pendingRevocation{},
		issued:             map[string]bool{}, Calls: map[string]int{},
	}, nil
}

func (c *CA) count(method string) {
	c.mu.Lock()
	c.Calls[method]++
	c.mu.Unlock()
}

// Capabilities implements backends.Backend.
func (c *CA) Capabilities(context.Context) (backends.Capabilities, error) {
	return backends.Capabilities{Name: "backendtest", Version: "test", ContractVersion: 1, Revoke: true, CRL: true, Pending: true}, nil
}

// Issue implements backends.Backend.
func (c *CA) Issue(ctx context.Context, req *backends.IssueRequest) (*backends.IssueResult, error) {
	c.count("Issue")
	if c.Delay > 0 {
		time.Sleep(c.Delay)
	}
	if c.PendingPolls > 0 {
		reference := fmt.Sprintf("poll-%x", req.TransactionID)
		c.mu.Lock()
		c.pending[reference] = &pendingIssue{req: req}
		c.mu.Unlock()
		return &backends.IssueResult{Pending: &backends.Pending{PollReference: reference, CheckAfter: time.Second}}, nil
	}
	return c.sign(req)
}

// Poll implements backends.Backend.
func (c *CA) Poll(ctx context.Context, req *backends.PollRequest) (*backends.IssueResult, error) {
	c.count("Poll")
	c.mu.Lock()
	p, ok := c.pending[req.PollReference]
	if ok {
		p.polls++
	}
	c.mu.Unlock()
	if !ok {
		return nil, backends.Errorf(backends.CategoryNotFound, "unknown poll reference %q", req.PollReference)
	}
	if p.polls < c.PendingPolls {
		return &backends.IssueResult{Pending: &backends.Pending{PollReference: req.PollReference, CheckAfter: time.Second}}, nil
	}
	return c.sign(p.req)
}

func (c *CA) sign(req *backends.IssueRequest) (*backends.IssueResult, error) {
	pub, err := x509.ParsePKIXPublicKey(req.Template.PublicKeyDER)
	if err != nil {
		return nil, backends.Errorf(backends.CategoryBadTemplate, "invalid public key: %v", err)
	}
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	template := &x509.Certificate{
		SerialNumber: serial, RawSubject: req.Template.RawSubject,
		NotBefore: req.Template.NotBefore, NotAfter: req.Template.NotAfter,
		ExtraExtensions: req.Template.Extensions, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, template, c.Issuing, pub, c.issuingKey)
	if err != nil {
		return nil, &backends.Error{Category: backends.CategoryInternal, Detail: "signing failed", Err: err}
	}
	cert, _ := x509.ParseCertificate(der)
	c.mu.Lock()
	c.issued[serial.String()] = true
	c.mu.Unlock()
	return &backends.IssueResult{Certificate: cert, Chain: []*x509.Certificate{c.Issuing, c.Root}}, nil
}

// Revoke implements backends.Backend. With PendingRevokePolls set, the revocation
// waits until PollRevoke was called that many times.
func (c *CA) Revoke(ctx context.Context, req *backends.RevokeRequest) (*backends.RevokeResult, error) {
	c.count("Revoke")
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.issued[req.SerialNumber.String()] {
		return nil, backends.Errorf(backends.CategoryNotFound, "serial %s was not issued by this CA", req.SerialNumber.Text(16))
	}
	if c.PendingRevokePolls > 0 {
		reference := fmt.Sprintf("revoke-%x", req.TransactionID)
		c.pendingRevocations[reference] = &pendingRevocation{req: req}
		return &backends.RevokeResult{Pending: &backends.Pending{PollReference: reference, CheckAfter: time.Second}}, nil
	}
	c.applyRevocation(req)
	return &backends.RevokeResult{}, nil
}

// PollRevoke implements backends.Backend.
func (c *CA) PollRevoke(ctx context.Context, req *backends.PollRequest) (*backends.RevokeResult, error) {
	c.count("PollRevoke")
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.pendingRevocations[req.PollReference]
	if !ok {
		return nil, backends.Errorf(backends.CategoryNotFound, "unknown poll reference %q", req.PollReference)
	}
	p.polls++
	if p.polls < c.PendingRevokePolls {
		return &backends.RevokeResult{Pending: &backends.Pending{PollReference: req.PollReference, CheckAfter: time.Second}}, nil
	}
	delete(c.pendingRevocations, req.PollReference)
	c.applyRevocation(p.req)
	return &backends.RevokeResult{}, nil
}

// applyRevocation records a revocation. The caller holds c.mu.
func (c *CA) applyRevocation(req *backends.RevokeRequest) {
	key := req.SerialNumber.String()
	if req.Reason == backends.ReasonRemoveFromCRL {
		delete(c.revoked, key)
		return
	}
	c.revoked[key] = req.Reason
}

type pendingRevocation struct {
	req   *backends.RevokeRequest
	polls int
}

// Revoked returns the reason a serial was revoked with, and whether it is revoked.
func (c *CA) Revoked(serial *big.Int) (backends.RevocationReason, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	reason, ok := c.revoked[serial.String()]
	return reason, ok
}

// CAChain implements backends.Backend.
func (c *CA) CAChain(context.Context) ([]*x509.Certificate, error) {
	return []*x509.Certificate{c.Issuing, c.Root}, nil
}

// CRL implements backends.Backend.
func (c *CA) CRL(context.Context) ([]byte, error) {
	c.mu.Lock()
	var entries []x509.RevocationListEntry
	for serial, reason := range c.revoked {
		n, _ := new(big.Int).SetString(serial, 10)
		entries = append(entries, x509.RevocationListEntry{SerialNumber: n, RevocationTime: time.Now(), ReasonCode: int(reason)})
	}
	c.mu.Unlock()
	return x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number: big.NewInt(1), ThisUpdate: time.Now(), NextUpdate: time.Now().Add(time.Hour),
		RevokedCertificateEntries: entries,
	}, c.Issuing, c.issuingKey)
}
