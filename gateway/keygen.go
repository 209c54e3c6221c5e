package gateway

import (
	"bytes"
	"context"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/certgate/certgate/gateway/cmp"
	"github.com/certgate/certgate/gateway/store"
)

// Central key generation (RFC 9483 section 4.1.6). A request whose certTemplate has no
// public key, or only its algorithm, requests that the gateway generate the key pair. The
// gateway generates it, has the backend certify its public key like any other, seals
// the private key to the requester and archives it, encrypted under the archive key,
// for key recovery with krr.
//
// The gateway rather than the backend generates the key so that every backend,
// including external plugins and upstream CAs, supports central key generation without
// a change to the plugin contract, and so that the archive lives in one place.

// wantsCentralKey reports whether a CRMF request requests central key generation: it
// has no proof of possession and its template has no public key, or one with an empty
// subjectPublicKey that only names the algorithm.
func wantsCentralKey(crm *cmp.CertReqMsg) bool {
	if crm.POP != nil {
		return false
	}
	if crm.Template.RawPublicKey == nil {
		return true
	}
	_, key, ok := splitPublicKeyInfo(crm.Template.RawPublicKey)
	return ok && len(key) == 0
}

// splitPublicKeyInfo returns the algorithm element and the key bits of a
// SubjectPublicKeyInfo.
func splitPublicKeyInfo(spki []byte) (algorithm []byte, key []byte, ok bool) {
	s := cryptobyte.String(spki)
	var seq, alg cryptobyte.String
	var bits asn1.BitString
	if !s.ReadASN1(&seq, cbasn1.SEQUENCE) || !seq.ReadASN1Element(&alg, cbasn1.SEQUENCE) ||
		!seq.ReadASN1BitString(&bits) || !seq.Empty() {
		return nil, nil, false
	}
	return alg, bits.Bytes, true
}

// generateKey checks that central key generation is possible for req and generates a
// key of the type the template names, or of the profile's default type.
func (r *Router) generateKey(req *request, crm *cmp.CertReqMsg) (crypto.Signer, error) {
	p := req.profile
	if !p.CentralKeyGen {
		return nil, reject(cmp.FailBadCertTemplate,
			"the certTemplate has no public key and central key generation is not enabled for profile %q; send a public key with its proof of possession", p.Name)
	}
	keyType := p.CentralKeyType
	if crm.Template.RawPublicKey != nil {
		alg, _, _ := splitPublicKeyInfo(crm.Template.RawPublicKey)
		named, err := keyTypeOfAlgorithm(alg, p)
		if err != nil {
			return nil, err
		}
		keyType = named
	}
	if !p.KeyTypes[keyType] {
		return nil, reject(cmp.FailBadCertTemplate, "key type %s is not allowed by profile %q", keyType, p.Name)
	}
	if _, err := keyRecipientOf(req); err != nil {
		return nil, err
	}
	return newKeyOfType(keyType)
}

// keyTypeOfAlgorithm names the key type of a template's AlgorithmIdentifier, using the
// table behind signKeyPairTypes. RSA names no size, so the profile's default
// type is used when it is RSA, else rsa-2048.
func keyTypeOfAlgorithm(algorithm []byte, p *Profile) (string, error) {
	var alg pkix.AlgorithmIdentifier
	if rest, err := asn1.Unmarshal(algorithm, &alg); err != nil || len(rest) != 0 {
		return "", reject(cmp.FailBadCertTemplate, "the certTemplate's publicKey algorithm is invalid")
	}
	if alg.Algorithm.Equal(cmp.OIDPublicKeyRSA) {
		if strings.HasPrefix(p.CentralKeyType, "rsa-") {
			return p.CentralKeyType, nil
		}
		return "rsa-2048", nil
	}
	for keyType, known := range keyTypeAlgorithms {
		if known.Algorithm.Equal(alg.Algorithm) && bytes.Equal(known.Parameters.FullBytes, alg.Parameters.FullBytes) {
			return keyType, nil
		}
	}
	return "", reject(cmp.FailBadAlg, "key algorithm %s with these parameters is not supported for central key generation", alg.Algorithm)
}

// newKeyOfType generates a key of a type as profiles name it (see KeyType).
func newKeyOfType(keyType string) (crypto.Signer, error) {
	switch keyType {
	case "ecdsa-p256":
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "ecdsa-p384":
		return ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case "ecdsa-p521":
		return ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	case "ed25519":
		_, key, err := ed25519.GenerateKey(rand.Reader)
		return key, err
	}
	if bits, ok := strings.CutPrefix(keyType, "rsa-"); ok {
		n, err := strconv.Atoi(bits)
		if err == nil && n >= 2048 && n <= 8192 {
			return rsa.GenerateKey(rand.Reader, n)
		}
	}
	return nil, fmt.Errorf("cannot generate keys of type %q", keyType)
}

// keyRecipientOf returns to whom a generated or recovered key is encrypted: the shared
// secret of a MAC-protected request (PWRI), or the protection certificate of a signed
// one, RSA (KTRI) or ECDSA (KARI).
//
// NOTE: the ECDSA protection certificate is used for key agreement even when its key
// usage lists only digitalSignature, which is what enrolled clients usually hold.
func keyRecipientOf(req *request) (cmp.KeyRecipient, error) {
	if req.macSecret != nil {
		return cmp.KeyRecipient{Password: req.macSecret}, nil
	}
	if req.signer != nil {
		switch req.signer.PublicKey.(type) {
		case *rsa.PublicKey, *ecdsa.PublicKey:
			return cmp.KeyRecipient{Certificate: req.signer}, nil
		}
	}
	return cmp.KeyRecipient{}, reject(cmp.FailBadRequest,
		"a generated key can be returned only to a requester that protects its request with a MAC or with an RSA or ECDSA certificate")
}

