package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver (pure Go, no cgo)
)

// busyTimeout is how long a connection waits for a lock held by another connection
// before SQLite returns SQLITE_BUSY. The single write connection already serializes
// the writers of this process, so the wait covers the other cases: a second process
// that writes the same file, such as the sqlite3 shell, and the short locks SQLite
// takes while it recovers or resets the WAL.
const busyTimeout = 10 * time.Second

// minReadConns is the minimum size of the read pool.
const minReadConns = 4

// SQLite is the Store implementation on a local SQLite database file.
//
// SQLite allows one writer at a time per database file. A second connection that
// starts a write while another write transaction is open waits up to busy_timeout
// and then fails with SQLITE_BUSY. To keep such errors away from request handlers,
// SQLite keeps two database/sql pools on the same file:
//
//   - the write pool has exactly one connection, so concurrent writers queue in
//     database/sql (honouring their ctx) instead of inside SQLite. Its transactions
//     begin with BEGIN IMMEDIATE, so a read-then-write transaction never has to
//     upgrade its lock.
//   - the read pool has several connections opened with query_only. In WAL mode
//     readers do not block the writer and the writer does not block readers, and
//     each read sees every transaction committed before it started.
//
// Every method is safe for concurrent use.
type SQLite struct {
	write *sql.DB
	read  *sql.DB
	stmts statements

	// checkpoints runs the WAL checkpoints on a connection of its own (see
	// checkpointLoop); stopCheckpoints ends it and checkpointsDone reports that it ended.
	checkpoints     *sql.DB
	stopCheckpoints chan struct{}
	stopOnce        sync.Once
	checkpointsDone chan struct{}

	// now is the clock that decides whether a transaction or nonce has expired.
	// Tests replace it.
	now func() time.Time
}

var _ Store = (*SQLite)(nil)

// OpenSQLite opens the database file at path, creating it with mode 0600 (and its
// parent directory with mode 0700) when missing, and migrates the schema to the
// latest version in this package. An existing file that is accessible by group or
// others is changed to mode 0600. The -wal and -shm files SQLite creates next to
// it get the same mode as the database file.
//
// OpenSQLite returns an error when the database was written by a newer certgate
// whose schema version this one does not know.
func OpenSQLite(ctx context.Context, path string) (*SQLite, error) {
	return OpenSQLiteWith(ctx, path, SQLiteOptions{})
}

// SQLiteOptions are the settings of OpenSQLiteWith.
type SQLiteOptions struct {
	// FullSync makes every commit wait for an fsync (synchronous=FULL), so that a power
	// loss or operating system crash loses no committed transaction. See writeParams.
	FullSync bool
}

// OpenSQLiteWith is OpenSQLite with options.
func OpenSQLiteWith(ctx context.Context, path string, opts SQLiteOptions) (*SQLite, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	if err := prepareDatabaseFile(abs); err != nil {
		return nil, fmt.Errorf("store: open %s: %w", abs, err)
	}

	write, err := sql.Open("sqlite", databaseURI(abs, writeParams(opts.FullSync)))
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", abs, err)
	}
	write.SetMaxOpenConns(1)
	write.SetMaxIdleConns(1)
	write.SetConnMaxLifetime(0)
	write.SetConnMaxIdleTime(0)

	s := &SQLite{write: write, now: time.Now}
	if err := s.checkWriteConn(ctx); err != nil {
		write.Close()
		return nil, fmt.Errorf("store: open %s: %w", abs, err)
	}
	if err := migrate(ctx, write); err != nil {
		write.Close()
		return nil, fmt.Errorf("store: open %s: %w", abs, err)
	}

	// The read pool is opened after the migration, so its connections never see a
	// database without tables.
	read, err := sql.Open("sqlite", databaseURI(abs, readParams()))
	if err != nil {
		write.Close()
		return nil, fmt.Errorf("store: open %s: %w", abs, err)
	}
	readConns := max(minReadConns, runtime.GOMAXPROCS(0))
	read.SetMaxOpenConns(readConns)
	read.SetMaxIdleConns(readConns)
	s.read = read
	if err := read.PingContext(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("store: open %s: read connection: %w", abs, err)
	}
	if err := s.stmts.prepare(ctx, write, read); err != nil {
		s.Close()
		return nil, fmt.Errorf("store: open %s: %w", abs, err)
	}
	if err := s.startCheckpoints(ctx, abs); err != nil {
		s.Close()
		return nil, fmt.Errorf("store: open %s: %w", abs, err)
	}
	return s, nil
}

