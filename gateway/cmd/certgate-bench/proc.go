package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// clockTicksPerSecond is the unit of utime and stime in /proc/PID/stat (USER_HZ).
// proc(5) says to read it with sysconf(_SC_CLK_TCK), which Go's standard library does not
// offer, so the value is fixed at 100, the USER_HZ of the Linux architectures Go supports.
const clockTicksPerSecond = 100

// processTree is a process and its descendants, read from /proc (Linux only).
type processTree struct {
	root int
}

// processUsage is a snapshot of a process tree.
type processUsage struct {
	pids       []int
	rssBytes   int64   // sum of VmRSS
	cpuSeconds float64 // sum of utime and stime of the processes now alive
}

// pids returns root and every live descendant. Children are found by their parent
// field in /proc/PID/stat, which works without CONFIG_PROC_CHILDREN.
func (t processTree) pids() ([]int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	children := map[int][]int{}
	for _, entry := range entries {
		pid, err := strconv.Atoi(entry.Name())
		if err != nil {
			continue
		}
		stat, err := readStat(pid)
		if err != nil {
			continue // exited since ReadDir
		}
		children[stat.ppid] = append(children[stat.ppid], pid)
	}
	if _, err := os.Stat(filepath.Join("/proc", strconv.Itoa(t.root))); err != nil {
		return nil, fmt.Errorf("process %d: %w", t.root, err)
	}
	tree := []int{t.root}
	for i := 0; i < len(tree); i++ {
		tree = append(tree, children[tree[i]]...)
	}
	return tree, nil
}

// usage reads RSS and CPU time of every process of the tree.
func (t processTree) usage() (processUsage, error) {
	pids, err := t.pids()
	if err != nil {
		return processUsage{}, err
	}
	u := processUsage{pids: pids}
	for _, pid := range pids {
		stat, err := readStat(pid)
		if err != nil {
			continue
		}
		u.cpuSeconds += float64(stat.utime+stat.stime) / clockTicksPerSecond
		rss, err := readRSS(pid)
		if err == nil {
			u.rssBytes += rss
		}
	}
	return u, nil
}

type procStat struct {
	ppid         int
	utime, stime int64 // clock ticks
}

// readStat parses /proc/PID/stat. The command name in parentheses may contain spaces
// and parentheses, so the fields are counted from the last ')'.
func readStat(pid int) (procStat, error) {
	data, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return procStat{}, err
	}
	end := bytes.LastIndexByte(data, ')')
	if end < 0 {
		return procStat{}, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	// Fields after the name start with field 3 (state): ppid is field 4, utime 14 and
	// stime 15 in the numbering of proc(5).
	fields := strings.Fields(string(data[end+1:]))
	if len(fields) < 13 {
		return procStat{}, fmt.Errorf("/proc/%d/stat: %d fields after the name", pid, len(fields))
	}
	var s procStat
	var errs [3]error
	s.ppid, errs[0] = strconv.Atoi(fields[1])
	s.utime, errs[1] = strconv.ParseInt(fields[11], 10, 64)
	s.stime, errs[2] = strconv.ParseInt(fields[12], 10, 64)
	for _, err := range errs {
		if err != nil {
			return procStat{}, fmt.Errorf("/proc/%d/stat: %w", pid, err)
		}
	}
	return s, nil
}

// readRSS returns VmRSS of /proc/PID/status in bytes.
func readRSS(pid int) (int64, error) {
	data, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		value, ok := strings.CutPrefix(line, "VmRSS:")
		if !ok {
			continue
		}
		kib, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(value), " kB"), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/%d/status: VmRSS %q: %w", pid, value, err)
		}
		return kib << 10, nil
	}
	return 0, fmt.Errorf("/proc/%d/status has no VmRSS (a kernel thread or a zombie)", pid)
}

// rssSampler records the highest RSS of a process tree, sampled every interval.
type rssSampler struct {
	tree     processTree
	interval time.Duration
	stop     chan struct{}
	done     sync.WaitGroup
	peak     int64
	err      error
}

// sampleRSS starts sampling t until the returned sampler's finish is called.
func sampleRSS(t processTree, interval time.Duration) *rssSampler {
	s := &rssSampler{tree: t, interval: interval, stop: make(chan struct{})}
	s.done.Go(func() {
		ticker := time.NewTicker(interval)
		defer ticker.Stop()
		for {
			s.sample()
			select {
			case <-s.stop:
				s.sample()
				return
			case <-ticker.C:
			}
		}
	})
	return s
}

func (s *rssSampler) sample() {
	u, err := s.tree.usage()
	if err != nil {
		s.err = err
		return
	}
	s.peak = max(s.peak, u.rssBytes)
}

// finish stops sampling and returns the peak in bytes.
func (s *rssSampler) finish() (int64, error) {
	close(s.stop)
	s.done.Wait()
	return s.peak, s.err
}
