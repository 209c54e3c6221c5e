package cmp

import (
	"bytes"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdsa"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/binary"
	"errors"
	"fmt"
	"math/big"
	"slices"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// Central key generation (RFC 9483 section 4.1.6) returns the new private key in the
// privateKey field of CertifiedKeyPair as an EncryptedKey. That is an EnvelopedData
// (RFC 5652) around a SignedData of the key generation authority, around an
// AsymmetricKeyPackage (RFC 5958) that contains the key. No Go library builds this
// nesting with all three recipient kinds, so it is written here with cryptobyte.
//
// The algorithms are ones that OpenSSL's `cms -decrypt` and BouncyCastle read:
//   - content encryption: AES-256-CBC;
//   - a password: PBKDF2 with HMAC-SHA256, and the RFC 3211 key wrap (id-alg-PWRI-KEK)
//     around AES-256-CBC;
//   - an RSA certificate: RSAES-OAEP with SHA-256;
//   - an ECDSA certificate: ephemeral-static ECDH with the X9.63 SHA-256 KDF and
//     AES-256 key wrap (RFC 5753).
//
// NOTE: RFC 9481 section 4.3 also lists AES key wrap for the password technique.
// OpenSSL 3.0 decrypts only id-alg-PWRI-KEK there, so that is what is sent.

var (
	oidData                 = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 1}
	oidSignedData           = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 2}
	oidEnvelopedData        = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 3}
	oidAsymmetricKeyPackage = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 2, 1, 2, 78, 5} // RFC 5958
	oidAttributeContentType = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 3}
	oidAttributeDigest      = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 4}
	oidAES256CBC            = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 42}
	oidAES256Wrap           = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 45}
	oidPWRIKEK              = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 16, 3, 9} // RFC 3211
	oidRSAESOAEP            = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 7}
	oidECDHSHA256KDF        = asn1.ObjectIdentifier{1, 3, 132, 1, 11, 1} // dhSinglePass-stdDH-sha256kdf-scheme
)

// pwriIterations is the PBKDF2 iteration count for password recipients.
const pwriIterations = 10000

// KeyRecipient names who can decrypt a centrally generated key: the holder of Password
// (for a MAC-protected request), or the holder of the key of Certificate (RSA or ECDSA).
type KeyRecipient struct {
	Password    []byte
	Certificate *x509.Certificate
}

// KeyGenerationAuthority signs the key package: Signer with Certificate, and Chain is
// sent with it.
type KeyGenerationAuthority struct {
	Signer      crypto.Signer
	Certificate *x509.Certificate
	Chain       []*x509.Certificate
}

// SealPrivateKey returns the EncryptedKey that carries key to recipient, signed by kga.
// The result is what CertResponse.EncryptedPrivateKey holds.
func SealPrivateKey(key crypto.PrivateKey, kga KeyGenerationAuthority, recipient KeyRecipient) ([]byte, error) {
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("cmp: encoding the generated key: %w", err)
	}
	// AsymmetricKeyPackage ::= SEQUENCE SIZE (1..MAX) OF OneAsymmetricKey, and a
	// version 0 PrivateKeyInfo is a OneAsymmetricKey.
	keyPackage := wrapTag(cbasn1.SEQUENCE, pkcs8)
	signed, err := signKeyPackage(keyPackage, kga)
	if err != nil {
		return nil, err
	}
	return envelop(signed, recipient)
}

func signKeyPackage(content []byte, kga KeyGenerationAuthority) ([]byte, error) {
	alg, h, err := SignatureAlgorithmFor(kga.Signer.Public())
	if err != nil {
		return nil, err
	}
	digestHash := h
	if digestHash == 0 {
		digestHash = crypto.SHA512 // Ed25519 in CMS (RFC 8419 section 3)
	}
	digest := digestHash.New()
	digest.Write(content)
	attrs, err := signedAttributes(oidAsymmetricKeyPackage, digest.Sum(nil))
	if err != nil {
		return nil, err
	}
	signature, err := Sign(kga.Signer, h, attrs)
	if err != nil {
		return nil, fmt.Errorf("cmp: signing the key package: %w", err)
	}
	useKeyID := len(kga.Certificate.SubjectKeyId) > 0

	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		// version 3 with a subjectKeyIdentifier signer, else 1 (RFC 5652 section 5.1).
		if useKeyID {
			b.AddASN1Int64(3)
		} else {
			b.AddASN1Int64(1)
		}
		b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) { addOID(b, digestOID(digestHash)) })
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1ObjectIdentifier(oidAsymmetricKeyPackage)
			b.AddASN1(contextTag(0), func(b *cryptobyte.Builder) { b.AddASN1OctetString(content) })
		})
		b.AddASN1(contextTag(0), func(b *cryptobyte.Builder) {
			b.AddBytes(kga.Certificate.Raw)
			for _, cert := range kga.Chain {
				b.AddBytes(cert.Raw)
			}
		})
		b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				if useKeyID {
					b.AddASN1Int64(3)
					b.AddASN1(cbasn1.Tag(0).ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes(kga.Certificate.SubjectKeyId) })
				} else {
					b.AddASN1Int64(1)
					addIssuerAndSerial(b, kga.Certificate)
				}
				addOID(b, digestOID(digestHash))
				b.AddASN1(contextTag(0), func(b *cryptobyte.Builder) { b.AddBytes(stripTag(attrs)) })
				addAlgorithmIdentifier(b, alg)
				b.AddASN1OctetString(signature)
			})
		})
	})
	return b.Bytes()
}

