package store

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// testClock is a settable clock for the expiry logic.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

var testStart = time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.UTC)

// openTestStore opens a store in a new temporary directory with a test clock.
func openTestStore(t testing.TB) (*SQLite, *testClock, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "data", "certgate.db")
	s, err := OpenSQLite(context.Background(), path)
	if err != nil {
		t.Fatalf("OpenSQLite: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	clock := &testClock{now: testStart}
	s.now = clock.Now
	return s, clock, path
}

func newTransaction(id string, clock *testClock) *Transaction {
	now := clock.Now()
	return &Transaction{
		ID:            []byte(id),
		Profile:       "default",
		RequestType:   "ir",
		Requester:     "mac:default",
		State:         StateWaitConfirm,
		SenderNonce:   []byte("nonce-" + id),
		CertReqID:     0,
		PollReference: "",
		Certificate:   []byte{0x30, 0x82, 0x01, 0x00},
		CreatedAt:     now,
		UpdatedAt:     now,
		ExpiresAt:     now.Add(15 * time.Minute),
	}
}

var testIssuer = []byte{0x30, 0x11, 0x31, 0x0f, 0x30, 0x0d, 0x06, 0x03, 0x55, 0x04, 0x03, 0x0c, 0x06, 'T', 'e', 's', 't', 'C', 'A'}

func newCertificate(serial *big.Int) *Certificate {
	return &Certificate{
		SerialNumber:  serial,
		RawIssuer:     testIssuer,
		Subject:       "CN=device-1,O=Example",
		NotBefore:     time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC),
		NotAfter:      time.Date(2027, 3, 1, 0, 0, 0, 0, time.UTC),
		DER:           append([]byte{0x30, 0x82}, serial.Bytes()...),
		Profile:       "default",
		Backend:       "softca",
		TransactionID: []byte("tx-1"),
		Status:        CertIssued,
		CreatedAt:     testStart,
	}
}

func checkTransactionEqual(t *testing.T, got, want *Transaction) {
	t.Helper()
	if !bytes.Equal(got.ID, want.ID) {
		t.Errorf("ID = %x, want %x", got.ID, want.ID)
	}
	if got.Profile != want.Profile {
		t.Errorf("Profile = %q, want %q", got.Profile, want.Profile)
	}
	if got.RequestType != want.RequestType {
		t.Errorf("RequestType = %q, want %q", got.RequestType, want.RequestType)
	}
	if got.Requester != want.Requester {
		t.Errorf("Requester = %q, want %q", got.Requester, want.Requester)
	}
	if got.State != want.State {
		t.Errorf("State = %q, want %q", got.State, want.State)
	}
	if !bytes.Equal(got.SenderNonce, want.SenderNonce) {
		t.Errorf("SenderNonce = %x, want %x", got.SenderNonce, want.SenderNonce)
	}
	if got.CertReqID != want.CertReqID {
		t.Errorf("CertReqID = %d, want %d", got.CertReqID, want.CertReqID)
	}
	if got.PollReference != want.PollReference {
		t.Errorf("PollReference = %q, want %q", got.PollReference, want.PollReference)
	}
	if !bytes.Equal(got.Certificate, want.Certificate) {
		t.Errorf("Certificate = %x, want %x", got.Certificate, want.Certificate)
	}
	if !got.CreatedAt.Equal(want.CreatedAt) {
		t.Errorf("CreatedAt = %v, want %v", got.CreatedAt, want.CreatedAt)
	}
	if !got.UpdatedAt.Equal(want.UpdatedAt) {
		t.Errorf("UpdatedAt = %v, want %v", got.UpdatedAt, want.UpdatedAt)
	}
	if !got.ExpiresAt.Equal(want.ExpiresAt) {
		t.Errorf("ExpiresAt = %v, want %v", got.ExpiresAt, want.ExpiresAt)
	}
}

func checkCertificateEqual(t *testing.T, got, want *Certificate) {
	t.Helper()
	if got.SerialNumber.Cmp(want.SerialNumber) != 0 {
		t.Errorf("SerialNumber = %X, want %X", got.SerialNumber, want.SerialNumber)
	}
	if !bytes.Equal(got.RawIssuer, want.RawIssuer) {
		t.Errorf("RawIssuer = %x, want %x", got.RawIssuer, want.RawIssuer)
	}
	if got.Subject != want.Subject {
		t.Errorf("Subject = %q, want %q", got.Subject, want.Subject)
	}
	if !got.NotBefore.Equal(want.NotBefore) {
		t.Errorf("NotBefore = %v, want %v", got.NotBefore, want.NotBefore)
	}
	if !got.NotAfter.Equal(want.NotAfter) {
		t.Errorf("NotAfter = %v, want %v", got.NotAfter, want.NotAfter)
	}
	if !bytes.Equal(got.DER, want.DER) {
		t.Errorf("DER = %x, want %x", got.DER, want.DER)
	}
	if got.Profile != want.Profile {
		t.Errorf("Profile = %q, want %q", got.Profile, want.Profile)
	}
	if got.Backend != want.Backend {
		t.Errorf("Backend = %q, want %q", got.Backend, want.Backend)
	}
	if !bytes.Equal(got.TransactionID, want.TransactionID) {
		t.Errorf("TransactionID = %x, want %x", got.TransactionID, want.TransactionID)
	}
	if got.Status != want.Status {
		t.Errorf("Status = %q, want %q", got.Status, want.Status)
	}
	if got.RevocationReason != want.RevocationReason {
		t.Errorf("RevocationReason = %d, want %d", got.RevocationReason, want.RevocationReason)
	}
	if !got.RevokedAt.Equal(want.RevokedAt) {
		t.Errorf("RevokedAt = %v, want %v", got.RevokedAt, want.RevokedAt)
	}
	if !got.CreatedAt.Equal(want.CreatedAt) {
		t.Errorf("CreatedAt = %v, want %v", got.CreatedAt, want.CreatedAt)
	}
}

