package store

import (
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
	"time"
)

// timeLayout is the stored form of times: UTC with nanoseconds and a fixed width,
// so that text order is time order for the years 0000 to 9999. The year 9999 matters
// because RFC 5280 section 4.1.2.5 gives 99991231235959Z as the notAfter of a
// certificate without a well-defined expiration date.
const timeLayout = "2006-01-02T15:04:05.000000000Z"

// formatTime converts t to the stored form. Times come back from the store in UTC
// with the monotonic clock reading stripped, so compare them with time.Time.Equal.
func formatTime(t time.Time) (string, error) {
	u := t.UTC()
	if u.Year() < 0 || u.Year() > 9999 {
		return "", fmt.Errorf("time %s is outside the years 0000 to 9999", t)
	}
	return u.Format(timeLayout), nil
}

// timeColumn is one stored time to parse and the field that receives it.
type timeColumn struct {
	name  string
	value string
	dst   *time.Time
}

func parseTimes(columns ...timeColumn) error {
	for _, c := range columns {
		t, err := time.Parse(timeLayout, c.value)
		if err != nil {
			return fmt.Errorf("column %s: %w", c.name, err)
		}
		*c.dst = t
	}
	return nil
}

// encodeSerial returns the contents octets of the DER INTEGER encoding of n: big
// endian two's complement with no redundant leading byte. Each integer has exactly
// one such encoding, so the stored column can be compared byte for byte.
func encodeSerial(n *big.Int) ([]byte, error) {
	der, err := asn1.Marshal(n)
	if err != nil {
		return nil, err
	}
	var raw asn1.RawValue
	if _, err := asn1.Unmarshal(der, &raw); err != nil {
		return nil, err
	}
	return raw.Bytes, nil
}

func decodeSerial(contents []byte) (*big.Int, error) {
	der, err := asn1.Marshal(asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagInteger, Bytes: contents})
	if err != nil {
		return nil, err
	}
	var n *big.Int
	if _, err := asn1.Unmarshal(der, &n); err != nil {
		return nil, fmt.Errorf("column serial: %w", err)
	}
	return n, nil
}

// formatSerial returns the serial number as it appears in error messages, in the
// uppercase hex that openssl x509 -serial prints.
func formatSerial(n *big.Int) string {
	return fmt.Sprintf("serial %X", n)
}

func validTransactionState(s TransactionState) bool {
	switch s {
	case StatePending, StateWaitConfirm, StateDone, StateRejected:
		return true
	}
	return false
}

func validateTransaction(tx *Transaction) error {
	switch {
	case tx == nil:
		return errors.New("transaction is nil")
	case len(tx.ID) == 0:
		return errors.New("transaction ID is empty")
	case !validTransactionState(tx.State):
		return fmt.Errorf("transaction %x: unknown state %q", tx.ID, tx.State)
	case tx.ExpiresAt.IsZero():
		return fmt.Errorf("transaction %x: expiry time is not set", tx.ID)
	}
	return nil
}

// transactionText contains the stored form of the times of a Transaction.
type transactionText struct {
	createdAt, updatedAt, expiresAt string
}

func transactionRow(tx *Transaction, now time.Time) (transactionText, error) {
	createdAt, updatedAt := tx.CreatedAt, tx.UpdatedAt
	if createdAt.IsZero() {
		createdAt = now
	}
	if updatedAt.IsZero() {
		updatedAt = now
	}

	var row transactionText
	var err error
	if row.createdAt, err = formatTime(createdAt); err != nil {
		return row, fmt.Errorf("creation time: %w", err)
	}
	if row.updatedAt, err = formatTime(updatedAt); err != nil {
		return row, fmt.Errorf("update time: %w", err)
	}
	if row.expiresAt, err = formatTime(tx.ExpiresAt); err != nil {
		return row, fmt.Errorf("expiry time: %w", err)
	}
	return row, nil
}

func isRevoked(s CertificateStatus) bool {
	return s == CertRevoked || s == CertOnHold
}

// validateStatus checks a certificate status with its revocation reason and time.
// The reason and time are checked only for a revoked or on-hold certificate.
func validateStatus(status CertificateStatus, reason int, at time.Time) error {
	switch status {
	case CertIssued, CertConfirmed:
		return nil
	case CertRevoked, CertOnHold:
	default:
		return fmt.Errorf("unknown certificate status %q", status)
	}

	// CRLReason ::= ENUMERATED { unspecified (0) .. aACompromise (10) }, where the
	// value 7 is not used (RFC 5280 section 5.3.1).
	if reason < 0 || reason > 10 || reason == 7 {
		return fmt.Errorf("revocation reason %d is not a CRLReason code (0 to 10, except 7)", reason)
	}
	if at.IsZero() {
		return fmt.Errorf("revocation time is not set for status %q", status)
	}
	return nil
}

func validateCertificate(cert *Certificate) error {
	switch {
	case cert == nil:
		return errors.New("certificate is nil")
	case cert.SerialNumber == nil:
		return errors.New("serial number is nil")
	case len(cert.RawIssuer) == 0:
		return fmt.Errorf("%s: issuer is empty", formatSerial(cert.SerialNumber))
	case len(cert.DER) == 0:
		return fmt.Errorf("%s: DER is empty", formatSerial(cert.SerialNumber))
	}
	if err := validateStatus(cert.Status, cert.RevocationReason, cert.RevokedAt); err != nil {
		return fmt.Errorf("%s: %w", formatSerial(cert.SerialNumber), err)
	}
	return nil
}

// certificateText contains the stored form of the fields of a Certificate that are
// not stored as they are.
type certificateText struct {
	serial                         []byte
	notBefore, notAfter, createdAt string
	reason                         int
	revokedAt                      any // nil stores NULL
}

func certificateRow(cert *Certificate, now time.Time) (certificateText, error) {
	var row certificateText
	var err error
	if row.serial, err = encodeSerial(cert.SerialNumber); err != nil {
		return row, err
	}
	if row.notBefore, err = formatTime(cert.NotBefore); err != nil {
		return row, fmt.Errorf("notBefore: %w", err)
	}
	if row.notAfter, err = formatTime(cert.NotAfter); err != nil {
		return row, fmt.Errorf("notAfter: %w", err)
	}

	createdAt := cert.CreatedAt
	if createdAt.IsZero() {
		createdAt = now
	}
	if row.createdAt, err = formatTime(createdAt); err != nil {
		return row, fmt.Errorf("creation time: %w", err)
	}

	if isRevoked(cert.Status) {
		row.reason = cert.RevocationReason
		if row.revokedAt, err = formatTime(cert.RevokedAt); err != nil {
			return row, fmt.Errorf("revocation time: %w", err)
		}
	}
	return row, nil
}