// signedAttributes returns the DER SET of the contentType and messageDigest attributes,
// sorted as DER requires, which is what the signature covers.
func signedAttributes(contentType asn1.ObjectIdentifier, digest []byte) ([]byte, error) {
	var encoded [][]byte
	for _, attr := range []struct {
		oid   asn1.ObjectIdentifier
		value func(*cryptobyte.Builder)
	}{
		{oidAttributeContentType, func(b *cryptobyte.Builder) { b.AddASN1ObjectIdentifier(contentType) }},
		{oidAttributeDigest, func(b *cryptobyte.Builder) { b.AddASN1OctetString(digest) }},
	} {
		var b cryptobyte.Builder
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1ObjectIdentifier(attr.oid)
			b.AddASN1(cbasn1.SET, attr.value)
		})
		der, err := b.Bytes()
		if err != nil {
			return nil, err
		}
		encoded = append(encoded, der)
	}
	slices.SortFunc(encoded, bytes.Compare)
	return wrapTag(cbasn1.SET, bytes.Join(encoded, nil)), nil
}

func addOID(b *cryptobyte.Builder, oid asn1.ObjectIdentifier) {
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { b.AddASN1ObjectIdentifier(oid) })
}

func addIssuerAndSerial(b *cryptobyte.Builder, cert *x509.Certificate) {
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddBytes(cert.RawIssuer)
		b.AddASN1BigInt(cert.SerialNumber)
	})
}

// envelop encrypts content (a DER SignedData) for recipient and returns the EncryptedKey
// CHOICE envelopedData, [0] IMPLICIT EnvelopedData.
func envelop(content []byte, recipient KeyRecipient) ([]byte, error) {
	cek := make([]byte, 32)
	iv := make([]byte, aes.BlockSize)
	rand.Read(cek)
	rand.Read(iv)
	block, err := aes.NewCipher(cek)
	if err != nil {
		return nil, err
	}
	padded := pad(content, aes.BlockSize)
	cipher.NewCBCEncrypter(block, iv).CryptBlocks(padded, padded)

	var info []byte
	version := int64(0)
	switch {
	case recipient.Password != nil:
		info, err = passwordRecipient(cek, recipient.Password)
		version = 3 // RFC 5652 section 6.1: any pwri
	case recipient.Certificate != nil:
		switch recipient.Certificate.PublicKey.(type) {
		case *rsa.PublicKey:
			info, err = keyTransportRecipient(cek, recipient.Certificate)
		case *ecdsa.PublicKey:
			info, err = keyAgreementRecipient(cek, recipient.Certificate)
			version = 2 // a kari is version 3, so the EnvelopedData is version 2
		default:
			err = fmt.Errorf("%w: cannot encrypt a key to a %T certificate", ErrBadAlgorithm, recipient.Certificate.PublicKey)
		}
	default:
		err = errors.New("cmp: no recipient for the generated key")
	}
	if err != nil {
		return nil, err
	}

	var b cryptobyte.Builder
	b.AddASN1(contextTag(0), func(b *cryptobyte.Builder) {
		b.AddASN1Int64(version)
		b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) { b.AddBytes(info) })
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1ObjectIdentifier(oidSignedData)
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1ObjectIdentifier(oidAES256CBC)
				b.AddASN1OctetString(iv)
			})
			b.AddASN1(cbasn1.Tag(0).ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes(padded) })
		})
	})
	return b.Bytes()
}

