package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"regexp"
	"strconv"
	"syscall"
	"time"
)

// readyMessage is the message certgate logs when it accepts requests. Its startup field
// is the time from the start of serve to that point.
const readyMessage = "certgate ready"

// startupResult is the start-to-ready time of a server, as one line of the results file.
type startupResult struct {
	Kind   string `json:"kind"` // "startup"
	Target string `json:"target"`
	// StartupMillis is the startup field of certgate's ready message; zero for a
	// server that has none.
	StartupMillis float64 `json:"startup_ms,omitempty"`
	// WallMillis runs from the -started-at time to the moment the generator saw the
	// server ready, so it includes the process start and the polling interval.
	WallMillis float64 `json:"wall_ms,omitempty"`
}

// idleResult is the memory of a server at rest, as one line of the results file.
type idleResult struct {
	Kind      string  `json:"kind"` // "idle"
	Target    string  `json:"target"`
	RSSMiB    float64 `json:"rss_mib"`
	Processes int     `json:"processes"`
	PIDs      []int   `json:"pids"`
}

// readyPoll is the interval between two looks at the log file or the port.
const readyPoll = 5 * time.Millisecond

// waitReady waits until the log file at logPath contains the ready message, or, with
// an address, until it accepts TCP connections. It fails when pid exits first.
func waitReady(logPath, address string, pid int, timeout time.Duration) (startupMillis float64, err error) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if logPath != "" {
			line, err := findLine(logPath, readyMessage)
			if err != nil {
				return 0, err
			}
			if line != nil {
				return startupField(line)
			}
		} else if conn, err := net.DialTimeout("tcp", address, time.Second); err == nil {
			conn.Close()
			return 0, nil
		}
		if pid > 0 && syscall.Kill(pid, 0) != nil {
			return 0, fmt.Errorf("process %d exited before it was ready", pid)
		}
		time.Sleep(readyPoll)
	}
	return 0, fmt.Errorf("not ready within %s", timeout)
}

// findLine returns the first line of the file that contains text, or nil.
func findLine(path, text string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	scanner := bufio.NewScanner(f)
	scanner.Buffer(make([]byte, 64<<10), 1<<20)
	for scanner.Scan() {
		if bytes.Contains(scanner.Bytes(), []byte(text)) {
			return bytes.Clone(scanner.Bytes()), nil
		}
	}
	return nil, scanner.Err()
}

// textStartup matches the startup field of slog's text format, such as startup=182ms.
var textStartup = regexp.MustCompile(`\bstartup=(\S+)`)

// startupField reads the startup duration from a ready line in slog's text format
// (a Go duration) or JSON format (nanoseconds), in milliseconds.
func startupField(line []byte) (float64, error) {
	if m := textStartup.FindSubmatch(line); m != nil {
		d, err := time.ParseDuration(string(m[1]))
		if err != nil {
			return 0, fmt.Errorf("the startup field %q is not a duration", m[1])
		}
		return float64(d) / float64(time.Millisecond), nil
	}
	var entry map[string]any
	if err := json.Unmarshal(line, &entry); err == nil {
		if ns, ok := entry["startup"].(float64); ok {
			return ns / float64(time.Millisecond), nil
		}
	}
	return 0, fmt.Errorf("the ready line has no startup field: %s", strconv.Quote(string(line)))
}
