// Package store persists what certgate must not lose across a restart: the certificates
// it issued, open transactions and the nonces it has seen. SQLite (modernc.org/sqlite, no
// cgo) in the data directory is the default; the Store interface leaves room for a
// PostgreSQL implementation shared by several instances.
package store

import (
	"context"
	"errors"
	"math/big"
	"time"
)

// Errors returned by every Store implementation. Callers test them with errors.Is.
var (
	ErrNotFound          = errors.New("store: not found")
	ErrTransactionExists = errors.New("store: transaction ID already in use")
	ErrNonceReplayed     = errors.New("store: nonce already seen")
	ErrChallengeExists   = errors.New("store: challenge already stored")
)

// Challenge is a one-time enrollment challenge, such as a SCEP challenge password that
// an operator issued for one device. Digest is the SHA-256 of the challenge; the
// challenge itself is never stored.
type Challenge struct {
	Digest    []byte
	Profile   string
	Note      string // the operator's description of its use, such as the device name
	CreatedAt time.Time
	ExpiresAt time.Time
}

// ArchivedKey is a centrally generated private key, sealed by the router before it
// reaches the store.
type ArchivedKey struct {
	TransactionID []byte
	Profile       string
	Requester     string // the identity that requested the key, as in Transaction
	Sealed        []byte
	CreatedAt     time.Time
}

// TransactionState is the state of a CMP transaction.
type TransactionState string

// The transaction states.
const (
	StatePending     TransactionState = "pending"      // the backend has not decided yet; the client polls
	StateWaitConfirm TransactionState = "wait-confirm" // a certificate was sent; certConf is expected
	StateDone        TransactionState = "done"         // confirmed, implicitly confirmed or completed without a certificate
	StateRejected    TransactionState = "rejected"     // the request failed or the client rejected the certificate
)

// Transaction is the server side of one CMP transaction, keyed by its transactionID.
type Transaction struct {
	ID            []byte
	Profile       string
	RequestType   string // CMP body name of the request that opened it: "ir", "cr", "kur", "p10cr", ...
	Requester     string // authenticated identity: MAC reference or certificate subject
	State         TransactionState
	SenderNonce   []byte // the senderNonce of the last response, which the next request must echo as recipNonce
	CertReqID     int64
	PollReference string // set while State is StatePending
	Certificate   []byte // DER of the certificate sent and not yet confirmed
	Request       []byte // DER of the request body that a pending rr completes
	CreatedAt     time.Time
	UpdatedAt     time.Time
	ExpiresAt     time.Time // after this the transaction is forgotten and its ID may be reused
}

// CertificateStatus is the lifecycle state of an issued certificate.
type CertificateStatus string

// The certificate states.
const (
	CertIssued    CertificateStatus = "issued"    // sent to the client, not yet confirmed
	CertConfirmed CertificateStatus = "confirmed" // confirmed by certConf or implicitConfirm
	CertRevoked   CertificateStatus = "revoked"
	CertOnHold    CertificateStatus = "on-hold" // revoked with reason certificateHold
)

// Certificate is an issued certificate with its state.
type Certificate struct {
	SerialNumber     *big.Int
	RawIssuer        []byte // DER-encoded issuer Name
	Subject          string // RFC 4514 string, for operators
	NotBefore        time.Time
	NotAfter         time.Time
	DER              []byte
	Profile          string
	Backend          string
	TransactionID    []byte
	Status           CertificateStatus
	RevocationReason int // CRLReason code; meaningful when Status is CertRevoked or CertOnHold
	RevokedAt        time.Time
	CreatedAt        time.Time
}

// Store is the persistence interface of the router. Implementations are safe for
// concurrent use.
type Store interface {
	// CreateTransaction stores a new transaction, or returns ErrTransactionExists when a
	// transaction with the same ID has not expired.
	CreateTransaction(ctx context.Context, tx *Transaction) error
	// OpenTransaction records nonce as RecordNonce does and creates tx as
	// CreateTransaction does, atomically, returning the same errors.
	OpenTransaction(ctx context.Context, tx *Transaction, nonce []byte, nonceExpiresAt time.Time) error
	// Transaction returns the unexpired transaction with this ID, or ErrNotFound.
	Transaction(ctx context.Context, id []byte) (*Transaction, error)
	// UpdateTransaction replaces the stored transaction with the same ID, or returns ErrNotFound.
	UpdateTransaction(ctx context.Context, tx *Transaction) error

	// RecordNonce remembers a senderNonce until expiresAt, or returns ErrNonceReplayed when
	// it is already remembered.
	RecordNonce(ctx context.Context, nonce []byte, expiresAt time.Time) error

	// PutCertificate stores a newly issued certificate.
	PutCertificate(ctx context.Context, cert *Certificate) error
	// RecordIssued stores a newly issued certificate and updates the transaction that
	// requested it, atomically: it fails as PutCertificate or UpdateTransaction would,
	// and then stores neither.
	RecordIssued(ctx context.Context, cert *Certificate, tx *Transaction) error
	// Certificate returns the certificate with this issuer and serial number, or ErrNotFound.
	Certificate(ctx context.Context, rawIssuer []byte, serial *big.Int) (*Certificate, error)
	// SetCertificateStatus changes the status of a stored certificate, or returns ErrNotFound.
	SetCertificateStatus(ctx context.Context, rawIssuer []byte, serial *big.Int, status CertificateStatus, reason int, at time.Time) error

	// CreateChallenge stores a one-time enrollment challenge, or returns
	// ErrChallengeExists when the same digest is stored for the profile.
	CreateChallenge(ctx context.Context, challenge *Challenge) error
	// ConsumeChallenge deletes the unexpired challenge with this digest and profile and
	// returns it, or returns ErrNotFound. Two concurrent calls never both succeed.
	// CreateChallenge with the returned challenge puts it back.
	ConsumeChallenge(ctx context.Context, digest []byte, profile string, now time.Time) (*Challenge, error)

	// ArchiveKey stores the sealed private key that transaction txID generated. Keys are
	// kept until an operator removes them; DeleteExpired leaves them.
	ArchiveKey(ctx context.Context, key *ArchivedKey) error
	// ArchivedKey returns the key archived by transaction txID, or ErrNotFound.
	ArchivedKey(ctx context.Context, txID []byte) (*ArchivedKey, error)

	// PutPending stores or replaces the state of a frontend's pending request until
	// expiresAt.
	PutPending(ctx context.Context, frontend, key string, state []byte, expiresAt time.Time) error
	// Pending returns the unexpired state stored for the frontend and key, or ErrNotFound.
	Pending(ctx context.Context, frontend, key string, now time.Time) ([]byte, error)
	// DeletePending removes the state stored for the frontend and key, if any.
	DeletePending(ctx context.Context, frontend, key string) error
	// CountPending returns how many unexpired pending requests the frontend has.
	CountPending(ctx context.Context, frontend string, now time.Time) (int, error)

	// DeleteExpired removes transactions, nonces, challenges and pending requests that
	// expired before now and returns how many rows it removed.
	DeleteExpired(ctx context.Context, now time.Time) (int64, error)

	Close() error
}