// passwordRecipient returns a PasswordRecipientInfo ([3] IMPLICIT) that wraps cek with a
// key derived from password.
func passwordRecipient(cek, password []byte) ([]byte, error) {
	salt := make([]byte, 16)
	iv := make([]byte, aes.BlockSize)
	rand.Read(salt)
	rand.Read(iv)
	kek, err := pbkdf2.Key(sha256.New, string(password), salt, pwriIterations, 32)
	if err != nil {
		return nil, err
	}
	wrapped, err := pwriWrap(kek, iv, cek)
	if err != nil {
		return nil, err
	}
	var b cryptobyte.Builder
	b.AddASN1(contextTag(3), func(b *cryptobyte.Builder) {
		b.AddASN1Int64(0)
		b.AddASN1(contextTag(0), func(b *cryptobyte.Builder) {
			b.AddASN1ObjectIdentifier(OIDPBKDF2)
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1OctetString(salt)
				b.AddASN1Int64(pwriIterations)
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					b.AddASN1ObjectIdentifier(OIDHMACSHA256)
					b.AddASN1NULL()
				})
			})
		})
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1ObjectIdentifier(oidPWRIKEK)
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1ObjectIdentifier(oidAES256CBC)
				b.AddASN1OctetString(iv)
			})
		})
		b.AddASN1OctetString(wrapped)
	})
	return b.Bytes()
}

// pwriWrap is the key wrap of RFC 3211 section 2.3.1: length, check bytes, key and
// random padding to at least two blocks, encrypted twice in CBC mode, the second time
// with the last block of the first pass as IV.
func pwriWrap(kek, iv, cek []byte) ([]byte, error) {
	block, err := aes.NewCipher(kek)
	if err != nil {
		return nil, err
	}
	size := max(2*aes.BlockSize, (4+len(cek)+aes.BlockSize-1)/aes.BlockSize*aes.BlockSize)
	buf := make([]byte, size)
	rand.Read(buf)
	buf[0] = byte(len(cek))
	for i := range 3 {
		buf[1+i] = ^cek[i]
	}
	copy(buf[4:], cek)
	cipher.NewCBCEncrypter(block, iv).CryptBlocks(buf, buf)
	cipher.NewCBCEncrypter(block, buf[size-aes.BlockSize:]).CryptBlocks(buf, buf)
	return buf, nil
}

// pwriUnwrap reverses pwriWrap.
func pwriUnwrap(kek, iv, wrapped []byte) ([]byte, error) {
	n := len(wrapped)
	if n < 2*aes.BlockSize || n%aes.BlockSize != 0 {
		return nil, errors.New("cmp: wrapped key has an invalid length")
	}
	block, err := aes.NewCipher(kek)
	if err != nil {
		return nil, err
	}

	buf := slices.Clone(wrapped)
	// Decrypt the last block with the one before it as IV to recover the IV of the
	// second pass, then undo both passes.
	last := buf[n-aes.BlockSize:]
	block.Decrypt(last, last)
	for i := range last {
		last[i] ^= wrapped[n-2*aes.BlockSize+i]
	}
	secondIV := slices.Clone(last)
	copy(buf[n-aes.BlockSize:], wrapped[n-aes.BlockSize:])
	cipher.NewCBCDecrypter(block, secondIV).CryptBlocks(buf, buf)
	cipher.NewCBCDecrypter(block, iv).CryptBlocks(buf, buf)

	length := int(buf[0])
	if length < 3 || 4+length > n {
		return nil, errors.New("cmp: wrong password or damaged key")
	}
	check := 0
	for i := range 3 {
		check |= int(buf[1+i] ^ ^buf[4+i])
	}
	if check != 0 {
		return nil, errors.New("cmp: wrong password or damaged key")
	}
	return buf[4 : 4+length], nil
}

// keyTransportRecipient returns a KeyTransRecipientInfo that encrypts cek with RSAES-OAEP
// and SHA-256 to cert.
func keyTransportRecipient(cek []byte, cert *x509.Certificate) ([]byte, error) {
	encrypted, err := rsa.EncryptOAEP(sha256.New(), rand.Reader, cert.PublicKey.(*rsa.PublicKey), cek, nil)
	if err != nil {
		return nil, fmt.Errorf("cmp: encrypting to the RSA certificate: %w", err)
	}
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1Int64(0)
		addIssuerAndSerial(b, cert)
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1ObjectIdentifier(oidRSAESOAEP)
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1(contextTag(0), func(b *cryptobyte.Builder) { addOID(b, OIDSHA256) })
				b.AddASN1(contextTag(1), func(b *cryptobyte.Builder) {
					b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
						b.AddASN1ObjectIdentifier(OIDMGF1)
						addOID(b, OIDSHA256)
					})
				})
			})
		})
		b.AddASN1OctetString(encrypted)
	})
	return b.Bytes()
}