// checkpointInterval is how often the WAL is copied into the database file. A second
// of issuance at the measured rates adds a few hundred WAL pages, well under the
// 1,000 pages at which SQLite's automatic checkpoint would run.
const checkpointInterval = time.Second

// startCheckpoints turns off the automatic checkpoint of the write connection and
// starts checkpointLoop on a connection of its own. SQLite's automatic checkpoint runs
// inside the commit that crosses its threshold, with two fsyncs, and every writer
// waits for it. A passive checkpoint elsewhere takes those stalls off the request path.
func (s *SQLite) startCheckpoints(ctx context.Context, path string) error {
	// The write pool has one connection that is never closed, so the setting lasts.
	// Should the driver replace the connection, the new one checkpoints automatically
	// again, which is the default behaviour and safe.
	if _, err := s.write.ExecContext(ctx, "PRAGMA wal_autocheckpoint = 0"); err != nil {
		return fmt.Errorf("turning off automatic checkpoints: %w", err)
	}
	checkpoints, err := sql.Open("sqlite", databaseURI(path, commonParams()))
	if err != nil {
		return err
	}
	checkpoints.SetMaxOpenConns(1)
	s.checkpoints = checkpoints
	s.stopCheckpoints = make(chan struct{})
	s.checkpointsDone = make(chan struct{})
	go s.checkpointLoop()
	return nil
}

// checkpointLoop copies the WAL into the database file every checkpointInterval with a
// passive checkpoint, which waits for no reader or writer. SQLite starts the WAL over
// from its beginning once a checkpoint has copied all of it.
func (s *SQLite) checkpointLoop() {
	defer close(s.checkpointsDone)
	ticker := time.NewTicker(checkpointInterval)
	defer ticker.Stop()
	for {
		select {
		case <-s.stopCheckpoints:
			return
		case <-ticker.C:
			// NOTE: an error is not reported: the next tick tries again, and Close
			// checkpoints the rest.
			s.checkpoints.Exec("PRAGMA wal_checkpoint(PASSIVE)")
		}
	}
}

// prepareDatabaseFile creates the parent directory (0700) and an empty database file
// (0600) when they are missing, because SQLite itself would create the file with
// mode 0644 minus the umask (SQLITE_DEFAULT_FILE_PERMISSIONS). An empty file is a
// valid, empty SQLite database.
func prepareDatabaseFile(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}

	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	switch {
	case err == nil:
		// The descriptor is closed before SQLite opens the file. Closing any
		// descriptor of a file drops every POSIX lock the process holds on it,
		// SQLite's included.
		return f.Close()
	case !errors.Is(err, os.ErrExist):
		return err
	}

	info, err := os.Stat(path)
	if err != nil {
		return err
	}
	if !info.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", path)
	}
	if info.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(path, 0o600); err != nil {
			return fmt.Errorf("database file is accessible by group or others (mode %04o) and chmod 600 failed: %w", info.Mode().Perm(), err)
		}
	}
	return nil
}

// writeParams returns the connection parameters of the write pool.
//
// synchronous=NORMAL in WAL mode: a commit appends to the WAL file without an
// fsync, and SQLite syncs the WAL only when it checkpoints it into the database
// file. Every committed transaction survives a crash, kill or restart of the
// certgate process, because the data is already in the operating system's page
// cache. A power loss or operating system crash can roll back the transactions
// committed since the last checkpoint, but the database stays consistent and is
// not corrupted. synchronous=FULL also survives that case, at the cost of one
// fsync per commit. These guarantees are those stated in the SQLite documentation
// of PRAGMA synchronous.
//
// NORMAL is used because FULL caps issuance at the fsync rate of the storage, and
// a process restart, the common case, loses nothing with either setting.
//
// NOTE: with NORMAL, after a power loss or operating system crash, certificates issued
// shortly before it can be missing from this database although the CA issued them, and
// nonces recorded then can be replayed. fullSync selects FULL for deployments that
// cannot accept this (database.synchronous in the configuration).
//
// Checkpoints run off the request path; see startCheckpoints.
func writeParams(fullSync bool) url.Values {
	p := commonParams()
	p.Set("_journal_mode", "WAL")
	p.Set("_synchronous", "NORMAL")
	if fullSync {
		p.Set("_synchronous", "FULL")
	}
	p.Set("_txlock", "immediate")
	return p
}

