package cmp

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"hash"
)

// Protection errors. A CMP server reports ErrBadAlgorithm with failInfo badAlg and
// ErrBadProtection with badMessageCheck.
var (
	ErrBadAlgorithm  = errors.New("cmp: unsupported protection algorithm")
	ErrBadProtection = errors.New("cmp: protection does not verify")
	ErrUnprotected   = errors.New("cmp: message is not protected")
)

// Bounds on the iteration counts a peer may ask for. OpenSSL 3.0 accepts 100 to 100000
// for PasswordBasedMac and sends 500 by default; the upper bound also caps the CPU a
// single unauthenticated request can cost.
const (
	minIterations = 100
	maxIterations = 100000
	maxSaltLength = 128
)

var hashByOID = []struct {
	oid  asn1.ObjectIdentifier // the digest, as a PasswordBasedMac OWF
	hmac asn1.ObjectIdentifier // the HMAC, as a PasswordBasedMac MAC or PBMAC1 scheme
	prf  asn1.ObjectIdentifier // the HMAC, as a PBKDF2 PRF
	hash crypto.Hash
}{
	{OIDSHA1, OIDHMACSHA1, asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 7}, crypto.SHA1},
	{OIDSHA224, OIDHMACSHA224, OIDHMACSHA224, crypto.SHA224},
	{OIDSHA256, OIDHMACSHA256, OIDHMACSHA256, crypto.SHA256},
	{OIDSHA384, OIDHMACSHA384, OIDHMACSHA384, crypto.SHA384},
	{OIDSHA512, OIDHMACSHA512, OIDHMACSHA512, crypto.SHA512},
}

func hashConstructor(h crypto.Hash) func() hash.Hash {
	switch h {
	case crypto.SHA1:
		return sha1.New
	case crypto.SHA224:
		return sha256.New224
	case crypto.SHA256:
		return sha256.New
	case crypto.SHA384:
		return sha512.New384
	case crypto.SHA512:
		return sha512.New
	}
	return nil
}

// HashByOID returns the hash function of a digest algorithm OID: SHA-1 or SHA-2.
func HashByOID(oid asn1.ObjectIdentifier) (crypto.Hash, bool) { return lookupDigest(oid) }

func lookupDigest(oid asn1.ObjectIdentifier) (crypto.Hash, bool) {
	for _, row := range hashByOID {
		if row.oid.Equal(oid) {
			return row.hash, true
		}
	}
	return 0, false
}

// lookupHMAC accepts the HMAC OIDs of RFC 9481 section 6.2.1 and, for hmac-sha1, both
// the RFC 3370 OID that OpenSSL sends and the PKCS #5 hmacWithSHA1 OID.
func lookupHMAC(oid asn1.ObjectIdentifier) (crypto.Hash, bool) {
	for _, row := range hashByOID {
		if row.hmac.Equal(oid) || row.prf.Equal(oid) {
			return row.hash, true
		}
	}
	return 0, false
}

func hmacOID(h crypto.Hash) asn1.ObjectIdentifier {
	for _, row := range hashByOID {
		if row.hash == h {
			return row.hmac
		}
	}
	return nil
}

func digestOID(h crypto.Hash) asn1.ObjectIdentifier {
	for _, row := range hashByOID {
		if row.hash == h {
			return row.oid
		}
	}
	return nil
}

// pbmParameter is PBMParameter of RFC 4211 section 4.4.
type pbmParameter struct {
	Salt           []byte
	OWF            pkix.AlgorithmIdentifier
	IterationCount int
	MAC            pkix.AlgorithmIdentifier
}

// pbkdf2Params is PBKDF2-params of RFC 8018 appendix A.2 with the specified-salt choice,
// the only one RFC 9481 section 6.1.2 allows.
type pbkdf2Params struct {
	Salt           []byte
	IterationCount int
	KeyLength      int                      `asn1:"optional"`
	PRF            pkix.AlgorithmIdentifier `asn1:"optional"`
}

// pbmac1Params is PBMAC1-params of RFC 8018 appendix A.5.
type pbmac1Params struct {
	KeyDerivationFunc pkix.AlgorithmIdentifier
	MessageAuthScheme pkix.AlgorithmIdentifier
}