func TestOpenCreatesPrivateFiles(t *testing.T) {
	s, clock, path := openTestStore(t)
	// A write makes SQLite create the -wal and -shm files.
	if err := s.CreateTransaction(context.Background(), newTransaction("t1", clock)); err != nil {
		t.Fatalf("CreateTransaction: %v", err)
	}

	dirInfo, err := os.Stat(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if got := dirInfo.Mode().Perm(); got != 0o700 {
		t.Errorf("directory mode = %04o, want 0700", got)
	}
	for _, name := range []string{path, path + "-wal", path + "-shm"} {
		info, err := os.Stat(name)
		if err != nil {
			t.Errorf("stat %s: %v", filepath.Base(name), err)
			continue
		}
		if got := info.Mode().Perm(); got != 0o600 {
			t.Errorf("%s mode = %04o, want 0600", filepath.Base(name), got)
		}
	}
}

func TestOpenTightensFileMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "certgate.db")
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o644); err != nil { // WriteFile is subject to the umask
		t.Fatal(err)
	}

	s, err := OpenSQLite(context.Background(), path)
	if err != nil {
		t.Fatalf("OpenSQLite: %v", err)
	}
	defer s.Close()

	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := info.Mode().Perm(); got != 0o600 {
		t.Errorf("mode = %04o, want 0600", got)
	}
}

func TestOpenRejectsDirectory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "certgate.db")
	if err := os.Mkdir(path, 0o700); err != nil {
		t.Fatal(err)
	}
	s, err := OpenSQLite(context.Background(), path)
	if err == nil {
		s.Close()
		t.Fatal("OpenSQLite on a directory succeeded")
	}
	if !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("error = %q, want it to say the path is not a regular file", err)
	}
}

func TestOpenRejectsNonDatabaseFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "certgate.db")
	if err := os.WriteFile(path, []byte(strings.Repeat("not a database\n", 100)), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := OpenSQLite(context.Background(), path)
	if err == nil {
		s.Close()
		t.Fatal("OpenSQLite on a text file succeeded")
	}
	if !strings.HasPrefix(err.Error(), "store: open ") {
		t.Errorf("error = %q, want prefix %q", err, "store: open ")
	}
}

func TestOpenPathWithURICharacters(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a?b#c%20d")
	path := filepath.Join(dir, "certgate.db")
	s, err := OpenSQLite(context.Background(), path)
	if err != nil {
		t.Fatalf("OpenSQLite: %v", err)
	}
	defer s.Close()

	if _, err := os.Stat(path); err != nil {
		t.Errorf("database file not at the requested path: %v", err)
	}
	entries, err := os.ReadDir(filepath.Dir(dir))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("parent directory contains %d entries, want only %q", len(entries), filepath.Base(dir))
	}
}

func TestOpenPragmas(t *testing.T) {
	s, _, _ := openTestStore(t)
	ctx := context.Background()

	checks := []struct {
		db     *sql.DB
		pragma string
		want   string
	}{
		{s.write, "journal_mode", "wal"},
		{s.write, "synchronous", "1"}, // NORMAL
		{s.write, "foreign_keys", "1"},
		{s.write, "busy_timeout", "10000"},
		{s.write, "query_only", "0"},
		{s.read, "journal_mode", "wal"},
		{s.read, "foreign_keys", "1"},
		{s.read, "busy_timeout", "10000"},
		{s.read, "query_only", "1"},
	}
	for _, c := range checks {
		pool := "write"
		if c.db == s.read {
			pool = "read"
		}
		var got string
		if err := c.db.QueryRowContext(ctx, "PRAGMA "+c.pragma).Scan(&got); err != nil {
			t.Errorf("%s pool: PRAGMA %s: %v", pool, c.pragma, err)
			continue
		}
		if got != c.want {
			t.Errorf("%s pool: PRAGMA %s = %s, want %s", pool, c.pragma, got, c.want)
		}
	}
}

func TestReadPoolRejectsWrites(t *testing.T) {
	s, _, _ := openTestStore(t)
	_, err := s.read.ExecContext(context.Background(), "DELETE FROM nonces")
	if err == nil {
		t.Fatal("write through the read pool succeeded")
	}
}

func TestOpenRecordsSchemaVersion(t *testing.T) {
	s, _, _ := openTestStore(t)
	var version int
	if err := s.read.QueryRowContext(context.Background(), "SELECT version FROM schema_version").Scan(&version); err != nil {
		t.Fatal(err)
	}
	if version != len(migrations) {
		t.Errorf("schema version = %d, want %d", version, len(migrations))
	}
}

func TestOpenRejectsNewerSchema(t *testing.T) {
	s, _, path := openTestStore(t)
	if _, err := s.write.ExecContext(context.Background(), "UPDATE schema_version SET version = 99"); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s2, err := OpenSQLite(context.Background(), path)
	if err == nil {
		s2.Close()
		t.Fatal("OpenSQLite accepted a database with schema version 99")
	}
	if !strings.Contains(err.Error(), "schema version is 99") {
		t.Errorf("error = %q, want it to name schema version 99", err)
	}
}