// readParams returns the connection parameters of the read pool. query_only makes
// an accidental write through the read pool fail instead of competing with the
// write connection for the lock. The journal mode is a property of the database
// file, which the write pool has already switched to WAL.
func readParams() url.Values {
	p := commonParams()
	p.Set("_query_only", "1")
	return p
}

func commonParams() url.Values {
	p := url.Values{}
	p.Set("_busy_timeout", fmt.Sprint(busyTimeout.Milliseconds()))
	// No table has a foreign key yet. Enforcement is on so that a later migration
	// can add one and have it enforced on every connection.
	p.Set("_foreign_keys", "1")
	return p
}

// databaseURI returns a "file:" URI for an absolute path. The URI form escapes
// characters such as '?' and '#' in the path, which the driver would otherwise
// read as the start of the parameters.
func databaseURI(path string, params url.Values) string {
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(path), RawQuery: params.Encode()}
	if u.Path != "" && u.Path[0] != '/' {
		// A Windows path such as C:/data needs a leading slash in a file URI.
		u.Path = "/" + u.Path
	}
	return u.String()
}

// checkWriteConn verifies that WAL mode took effect. When SQLite cannot change the
// journal mode, PRAGMA journal_mode returns the old mode instead of an error.
func (s *SQLite) checkWriteConn(ctx context.Context) error {
	var mode string
	if err := s.write.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return err
	}
	if mode != "wal" {
		return fmt.Errorf("journal_mode is %q, expected \"wal\": WAL needs a local file system with shared memory support, so move the database there", mode)
	}
	return nil
}

// Close closes both connection pools. The last connection to close checkpoints the
// WAL into the database file.
func (s *SQLite) Close() error {
	var errs []error
	if s.checkpoints != nil {
		s.stopOnce.Do(func() { close(s.stopCheckpoints) })
		<-s.checkpointsDone
		errs = append(errs, s.checkpoints.Close())
	}
	errs = append(errs, s.stmts.close())
	if s.read != nil {
		errs = append(errs, s.read.Close())
	}
	errs = append(errs, s.write.Close())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("store: close: %w", err)
	}
	return nil
}

// The statements of the request path. They are prepared once per connection, because
// preparing one costs about as much as running it.
const (
	createTransactionSQL = `
	INSERT INTO transactions (id, profile, request_type, requester, state, sender_nonce,
		cert_req_id, poll_reference, certificate, request, created_at, updated_at, expires_at)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
	ON CONFLICT (id) DO UPDATE SET
		profile = excluded.profile,
		request_type = excluded.request_type,
		requester = excluded.requester,
		state = excluded.state,
		sender_nonce = excluded.sender_nonce,
		cert_req_id = excluded.cert_req_id,
		poll_reference = excluded.poll_reference,
		certificate = excluded.certificate,
		request = excluded.request,
		created_at = excluded.created_at,
		updated_at = excluded.updated_at,
		expires_at = excluded.expires_at
	WHERE transactions.expires_at <= ?`

	transactionSQL = `
	SELECT id, profile, request_type, requester, state, sender_nonce, cert_req_id,
		poll_reference, certificate, request, created_at, updated_at, expires_at
	FROM transactions WHERE id = ? AND expires_at > ?`

	updateTransactionSQL = `
	UPDATE transactions SET profile = ?, request_type = ?, requester = ?, state = ?,
		sender_nonce = ?, cert_req_id = ?, poll_reference = ?, certificate = ?,
		request = ?, updated_at = ?, expires_at = ?
	WHERE id = ? AND expires_at > ?`

	recordNonceSQL = `
	INSERT INTO nonces (nonce, expires_at) VALUES (?, ?)
	ON CONFLICT (nonce) DO UPDATE SET expires_at = excluded.expires_at
	WHERE nonces.expires_at <= ?`

	putCertificateSQL = `
	INSERT INTO certificates (raw_issuer, serial, subject, not_before, not_after, der,
		profile, backend, transaction_id, status, revocation_reason, revoked_at, created_at)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
	ON CONFLICT (raw_issuer, serial) DO NOTHING`

	certificateSQL = `
	SELECT raw_issuer, serial, subject, not_before, not_after, der, profile, backend,
		transaction_id, status, revocation_reason, revoked_at, created_at
	FROM certificates WHERE raw_issuer = ? AND serial = ?`
)