// keyGenerationAuthority is the responder, which signs the key packages.
func (r *Router) keyGenerationAuthority() (cmp.KeyGenerationAuthority, error) {
	responder := r.opts.Responder
	if responder == nil {
		return cmp.KeyGenerationAuthority{}, errors.New("central key generation needs a CMP responder certificate to sign the key")
	}
	return cmp.KeyGenerationAuthority{Signer: responder.Signer, Certificate: responder.Certificate, Chain: responder.Chain}, nil
}

// archiveKey encrypts key under the archive key, bound to the transaction ID, and
// stores it.
func (r *Router) archiveKey(ctx context.Context, req *request, tx *store.Transaction, key crypto.Signer) error {
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	nonce := make([]byte, r.archive.NonceSize())
	rand.Read(nonce)
	sealed := r.archive.Seal(nonce, nonce, pkcs8, tx.ID)
	clear(pkcs8)
	return r.opts.Store.ArchiveKey(ctx, &store.ArchivedKey{
		TransactionID: tx.ID, Profile: tx.Profile, Requester: req.requester.Identity, Sealed: sealed, CreatedAt: r.now(),
	})
}

// archivedKey returns the key archived by transaction txID.
func (r *Router) archivedKey(ctx context.Context, txID []byte) (*store.ArchivedKey, crypto.PrivateKey, error) {
	archived, err := r.opts.Store.ArchivedKey(ctx, txID)
	if err != nil {
		return nil, nil, err
	}
	size := r.archive.NonceSize()
	if len(archived.Sealed) < size {
		return nil, nil, fmt.Errorf("archived key of transaction %x is truncated", txID)
	}
	pkcs8, err := r.archive.Open(nil, archived.Sealed[:size], archived.Sealed[size:], txID)
	if err != nil {
		return nil, nil, fmt.Errorf("archived key of transaction %x does not decrypt under the configured archive key: %w", txID, err)
	}
	key, err := x509.ParsePKCS8PrivateKey(pkcs8)
	clear(pkcs8)
	if err != nil {
		return nil, nil, fmt.Errorf("archived key of transaction %x: %w", txID, err)
	}
	return archived, key, nil
}

// newArchive returns the AEAD that encrypts archived keys: AES-256-GCM.
func newArchive(key []byte) (cipher.AEAD, error) {
	if len(key) != 32 {
		return nil, fmt.Errorf("the key archive key must be 32 bytes, got %d", len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// recoverKey handles krr: it returns the archived key of the certificate that the
// oldCertID control names, sealed to the requester, in a krp. The requester must be the
// one that requested the key, or sign with a certificate of the same subject.
//
// NOTE: a krr that also requests a new signature certificate gets only the recovered
// key; newSigCert stays absent.
func (r *Router) recoverKey(ctx context.Context, req *request) (*cmp.Body, error) {
	p := req.profile
	if !p.KeyRecovery {
		return nil, reject(cmp.FailNotAuthorized, "key recovery is not enabled for profile %q", p.Name)
	}
	if len(req.msg.Body.CertReqs) != 1 {
		return nil, reject(cmp.FailBadRequest, "one CertReqMsg per krr is supported, got %d", len(req.msg.Body.CertReqs))
	}
	id, err := req.msg.Body.CertReqs[0].OldCertID()
	if err != nil {
		return nil, err
	}
	if id == nil {
		return nil, reject(cmp.FailBadRequest, "a krr must name the certificate whose key it recovers with the oldCertID control")
	}
	issuer, ok := id.Issuer.DirectoryName()
	if !ok {
		return nil, reject(cmp.FailBadCertID, "oldCertID.issuer must be a directoryName")
	}

	recipient, err := keyRecipientOf(req)
	if err != nil {
		return nil, err
	}
	record, err := r.opts.Store.Certificate(ctx, issuer, id.SerialNumber)
	if errors.Is(err, store.ErrNotFound) || (err == nil && record.Profile != p.Name) {
		return nil, reject(cmp.FailBadCertID, "no certificate of profile %q has this issuer and serial number", p.Name)
	}
	if err != nil {
		return nil, err
	}
	archived, key, err := r.archivedKey(ctx, record.TransactionID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, reject(cmp.FailBadCertID, "no key is archived for this certificate; only centrally generated keys are archived")
	}
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(record.DER)
	if err != nil {
		return nil, fmt.Errorf("stored certificate %x: %w", id.SerialNumber, err)
	}

	sameSubject := req.signer != nil && bytes.Equal(req.signer.RawSubject, cert.RawSubject)
	if archived.Requester != req.requester.Identity && !sameSubject {
		return nil, &Failure{Info: cmp.FailNotAuthorized, Detail: "only the requester of this key, or a signer whose certificate has the same subject, may recover it",
			Err: fmt.Errorf("key of serial %x was requested by %q", id.SerialNumber, archived.Requester)}
	}

	kga, err := r.keyGenerationAuthority()
	if err != nil {
		return nil, err
	}
	sealed, err := cmp.SealPrivateKey(key, kga, recipient)
	if err != nil {
		return nil, err
	}
	r.log.Info("archived key recovered", keySerial, id.SerialNumber.Text(16), keyProfile, p.Name,
		"requester", req.requester.Identity)
	return &cmp.Body{Type: cmp.BodyKRP, KeyRecRep: &cmp.KeyRecRepContent{
		Status:      cmp.StatusInfo{Status: cmp.StatusAccepted},
		KeyPairHist: []cmp.CertifiedKeyPair{{Certificate: cert, EncryptedPrivateKey: sealed}},
	}}, nil
}