func TestCloseThenReopenKeepsData(t *testing.T) {
	ctx := context.Background()
	s, clock, path := openTestStore(t)

	tx := newTransaction("persisted", clock)
	if err := s.CreateTransaction(ctx, tx); err != nil {
		t.Fatalf("CreateTransaction: %v", err)
	}
	nonce := []byte("persisted-nonce")
	if err := s.RecordNonce(ctx, nonce, clock.Now().Add(time.Hour)); err != nil {
		t.Fatalf("RecordNonce: %v", err)
	}
	cert := newCertificate(big.NewInt(4242))
	if err := s.PutCertificate(ctx, cert); err != nil {
		t.Fatalf("PutCertificate: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	s2, err := OpenSQLite(ctx, path)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s2.Close()
	s2.now = clock.Now

	gotTx, err := s2.Transaction(ctx, tx.ID)
	if err != nil {
		t.Fatalf("Transaction after reopen: %v", err)
	}
	checkTransactionEqual(t, gotTx, tx)

	if err := s2.RecordNonce(ctx, nonce, clock.Now().Add(time.Hour)); !errors.Is(err, ErrNonceReplayed) {
		t.Errorf("RecordNonce after reopen: err = %v, want ErrNonceReplayed", err)
	}

	gotCert, err := s2.Certificate(ctx, cert.RawIssuer, cert.SerialNumber)
	if err != nil {
		t.Fatalf("Certificate after reopen: %v", err)
	}
	checkCertificateEqual(t, gotCert, cert)
}

func TestCreateTransactionRoundTrip(t *testing.T) {
	ctx := context.Background()
	s, clock, _ := openTestStore(t)

	tx := newTransaction("round-trip", clock)
	tx.State = StatePending
	tx.CertReqID = -1
	tx.PollReference = "poll-7"
	if err := s.CreateTransaction(ctx, tx); err != nil {
		t.Fatalf("CreateTransaction: %v", err)
	}
	got, err := s.Transaction(ctx, tx.ID)
	if err != nil {
		t.Fatalf("Transaction: %v", err)
	}
	checkTransactionEqual(t, got, tx)
	if got.ExpiresAt.Location() != time.UTC {
		t.Errorf("ExpiresAt location = %v, want UTC", got.ExpiresAt.Location())
	}
}

func TestCreateTransactionFillsZeroTimes(t *testing.T) {
	ctx := context.Background()
	s, clock, _ := openTestStore(t)

	tx := newTransaction("zero-times", clock)
	tx.CreatedAt = time.Time{}
	tx.UpdatedAt = time.Time{}
	if err := s.CreateTransaction(ctx, tx); err != nil {
		t.Fatalf("CreateTransaction: %v", err)
	}
	if !tx.CreatedAt.IsZero() {
		t.Errorf("CreateTransaction modified tx.CreatedAt to %v", tx.CreatedAt)
	}

	got, err := s.Transaction(ctx, tx.ID)
	if err != nil {
		t.Fatalf("Transaction: %v", err)
	}
	if !got.CreatedAt.Equal(clock.Now()) {
		t.Errorf("CreatedAt = %v, want the clock's %v", got.CreatedAt, clock.Now())
	}
	if !got.UpdatedAt.Equal(clock.Now()) {
		t.Errorf("UpdatedAt = %v, want the clock's %v", got.UpdatedAt, clock.Now())
	}
}

func TestCreateTransactionExisting(t *testing.T) {
	ctx := context.Background()
	s, clock, _ := openTestStore(t)

	first := newTransaction("dup", clock)
	if err := s.CreateTransaction(ctx, first); err != nil {
		t.Fatalf("first CreateTransaction: %v", err)
	}
	second := newTransaction("dup", clock)
	second.Profile = "other"
	err := s.CreateTransaction(ctx, second)
	if !errors.Is(err, ErrTransactionExists) {
		t.Fatalf("second CreateTransaction: err = %v, want ErrTransactionExists", err)
	}
	if !strings.Contains(err.Error(), fmt.Sprintf("%x", first.ID)) {
		t.Errorf("error = %q, want it to name the transaction ID", err)
	}

	got, err := s.Transaction(ctx, first.ID)
	if err != nil {
		t.Fatalf("Transaction: %v", err)
	}
	if got.Profile != "default" {
		t.Errorf("Profile = %q after rejected create, want the first transaction's %q", got.Profile, "default")
	}
}

func TestCreateTransactionReusesExpiredID(t *testing.T) {
	ctx := context.Background()
	s, clock, _ := openTestStore(t)

	old := newTransaction("reuse", clock)
	old.ExpiresAt = clock.Now().Add(time.Minute)
	if err := s.CreateTransaction(ctx, old); err != nil {
		t.Fatalf("CreateTransaction: %v", err)
	}
	clock.Advance(2 * time.Minute)

	if _, err := s.Transaction(ctx, old.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Transaction of expired row: err = %v, want ErrNotFound", err)
	}

	fresh := newTransaction("reuse", clock)
	fresh.Profile = "second"
	fresh.State = StatePending
	if err := s.CreateTransaction(ctx, fresh); err != nil {
		t.Fatalf("CreateTransaction over expired row: %v", err)
	}
	got, err := s.Transaction(ctx, fresh.ID)
	if err != nil {
		t.Fatalf("Transaction: %v", err)
	}
	checkTransactionEqual(t, got, fresh)
}

func TestTransactionExpiresAtBoundary(t *testing.T) {
	ctx := context.Background()
	s, clock, _ := openTestStore(t)

	tx := newTransaction("boundary", clock)
	tx.ExpiresAt = clock.Now().Add(time.Second)
	if err := s.CreateTransaction(ctx, tx); err != nil {
		t.Fatalf("CreateTransaction: %v", err)
	}

	clock.Advance(time.Second - time.Nanosecond)
	if _, err := s.Transaction(ctx, tx.ID); err != nil {
		t.Errorf("Transaction 1ns before expiry: %v", err)
	}
	clock.Advance(time.Nanosecond)
	if _, err := s.Transaction(ctx, tx.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("Transaction at expiry: err = %v, want ErrNotFound", err)
	}
}

func TestCreateTransactionConcurrentSameID(t *testing.T) {
	ctx := context.Background()
	s, clock, _ := openTestStore(t)

	const goroutines = 64
	var (
		wg        sync.WaitGroup
		successes atomic.Int32
		exists    atomic.Int32
		start     = make(chan struct{})
		errs      = make(chan error, goroutines)
	)
	for i := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tx := newTransaction("contended", clock)
			tx.Requester = fmt.Sprintf("goroutine-%d", i)
			<-start
			err := s.CreateTransaction(ctx, tx)
			switch {
			case err == nil:
				successes.Add(1)
			case errors.Is(err, ErrTransactionExists):
				exists.Add(1)
			default:
				errs <- err
			}
		}()
	}
	close(start)
	wg.Wait()
	close(errs)

	for err := range errs {
		t.Errorf("unexpected error: %v", err)
	}
	if got := successes.Load(); got != 1 {
		t.Errorf("successful creates = %d, want 1", got)
	}
	if got := exists.Load(); got != goroutines-1 {
		t.Errorf("ErrTransactionExists results = %d, want %d", got, goroutines-1)
	}
}

func TestTransactionNotFound(t *testing.T) {
	s, _, _ := openTestStore(t)
	_, err := s.Transaction(context.Background(), []byte{0x01, 0x02})
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("err = %v, want ErrNotFound", err)
	}
	if want := "store: not found: transaction 0102"; err.Error() != want {
		t.Errorf("error = %q, want %q", err, want)
	}
}

func TestUpdateTransaction(t *testing.T) {
	ctx := context.Background()
	s, clock, _ := openTestStore(t)

	tx := newTransaction("update", clock)
	tx.State = StatePending
	tx.PollReference = "poll-1"
	if err := s.CreateTransaction(ctx, tx); err != nil {
		t.Fatalf("CreateTransaction: %v", err)
	}

	clock.Advance(time.Minute)
	changed := *tx
	changed.State = StateDone
	changed.PollReference = ""
	changed.SenderNonce = []byte("nonce-2")
	changed.CertReqID = 3
	changed.Certificate = nil
	changed.CreatedAt = clock.Now() // ignored: creation time is kept
	changed.UpdatedAt = clock.Now()
	changed.ExpiresAt = clock.Now().Add(time.Hour)
	if err := s.UpdateTransaction(ctx, &changed); err != nil {
		t.Fatalf("UpdateTransaction: %v", err)
	}

	got, err := s.Transaction(ctx, tx.ID)
	if err != nil {
		t.Fatalf("Transaction: %v", err)
	}
	want := changed
	want.CreatedAt = tx.CreatedAt
	checkTransactionEqual(t, got, &want)
}