// statements holds the prepared statements of the request path: the writes on the
// write pool and the reads on the read pool. database/sql prepares a statement again
// on each connection it runs on.
type statements struct {
	createTransaction *sql.Stmt
	updateTransaction *sql.Stmt
	recordNonce       *sql.Stmt
	putCertificate    *sql.Stmt
	transaction       *sql.Stmt
	certificate       *sql.Stmt
}

// prepare prepares every statement, or closes those prepared and returns the error.
func (st *statements) prepare(ctx context.Context, write, read *sql.DB) error {
	all := []struct {
		dst   **sql.Stmt
		db    *sql.DB
		query string
	}{
		{&st.createTransaction, write, createTransactionSQL},
		{&st.updateTransaction, write, updateTransactionSQL},
		{&st.recordNonce, write, recordNonceSQL},
		{&st.putCertificate, write, putCertificateSQL},
		{&st.transaction, read, transactionSQL},
		{&st.certificate, read, certificateSQL},
	}
	for _, s := range all {
		stmt, err := s.db.PrepareContext(ctx, s.query)
		if err != nil {
			st.close()
			return fmt.Errorf("preparing %q: %w", strings.Join(strings.Fields(s.query)[:3], " "), err)
		}
		*s.dst = stmt
	}
	return nil
}

// close closes the prepared statements.
func (st *statements) close() error {
	var errs []error
	for _, stmt := range []*sql.Stmt{st.createTransaction, st.updateTransaction, st.recordNonce,
		st.putCertificate, st.transaction, st.certificate} {
		if stmt != nil {
			errs = append(errs, stmt.Close())
		}
	}
	return errors.Join(errs...)
}

// CreateTransaction stores tx. A row with the same ID that has expired is replaced
// in the same statement, so two concurrent calls with one ID cannot both succeed.
// A zero CreatedAt or UpdatedAt is stored as the current time. tx is not modified.
func (s *SQLite) CreateTransaction(ctx context.Context, tx *Transaction) error {
	return s.createTransaction(ctx, s.stmts.createTransaction, tx)
}

func (s *SQLite) createTransaction(ctx context.Context, stmt *sql.Stmt, tx *Transaction) error {
	if err := validateTransaction(tx); err != nil {
		return fmt.Errorf("store: create transaction: %w", err)
	}
	now := s.now()
	row, err := transactionRow(tx, now)
	if err != nil {
		return fmt.Errorf("store: create transaction %x: %w", tx.ID, err)
	}
	nowText, err := formatTime(now)
	if err != nil {
		return fmt.Errorf("store: create transaction %x: %w", tx.ID, err)
	}

	res, err := stmt.ExecContext(ctx,
		tx.ID, tx.Profile, tx.RequestType, tx.Requester, string(tx.State), tx.SenderNonce,
		tx.CertReqID, tx.PollReference, tx.Certificate, tx.Request, row.createdAt, row.updatedAt, row.expiresAt,
		nowText)
	if err != nil {
		return fmt.Errorf("store: create transaction %x: %w", tx.ID, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("store: create transaction %x: %w", tx.ID, err)
	}
	if n == 0 {
		return fmt.Errorf("%w: transaction %x", ErrTransactionExists, tx.ID)
	}
	return nil
}

// OpenTransaction records nonce as RecordNonce does and stores tx as CreateTransaction
// does, in one write transaction: both are stored or neither is. An enrollment then
// commits twice in all instead of three times.
func (s *SQLite) OpenTransaction(ctx context.Context, tx *Transaction, nonce []byte, nonceExpiresAt time.Time) error {
	dbtx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: open transaction: %w", err)
	}
	defer dbtx.Rollback() //nolint:errcheck // returns sql.ErrTxDone after Commit

	if err := s.recordNonce(ctx, dbtx.StmtContext(ctx, s.stmts.recordNonce), nonce, nonceExpiresAt); err != nil {
		return err
	}
	if err := s.createTransaction(ctx, dbtx.StmtContext(ctx, s.stmts.createTransaction), tx); err != nil {
		return err
	}
	if err := dbtx.Commit(); err != nil {
		return fmt.Errorf("store: open transaction: %w", err)
	}
	return nil
}

