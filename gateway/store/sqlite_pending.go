package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// PutPending implements Store.
func (s *SQLite) PutPending(ctx context.Context, frontend, key string, state []byte, expiresAt time.Time) error {
	expiresText, err := formatTime(expiresAt)
	if err != nil {
		return fmt.Errorf("store: put pending request: %w", err)
	}
	_, err = s.write.ExecContext(ctx,
		"INSERT INTO pending_requests (frontend, key, state, expires_at) VALUES (?, ?, ?, ?) "+
			"ON CONFLICT (frontend, key) DO UPDATE SET state = excluded.state, expires_at = excluded.expires_at",
		frontend, key, state, expiresText)
	if err != nil {
		return fmt.Errorf("store: put pending request: %w", err)
	}
	return nil
}

// Pending implements Store.
func (s *SQLite) Pending(ctx context.Context, frontend, key string, now time.Time) ([]byte, error) {
	nowText, err := formatTime(now)
	if err != nil {
		return nil, fmt.Errorf("store: pending request: %w", err)
	}
	var state []byte
	err = s.read.QueryRowContext(ctx,
		"SELECT state FROM pending_requests WHERE frontend = ? AND key = ? AND expires_at > ?", frontend, key, nowText).
		Scan(&state)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w: no pending %s request with this key", ErrNotFound, frontend)
	}
	if err != nil {
		return nil, fmt.Errorf("store: pending request: %w", err)
	}
	return state, nil
}

// DeletePending implements Store.
func (s *SQLite) DeletePending(ctx context.Context, frontend, key string) error {
	if _, err := s.write.ExecContext(ctx, "DELETE FROM pending_requests WHERE frontend = ? AND key = ?", frontend, key); err != nil {
		return fmt.Errorf("store: delete pending request: %w", err)
	}
	return nil
}

// CountPending implements Store.
func (s *SQLite) CountPending(ctx context.Context, frontend string, now time.Time) (int, error) {
	nowText, err := formatTime(now)
	if err != nil {
		return 0, fmt.Errorf("store: count pending requests: %w", err)
	}
	var n int
	err = s.read.QueryRowContext(ctx,
		"SELECT count(*) FROM pending_requests WHERE frontend = ? AND expires_at > ?", frontend, nowText).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("store: count pending requests: %w", err)
	}
	return n, nil
}