func TestUpdateTransactionNotFound(t *testing.T) {
	ctx := context.Background()
	s, clock, _ := openTestStore(t)

	if err := s.UpdateTransaction(ctx, newTransaction("missing", clock)); !errors.Is(err, ErrNotFound) {
		t.Errorf("update of missing transaction: err = %v, want ErrNotFound", err)
	}

	tx := newTransaction("expired", clock)
	tx.ExpiresAt = clock.Now().Add(time.Minute)
	if err := s.CreateTransaction(ctx, tx); err != nil {
		t.Fatalf("CreateTransaction: %v", err)
	}
	clock.Advance(time.Hour)
	revived := newTransaction("expired", clock)
	if err := s.UpdateTransaction(ctx, revived); !errors.Is(err, ErrNotFound) {
		t.Errorf("update of expired transaction: err = %v, want ErrNotFound", err)
	}
	if _, err := s.Transaction(ctx, tx.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("expired transaction is visible after a rejected update: err = %v", err)
	}
}

func TestTransactionInvalidInput(t *testing.T) {
	ctx := context.Background()
	s, clock, _ := openTestStore(t)

	emptyID := newTransaction("", clock)
	badState := newTransaction("bad-state", clock)
	badState.State = "waiting"
	noExpiry := newTransaction("no-expiry", clock)
	noExpiry.ExpiresAt = time.Time{}
	farExpiry := newTransaction("far-expiry", clock)
	farExpiry.ExpiresAt = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)

	cases := []struct {
		name string
		tx   *Transaction
		want string
	}{
		{"nil", nil, "transaction is nil"},
		{"empty ID", emptyID, "transaction ID is empty"},
		{"unknown state", badState, `unknown state "waiting"`},
		{"zero expiry", noExpiry, "expiry time is not set"},
		{"year 10000", farExpiry, "outside the years 0000 to 9999"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for op, call := range map[string]func(context.Context, *Transaction) error{
				"create": s.CreateTransaction,
				"update": s.UpdateTransaction,
			} {
				err := call(ctx, c.tx)
				if err == nil {
					t.Errorf("%s succeeded", op)
					continue
				}
				if !strings.Contains(err.Error(), c.want) {
					t.Errorf("%s: error = %q, want it to contain %q", op, err, c.want)
				}
				if errors.Is(err, ErrNotFound) || errors.Is(err, ErrTransactionExists) {
					t.Errorf("%s: invalid input reported as a sentinel: %v", op, err)
				}
			}
		})
	}
}

func TestRecordNonce(t *testing.T) {
	ctx := context.Background()
	s, clock, _ := openTestStore(t)
	nonce := []byte{0xde, 0xad, 0xbe, 0xef}

	if err := s.RecordNonce(ctx, nonce, clock.Now().Add(time.Minute)); err != nil {
		t.Fatalf("first RecordNonce: %v", err)
	}
	err := s.RecordNonce(ctx, nonce, clock.Now().Add(time.Minute))
	if !errors.Is(err, ErrNonceReplayed) {
		t.Fatalf("replayed RecordNonce: err = %v, want ErrNonceReplayed", err)
	}
	if want := "store: nonce already seen: deadbeef"; err.Error() != want {
		t.Errorf("error = %q, want %q", err, want)
	}

	if err := s.RecordNonce(ctx, []byte{0xde, 0xad, 0xbe, 0xee}, clock.Now().Add(time.Minute)); err != nil {
		t.Errorf("RecordNonce of a different nonce: %v", err)
	}

	clock.Advance(time.Minute)
	if err := s.RecordNonce(ctx, nonce, clock.Now().Add(time.Minute)); err != nil {
		t.Errorf("RecordNonce after expiry: %v", err)
	}
	if err := s.RecordNonce(ctx, nonce, clock.Now().Add(time.Minute)); !errors.Is(err, ErrNonceReplayed) {
		t.Errorf("replay of the re-recorded nonce: err = %v, want ErrNonceReplayed", err)
	}
}

func TestRecordNonceInvalidInput(t *testing.T) {
	ctx := context.Background()
	s, clock, _ := openTestStore(t)

	if err := s.RecordNonce(ctx, nil, clock.Now().Add(time.Minute)); err == nil || !strings.Contains(err.Error(), "nonce is empty") {
		t.Errorf("empty nonce: err = %v, want a nonce-is-empty error", err)
	}
	if err := s.RecordNonce(ctx, []byte("n"), time.Time{}); err == nil || !strings.Contains(err.Error(), "expiry time is not set") {
		t.Errorf("zero expiry: err = %v, want an expiry-not-set error", err)
	}
}

func TestCertificateSerialRoundTrip(t *testing.T) {
	ctx := context.Background()
	s, _, _ := openTestStore(t)

	max160 := new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 160), big.NewInt(1))
	top160 := new(big.Int).SetBit(big.NewInt(1), 159, 1)
	serials := []*big.Int{
		big.NewInt(0),
		big.NewInt(1),
		big.NewInt(0x7f),
		big.NewInt(0x80), // needs a leading zero byte in DER
		big.NewInt(0xff),
		big.NewInt(0x100),
		big.NewInt(-1), // negative serials are non-conforming but exist
		big.NewInt(-128),
		big.NewInt(-129),
		top160,
		max160,
		new(big.Int).Lsh(big.NewInt(1), 200), // longer than RFC 5280 allows
	}
	for _, serial := range serials {
		if err := s.PutCertificate(ctx, newCertificate(serial)); err != nil {
			t.Fatalf("PutCertificate(%X): %v", serial, err)
		}
	}
	for _, serial := range serials {
		got, err := s.Certificate(ctx, testIssuer, new(big.Int).Set(serial))
		if err != nil {
			t.Errorf("Certificate(%X): %v", serial, err)
			continue
		}
		checkCertificateEqual(t, got, newCertificate(serial))
	}

	// Neighbours of stored serials must not match.
	for _, serial := range []*big.Int{
		new(big.Int).Sub(max160, big.NewInt(2)),
		new(big.Int).Add(top160, big.NewInt(1)),
		big.NewInt(2),
		big.NewInt(-2),
	} {
		if _, err := s.Certificate(ctx, testIssuer, serial); !errors.Is(err, ErrNotFound) {
			t.Errorf("Certificate(%X): err = %v, want ErrNotFound", serial, err)
		}
	}
}