// MACKey is a MAC key derived from a shared secret with the parameters of one
// protectionAlg. The router verifies a request with it and protects the response with the
// same key and parameters, which saves a second key derivation per request.
type MACKey struct {
	algorithm pkix.AlgorithmIdentifier
	key       []byte
	mac       func() hash.Hash
}

// Algorithm returns the protectionAlg this key belongs to.
func (k *MACKey) Algorithm() pkix.AlgorithmIdentifier { return k.algorithm }

// DeriveMACKey derives the MAC key for a PasswordBasedMac or PBMAC1 protectionAlg.
func DeriveMACKey(alg pkix.AlgorithmIdentifier, secret []byte) (*MACKey, error) {
	switch {
	case alg.Algorithm.Equal(OIDPasswordBasedMAC):
		return derivePBM(alg, secret)
	case alg.Algorithm.Equal(OIDPBMAC1):
		return derivePBMAC1(alg, secret)
	}
	return nil, fmt.Errorf("%w: %s is not a MAC algorithm", ErrBadAlgorithm, alg.Algorithm)
}

func unmarshalParams(alg pkix.AlgorithmIdentifier, out any) error {
	if len(alg.Parameters.FullBytes) == 0 {
		return fmt.Errorf("%w: %s without parameters", ErrBadAlgorithm, alg.Algorithm)
	}
	rest, err := asn1.Unmarshal(alg.Parameters.FullBytes, out)
	if err != nil || len(rest) != 0 {
		return fmt.Errorf("%w: invalid %s parameters", ErrBadAlgorithm, alg.Algorithm)
	}
	return nil
}

func checkSaltAndIterations(salt []byte, iterations int) error {
	if len(salt) == 0 || len(salt) > maxSaltLength {
		return fmt.Errorf("%w: salt length %d is outside 1..%d", ErrBadAlgorithm, len(salt), maxSaltLength)
	}
	if iterations < minIterations || iterations > maxIterations {
		return fmt.Errorf("%w: iteration count %d is outside %d..%d", ErrBadAlgorithm, iterations, minIterations, maxIterations)
	}
	return nil
}

// derivePBM computes the PasswordBasedMac key of RFC 4211 section 4.4: the OWF applied
// to secret||salt, then iterationCount-1 more times to its own output.
func derivePBM(alg pkix.AlgorithmIdentifier, secret []byte) (*MACKey, error) {
	var params pbmParameter
	if err := unmarshalParams(alg, &params); err != nil {
		return nil, err
	}
	if err := checkSaltAndIterations(params.Salt, params.IterationCount); err != nil {
		return nil, err
	}
	owf, ok := lookupDigest(params.OWF.Algorithm)
	if !ok {
		return nil, fmt.Errorf("%w: PasswordBasedMac one-way function %s", ErrBadAlgorithm, params.OWF.Algorithm)
	}
	macHash, ok := lookupHMAC(params.MAC.Algorithm)
	if !ok {
		return nil, fmt.Errorf("%w: PasswordBasedMac MAC %s", ErrBadAlgorithm, params.MAC.Algorithm)
	}
	h := hashConstructor(owf)()
	h.Write(secret)
	h.Write(params.Salt)
	key := h.Sum(nil)
	for i := 1; i < params.IterationCount; i++ {
		h.Reset()
		h.Write(key)
		key = h.Sum(key[:0])
	}
	return &MACKey{algorithm: alg, key: key, mac: hashConstructor(macHash)}, nil
}

