package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// migrations lists the schema changes in order: migrations[i] takes the schema from
// version i to version i+1, and the schema version of a database is the number of
// steps applied to it. A later release appends steps. It never edits a step that
// has been released, because databases in the field have already run it.
var migrations = []string{
	schemaV1,
	schemaV2,
	schemaV3,
	schemaV4,
	schemaV5,
}

// schemaV1 is the first schema.
//
// Times are TEXT in the fixed-width UTC layout of timeLayout, so comparing two
// values as text orders them in time and the expires_at indexes serve the expiry
// queries. Serial numbers are the contents octets of their DER INTEGER encoding,
// so equal numbers always have equal bytes and negative serials, which some old
// CAs issued, are stored too.
//
// certificates.transaction_id has no foreign key to transactions, because
// DeleteExpired removes transactions while their certificates stay.
const schemaV1 = `
CREATE TABLE transactions (
	id             BLOB NOT NULL PRIMARY KEY,
	profile        TEXT NOT NULL,
	request_type   TEXT NOT NULL,
	requester      TEXT NOT NULL,
	state          TEXT NOT NULL,
	sender_nonce   BLOB,
	cert_req_id    INTEGER NOT NULL,
	poll_reference TEXT NOT NULL,
	certificate    BLOB,
	created_at     TEXT NOT NULL,
	updated_at     TEXT NOT NULL,
	expires_at     TEXT NOT NULL
);
CREATE INDEX transactions_expires_at ON transactions (expires_at);

CREATE TABLE nonces (
	nonce      BLOB NOT NULL PRIMARY KEY,
	expires_at TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX nonces_expires_at ON nonces (expires_at);

CREATE TABLE certificates (
	id                INTEGER PRIMARY KEY,
	raw_issuer        BLOB NOT NULL,
	serial            BLOB NOT NULL,
	subject           TEXT NOT NULL,
	not_before        TEXT NOT NULL,
	not_after         TEXT NOT NULL,
	der               BLOB NOT NULL,
	profile           TEXT NOT NULL,
	backend           TEXT NOT NULL,
	transaction_id    BLOB,
	status            TEXT NOT NULL,
	revocation_reason INTEGER NOT NULL,
	revoked_at        TEXT,
	created_at        TEXT NOT NULL,
	UNIQUE (raw_issuer, serial)
);
CREATE INDEX certificates_transaction_id ON certificates (transaction_id);
`

// migrate brings the schema to len(migrations) in one write transaction, so a
// failed step leaves the database at its previous version.
// schemaV2 adds one-time enrollment challenges. Only the SHA-256 digest of a challenge
// is stored, so a copy of the database does not reveal challenges that are still valid.
const schemaV2 = `
CREATE TABLE challenges (
	digest     BLOB NOT NULL,
	profile    TEXT NOT NULL,
	note       TEXT NOT NULL,
	created_at TEXT NOT NULL,
	expires_at TEXT NOT NULL,
	PRIMARY KEY (digest, profile)
) WITHOUT ROWID;
CREATE INDEX challenges_expires_at ON challenges (expires_at);
`

// schemaV3 adds the archive of centrally generated private keys, keyed by the
// transaction that generated each. The sealed_key column contains what the router
// encrypted, so the store never receives a key in the clear.
const schemaV3 = `
CREATE TABLE archived_keys (
	transaction_id BLOB PRIMARY KEY,
	profile        TEXT NOT NULL,
	requester      TEXT NOT NULL,
	sealed_key     BLOB NOT NULL,
	created_at     TEXT NOT NULL
) WITHOUT ROWID;
`

// schemaV4 adds the pending requests of frontends whose protocol keeps its own
// transaction beside the CMP one, such as a SCEP enrollment waiting for the CA: the
// frontend's key and its state as the frontend encodes it.
const schemaV4 = `
CREATE TABLE pending_requests (
	frontend   TEXT NOT NULL,
	key        TEXT NOT NULL,
	state      BLOB NOT NULL,
	expires_at TEXT NOT NULL,
	PRIMARY KEY (frontend, key)
) WITHOUT ROWID;
CREATE INDEX pending_requests_expires_at ON pending_requests (expires_at);
`

// schemaV5 adds the request that a pending transaction other than an enrollment
// completes when the backend decides, such as the RevDetails of a waiting rr.
const schemaV5 = `
ALTER TABLE transactions ADD COLUMN request BLOB;
`

func migrate(ctx context.Context, db *sql.DB) (err error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migrate schema: %w", err)
	}
	defer func() {
		if err != nil {
			tx.Rollback() //nolint:errcheck // the migration error is the one to report
		}
	}()

	if _, err := tx.ExecContext(ctx, `
		CREATE TABLE IF NOT EXISTS schema_version (
			id      INTEGER PRIMARY KEY CHECK (id = 1),
			version INTEGER NOT NULL
		)`); err != nil {
		return fmt.Errorf("migrate schema: %w", err)
	}

	var version int
	err = tx.QueryRowContext(ctx, "SELECT version FROM schema_version WHERE id = 1").Scan(&version)
	if errors.Is(err, sql.ErrNoRows) {
		_, err = tx.ExecContext(ctx, "INSERT INTO schema_version (id, version) VALUES (1, 0)")
	}
	if err != nil {
		return fmt.Errorf("migrate schema: %w", err)
	}

	if version > len(migrations) {
		return fmt.Errorf("database schema version is %d but this certgate supports versions up to %d: run the certgate release that wrote the database, or a newer one",
			version, len(migrations))
	}
	for v := version; v < len(migrations); v++ {
		if _, err := tx.ExecContext(ctx, migrations[v]); err != nil {
			return fmt.Errorf("migrate schema from version %d to %d: %w", v, v+1, err)
		}
	}
	if _, err := tx.ExecContext(ctx, "UPDATE schema_version SET version = ? WHERE id = 1", len(migrations)); err != nil {
		return fmt.Errorf("migrate schema: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migrate schema: %w", err)
	}
	return nil
}