// Transaction returns the transaction with this ID, or ErrNotFound when there is
// none or it has expired.
func (s *SQLite) Transaction(ctx context.Context, id []byte) (*Transaction, error) {
	nowText, err := formatTime(s.now())
	if err != nil {
		return nil, fmt.Errorf("store: transaction %x: %w", id, err)
	}

	var (
		tx                              Transaction
		state                           string
		createdAt, updatedAt, expiresAt string
	)
	err = s.stmts.transaction.QueryRowContext(ctx, id, nowText).
		Scan(&tx.ID, &tx.Profile, &tx.RequestType, &tx.Requester, &state, &tx.SenderNonce,
			&tx.CertReqID, &tx.PollReference, &tx.Certificate, &tx.Request, &createdAt, &updatedAt, &expiresAt)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w: transaction %x", ErrNotFound, id)
	}
	if err != nil {
		return nil, fmt.Errorf("store: transaction %x: %w", id, err)
	}

	tx.State = TransactionState(state)
	if err := parseTimes(
		timeColumn{"created_at", createdAt, &tx.CreatedAt},
		timeColumn{"updated_at", updatedAt, &tx.UpdatedAt},
		timeColumn{"expires_at", expiresAt, &tx.ExpiresAt},
	); err != nil {
		return nil, fmt.Errorf("store: transaction %x: %w", id, err)
	}
	return &tx, nil
}

// UpdateTransaction replaces every field of the stored transaction with the same ID
// except CreatedAt, which keeps its stored value. A zero UpdatedAt is stored as the
// current time. An expired transaction counts as missing, so updating it returns
// ErrNotFound instead of bringing it back.
//
// NOTE: the last writer wins. Two concurrent requests of one CMP transaction can
// both read it and both update it, and the first update is then lost.
func (s *SQLite) UpdateTransaction(ctx context.Context, tx *Transaction) error {
	return s.updateTransaction(ctx, s.stmts.updateTransaction, tx)
}