// derivePBMAC1 computes the PBMAC1 key of RFC 8018 section 7.1 with PBKDF2, as RFC 9481
// section 6.1.2 profiles it: keyLength is required.
func derivePBMAC1(alg pkix.AlgorithmIdentifier, secret []byte) (*MACKey, error) {
	var params pbmac1Params
	if err := unmarshalParams(alg, &params); err != nil {
		return nil, err
	}
	if !params.KeyDerivationFunc.Algorithm.Equal(OIDPBKDF2) {
		return nil, fmt.Errorf("%w: PBMAC1 key derivation %s", ErrBadAlgorithm, params.KeyDerivationFunc.Algorithm)
	}
	var kdf pbkdf2Params
	if err := unmarshalParams(params.KeyDerivationFunc, &kdf); err != nil {
		return nil, err
	}
	if err := checkSaltAndIterations(kdf.Salt, kdf.IterationCount); err != nil {
		return nil, err
	}
	if kdf.KeyLength < 16 || kdf.KeyLength > 64 {
		return nil, fmt.Errorf("%w: PBKDF2 keyLength %d is outside 16..64", ErrBadAlgorithm, kdf.KeyLength)
	}
	prf := crypto.SHA1 // the DEFAULT of PBKDF2-params
	if len(kdf.PRF.Algorithm) > 0 {
		var ok bool
		if prf, ok = lookupHMAC(kdf.PRF.Algorithm); !ok {
			return nil, fmt.Errorf("%w: PBKDF2 PRF %s", ErrBadAlgorithm, kdf.PRF.Algorithm)
		}
	}
	macHash, ok := lookupHMAC(params.MessageAuthScheme.Algorithm)
	if !ok {
		return nil, fmt.Errorf("%w: PBMAC1 MAC %s", ErrBadAlgorithm, params.MessageAuthScheme.Algorithm)
	}
	key, err := pbkdf2.Key(hashConstructor(prf), string(secret), kdf.Salt, kdf.IterationCount, kdf.KeyLength)
	if err != nil {
		return nil, fmt.Errorf("%w: PBKDF2: %v", ErrBadAlgorithm, err)
	}
	return &MACKey{algorithm: alg, key: key, mac: hashConstructor(macHash)}, nil
}

// NewPBMKey returns a PasswordBasedMac key with a fresh 16-byte salt, for a client or for
// a server that starts a MAC-protected exchange.
func NewPBMKey(secret []byte, owf, mac crypto.Hash, iterations int) (*MACKey, error) {
	salt := make([]byte, 16)
	rand.Read(salt)
	params, err := asn1.Marshal(pbmParameter{
		Salt:           salt,
		OWF:            pkix.AlgorithmIdentifier{Algorithm: digestOID(owf)},
		IterationCount: iterations,
		MAC:            pkix.AlgorithmIdentifier{Algorithm: hmacOID(mac)},
	})
	if err != nil {
		return nil, fmt.Errorf("cmp: encoding PBMParameter: %w", err)
	}
	return DeriveMACKey(pkix.AlgorithmIdentifier{Algorithm: OIDPasswordBasedMAC, Parameters: asn1.RawValue{FullBytes: params}}, secret)
}

// NewPBMAC1Key returns a PBMAC1 key (PBKDF2 with HMAC-SHA256, HMAC-SHA256 as MAC, 32-byte
// key) with a fresh 16-byte salt.
func NewPBMAC1Key(secret []byte, iterations int) (*MACKey, error) {
	salt := make([]byte, 16)
	rand.Read(salt)
	kdfParams, err := asn1.Marshal(pbkdf2Params{
		Salt: salt, IterationCount: iterations, KeyLength: 32,
		PRF: pkix.AlgorithmIdentifier{Algorithm: OIDHMACSHA256, Parameters: asn1.NullRawValue},
	})
	if err != nil {
		return nil, fmt.Errorf("cmp: encoding PBKDF2-params: %w", err)
	}
	params, err := asn1.Marshal(pbmac1Params{
		KeyDerivationFunc: pkix.AlgorithmIdentifier{Algorithm: OIDPBKDF2, Parameters: asn1.RawValue{FullBytes: kdfParams}},
		MessageAuthScheme: pkix.AlgorithmIdentifier{Algorithm: OIDHMACSHA256, Parameters: asn1.NullRawValue},
	})
	if err != nil {
		return nil, fmt.Errorf("cmp: encoding PBMAC1-params: %w", err)
	}
	return DeriveMACKey(pkix.AlgorithmIdentifier{Algorithm: OIDPBMAC1, Parameters: asn1.RawValue{FullBytes: params}}, secret)
}

func (k *MACKey) compute(protectedPart []byte) []byte {
	mac := hmac.New(k.mac, k.key)
	mac.Write(protectedPart)
	return mac.Sum(nil)
}

// Verify checks the MAC protection of m. The caller must have derived k from
// m.Header.ProtectionAlg.
func (k *MACKey) Verify(m *Message) error {
	if m.Protection == nil {
		return ErrUnprotected
	}
	expected := k.compute(ProtectedPart(m.RawHeader, m.RawBody))
	if subtle.ConstantTimeCompare(expected, m.Protection) != 1 {
		return ErrBadProtection
	}
	return nil
}