func TestPutCertificateDuplicate(t *testing.T) {
	ctx := context.Background()
	s, _, _ := openTestStore(t)

	serial, _ := new(big.Int).SetString("7c5f1e2d3a4b5c6d7e8f90a1b2c3d4e5f6071829", 16)
	if err := s.PutCertificate(ctx, newCertificate(serial)); err != nil {
		t.Fatalf("PutCertificate: %v", err)
	}
	err := s.PutCertificate(ctx, newCertificate(serial))
	if err == nil {
		t.Fatal("second PutCertificate with the same issuer and serial succeeded")
	}
	if !strings.Contains(err.Error(), "already stored") {
		t.Errorf("error = %q, want it to say the certificate is already stored", err)
	}
	if !strings.Contains(err.Error(), "7C5F1E2D3A4B5C6D7E8F90A1B2C3D4E5F6071829") {
		t.Errorf("error = %q, want it to name the serial number", err)
	}

	other := newCertificate(serial)
	other.RawIssuer = []byte{0x30, 0x00}
	if err := s.PutCertificate(ctx, other); err != nil {
		t.Errorf("PutCertificate with the same serial from another issuer: %v", err)
	}
}

func TestCertificateNotFound(t *testing.T) {
	ctx := context.Background()
	s, _, _ := openTestStore(t)

	if err := s.PutCertificate(ctx, newCertificate(big.NewInt(10))); err != nil {
		t.Fatal(err)
	}
	_, err := s.Certificate(ctx, testIssuer, big.NewInt(0x1f))
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown serial: err = %v, want ErrNotFound", err)
	}
	if want := "store: not found: certificate serial 1F"; err.Error() != want {
		t.Errorf("error = %q, want %q", err, want)
	}
	if _, err := s.Certificate(ctx, []byte{0x30, 0x00}, big.NewInt(10)); !errors.Is(err, ErrNotFound) {
		t.Errorf("other issuer: err = %v, want ErrNotFound", err)
	}
	if _, err := s.Certificate(ctx, testIssuer, nil); err == nil || errors.Is(err, ErrNotFound) {
		t.Errorf("nil serial: err = %v, want an invalid-input error", err)
	}
}

func TestCertificateFarFutureNotAfter(t *testing.T) {
	ctx := context.Background()
	s, _, _ := openTestStore(t)

	cert := newCertificate(big.NewInt(99))
	cert.NotAfter = time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)
	if err := s.PutCertificate(ctx, cert); err != nil {
		t.Fatalf("PutCertificate: %v", err)
	}
	got, err := s.Certificate(ctx, cert.RawIssuer, cert.SerialNumber)
	if err != nil {
		t.Fatalf("Certificate: %v", err)
	}
	if !got.NotAfter.Equal(cert.NotAfter) {
		t.Errorf("NotAfter = %v, want %v", got.NotAfter, cert.NotAfter)
	}
}

func TestPutCertificateInvalidInput(t *testing.T) {
	ctx := context.Background()
	s, _, _ := openTestStore(t)

	noSerial := newCertificate(big.NewInt(1))
	noSerial.SerialNumber = nil
	noIssuer := newCertificate(big.NewInt(2))
	noIssuer.RawIssuer = nil
	noDER := newCertificate(big.NewInt(3))
	noDER.DER = nil
	badStatus := newCertificate(big.NewInt(4))
	badStatus.Status = "valid"
	revokedNoTime := newCertificate(big.NewInt(5))
	revokedNoTime.Status = CertRevoked
	revokedBadReason := newCertificate(big.NewInt(6))
	revokedBadReason.Status = CertRevoked
	revokedBadReason.RevokedAt = testStart
	revokedBadReason.RevocationReason = 7
	farNotAfter := newCertificate(big.NewInt(8))
	farNotAfter.NotAfter = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)

	cases := []struct {
		name string
		cert *Certificate
		want string
	}{
		{"nil", nil, "certificate is nil"},
		{"nil serial", noSerial, "serial number is nil"},
		{"empty issuer", noIssuer, "issuer is empty"},
		{"empty DER", noDER, "DER is empty"},
		{"unknown status", badStatus, `unknown certificate status "valid"`},
		{"revoked without time", revokedNoTime, "revocation time is not set"},
		{"reason 7", revokedBadReason, "revocation reason 7"},
		{"notAfter year 10000", farNotAfter, "notAfter: time"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := s.PutCertificate(ctx, c.cert)
			if err == nil {
				t.Fatal("PutCertificate succeeded")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error = %q, want it to contain %q", err, c.want)
			}
		})
	}
}

func TestPutCertificateRevoked(t *testing.T) {
	ctx := context.Background()
	s, _, _ := openTestStore(t)

	cert := newCertificate(big.NewInt(77))
	cert.Status = CertRevoked
	cert.RevocationReason = 1 // keyCompromise
	cert.RevokedAt = testStart.Add(time.Hour)
	if err := s.PutCertificate(ctx, cert); err != nil {
		t.Fatalf("PutCertificate: %v", err)
	}
	got, err := s.Certificate(ctx, cert.RawIssuer, cert.SerialNumber)
	if err != nil {
		t.Fatalf("Certificate: %v", err)
	}
	checkCertificateEqual(t, got, cert)
}

func TestSetCertificateStatus(t *testing.T) {
	ctx := context.Background()
	s, _, _ := openTestStore(t)

	cert := newCertificate(big.NewInt(500))
	if err := s.PutCertificate(ctx, cert); err != nil {
		t.Fatalf("PutCertificate: %v", err)
	}
	holdTime := testStart.Add(24 * time.Hour)

	steps := []struct {
		status     CertificateStatus
		reason     int
		at         time.Time
		wantReason int
		wantAt     time.Time
	}{
		{CertConfirmed, 0, time.Time{}, 0, time.Time{}},
		{CertOnHold, 6, holdTime, 6, holdTime}, // certificateHold
		{CertConfirmed, 6, holdTime, 0, time.Time{}},
		{CertRevoked, 4, holdTime, 4, holdTime}, // superseded
	}
	for _, step := range steps {
		if err := s.SetCertificateStatus(ctx, cert.RawIssuer, cert.SerialNumber, step.status, step.reason, step.at); err != nil {
			t.Fatalf("SetCertificateStatus(%s): %v", step.status, err)
		}
		got, err := s.Certificate(ctx, cert.RawIssuer, cert.SerialNumber)
		if err != nil {
			t.Fatalf("Certificate: %v", err)
		}
		if got.Status != step.status {
			t.Errorf("after %s: Status = %q", step.status, got.Status)
		}
		if got.RevocationReason != step.wantReason {
			t.Errorf("after %s: RevocationReason = %d, want %d", step.status, got.RevocationReason, step.wantReason)
		}
		if !got.RevokedAt.Equal(step.wantAt) {
			t.Errorf("after %s: RevokedAt = %v, want %v", step.status, got.RevokedAt, step.wantAt)
		}
	}
}