// keyAgreementRecipient returns a KeyAgreeRecipientInfo ([1] IMPLICIT): an ephemeral
// ECDH key on the certificate's curve, the X9.63 KDF with SHA-256 and AES-256 key wrap.
func keyAgreementRecipient(cek []byte, cert *x509.Certificate) ([]byte, error) {
	static, err := cert.PublicKey.(*ecdsa.PublicKey).ECDH()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadAlgorithm, err)
	}
	ephemeral, err := static.Curve().GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	shared, err := ephemeral.ECDH(static)
	if err != nil {
		return nil, err
	}
	kek, err := x963KDF(shared)
	if err != nil {
		return nil, err
	}
	wrapped, err := aesKeyWrap(kek, cek)
	if err != nil {
		return nil, err
	}

	var b cryptobyte.Builder
	b.AddASN1(contextTag(1), func(b *cryptobyte.Builder) {
		b.AddASN1Int64(3)
		b.AddASN1(contextTag(0), func(b *cryptobyte.Builder) {
			b.AddASN1(contextTag(1), func(b *cryptobyte.Builder) {
				// RFC 5753 section 3.1.1: id-ecPublicKey with absent parameters, the
				// curve being the recipient's.
				addOID(b, OIDPublicKeyECDSA)
				b.AddASN1BitString(ephemeral.PublicKey().Bytes())
			})
		})
		addKeyAgreementAlgorithm(b)
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				addIssuerAndSerial(b, cert)
				b.AddASN1OctetString(wrapped)
			})
		})
	})
	return b.Bytes()
}

func addKeyAgreementAlgorithm(b *cryptobyte.Builder) {
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1ObjectIdentifier(oidECDHSHA256KDF)
		addOID(b, oidAES256Wrap)
	})
}

// x963KDF derives the 256-bit AES key-wrap key from the ECDH shared secret with the
// ANSI X9.63 KDF and SHA-256, over the ECC-CMS-SharedInfo of RFC 5753 section 7.2.
func x963KDF(shared []byte) ([]byte, error) {
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		addOID(b, oidAES256Wrap)
		b.AddASN1(contextTag(2), func(b *cryptobyte.Builder) { b.AddASN1OctetString([]byte{0, 0, 1, 0}) })
	})
	sharedInfo, err := b.Bytes()
	if err != nil {
		return nil, err
	}
	h := sha256.New()
	h.Write(shared)
	h.Write([]byte{0, 0, 0, 1})
	h.Write(sharedInfo)
	return h.Sum(nil), nil
}

// aesKeyWrapIV is the default initial value of RFC 3394 section 2.2.3.1.
var aesKeyWrapIV = []byte{0xa6, 0xa6, 0xa6, 0xa6, 0xa6, 0xa6, 0xa6, 0xa6}

// aesKeyWrap is the AES key wrap of RFC 3394 section 2.2.1.
func aesKeyWrap(kek, plaintext []byte) ([]byte, error) {
	block, err := aes.NewCipher(kek)
	if err != nil {
		return nil, err
	}
	n := len(plaintext) / 8
	out := make([]byte, 8+len(plaintext))
	copy(out, aesKeyWrapIV)
	copy(out[8:], plaintext)
	var buf [16]byte
	for j := range 6 {
		for i := 1; i <= n; i++ {
			copy(buf[:8], out[:8])
			copy(buf[8:], out[8*i:8*i+8])
			block.Encrypt(buf[:], buf[:])
			t := uint64(n*j + i)
			binary.BigEndian.PutUint64(out[:8], binary.BigEndian.Uint64(buf[:8])^t)
			copy(out[8*i:], buf[8:])
		}
	}
	return out, nil
}

// aesKeyUnwrap reverses aesKeyWrap and checks the integrity value.
func aesKeyUnwrap(kek, wrapped []byte) ([]byte, error) {
	if len(wrapped) < 24 || len(wrapped)%8 != 0 {
		return nil, errors.New("cmp: wrapped key has an invalid length")
	}
	block, err := aes.NewCipher(kek)
	if err != nil {
		return nil, err
	}
	n := len(wrapped)/8 - 1
	out := slices.Clone(wrapped)
	var buf [16]byte
	for j := 5; j >= 0; j-- {
		for i := n; i >= 1; i-- {
			t := uint64(n*j + i)
			binary.BigEndian.PutUint64(buf[:8], binary.BigEndian.Uint64(out[:8])^t)
			copy(buf[8:], out[8*i:8*i+8])
			block.Decrypt(buf[:], buf[:])
			copy(out[:8], buf[:8])
			copy(out[8*i:], buf[8:])
		}
	}
	if subtle.ConstantTimeCompare(out[:8], aesKeyWrapIV) != 1 {
		return nil, errors.New("cmp: wrong key or damaged wrapped key")
	}
	return out[8:], nil
}

func pad(data []byte, blockSize int) []byte {
	n := blockSize - len(data)%blockSize
	out := make([]byte, len(data)+n)
	copy(out, data)
	for i := len(data); i < len(out); i++ {
		out[i] = byte(n)
	}
	return out
}

