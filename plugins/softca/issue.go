package softca

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/binary"
	"sync"
	"time"

	"github.com/certgate/certgate/plugins/sdk"
)

// Extensions that the CA sets itself (RFC 5280 section 4.2.1).
var (
	oidBasicConstraints       = asn1.ObjectIdentifier{2, 5, 29, 19}
	oidAuthorityKeyIdentifier = asn1.ObjectIdentifier{2, 5, 29, 35}
	oidSubjectKeyIdentifier   = asn1.ObjectIdentifier{2, 5, 29, 14}
)

// issueCacheSize bounds the idempotency cache. CMP clients and certgate's crash retry
// repeat a request within seconds, so a few thousand recent transactions cover them.
const issueCacheSize = 4096

// issue signs one end-entity certificate from the request's template.
func (st *state) issue(ctx context.Context, req *sdk.IssueRequest) (*x509.Certificate, error) {
	if len(req.TransactionID) == 0 {
		return st.sign(&req.Template, time.Now())
	}

	entry, leader, err := st.cache.begin(string(req.TransactionID), fingerprint(req))
	if err != nil {
		return nil, err
	}
	if !leader {
		select {
		case <-entry.done:
			return entry.cert, entry.err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	cert, err := st.sign(&req.Template, time.Now())
	st.cache.finish(string(req.TransactionID), entry, cert, err)
	return cert, err
}

// sign builds the certificate from t and signs it. The only disk access is the
// serial number record.
func (st *state) sign(t *sdk.Template, now time.Time) (*x509.Certificate, error) {
	pub, err := t.PublicKey()
	if err != nil {
		return nil, err
	}
	subject, err := checkSubject(t.RawSubject)
	if err != nil {
		return nil, err
	}
	extensions, hasSKI, err := filterExtensions(t.Extensions)
	if err != nil {
		return nil, err
	}
	notBefore, notAfter, err := st.validity(t, now)
	if err != nil {
		return nil, err
	}

	template := &x509.Certificate{
		SerialNumber:          randomSerial(),
		RawSubject:            subject,
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		BasicConstraintsValid: true, // cA FALSE
		ExtraExtensions:       extensions,
	}
	if !hasSKI {
		// crypto/x509 adds a subject key identifier to CA certificates only. RFC 5280
		// section 4.2.1.2 recommends one (SHOULD) in end-entity certificates too.
		template.SubjectKeyId = keyIdentifier(t.PublicKeyDER)
	}

	der, err := x509.CreateCertificate(rand.Reader, template, st.auth.cert, pub, st.auth.signer)
	if err != nil {
		return nil, &sdk.Error{Category: sdk.CategoryBadTemplate, Detail: "the certificate cannot be created from the template", Err: err}
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, &sdk.Error{Category: sdk.CategoryBadTemplate, Detail: "the certificate built from the template does not parse", Err: err}
	}
	if err := st.serials.add(template.SerialNumber); err != nil {
		return nil, &sdk.Error{Category: sdk.CategoryInternal, Detail: "the certificate could not be recorded", Err: err}
	}
	return cert, nil
}

// checkSubject returns raw if it is one DER-encoded Name, or the encoding of an empty
// Name for an empty raw.
func checkSubject(raw []byte) ([]byte, error) {
	if len(raw) == 0 {
		return asn1.Marshal(pkix.RDNSequence{})
	}
	var name pkix.RDNSequence
	rest, err := asn1.Unmarshal(raw, &name)
	if err != nil {
		return nil, &sdk.Error{Category: sdk.CategoryBadTemplate, Detail: "the subject is not a DER-encoded Name", Err: err}
	}
	if len(rest) > 0 {
		return nil, sdk.Errorf(sdk.CategoryBadTemplate, "the subject has %d bytes of trailing data", len(rest))
	}
	return raw, nil
}

// filterExtensions returns the template's extensions without those the CA sets
// itself. A basicConstraints extension with cA FALSE is dropped, and one that requests
// a CA is rejected. The authority key identifier is always the issuer's. A duplicate
// OID is rejected, because RFC 5280 section 4.2 forbids more than one instance of an
// extension in a certificate.
func filterExtensions(in []pkix.Extension) (out []pkix.Extension, hasSKI bool, err error) {
	seen := make(map[string]bool, len(in))
	out = make([]pkix.Extension, 0, len(in))
	for _, ext := range in {
		oid := ext.Id.String()
		if seen[oid] {
			return nil, false, sdk.Errorf(sdk.CategoryBadTemplate, "extension %s appears more than once", oid)
		}
		seen[oid] = true

		switch {
		case ext.Id.Equal(oidBasicConstraints):
			var bc struct {
				IsCA       bool `asn1:"optional"`
				MaxPathLen int  `asn1:"optional,default:-1"`
			}
			if _, err := asn1.Unmarshal(ext.Value, &bc); err != nil {
				return nil, false, &sdk.Error{Category: sdk.CategoryBadTemplate, Detail: "the basicConstraints extension does not parse", Err: err}
			}
			if bc.IsCA {
				return nil, false, sdk.Errorf(sdk.CategoryBadTemplate, "softca issues end-entity certificates only, but basicConstraints asks for a CA")
			}
		case ext.Id.Equal(oidAuthorityKeyIdentifier):
		case ext.Id.Equal(oidSubjectKeyIdentifier):
			hasSKI = true
			out = append(out, ext)
		default:
			out = append(out, ext)
		}
	}
	return out, hasSKI, nil
}

// validity returns the requested period clamped to the issuing CA's. A missing
// notBefore means now; a missing notAfter is an error, because the profile decides the
// lifetime.
func (st *state) validity(t *sdk.Template, now time.Time) (notBefore, notAfter time.Time, err error) {
	notBefore, notAfter = t.NotBefore, t.NotAfter
	if notBefore.IsZero() {
		notBefore = now
	}
	if notAfter.IsZero() {
		return time.Time{}, time.Time{}, sdk.Errorf(sdk.CategoryBadTemplate, "the template has no notAfter")
	}
	ca := st.auth.cert
	if notBefore.Before(ca.NotBefore) {
		notBefore = ca.NotBefore
	}
	if notAfter.After(ca.NotAfter) {
		notAfter = ca.NotAfter
	}
	if !notAfter.After(notBefore) {
		return time.Time{}, time.Time{}, sdk.Errorf(sdk.CategoryBadTemplate,
			"the validity period %s to %s is empty within the issuing CA's validity (%s to %s)",
			t.NotBefore.Format(time.RFC3339), t.NotAfter.Format(time.RFC3339),
			ca.NotBefore.Format(time.RFC3339), ca.NotAfter.Format(time.RFC3339))
	}
	return notBefore, notAfter, nil
}

// fingerprint hashes what a repeated request must repeat: profile and template.
func fingerprint(req *sdk.IssueRequest) [sha256.Size]byte {
	h := sha256.New()
	field := func(b []byte) {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(b)))
		h.Write(n[:])
		h.Write(b)
	}
	field([]byte(req.Profile))
	field(req.Template.RawSubject)
	field(req.Template.PublicKeyDER)
	for _, ext := range req.Template.Extensions {
		field([]byte(ext.Id.String()))
		field([]byte{boolByte(ext.Critical)})
		field(ext.Value)
	}
	field(binary.BigEndian.AppendUint64(nil, uint64(req.Template.NotBefore.UnixNano())))
	field(binary.BigEndian.AppendUint64(nil, uint64(req.Template.NotAfter.UnixNano())))
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return sum
}

