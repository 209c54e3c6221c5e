package gateway

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/certgate/certgate/backends"
	"github.com/certgate/certgate/gateway/cmp"
)

// Profile is the policy and backend that one enrollment endpoint applies.
type Profile struct {
	Name        string
	Backend     backends.Backend
	BackendName string

	Validity        time.Duration   // lifetime of issued certificates
	KeyTypes        map[string]bool // allowed subject key types, named as KeyType returns them
	ImplicitConfirm bool            // grant implicitConfirm when the client asks for it
	RequireSubject  bool            // reject an empty subject
	SAN             SANPolicy

	// MACSecrets maps a senderKID, as text, to its shared secret. The key "" matches
	// requests that carry no senderKID.
	MACSecrets map[string][]byte

	// TrustedRAs lists the requester identities, as the router logs them ("mac:<ref>"
	// for a MAC reference, the certificate subject for a signature), whose requests may
	// carry raVerified instead of their own proof of possession.
	TrustedRAs map[string]bool
}

// SANPolicy limits the subjectAltName entries of a request.
type SANPolicy struct {
	AllowDNS    bool
	AllowIP     bool
	AllowEmail  bool
	AllowURI    bool
	DNSSuffixes []string // when set, every DNS name must equal a suffix or end with "."+suffix
}

// backdate is how far before now notBefore is set, so that a client whose clock runs a
// little behind accepts the certificate at once.
const backdate = time.Minute

// KeyType names a public key as profiles list it: ecdsa-p256, ecdsa-p384, ecdsa-p521,
// rsa-<bits> or ed25519.
func KeyType(pub any) string {
	switch key := pub.(type) {
	case *ecdsa.PublicKey:
		return "ecdsa-" + strings.ToLower(strings.ReplaceAll(key.Curve.Params().Name, "-", ""))
	case *rsa.PublicKey:
		return fmt.Sprintf("rsa-%d", key.N.BitLen())
	case ed25519.PublicKey:
		return "ed25519"
	}
	return fmt.Sprintf("%T", pub)
}

// requestedCertificate is the certificate content a client requested in a CRMF template
// or a PKCS #10 request, before policy.
type requestedCertificate struct {
	RawSubject   []byte
	RawPublicKey []byte
	PublicKey    any // RawPublicKey parsed, when the caller already did; nil otherwise
	Extensions   []pkix.Extension
	NotBefore    time.Time
	NotAfter     time.Time
}

// extensionsKept lists the request extensions a profile copies into the certificate. The
// CA adds basicConstraints and the key identifiers itself; any other requested extension
// is dropped and the response status is grantedWithMods.
var extensionsKept = map[string]bool{
	"2.5.29.15": true, // keyUsage
	"2.5.29.37": true, // extKeyUsage
	"2.5.29.17": true, // subjectAltName
}

// applyPolicy checks a request against the profile and returns the template for the
// backend, and whether it differs from the request (grantedWithMods).
func (p *Profile) applyPolicy(req requestedCertificate, now time.Time) (backends.Template, bool, error) {
	var t backends.Template
	modified := false

	pub := req.PublicKey
	if pub == nil {
		var err error
		if pub, err = x509.ParsePKIXPublicKey(req.RawPublicKey); err != nil {
			return t, false, reject(cmp.FailBadCertTemplate, "the public key is missing or not supported: %v", err)
		}
	}
	if keyType := KeyType(pub); !p.KeyTypes[keyType] {
		return t, false, reject(cmp.FailBadCertTemplate, "key type %s is not allowed by profile %q", keyType, p.Name)
	}
	if p.RequireSubject && isEmptyName(req.RawSubject) {
		return t, false, reject(cmp.FailBadCertTemplate, "the subject is empty, but profile %q requires one", p.Name)
	}
	t.RawSubject = req.RawSubject
	if t.RawSubject == nil {
		t.RawSubject = []byte{0x30, 0x00}
	}
	t.PublicKeyDER = req.RawPublicKey

	for _, ext := range req.Extensions {
		if !extensionsKept[ext.Id.String()] {
			modified = true
			continue
		}
		if ext.Id.String() == "2.5.29.17" {
			if err := p.SAN.check(ext.Value); err != nil {
				return t, false, err
			}
		}
		t.Extensions = append(t.Extensions, ext)
	}

	t.NotBefore = now.Add(-backdate)
	t.NotAfter = now.Add(p.Validity)
	if !req.NotAfter.IsZero() {
		if req.NotAfter.After(now) && req.NotAfter.Before(t.NotAfter) {
			t.NotAfter = req.NotAfter
		} else {
			modified = true
		}
	}
	if !req.NotBefore.IsZero() && req.NotBefore.After(now.Add(time.Minute)) {
		modified = true // a future notBefore is not honoured
	}
	return t, modified, nil
}

func isEmptyName(raw []byte) bool {
	var rdns pkix.RDNSequence
	if raw == nil {
		return true
	}
	if _, err := asn1.Unmarshal(raw, &rdns); err != nil {
		return true
	}
	return len(rdns) == 0
}

// check validates the GeneralNames of a subjectAltName extension value.
func (s SANPolicy) check(value []byte) error {
	input := cryptobyte.String(value)
	var names cryptobyte.String
	if !input.ReadASN1(&names, cbasn1.SEQUENCE) || !input.Empty() {
		return reject(cmp.FailBadCertTemplate, "the subjectAltName extension is malformed")
	}
	for !names.Empty() {
		var content cryptobyte.String
		var tag cbasn1.Tag
		if !names.ReadAnyASN1(&content, &tag) {
			return reject(cmp.FailBadCertTemplate, "the subjectAltName extension is malformed")
		}
		switch tag {
		case cbasn1.Tag(1).ContextSpecific(): // rfc822Name
			if !s.AllowEmail {
				return reject(cmp.FailBadCertTemplate, "email addresses are not allowed in subjectAltName")
			}
		case cbasn1.Tag(2).ContextSpecific(): // dNSName
			if !s.AllowDNS {
				return reject(cmp.FailBadCertTemplate, "DNS names are not allowed in subjectAltName")
			}
			if !s.dnsAllowed(string(content)) {
				return reject(cmp.FailBadCertTemplate, "DNS name %q is outside the allowed suffixes", string(content))
			}
		case cbasn1.Tag(6).ContextSpecific(): // uniformResourceIdentifier
			if !s.AllowURI {
				return reject(cmp.FailBadCertTemplate, "URIs are not allowed in subjectAltName")
			}
			if _, err := url.Parse(string(content)); err != nil {
				return reject(cmp.FailBadCertTemplate, "URI %q in subjectAltName is invalid", string(content))
			}
		case cbasn1.Tag(7).ContextSpecific(): // iPAddress
			if !s.AllowIP {
				return reject(cmp.FailBadCertTemplate, "IP addresses are not allowed in subjectAltName")
			}
			if len(content) != net.IPv4len && len(content) != net.IPv6len {
				return reject(cmp.FailBadCertTemplate, "an IP address in subjectAltName has %d bytes", len(content))
			}
		default:
			return reject(cmp.FailBadCertTemplate, "subjectAltName choice [%d] is not supported", tag&0x1f)
		}
	}
	return nil
}

func (s SANPolicy) dnsAllowed(name string) bool {
	if len(s.DNSSuffixes) == 0 {
		return true
	}
	name = strings.ToLower(strings.TrimSuffix(name, "."))
	for _, suffix := range s.DNSSuffixes {
		suffix = strings.ToLower(suffix)
		if name == suffix || strings.HasSuffix(name, "."+suffix) {
			return true
		}
	}
	return false
}