// OpenPrivateKey decrypts an EncryptedKey from a CertifiedKeyPair, with password for a
// password recipient or with key, the private key of recipient, for an RSA or ECDSA
// recipient. It verifies the signature of the key generation authority and returns the
// private key, then the authority's certificate followed by the other certificates of
// the package. The caller decides whether it trusts that certificate.
func OpenPrivateKey(encryptedKey, password []byte, recipient *x509.Certificate, key crypto.PrivateKey) (crypto.PrivateKey, []*x509.Certificate, error) {
	s := cryptobyte.String(encryptedKey)
	var env cryptobyte.String
	var version int64
	if !s.ReadASN1(&env, contextTag(0)) || !s.Empty() || !env.ReadASN1Integer(&version) {
		return nil, nil, malformed("privateKey", "not an envelopedData")
	}
	if env.PeekASN1Tag(contextTag(0)) {
		env.SkipASN1(contextTag(0)) // originatorInfo
	}

	var infos, encrypted cryptobyte.String
	if !env.ReadASN1(&infos, cbasn1.SET) || !env.ReadASN1(&encrypted, cbasn1.SEQUENCE) {
		return nil, nil, malformed("privateKey.envelopedData", "missing recipientInfos or encryptedContentInfo")
	}
	var cek []byte
	var lastErr error = errors.New("cmp: the key is not encrypted to this recipient")
	for !infos.Empty() && cek == nil {
		var info cryptobyte.String
		var tag cbasn1.Tag
		if !infos.ReadAnyASN1(&info, &tag) {
			return nil, nil, malformed("privateKey.envelopedData.recipientInfos", "invalid element")
		}
		var err error
		switch {
		case tag == contextTag(3) && password != nil:
			cek, err = openPasswordRecipient(info, password)
		case tag == cbasn1.SEQUENCE && recipient != nil:
			cek, err = openKeyTransportRecipient(info, recipient, key)
		case tag == contextTag(1) && recipient != nil:
			cek, err = openKeyAgreementRecipient(info, recipient, key)
		default:
			continue
		}
		if err != nil {
			lastErr = err
		}
	}
	if cek == nil {
		return nil, nil, lastErr
	}

	signedData, err := decryptContent(encrypted, cek)
	if err != nil {
		return nil, nil, err
	}
	return openKeyPackage(signedData)
}

func openPasswordRecipient(info cryptobyte.String, password []byte) ([]byte, error) {
	var version int64
	var kdf, kdfParams, salt, prf, kea, keaParams, iv, wrapped cryptobyte.String
	var kdfOID, prfOID, keaOID, innerOID asn1.ObjectIdentifier
	var iterations int64
	if !info.ReadASN1Integer(&version) || !info.ReadASN1(&kdf, contextTag(0)) ||
		!kdf.ReadASN1ObjectIdentifier(&kdfOID) || !kdf.ReadASN1(&kdfParams, cbasn1.SEQUENCE) ||
		!kdfParams.ReadASN1(&salt, cbasn1.OCTET_STRING) || !kdfParams.ReadASN1Integer(&iterations) {
		return nil, malformed("passwordRecipientInfo", "invalid keyDerivationAlgorithm")
	}
	if !kdfOID.Equal(OIDPBKDF2) || iterations < 1 || iterations > 1_000_000 {
		return nil, fmt.Errorf("%w: key derivation %s with %d iterations", ErrBadAlgorithm, kdfOID, iterations)
	}
	if kdfParams.PeekASN1Tag(cbasn1.INTEGER) {
		kdfParams.SkipASN1(cbasn1.INTEGER) // keyLength
	}

	// An absent PRF means HMAC-SHA1, which is not accepted.
	if !kdfParams.ReadASN1(&prf, cbasn1.SEQUENCE) || !prf.ReadASN1ObjectIdentifier(&prfOID) || !prfOID.Equal(OIDHMACSHA256) {
		return nil, fmt.Errorf("%w: PBKDF2 PRF %s, expected HMAC-SHA256", ErrBadAlgorithm, prfOID)
	}
	if !info.ReadASN1(&kea, cbasn1.SEQUENCE) || !kea.ReadASN1ObjectIdentifier(&keaOID) ||
		!kea.ReadASN1(&keaParams, cbasn1.SEQUENCE) || !keaParams.ReadASN1ObjectIdentifier(&innerOID) ||
		!keaParams.ReadASN1(&iv, cbasn1.OCTET_STRING) || !info.ReadASN1(&wrapped, cbasn1.OCTET_STRING) {
		return nil, malformed("passwordRecipientInfo", "invalid keyEncryptionAlgorithm")
	}
	if !keaOID.Equal(oidPWRIKEK) || !innerOID.Equal(oidAES256CBC) || len(iv) != aes.BlockSize {
		return nil, fmt.Errorf("%w: key encryption %s with %s", ErrBadAlgorithm, keaOID, innerOID)
	}

	kek, err := pbkdf2.Key(sha256.New, string(password), salt, int(iterations), 32)
	if err != nil {
		return nil, err
	}
	return pwriUnwrap(kek, iv, wrapped)
}