// updateTransaction runs UpdateTransaction with stmt, which is the prepared
// updateTransactionSQL of the write pool or of a write transaction.
func (s *SQLite) updateTransaction(ctx context.Context, stmt *sql.Stmt, tx *Transaction) error {
	if err := validateTransaction(tx); err != nil {
		return fmt.Errorf("store: update transaction: %w", err)
	}
	now := s.now()
	row, err := transactionRow(tx, now)
	if err != nil {
		return fmt.Errorf("store: update transaction %x: %w", tx.ID, err)
	}
	nowText, err := formatTime(now)
	if err != nil {
		return fmt.Errorf("store: update transaction %x: %w", tx.ID, err)
	}

	res, err := stmt.ExecContext(ctx,
		tx.Profile, tx.RequestType, tx.Requester, string(tx.State), tx.SenderNonce,
		tx.CertReqID, tx.PollReference, tx.Certificate, tx.Request, row.updatedAt, row.expiresAt,
		tx.ID, nowText)
	if err != nil {
		return fmt.Errorf("store: update transaction %x: %w", tx.ID, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("store: update transaction %x: %w", tx.ID, err)
	}
	if n == 0 {
		return fmt.Errorf("%w: transaction %x", ErrNotFound, tx.ID)
	}
	return nil
}

// RecordNonce stores nonce until expiresAt, or returns ErrNonceReplayed when it is
// stored and has not expired. An expired row with the same nonce is replaced in the
// same statement.
func (s *SQLite) RecordNonce(ctx context.Context, nonce []byte, expiresAt time.Time) error {
	return s.recordNonce(ctx, s.stmts.recordNonce, nonce, expiresAt)
}

func (s *SQLite) recordNonce(ctx context.Context, stmt *sql.Stmt, nonce []byte, expiresAt time.Time) error {
	if len(nonce) == 0 {
		return errors.New("store: record nonce: nonce is empty")
	}
	if expiresAt.IsZero() {
		return errors.New("store: record nonce: expiry time is not set")
	}
	expiresText, err := formatTime(expiresAt)
	if err != nil {
		return fmt.Errorf("store: record nonce: expiry time: %w", err)
	}
	nowText, err := formatTime(s.now())
	if err != nil {
		return fmt.Errorf("store: record nonce: %w", err)
	}

	res, err := stmt.ExecContext(ctx,
		nonce, expiresText, nowText)
	if err != nil {
		return fmt.Errorf("store: record nonce: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("store: record nonce: %w", err)
	}
	if n == 0 {
		return fmt.Errorf("%w: %x", ErrNonceReplayed, nonce)
	}
	return nil
}

// PutCertificate stores cert. It returns an error when a certificate with the same
// issuer and serial number is already stored, because a CA must never issue the
// same serial number twice. A zero CreatedAt is stored as the current time, and
// RevokedAt is stored only for a revoked or on-hold certificate.
//
// NOTE: store.go defines no sentinel error for a duplicate certificate, so callers
// cannot tell that case apart from other failures with errors.Is.
func (s *SQLite) PutCertificate(ctx context.Context, cert *Certificate) error {
	return s.putCertificate(ctx, s.stmts.putCertificate, cert)
}

// putCertificate runs PutCertificate with stmt, which is the prepared
// putCertificateSQL of the write pool or of a write transaction.
func (s *SQLite) putCertificate(ctx context.Context, stmt *sql.Stmt, cert *Certificate) error {
	if err := validateCertificate(cert); err != nil {
		return fmt.Errorf("store: put certificate: %w", err)
	}
	row, err := certificateRow(cert, s.now())
	if err != nil {
		return fmt.Errorf("store: put certificate %s: %w", formatSerial(cert.SerialNumber), err)
	}

	res, err := stmt.ExecContext(ctx,
		cert.RawIssuer, row.serial, cert.Subject, row.notBefore, row.notAfter, cert.DER,
		cert.Profile, cert.Backend, cert.TransactionID, string(cert.Status), row.reason,
		row.revokedAt, row.createdAt)
	if err != nil {
		return fmt.Errorf("store: put certificate %s: %w", formatSerial(cert.SerialNumber), err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("store: put certificate %s: %w", formatSerial(cert.SerialNumber), err)
	}
	if n == 0 {
		return fmt.Errorf("store: put certificate %s: a certificate with this issuer and serial number is already stored",
			formatSerial(cert.SerialNumber))
	}
	return nil
}

// RecordIssued stores cert as PutCertificate does and updates tx as UpdateTransaction
// does, in one write transaction: both are stored or neither is. One commit instead of
// two also halves the time the enrollment holds the single write connection.
func (s *SQLite) RecordIssued(ctx context.Context, cert *Certificate, tx *Transaction) error {
	dbtx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: record issued certificate: %w", err)
	}
	defer dbtx.Rollback() //nolint:errcheck // returns sql.ErrTxDone after Commit

	if err := s.putCertificate(ctx, dbtx.StmtContext(ctx, s.stmts.putCertificate), cert); err != nil {
		return err
	}
	if err := s.updateTransaction(ctx, dbtx.StmtContext(ctx, s.stmts.updateTransaction), tx); err != nil {
		return err
	}
	if err := dbtx.Commit(); err != nil {
		return fmt.Errorf("store: record issued certificate: %w", err)
	}
	return nil
}

// Certificate returns the certificate with this issuer and serial number, or
// ErrNotFound. rawIssuer must be byte-for-byte the DER Name stored with
// PutCertificate.
func (s *SQLite) Certificate(ctx context.Context, rawIssuer []byte, serial *big.Int) (*Certificate, error) {
	if serial == nil {
		return nil, errors.New("store: certificate: serial number is nil")
	}
	serialBytes, err := encodeSerial(serial)
	if err != nil {
		return nil, fmt.Errorf("store: certificate %s: %w", formatSerial(serial), err)
	}

	var (
		cert                           Certificate
		serialColumn                   []byte
		status                         string
		notBefore, notAfter, createdAt string
		revokedAt                      sql.NullString
	)
	err = s.stmts.certificate.QueryRowContext(ctx, rawIssuer, serialBytes).
		Scan(&cert.RawIssuer, &serialColumn, &cert.Subject, &notBefore, &notAfter, &cert.DER,
			&cert.Profile, &cert.Backend, &cert.TransactionID, &status, &cert.RevocationReason,
			&revokedAt, &createdAt)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w: certificate %s", ErrNotFound, formatSerial(serial))
	}
	if err != nil {
		return nil, fmt.Errorf("store: certificate %s: %w", formatSerial(serial), err)
	}

	cert.Status = CertificateStatus(status)
	if cert.SerialNumber, err = decodeSerial(serialColumn); err != nil {
		return nil, fmt.Errorf("store: certificate %s: %w", formatSerial(serial), err)
	}
	columns := []timeColumn{
		{"not_before", notBefore, &cert.NotBefore},
		{"not_after", notAfter, &cert.NotAfter},
		{"created_at", createdAt, &cert.CreatedAt},
	}
	if revokedAt.Valid {
		columns = append(columns, timeColumn{"revoked_at", revokedAt.String, &cert.RevokedAt})
	}
	if err := parseTimes(columns...); err != nil {
		return nil, fmt.Errorf("store: certificate %s: %w", formatSerial(serial), err)
	}
	return &cert, nil
}

// SetCertificateStatus changes the status of a stored certificate, or returns
// ErrNotFound. For CertRevoked and CertOnHold, reason must be a CRLReason code from
// RFC 5280 section 5.3.1 and at must be set. For the other states the stored reason
// and revocation time are cleared, which is what removing a certificate from hold
// needs.
func (s *SQLite) SetCertificateStatus(ctx context.Context, rawIssuer []byte, serial *big.Int, status CertificateStatus, reason int, at time.Time) error {
	if serial == nil {
		return errors.New("store: set certificate status: serial number is nil")
	}
	serialBytes, err := encodeSerial(serial)
	if err != nil {
		return fmt.Errorf("store: set certificate status %s: %w", formatSerial(serial), err)
	}
	if err := validateStatus(status, reason, at); err != nil {
		return fmt.Errorf("store: set certificate status %s: %w", formatSerial(serial), err)
	}

	var revokedAt any // NULL unless revoked or on hold
	if isRevoked(status) {
		if revokedAt, err = formatTime(at); err != nil {
			return fmt.Errorf("store: set certificate status %s: revocation time: %w", formatSerial(serial), err)
		}
	} else {
		reason = 0
	}

	res, err := s.write.ExecContext(ctx, `
		UPDATE certificates SET status = ?, revocation_reason = ?, revoked_at = ?
		WHERE raw_issuer = ? AND serial = ?`,
		string(status), reason, revokedAt, rawIssuer, serialBytes)
	if err != nil {
		return fmt.Errorf("store: set certificate status %s: %w", formatSerial(serial), err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("store: set certificate status %s: %w", formatSerial(serial), err)
	}
	if n == 0 {
		return fmt.Errorf("%w: certificate %s", ErrNotFound, formatSerial(serial))
	}
	return nil
}

// DeleteExpired removes the transactions and nonces whose expiry time is not after
// now, in one write transaction, and returns the number of rows removed.
// Certificates are kept.
func (s *SQLite) DeleteExpired(ctx context.Context, now time.Time) (int64, error) {
	nowText, err := formatTime(now)
	if err != nil {
		return 0, fmt.Errorf("store: delete expired: %w", err)
	}

	dbtx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("store: delete expired: %w", err)
	}
	defer dbtx.Rollback() //nolint:errcheck // returns sql.ErrTxDone after Commit

	var total int64
	for _, query := range []string{
		"DELETE FROM transactions WHERE expires_at <= ?",
		"DELETE FROM nonces WHERE expires_at <= ?",
		"DELETE FROM challenges WHERE expires_at <= ?",
		"DELETE FROM pending_requests WHERE expires_at <= ?",
	} {
		res, err := dbtx.ExecContext(ctx, query, nowText)
		if err != nil {
			return 0, fmt.Errorf("store: delete expired: %w", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return 0, fmt.Errorf("store: delete expired: %w", err)
		}
		total += n
	}
	if err := dbtx.Commit(); err != nil {
		return 0, fmt.Errorf("store: delete expired: %w", err)
	}
	return total, nil
}
