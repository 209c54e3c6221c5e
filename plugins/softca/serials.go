package softca

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"os"
	"strings"
	"sync"
	"time"
)

// serialLogHeader starts the first line of the issued-serials file; the hex SHA-256 of
// the issuing CA's SubjectPublicKeyInfo follows.
const serialLogHeader = "# certgate softca issued serial numbers; issuer SPKI SHA-256 "

// serialSyncInterval is how often the issued-serials file is synced to disk when
// serials were added.
const serialSyncInterval = time.Second

// serialLog records every serial number the CA issued, so that Revoke can tell a
// certificate of this CA from an unknown serial. The file is append-only: a header
// line, then one serial number per line in lowercase hexadecimal.
//
// Cost on the Issue path: one write of about 34 bytes, without fsync, under a mutex.
// The record is in the kernel before Issue returns, so a crash of the plugin process
// loses none. A background goroutine syncs the file once a second after writes.
//
// NOTE: a power failure can lose the serials of the last second before it. Revoke
// returns CategoryNotFound for those certificates.
type serialLog struct {
	logger *slog.Logger

	mu    sync.Mutex // guards the fields below and the file's write offset
	file  *os.File
	known map[string]struct{} // big-endian serial bytes without leading zeros
	dirty bool                // written since the last sync

	stop chan struct{}
	done chan struct{}
}

// openSerialLog opens or creates the file and reads the serials it records. It fails
// when the file belongs to a CA with another key.
func openSerialLog(path string, spkiHash [sha256.Size]byte, logger *slog.Logger) (*serialLog, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	l := &serialLog{
		logger: logger,
		file:   f,
		known:  make(map[string]struct{}),
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
	}
	if err := l.load(path, spkiHash); err != nil {
		f.Close()
		return nil, err
	}
	go l.syncPeriodically()
	return l, nil
}

func (l *serialLog) load(path string, spkiHash [sha256.Size]byte) error {
	data, err := io.ReadAll(l.file)
	if err != nil {
		return err
	}
	// A crash in the middle of a write leaves a last line without newline. That
	// serial was never handed out, so drop the fragment before appending after it.
	if end := bytes.LastIndexByte(data, '\n') + 1; end < len(data) {
		l.logger.Warn("dropping an incomplete last line of the issued-serials file", "file", path)
		if err := l.file.Truncate(int64(end)); err != nil {
			return err
		}
		data = data[:end]
	}

	header := serialLogHeader + hex.EncodeToString(spkiHash[:])
	if len(data) == 0 {
		if _, err := l.file.WriteString(header + "\n"); err != nil {
			return err
		}
		return l.file.Sync()
	}

	scanner := bufio.NewScanner(bytes.NewReader(data))
	for lineNo := 1; scanner.Scan(); lineNo++ {
		line := scanner.Text()
		if lineNo == 1 {
			if line != header {
				return fmt.Errorf("%s belongs to another CA or is not an issued-serials file: its first line is %q, expected %q", path, line, header)
			}
			continue
		}
		serial, ok := new(big.Int).SetString(line, 16)
		if !ok || serial.Sign() <= 0 || strings.ToLower(line) != line {
			return fmt.Errorf("%s: line %d is not a serial number in lowercase hexadecimal: %q", path, lineNo, line)
		}
		l.known[string(serial.Bytes())] = struct{}{}
	}
	return scanner.Err()
}

// contains reports whether serial was issued.
func (l *serialLog) contains(serial *big.Int) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, ok := l.known[string(serial.Bytes())]
	return ok
}

// add records serial. It fails for a serial already recorded, which with 127 random
// bits does not happen unless the random source is broken.
func (l *serialLog) add(serial *big.Int) error {
	key := string(serial.Bytes())
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.known[key]; ok {
		return fmt.Errorf("serial number %x was issued before", serial)
	}
	if _, err := l.file.WriteString(serial.Text(16) + "\n"); err != nil {
		return fmt.Errorf("recording serial number %x: %w", serial, err)
	}
	l.known[key] = struct{}{}
	l.dirty = true
	return nil
}

func (l *serialLog) syncPeriodically() {
	defer close(l.done)
	ticker := time.NewTicker(serialSyncInterval)
	defer ticker.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-ticker.C:
		}
		if err := l.sync(); err != nil {
			l.logger.Error("syncing the issued-serials file failed", "error", err)
		}
	}
}

func (l *serialLog) sync() error {
	l.mu.Lock()
	dirty := l.dirty
	l.dirty = false
	l.mu.Unlock()
	if !dirty {
		return nil
	}
	// Sync outside the lock, so that Issue calls are not held up by the disk.
	return l.file.Sync()
}

// close syncs and closes the file.
func (l *serialLog) close() error {
	close(l.stop)
	<-l.done
	l.mu.Lock()
	l.dirty = true
	l.mu.Unlock()
	if err := l.sync(); err != nil {
		l.file.Close()
		return err
	}
	return l.file.Close()
}