func TestSetCertificateStatusErrors(t *testing.T) {
	ctx := context.Background()
	s, _, _ := openTestStore(t)

	cert := newCertificate(big.NewInt(600))
	if err := s.PutCertificate(ctx, cert); err != nil {
		t.Fatalf("PutCertificate: %v", err)
	}

	err := s.SetCertificateStatus(ctx, cert.RawIssuer, big.NewInt(601), CertRevoked, 0, testStart)
	if !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown serial: err = %v, want ErrNotFound", err)
	}

	cases := []struct {
		name   string
		serial *big.Int
		status CertificateStatus
		reason int
		at     time.Time
		want   string
	}{
		{"nil serial", nil, CertRevoked, 0, testStart, "serial number is nil"},
		{"unknown status", cert.SerialNumber, "expired", 0, testStart, `unknown certificate status "expired"`},
		{"reason 11", cert.SerialNumber, CertRevoked, 11, testStart, "revocation reason 11"},
		{"negative reason", cert.SerialNumber, CertRevoked, -1, testStart, "revocation reason -1"},
		{"zero time", cert.SerialNumber, CertOnHold, 6, time.Time{}, "revocation time is not set"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := s.SetCertificateStatus(ctx, cert.RawIssuer, c.serial, c.status, c.reason, c.at)
			if err == nil {
				t.Fatal("SetCertificateStatus succeeded")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error = %q, want it to contain %q", err, c.want)
			}
		})
	}

	got, err := s.Certificate(ctx, cert.RawIssuer, cert.SerialNumber)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != CertIssued {
		t.Errorf("Status = %q after rejected changes, want %q", got.Status, CertIssued)
	}
}

func TestDeleteExpired(t *testing.T) {
	ctx := context.Background()
	s, clock, _ := openTestStore(t)
	now := clock.Now()

	for i, expiresAt := range []time.Time{now.Add(time.Minute), now.Add(2 * time.Minute), now.Add(time.Hour)} {
		tx := newTransaction(fmt.Sprintf("tx-%d", i), clock)
		tx.ExpiresAt = expiresAt
		if err := s.CreateTransaction(ctx, tx); err != nil {
			t.Fatal(err)
		}
	}
	for i, expiresAt := range []time.Time{now.Add(time.Minute), now.Add(2 * time.Minute), now.Add(time.Hour)} {
		if err := s.RecordNonce(ctx, []byte{byte(i)}, expiresAt); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.PutCertificate(ctx, newCertificate(big.NewInt(1))); err != nil {
		t.Fatal(err)
	}

	n, err := s.DeleteExpired(ctx, now.Add(2*time.Minute))
	if err != nil {
		t.Fatalf("DeleteExpired: %v", err)
	}
	if n != 4 {
		t.Errorf("DeleteExpired removed %d rows, want 4 (2 transactions, 2 nonces)", n)
	}

	counts := map[string]int{"transactions": 1, "nonces": 1, "certificates": 1}
	for table, want := range counts {
		var got int
		if err := s.read.QueryRowContext(ctx, "SELECT count(*) FROM "+table).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("%s has %d rows, want %d", table, got, want)
		}
	}
	if _, err := s.Transaction(ctx, []byte("tx-2")); err != nil {
		t.Errorf("unexpired transaction: %v", err)
	}

	n, err = s.DeleteExpired(ctx, now.Add(2*time.Minute))
	if err != nil {
		t.Fatalf("second DeleteExpired: %v", err)
	}
	if n != 0 {
		t.Errorf("second DeleteExpired removed %d rows, want 0", n)
	}
}

func TestConcurrentPutCertificate(t *testing.T) {
	ctx := context.Background()
	s, clock, _ := openTestStore(t)

	const (
		writers   = 32
		perWriter = 50
	)
	var wg sync.WaitGroup
	errs := make(chan error, writers*perWriter*2)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWriter {
				serial := new(big.Int).Lsh(big.NewInt(int64(w*perWriter+i+1)), 120)
				if err := s.PutCertificate(ctx, newCertificate(serial)); err != nil {
					errs <- fmt.Errorf("writer %d, certificate %d: %w", w, i, err)
				}
			}
		}()
	}
	// Readers and other writers run at the same time, as they do in the server.
	for r := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWriter {
				serial := new(big.Int).Lsh(big.NewInt(int64(r*perWriter+i+1)), 120)
				_, err := s.Certificate(ctx, testIssuer, serial)
				if err != nil && !errors.Is(err, ErrNotFound) {
					errs <- fmt.Errorf("reader %d: %w", r, err)
				}
				if err := s.RecordNonce(ctx, fmt.Appendf(nil, "n-%d-%d", r, i), clock.Now().Add(time.Minute)); err != nil {
					errs <- fmt.Errorf("nonce writer %d: %w", r, err)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err) // SQLITE_BUSY would show here
	}

	var count int
	if err := s.read.QueryRowContext(ctx, "SELECT count(*) FROM certificates").Scan(&count); err != nil {
		t.Fatal(err)
	}
	if count != writers*perWriter {
		t.Errorf("stored %d certificates, want %d", count, writers*perWriter)
	}
}