// Protect sets m's protectionAlg to k's, encodes m and returns the DER of the protected
// PKIMessage.
func (k *MACKey) Protect(m *Message) ([]byte, error) {
	alg := k.algorithm
	m.Header.ProtectionAlg = &alg
	if err := m.Encode(); err != nil {
		return nil, err
	}
	m.Protection = k.compute(ProtectedPart(m.RawHeader, m.RawBody))
	return m.Bytes()
}

// IsMACAlgorithm reports whether alg is PasswordBasedMac or PBMAC1.
func IsMACAlgorithm(alg *pkix.AlgorithmIdentifier) bool {
	return alg != nil && (alg.Algorithm.Equal(OIDPasswordBasedMAC) || alg.Algorithm.Equal(OIDPBMAC1))
}

// signatureAlgorithms maps signature OIDs to crypto/x509's algorithms. SHA-1 based
// signatures are not accepted as protection or POP: RFC 9481 section 3 lists none.
var signatureAlgorithms = []struct {
	oid       asn1.ObjectIdentifier
	algorithm x509.SignatureAlgorithm
}{
	{OIDSHA256WithRSA, x509.SHA256WithRSA},
	{OIDSHA384WithRSA, x509.SHA384WithRSA},
	{OIDSHA512WithRSA, x509.SHA512WithRSA},
	{OIDECDSAWithSHA256, x509.ECDSAWithSHA256},
	{OIDECDSAWithSHA384, x509.ECDSAWithSHA384},
	{OIDECDSAWithSHA512, x509.ECDSAWithSHA512},
	{OIDEd25519, x509.PureEd25519},
}

// pssParameters is RSASSA-PSS-params of RFC 4055 section 3.1.
type pssParameters struct {
	Hash         pkix.AlgorithmIdentifier `asn1:"explicit,tag:0"`
	MGF          pkix.AlgorithmIdentifier `asn1:"explicit,tag:1"`
	SaltLength   int                      `asn1:"explicit,tag:2"`
	TrailerField int                      `asn1:"optional,explicit,tag:3,default:1"`
}

// x509SignatureAlgorithm maps a signature AlgorithmIdentifier to crypto/x509's value.
// RSASSA-PSS is accepted with SHA-256, SHA-384 or SHA-512, MGF1 over the same hash and a
// salt as long as the hash, because that is what crypto/x509 verifies.
func x509SignatureAlgorithm(alg pkix.AlgorithmIdentifier) (x509.SignatureAlgorithm, error) {
	for _, row := range signatureAlgorithms {
		if row.oid.Equal(alg.Algorithm) {
			return row.algorithm, nil
		}
	}
	if !alg.Algorithm.Equal(OIDRSASSAPSS) {
		return 0, fmt.Errorf("%w: signature algorithm %s", ErrBadAlgorithm, alg.Algorithm)
	}
	var params pssParameters
	if err := unmarshalParams(alg, &params); err != nil {
		return 0, err
	}
	var mgfHash pkix.AlgorithmIdentifier
	if !params.MGF.Algorithm.Equal(OIDMGF1) {
		return 0, fmt.Errorf("%w: RSASSA-PSS mask generation %s", ErrBadAlgorithm, params.MGF.Algorithm)
	}
	if err := unmarshalParams(params.MGF, &mgfHash); err != nil {
		return 0, err
	}
	h, ok := lookupDigest(params.Hash.Algorithm)
	if !ok || !mgfHash.Algorithm.Equal(params.Hash.Algorithm) || params.SaltLength != h.Size() || params.TrailerField != 1 {
		return 0, fmt.Errorf("%w: RSASSA-PSS parameters other than hash, MGF1 with the same hash and salt length equal to the hash size", ErrBadAlgorithm)
	}
	switch h {
	case crypto.SHA256:
		return x509.SHA256WithRSAPSS, nil
	case crypto.SHA384:
		return x509.SHA384WithRSAPSS, nil
	case crypto.SHA512:
		return x509.SHA512WithRSAPSS, nil
	}
	return 0, fmt.Errorf("%w: RSASSA-PSS with %v", ErrBadAlgorithm, h)
}