// readIssuerAndSerial reads an IssuerAndSerialNumber and reports whether it names cert.
func readIssuerAndSerial(s *cryptobyte.String, cert *x509.Certificate) bool {
	var seq, issuer cryptobyte.String
	serial := new(big.Int)
	if !s.ReadASN1(&seq, cbasn1.SEQUENCE) || !seq.ReadASN1Element(&issuer, cbasn1.SEQUENCE) || !seq.ReadASN1Integer(serial) {
		return false
	}
	return bytes.Equal(issuer, cert.RawIssuer) && serial.Cmp(cert.SerialNumber) == 0
}

func openKeyTransportRecipient(info cryptobyte.String, cert *x509.Certificate, key crypto.PrivateKey) ([]byte, error) {
	var version int64
	var alg, encrypted cryptobyte.String
	var oid asn1.ObjectIdentifier
	if !info.ReadASN1Integer(&version) {
		return nil, malformed("keyTransRecipientInfo", "invalid version")
	}
	if !readIssuerAndSerial(&info, cert) {
		return nil, errors.New("cmp: the key is encrypted to another certificate")
	}
	if !info.ReadASN1(&alg, cbasn1.SEQUENCE) || !alg.ReadASN1ObjectIdentifier(&oid) || !info.ReadASN1(&encrypted, cbasn1.OCTET_STRING) {
		return nil, malformed("keyTransRecipientInfo", "invalid keyEncryptionAlgorithm")
	}
	rsaKey, ok := key.(*rsa.PrivateKey)
	if !ok || !oid.Equal(oidRSAESOAEP) {
		return nil, fmt.Errorf("%w: key transport %s", ErrBadAlgorithm, oid)
	}
	// NOTE: the OAEP parameters are taken to be SHA-256 with MGF1-SHA-256, the ones
	// SealPrivateKey writes; other parameters fail to decrypt.
	return rsa.DecryptOAEP(sha256.New(), nil, rsaKey, encrypted, nil)
}

func openKeyAgreementRecipient(info cryptobyte.String, cert *x509.Certificate, key crypto.PrivateKey) ([]byte, error) {
	var version int64
	var originator, originatorKey, alg, kea, keys, entry, wrapped cryptobyte.String
	var point asn1.BitString
	var oid asn1.ObjectIdentifier
	if !info.ReadASN1Integer(&version) || !info.ReadASN1(&originator, contextTag(0)) ||
		!originator.ReadASN1(&originatorKey, contextTag(1)) || !originatorKey.ReadASN1(&alg, cbasn1.SEQUENCE) ||
		!originatorKey.ReadASN1BitString(&point) {
		return nil, malformed("keyAgreeRecipientInfo", "the originator is not an originatorKey")
	}
	if info.PeekASN1Tag(contextTag(1)) {
		info.SkipASN1(contextTag(1)) // ukm
	}
	if !info.ReadASN1(&kea, cbasn1.SEQUENCE) || !kea.ReadASN1ObjectIdentifier(&oid) || !oid.Equal(oidECDHSHA256KDF) {
		return nil, fmt.Errorf("%w: key agreement %s", ErrBadAlgorithm, oid)
	}
	if !info.ReadASN1(&keys, cbasn1.SEQUENCE) || !keys.ReadASN1(&entry, cbasn1.SEQUENCE) {
		return nil, malformed("keyAgreeRecipientInfo", "missing recipientEncryptedKeys")
	}
	if !readIssuerAndSerial(&entry, cert) {
		return nil, errors.New("cmp: the key is encrypted to another certificate")
	}
	if !entry.ReadASN1(&wrapped, cbasn1.OCTET_STRING) {
		return nil, malformed("keyAgreeRecipientInfo", "missing encryptedKey")
	}

	ecKey, ok := key.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%w: key agreement needs an ECDSA key, got %T", ErrBadAlgorithm, key)
	}
	private, err := ecKey.ECDH()
	if err != nil {
		return nil, err
	}
	public, err := private.Curve().NewPublicKey(point.Bytes)
	if err != nil {
		return nil, malformed("keyAgreeRecipientInfo", "originator key: %v", err)
	}
	shared, err := private.ECDH(public)
	if err != nil {
		return nil, err
	}
	kek, err := x963KDF(shared)
	if err != nil {
		return nil, err
	}
	return aesKeyUnwrap(kek, wrapped)
}