func TestCanceledContext(t *testing.T) {
	s, clock, _ := openTestStore(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()

	if err := s.CreateTransaction(ctx, newTransaction("canceled", clock)); !errors.Is(err, context.Canceled) {
		t.Errorf("CreateTransaction: err = %v, want context.Canceled", err)
	}
	if _, err := s.Transaction(ctx, []byte("canceled")); !errors.Is(err, context.Canceled) {
		t.Errorf("Transaction: err = %v, want context.Canceled", err)
	}
	if _, err := s.DeleteExpired(ctx, clock.Now()); !errors.Is(err, context.Canceled) {
		t.Errorf("DeleteExpired: err = %v, want context.Canceled", err)
	}
}

func BenchmarkPutCertificate(b *testing.B) {
	der := bytes.Repeat([]byte{0x5a}, 900) // in the size range of end-entity certificates
	b.Run("serial", func(b *testing.B) {
		s, _, _ := openTestStore(b)
		ctx := context.Background()
		var i int64
		for b.Loop() {
			i++
			cert := newCertificate(new(big.Int).Lsh(big.NewInt(i), 100))
			cert.DER = der
			if err := s.PutCertificate(ctx, cert); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		s, _, _ := openTestStore(b)
		ctx := context.Background()
		var next atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				cert := newCertificate(new(big.Int).Lsh(big.NewInt(next.Add(1)), 100))
				cert.DER = der
				if err := s.PutCertificate(ctx, cert); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

func BenchmarkCreateTransaction(b *testing.B) {
	s, clock, _ := openTestStore(b)
	ctx := context.Background()
	var next atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			tx := newTransaction(fmt.Sprintf("bench-%d", next.Add(1)), clock)
			if err := s.CreateTransaction(ctx, tx); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func TestRecordIssued(t *testing.T) {
	ctx := context.Background()
	s, clock, _ := openTestStore(t)

	tx := newTransaction("tx-1", clock)
	tx.State = StatePending
	if err := s.CreateTransaction(ctx, tx); err != nil {
		t.Fatalf("CreateTransaction: %v", err)
	}
	done := *tx
	done.State = StateDone
	done.Certificate = nil
	cert := newCertificate(big.NewInt(4242))
	cert.Status = CertConfirmed
	if err := s.RecordIssued(ctx, cert, &done); err != nil {
		t.Fatalf("RecordIssued: %v", err)
	}

	stored, err := s.Certificate(ctx, cert.RawIssuer, cert.SerialNumber)
	if err != nil {
		t.Fatalf("Certificate: %v", err)
	}
	if stored.Status != CertConfirmed {
		t.Errorf("certificate status = %q, want %q", stored.Status, CertConfirmed)
	}
	got, err := s.Transaction(ctx, tx.ID)
	if err != nil {
		t.Fatalf("Transaction: %v", err)
	}
	checkTransactionEqual(t, got, &done)
}

func TestRecordIssuedStoresNeitherOnError(t *testing.T) {
	ctx := context.Background()
	s, clock, _ := openTestStore(t)

	cert := newCertificate(big.NewInt(4343))
	err := s.RecordIssued(ctx, cert, newTransaction("missing", clock))
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("RecordIssued with a missing transaction: err = %v, want ErrNotFound", err)
	}
	if _, err := s.Certificate(ctx, cert.RawIssuer, cert.SerialNumber); !errors.Is(err, ErrNotFound) {
		t.Errorf("the certificate was stored although the transaction update failed: err = %v", err)
	}

	tx := newTransaction("tx-2", clock)
	if err := s.CreateTransaction(ctx, tx); err != nil {
		t.Fatalf("CreateTransaction: %v", err)
	}
	if err := s.PutCertificate(ctx, newCertificate(big.NewInt(4444))); err != nil {
		t.Fatalf("PutCertificate: %v", err)
	}
	changed := *tx
	changed.State = StateDone
	if err := s.RecordIssued(ctx, newCertificate(big.NewInt(4444)), &changed); err == nil {
		t.Fatal("RecordIssued with a duplicate certificate succeeded")
	}
	got, err := s.Transaction(ctx, tx.ID)
	if err != nil {
		t.Fatalf("Transaction: %v", err)
	}
	if got.State != tx.State {
		t.Errorf("transaction state = %q after a failed RecordIssued, want %q unchanged", got.State, tx.State)
	}
}

func TestChallengeConsumedOnce(t *testing.T) {
	s, _, _ := openTestStore(t)
	ctx := context.Background()
	now := time.Now()
	digest := []byte("0123456789abcdef0123456789abcdef")
	challenge := &Challenge{Digest: digest, Profile: "default", Note: "device 7", ExpiresAt: now.Add(time.Hour)}
	if err := s.CreateChallenge(ctx, challenge); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateChallenge(ctx, challenge); !errors.Is(err, ErrChallengeExists) {
		t.Errorf("second CreateChallenge = %v, want ErrChallengeExists", err)
	}
	if _, err := s.ConsumeChallenge(ctx, digest, "other", now); !errors.Is(err, ErrNotFound) {
		t.Errorf("consume for another profile = %v, want ErrNotFound", err)
	}

	var wg sync.WaitGroup
	var successes atomic.Int32
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s.ConsumeChallenge(ctx, digest, "default", now); err == nil {
				successes.Add(1)
			}
		}()
	}
	wg.Wait()
	if got := successes.Load(); got != 1 {
		t.Errorf("%d concurrent consumptions succeeded, want 1", got)
	}
}

func TestChallengeExpires(t *testing.T) {
	s, _, _ := openTestStore(t)
	ctx := context.Background()
	now := time.Now()
	digest := []byte("expiring-challenge-digest-000000")
	if err := s.CreateChallenge(ctx, &Challenge{Digest: digest, Profile: "default", ExpiresAt: now.Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ConsumeChallenge(ctx, digest, "default", now.Add(2*time.Minute)); !errors.Is(err, ErrNotFound) {
		t.Errorf("consume after expiry = %v, want ErrNotFound", err)
	}
	removed, err := s.DeleteExpired(ctx, now.Add(2*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if removed != 1 {
		t.Errorf("DeleteExpired removed %d rows, want the 1 challenge", removed)
	}
}

func TestOpenTransactionIsAtomic(t *testing.T) {
	s, clock, _ := openTestStore(t)
	ctx := context.Background()
	expires := clock.Now().Add(time.Hour)

	if err := s.OpenTransaction(ctx, newTransaction("tx-open-1", clock), []byte("nonce-open-1"), expires); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Transaction(ctx, []byte("tx-open-1")); err != nil {
		t.Errorf("transaction not stored: %v", err)
	}

	// A replayed nonce stores no transaction.
	err := s.OpenTransaction(ctx, newTransaction("tx-open-2", clock), []byte("nonce-open-1"), expires)
	if !errors.Is(err, ErrNonceReplayed) {
		t.Fatalf("replayed nonce: %v, want ErrNonceReplayed", err)
	}
	if _, err := s.Transaction(ctx, []byte("tx-open-2")); !errors.Is(err, ErrNotFound) {
		t.Errorf("transaction of a replayed nonce: %v, want ErrNotFound", err)
	}

	// A transaction ID in use records no nonce.
	err = s.OpenTransaction(ctx, newTransaction("tx-open-1", clock), []byte("nonce-open-3"), expires)
	if !errors.Is(err, ErrTransactionExists) {
		t.Fatalf("reused transaction ID: %v, want ErrTransactionExists", err)
	}
	if err := s.RecordNonce(ctx, []byte("nonce-open-3"), expires); err != nil {
		t.Errorf("the nonce of a rejected transaction was kept: %v", err)
	}
}

func TestArchivedKeyRoundTrip(t *testing.T) {
	s, _, _ := openTestStore(t)
	ctx := context.Background()
	key := &ArchivedKey{TransactionID: []byte("tx-archive"), Profile: "default", Requester: "mac:1234", Sealed: []byte("sealed bytes")}
	if err := s.ArchiveKey(ctx, key); err != nil {
		t.Fatal(err)
	}
	got, err := s.ArchivedKey(ctx, key.TransactionID)
	if err != nil {
		t.Fatal(err)
	}
	if string(got.Sealed) != "sealed bytes" || got.Profile != "default" || got.Requester != "mac:1234" {
		t.Errorf("archived key = %+v", got)
	}
	if got.CreatedAt.IsZero() {
		t.Error("created_at was not set")
	}
	if err := s.ArchiveKey(ctx, key); !errors.Is(err, ErrTransactionExists) {
		t.Errorf("second archive of one transaction: %v, want ErrTransactionExists", err)
	}
	if _, err := s.ArchivedKey(ctx, []byte("other")); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown transaction: %v, want ErrNotFound", err)
	}
}

func TestPendingRequestLifecycle(t *testing.T) {
	s, _, _ := openTestStore(t)
	ctx := context.Background()
	now := time.Now()
	if err := s.PutPending(ctx, "scep", "default\x00tx1", []byte("first"), now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := s.PutPending(ctx, "scep", "default\x00tx1", []byte("second"), now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}

	state, err := s.Pending(ctx, "scep", "default\x00tx1", now)
	if err != nil {
		t.Fatal(err)
	}
	if string(state) != "second" {
		t.Errorf("state = %q, want the replacement", state)
	}
	if n, err := s.CountPending(ctx, "scep", now); err != nil || n != 1 {
		t.Errorf("CountPending = %d, %v; want 1", n, err)
	}
	if _, err := s.Pending(ctx, "scep", "default\x00tx1", now.Add(2*time.Hour)); !errors.Is(err, ErrNotFound) {
		t.Errorf("expired state: %v, want ErrNotFound", err)
	}
	if _, err := s.Pending(ctx, "est", "default\x00tx1", now); !errors.Is(err, ErrNotFound) {
		t.Errorf("other frontend: %v, want ErrNotFound", err)
	}

	if err := s.DeletePending(ctx, "scep", "default\x00tx1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Pending(ctx, "scep", "default\x00tx1", now); !errors.Is(err, ErrNotFound) {
		t.Errorf("deleted state: %v, want ErrNotFound", err)
	}
}

func TestTransactionKeepsPendingRequest(t *testing.T) {
	s, clock, _ := openTestStore(t)
	ctx := context.Background()
	tx := newTransaction("rr-pending", clock)
	tx.RequestType, tx.Request = "rr", []byte(`{"reason":1}`)
	if err := s.CreateTransaction(ctx, tx); err != nil {
		t.Fatal(err)
	}
	got, err := s.Transaction(ctx, tx.ID)
	if err != nil {
		t.Fatal(err)
	}
	if string(got.Request) != `{"reason":1}` {
		t.Errorf("request after create = %q", got.Request)
	}
	got.Request = []byte(`{"reason":6}`)
	if err := s.UpdateTransaction(ctx, got); err != nil {
		t.Fatal(err)
	}
	again, err := s.Transaction(ctx, tx.ID)
	if err != nil {
		t.Fatal(err)
	}
	if string(again.Request) != `{"reason":6}` {
		t.Errorf("request after update = %q", again.Request)
	}
}

// The write connection does not checkpoint by itself; the background loop copies the WAL
// into the database file, which therefore grows while certgate runs.
func TestCheckpointsRunInBackground(t *testing.T) {
	s, _, path := openTestStore(t)
	ctx := context.Background()
	var autocheckpoint int
	if err := s.write.QueryRowContext(ctx, "PRAGMA wal_autocheckpoint").Scan(&autocheckpoint); err != nil {
		t.Fatal(err)
	}
	if autocheckpoint != 0 {
		t.Errorf("wal_autocheckpoint = %d on the write connection, want 0", autocheckpoint)
	}
	before, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 300 {
		if err := s.PutCertificate(ctx, newCertificate(big.NewInt(int64(1000+i)))); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		after, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if after.Size() > before.Size() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the database file stayed at %d bytes for 5s after 300 writes; no checkpoint ran", after.Size())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestConsumedChallengeCanBeRestored(t *testing.T) {
	s, _, _ := openTestStore(t)
	ctx := context.Background()
	now := time.Now()
	digest := []byte("restorable-challenge-digest-0000")
	expires := now.Add(time.Hour).Truncate(time.Millisecond)
	if err := s.CreateChallenge(ctx, &Challenge{Digest: digest, Profile: "default", Note: "device 9", ExpiresAt: expires}); err != nil {
		t.Fatal(err)
	}
	consumed, err := s.ConsumeChallenge(ctx, digest, "default", now)
	if err != nil {
		t.Fatal(err)
	}
	if consumed.Note != "device 9" || !consumed.ExpiresAt.Equal(expires) {
		t.Errorf("consumed challenge = note %q expires %s, want device 9 and %s", consumed.Note, consumed.ExpiresAt, expires)
	}
	if err := s.CreateChallenge(ctx, consumed); err != nil {
		t.Fatalf("restoring the challenge: %v", err)
	}
	if _, err := s.ConsumeChallenge(ctx, digest, "default", now); err != nil {
		t.Errorf("consuming the restored challenge: %v", err)
	}
}

func TestFullSyncOption(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		fullSync bool
		want     int // PRAGMA synchronous: 1 NORMAL, 2 FULL
	}{{false, 1}, {true, 2}} {
		s, err := OpenSQLiteWith(ctx, filepath.Join(t.TempDir(), "certgate.db"), SQLiteOptions{FullSync: c.fullSync})
		if err != nil {
			t.Fatal(err)
		}
		var got int
		if err := s.write.QueryRowContext(ctx, "PRAGMA synchronous").Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != c.want {
			t.Errorf("FullSync %v: synchronous = %d, want %d", c.fullSync, got, c.want)
		}
		s.Close()
	}
}