// VerifySignatureWithKey checks signature over signed with public key pub and algorithm
// alg. It serves both signature protection and signature proof of possession.
func VerifySignatureWithKey(pub crypto.PublicKey, alg pkix.AlgorithmIdentifier, signed, signature []byte) error {
	algorithm, err := x509SignatureAlgorithm(alg)
	if err != nil {
		return err
	}
	// CheckSignature reads only PublicKey, so a bare certificate carries the key.
	holder := &x509.Certificate{PublicKey: pub}
	if err := holder.CheckSignature(algorithm, signed, signature); err != nil {
		return fmt.Errorf("%w: %v", ErrBadProtection, err)
	}
	return nil
}

// VerifySignature checks the signature protection of m against the public key of
// signer. The caller chooses and validates signer (from extraCerts and senderKID).
func VerifySignature(m *Message, signer *x509.Certificate) error {
	if m.Protection == nil || m.Header.ProtectionAlg == nil {
		return ErrUnprotected
	}
	return VerifySignatureWithKey(signer.PublicKey, *m.Header.ProtectionAlg, ProtectedPart(m.RawHeader, m.RawBody), m.Protection)
}

// SignatureAlgorithmFor returns the signature AlgorithmIdentifier that certgate uses with
// key, and the hash to apply before signing (zero for Ed25519).
func SignatureAlgorithmFor(key crypto.PublicKey) (pkix.AlgorithmIdentifier, crypto.Hash, error) {
	switch pub := key.(type) {
	case *ecdsa.PublicKey:
		switch pub.Curve {
		case elliptic.P256():
			return pkix.AlgorithmIdentifier{Algorithm: OIDECDSAWithSHA256}, crypto.SHA256, nil
		case elliptic.P384():
			return pkix.AlgorithmIdentifier{Algorithm: OIDECDSAWithSHA384}, crypto.SHA384, nil
		case elliptic.P521():
			return pkix.AlgorithmIdentifier{Algorithm: OIDECDSAWithSHA512}, crypto.SHA512, nil
		}
		return pkix.AlgorithmIdentifier{}, 0, fmt.Errorf("%w: ECDSA curve %s", ErrBadAlgorithm, pub.Curve.Params().Name)
	case *rsa.PublicKey:
		return pkix.AlgorithmIdentifier{Algorithm: OIDSHA256WithRSA, Parameters: asn1.NullRawValue}, crypto.SHA256, nil
	case ed25519.PublicKey:
		return pkix.AlgorithmIdentifier{Algorithm: OIDEd25519}, 0, nil
	}
	return pkix.AlgorithmIdentifier{}, 0, fmt.Errorf("%w: key type %T", ErrBadAlgorithm, key)
}

// Sign returns the signature of data with signer, hashing first unless the key is
// Ed25519.
func Sign(signer crypto.Signer, h crypto.Hash, data []byte) ([]byte, error) {
	if h == 0 {
		return signer.Sign(rand.Reader, data, crypto.Hash(0))
	}
	digest := h.New()
	digest.Write(data)
	return signer.Sign(rand.Reader, digest.Sum(nil), h)
}

// SignatureProtector protects messages with a signature of Signer. Certificate is the
// protection certificate; it and Chain go into extraCerts, and senderKID is set to its
// subject key identifier as RFC 9483 section 3.1 requires.
type SignatureProtector struct {
	Signer      crypto.Signer
	Certificate *x509.Certificate
	Chain       []*x509.Certificate
}

// Protect sets m's protectionAlg, senderKID and extraCerts, encodes m and returns the DER
// of the signed PKIMessage. Certificates already in m.ExtraCerts follow the chain.
func (p *SignatureProtector) Protect(m *Message) ([]byte, error) {
	alg, h, err := SignatureAlgorithmFor(p.Signer.Public())
	if err != nil {
		return nil, err
	}
	m.Header.ProtectionAlg = &alg
	if len(p.Certificate.SubjectKeyId) > 0 {
		m.Header.SenderKID = p.Certificate.SubjectKeyId
	}
	extra := append([]*x509.Certificate{p.Certificate}, p.Chain...)
	m.ExtraCerts = append(extra, m.ExtraCerts...)
	if err := m.Encode(); err != nil {
		return nil, err
	}
	if m.Protection, err = Sign(p.Signer, h, ProtectedPart(m.RawHeader, m.RawBody)); err != nil {
		return nil, fmt.Errorf("cmp: signing the response: %w", err)
	}
	return m.Bytes()
}