func boolByte(b bool) byte {
	if b {
		return 1
	}
	return 0
}

// issueCache makes Issue idempotent per transaction ID. A request whose ID is being
// signed waits for that result, so concurrent repeats get the same certificate too.
//
// NOTE: the cache lives in memory and keeps the last issueCacheSize transactions. After
// a restart of the plugin, or for an older transaction, a repeated request gets a new
// certificate with a new serial number.
type issueCache struct {
	mu      sync.Mutex
	entries map[string]*issueEntry
	ring    []ringSlot // insertion order, for eviction
	next    int
}

type ringSlot struct {
	key   string
	entry *issueEntry
}

type issueEntry struct {
	fingerprint [sha256.Size]byte
	done        chan struct{} // closed when cert and err are set
	cert        *x509.Certificate
	err         error
}

func newIssueCache(size int) *issueCache {
	return &issueCache{entries: make(map[string]*issueEntry, size), ring: make([]ringSlot, size)}
}

// begin returns the entry for key. leader is true when the caller must sign and then
// call finish; otherwise it waits on entry.done.
func (c *issueCache) begin(key string, fp [sha256.Size]byte) (entry *issueEntry, leader bool, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.entries[key]; ok {
		if e.fingerprint != fp {
			return nil, false, sdk.Errorf(sdk.CategoryBadRequest, "transaction ID %x was already used for a different certificate request", key)
		}
		return e, false, nil
	}

	e := &issueEntry{fingerprint: fp, done: make(chan struct{})}
	if old := c.ring[c.next]; old.entry != nil && c.entries[old.key] == old.entry {
		delete(c.entries, old.key)
	}
	c.ring[c.next] = ringSlot{key: key, entry: e}
	c.next = (c.next + 1) % len(c.ring)
	c.entries[key] = e
	return e, true, nil
}

// finish stores the outcome. A failed attempt is forgotten, so that the client can
// retry the transaction.
func (c *issueCache) finish(key string, e *issueEntry, cert *x509.Certificate, err error) {
	c.mu.Lock()
	e.cert, e.err = cert, err
	if err != nil && c.entries[key] == e {
		delete(c.entries, key)
	}
	c.mu.Unlock()
	close(e.done)
}