func decryptContent(info cryptobyte.String, cek []byte) ([]byte, error) {
	var contentType, algOID asn1.ObjectIdentifier
	var alg, iv, content cryptobyte.String
	if !info.ReadASN1ObjectIdentifier(&contentType) || !info.ReadASN1(&alg, cbasn1.SEQUENCE) ||
		!alg.ReadASN1ObjectIdentifier(&algOID) || !alg.ReadASN1(&iv, cbasn1.OCTET_STRING) ||
		!info.ReadASN1(&content, cbasn1.Tag(0).ContextSpecific()) {
		return nil, malformed("privateKey.envelopedData.encryptedContentInfo", "invalid encoding")
	}
	if !contentType.Equal(oidSignedData) {
		return nil, malformed("privateKey.envelopedData", "content type %s, expected signedData", contentType)
	}
	if !algOID.Equal(oidAES256CBC) || len(cek) != 32 || len(iv) != aes.BlockSize {
		return nil, fmt.Errorf("%w: content encryption %s", ErrBadAlgorithm, algOID)
	}
	if len(content) == 0 || len(content)%aes.BlockSize != 0 {
		return nil, malformed("privateKey.envelopedData", "encrypted content length %d", len(content))
	}
	block, err := aes.NewCipher(cek)
	if err != nil {
		return nil, err
	}
	plain := slices.Clone([]byte(content))
	cipher.NewCBCDecrypter(block, iv).CryptBlocks(plain, plain)
	n := int(plain[len(plain)-1])
	if n == 0 || n > aes.BlockSize {
		return nil, errors.New("cmp: decrypted key package has invalid padding")
	}
	return plain[:len(plain)-n], nil
}

// openKeyPackage verifies a SignedData over an AsymmetricKeyPackage and returns its
// only key, and the signer's certificate followed by the other certificates.
func openKeyPackage(der []byte) (crypto.PrivateKey, []*x509.Certificate, error) {
	s := cryptobyte.String(der)
	var sd, digestAlgs, encap, eContent, signerInfos, si cryptobyte.String
	var version int64
	var eType asn1.ObjectIdentifier
	if !s.ReadASN1(&sd, cbasn1.SEQUENCE) || !sd.ReadASN1Integer(&version) || !sd.ReadASN1(&digestAlgs, cbasn1.SET) ||
		!sd.ReadASN1(&encap, cbasn1.SEQUENCE) || !encap.ReadASN1ObjectIdentifier(&eType) ||
		!encap.ReadASN1(&eContent, contextTag(0)) || !eContent.ReadASN1(&eContent, cbasn1.OCTET_STRING) {
		return nil, nil, malformed("keyPackage.signedData", "invalid encoding")
	}
	if !eType.Equal(oidAsymmetricKeyPackage) {
		return nil, nil, malformed("keyPackage.signedData", "content type %s, expected id-ct-KP-aKeyPackage", eType)
	}

	certs, err := readCertificateSet(&sd)
	if err != nil {
		return nil, nil, err
	}
	if sd.PeekASN1Tag(contextTag(1)) {
		sd.SkipASN1(contextTag(1)) // crls
	}
	if !sd.ReadASN1(&signerInfos, cbasn1.SET) || !signerInfos.ReadASN1(&si, cbasn1.SEQUENCE) {
		return nil, nil, malformed("keyPackage.signedData", "missing signerInfo")
	}
	signer, err := verifySignerInfo(si, certs, eContent)
	if err != nil {
		return nil, nil, err
	}

	var keys, first cryptobyte.String
	pkg := cryptobyte.String(eContent)
	if !pkg.ReadASN1(&keys, cbasn1.SEQUENCE) || !keys.ReadASN1Element(&first, cbasn1.SEQUENCE) {
		return nil, nil, malformed("keyPackage", "no OneAsymmetricKey")
	}
	key, err := x509.ParsePKCS8PrivateKey(first)
	if err != nil {
		return nil, nil, malformed("keyPackage", "%v", err)
	}
	chain := []*x509.Certificate{signer}
	for _, cert := range certs {
		if cert != signer {
			chain = append(chain, cert)
		}
	}
	return key, chain, nil
}

