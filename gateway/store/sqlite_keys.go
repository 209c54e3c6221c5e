package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
)

// ArchiveKey implements Store.
func (s *SQLite) ArchiveKey(ctx context.Context, key *ArchivedKey) error {
	if len(key.TransactionID) == 0 || len(key.Sealed) == 0 {
		return errors.New("store: archive key: transaction ID and sealed key are required")
	}
	created := key.CreatedAt
	if created.IsZero() {
		created = s.now()
	}
	createdText, err := formatTime(created)
	if err != nil {
		return fmt.Errorf("store: archive key: %w", err)
	}
	_, err = s.write.ExecContext(ctx,
		"INSERT INTO archived_keys (transaction_id, profile, requester, sealed_key, created_at) VALUES (?, ?, ?, ?, ?)",
		key.TransactionID, key.Profile, key.Requester, key.Sealed, createdText)
	if err != nil {
		if strings.Contains(err.Error(), "UNIQUE") || strings.Contains(err.Error(), "PRIMARY KEY") {
			return fmt.Errorf("%w: a key is already archived for transaction %x", ErrTransactionExists, key.TransactionID)
		}
		return fmt.Errorf("store: archive key: %w", err)
	}
	return nil
}

// ArchivedKey implements Store.
func (s *SQLite) ArchivedKey(ctx context.Context, txID []byte) (*ArchivedKey, error) {
	key := &ArchivedKey{}
	var created string
	err := s.read.QueryRowContext(ctx,
		"SELECT transaction_id, profile, requester, sealed_key, created_at FROM archived_keys WHERE transaction_id = ?", txID).
		Scan(&key.TransactionID, &key.Profile, &key.Requester, &key.Sealed, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w: no archived key for transaction %x", ErrNotFound, txID)
	}
	if err != nil {
		return nil, fmt.Errorf("store: archived key: %w", err)
	}
	if err := parseTimes(timeColumn{"created_at", created, &key.CreatedAt}); err != nil {
		return nil, fmt.Errorf("store: archived key: %w", err)
	}
	return key, nil
}
