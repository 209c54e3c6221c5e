package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// CreateChallenge implements Store.
func (s *SQLite) CreateChallenge(ctx context.Context, c *Challenge) error {
	if len(c.Digest) == 0 || c.Profile == "" {
		return errors.New("store: create challenge: digest and profile are required")
	}
	if c.ExpiresAt.IsZero() {
		return errors.New("store: create challenge: expiry time is not set")
	}
	created := c.CreatedAt
	if created.IsZero() {
		created = s.now()
	}
	createdText, err := formatTime(created)
	if err != nil {
		return fmt.Errorf("store: create challenge: %w", err)
	}
	expiresText, err := formatTime(c.ExpiresAt)
	if err != nil {
		return fmt.Errorf("store: create challenge: %w", err)
	}
	_, err = s.write.ExecContext(ctx,
		"INSERT INTO challenges (digest, profile, note, created_at, expires_at) VALUES (?, ?, ?, ?, ?)",
		c.Digest, c.Profile, c.Note, createdText, expiresText)
	if err != nil {
		if strings.Contains(err.Error(), "UNIQUE") || strings.Contains(err.Error(), "PRIMARY KEY") {
			return fmt.Errorf("%w: for profile %q", ErrChallengeExists, c.Profile)
		}
		return fmt.Errorf("store: create challenge: %w", err)
	}
	return nil
}

// ConsumeChallenge implements Store. A single DELETE that returns the row is what keeps
// two requests with the same challenge from both succeeding.
func (s *SQLite) ConsumeChallenge(ctx context.Context, digest []byte, profile string, now time.Time) (*Challenge, error) {
	nowText, err := formatTime(now)
	if err != nil {
		return nil, fmt.Errorf("store: consume challenge: %w", err)
	}
	c := &Challenge{Digest: digest, Profile: profile}
	var created, expires string
	err = s.write.QueryRowContext(ctx,
		"DELETE FROM challenges WHERE digest = ? AND profile = ? AND expires_at > ? RETURNING note, created_at, expires_at",
		digest, profile, nowText).Scan(&c.Note, &created, &expires)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w: no unexpired challenge with this digest for profile %q", ErrNotFound, profile)
	}
	if err != nil {
		return nil, fmt.Errorf("store: consume challenge: %w", err)
	}
	if err := parseTimes(timeColumn{"created_at", created, &c.CreatedAt}, timeColumn{"expires_at", expires, &c.ExpiresAt}); err != nil {
		return nil, fmt.Errorf("store: consume challenge: %w", err)
	}
	return c, nil
}