// readCertificateSet reads the optional certificates [0] of a SignedData.
func readCertificateSet(sd *cryptobyte.String) ([]*x509.Certificate, error) {
	var certSet cryptobyte.String
	var present bool
	if !sd.ReadOptionalASN1(&certSet, &present, contextTag(0)) {
		return nil, malformed("keyPackage.signedData.certificates", "invalid encoding")
	}
	var certs []*x509.Certificate
	for !certSet.Empty() {
		if len(certs) == maxExtraCerts {
			return nil, malformed("keyPackage.signedData.certificates", "more than %d certificates", maxExtraCerts)
		}
		var certDER cryptobyte.String
		if !certSet.ReadASN1Element(&certDER, cbasn1.SEQUENCE) {
			return nil, malformed("keyPackage.signedData.certificates", "invalid certificate")
		}
		cert, err := x509.ParseCertificate(certDER)
		if err != nil {
			return nil, malformed("keyPackage.signedData.certificates", "%v", err)
		}
		certs = append(certs, cert)
	}
	return certs, nil
}

// verifySignerInfo finds the signer of si among certs, checks that the signed
// attributes name the key package and its digest, and verifies the signature over them.
// It returns the signer's certificate.
func verifySignerInfo(si cryptobyte.String, certs []*x509.Certificate, content []byte) (*x509.Certificate, error) {
	var version int64
	var sid, digestAlg, attrsElement, attrs, sigAlgDER cryptobyte.String
	var sidTag cbasn1.Tag
	var digestOID asn1.ObjectIdentifier
	var signature []byte
	if !si.ReadASN1Integer(&version) || !si.ReadAnyASN1Element(&sid, &sidTag) ||
		!si.ReadASN1(&digestAlg, cbasn1.SEQUENCE) || !digestAlg.ReadASN1ObjectIdentifier(&digestOID) ||
		!si.ReadASN1Element(&attrsElement, contextTag(0)) || !attrsElement.ReadASN1(&attrs, contextTag(0)) ||
		!si.ReadASN1Element(&sigAlgDER, cbasn1.SEQUENCE) || !si.ReadASN1Bytes(&signature, cbasn1.OCTET_STRING) {
		return nil, malformed("keyPackage.signerInfo", "invalid encoding or missing signedAttrs")
	}

	var signer *x509.Certificate
	for _, cert := range certs {
		probe := sid
		if sidTag == cbasn1.Tag(0).ContextSpecific() {
			var keyID cryptobyte.String
			if probe.ReadASN1(&keyID, sidTag) && bytes.Equal(cert.SubjectKeyId, keyID) {
				signer = cert
			}
		} else if readIssuerAndSerial(&probe, cert) {
			signer = cert
		}
	}
	if signer == nil {
		return nil, errors.New("cmp: the key package's signer certificate is missing")
	}

	h, ok := lookupDigest(digestOID)
	if !ok {
		return nil, fmt.Errorf("%w: digest %s", ErrBadAlgorithm, digestOID)
	}
	digest := h.New()
	digest.Write(content)
	if err := checkSignedAttributes(attrs, digest.Sum(nil)); err != nil {
		return nil, err
	}
	var alg pkix.AlgorithmIdentifier
	if rest, err := asn1.Unmarshal(sigAlgDER, &alg); err != nil || len(rest) != 0 {
		return nil, malformed("keyPackage.signerInfo.signatureAlgorithm", "invalid AlgorithmIdentifier")
	}
	// The signature covers the attributes with the SET tag in place of [0].
	if err := VerifySignatureWithKey(signer.PublicKey, alg, wrapTag(cbasn1.SET, attrs), signature); err != nil {
		return nil, fmt.Errorf("cmp: the key package's signature does not verify: %w", err)
	}
	return signer, nil
}

// checkSignedAttributes requires the contentType attribute to name the key package and
// the messageDigest attribute to equal digest. Other attributes, such as signingTime,
// are allowed and ignored.
func checkSignedAttributes(attrs cryptobyte.String, digest []byte) error {
	var contentTypeOK, digestOK bool
	for !attrs.Empty() {
		var attr, values cryptobyte.String
		var oid asn1.ObjectIdentifier
		if !attrs.ReadASN1(&attr, cbasn1.SEQUENCE) || !attr.ReadASN1ObjectIdentifier(&oid) || !attr.ReadASN1(&values, cbasn1.SET) {
			return malformed("keyPackage.signerInfo.signedAttrs", "invalid attribute")
		}
		switch {
		case oid.Equal(oidAttributeContentType):
			var contentType asn1.ObjectIdentifier
			contentTypeOK = values.ReadASN1ObjectIdentifier(&contentType) && values.Empty() && contentType.Equal(oidAsymmetricKeyPackage)
		case oid.Equal(oidAttributeDigest):
			var value []byte
			digestOK = values.ReadASN1Bytes(&value, cbasn1.OCTET_STRING) && values.Empty() && subtle.ConstantTimeCompare(value, digest) == 1
		}
	}
	if !contentTypeOK || !digestOK {
		return errors.New("cmp: the key package's signed attributes do not match its content")
	}
	return nil
}
