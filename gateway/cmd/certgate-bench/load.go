package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Sizes of the prepared request pools.
const (
	// warmupPoolSize requests are prepared for the warm-up. A warm-up that uses them
	// all before its time is up ends early, which only shortens it.
	warmupPoolSize = 20000
	// poolHeadroom multiplies the request count that the warm-up rate predicts for
	// the timed phase, so that a server that speeds up once warm, or a machine whose
	// other load drops, does not run the pool dry. A request costs about a kilobyte.
	poolHeadroom = 3
	// minPoolSize is the smallest pool prepared for a timed phase.
	minPoolSize = 5000
)

// rssInterval is how often the server's RSS is sampled during the timed phase. A peak
// shorter than this can be missed.
const rssInterval = 100 * time.Millisecond

// loadConfig is one measurement of one target at one concurrency.
type loadConfig struct {
	target       string // the name of the server in the report
	workloadName string
	workload     Workload
	concurrency  int
	duration     time.Duration // of the timed phase; ignored when requests is set
	requests     int           // when positive, the timed phase sends exactly this many
	warmup       time.Duration
	timeout      time.Duration // per request
	maxPrepare   int
	serverPID    int // 0: no server statistics
}

// loadResult is the outcome of one timed phase, as one line of the results file.
type loadResult struct {
	Kind                 string         `json:"kind"` // "load"
	Target               string         `json:"target"`
	Workload             string         `json:"workload"`
	Description          string         `json:"description"`
	Concurrency          int            `json:"concurrency"`
	Requests             int            `json:"requests"`
	Succeeded            int            `json:"succeeded"`
	ElapsedSeconds       float64        `json:"elapsed_s"`
	RequestsPerSecond    float64        `json:"requests_per_s"`
	EnrollmentsPerSecond float64        `json:"enrollments_per_s"`
	P50Millis            float64        `json:"p50_ms"`
	P90Millis            float64        `json:"p90_ms"`
	P99Millis            float64        `json:"p99_ms"`
	Errors               map[string]int `json:"errors"`
	PoolExhausted        bool           `json:"pool_exhausted,omitempty"`
	ServerProcesses      int            `json:"server_processes,omitempty"`
	ServerCPUSeconds     float64        `json:"server_cpu_s,omitempty"`
	ServerPeakRSSMiB     float64        `json:"server_peak_rss_mib,omitempty"`
	GeneratorCPUSeconds  float64        `json:"generator_cpu_s"`
}

// checkOnce sends one request and checks the exchange in full.
func checkOnce(ctx context.Context, w Workload, timeout time.Duration) error {
	pool, err := w.Prepare(1)
	if err != nil {
		return fmt.Errorf("preparing the check request: %w", err)
	}
	sender, err := w.NewSender()
	if err != nil {
		return err
	}
	defer sender.Close()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	response, err := sender.Send(ctx, pool[0])
	if err != nil {
		return fmt.Errorf("sending the check request: %w", err)
	}
	if err := w.Check(pool[0], response); err != nil {
		return fmt.Errorf("checking the first exchange: %w", err)
	}
	return nil
}

// runLoad warms the server up, prepares the requests and runs the timed phase.
func runLoad(ctx context.Context, cfg loadConfig) (*loadResult, error) {
	poolSize := cfg.requests
	if cfg.warmup > 0 {
		pool, err := cfg.workload.Prepare(min(warmupPoolSize, cfg.maxPrepare))
		if err != nil {
			return nil, fmt.Errorf("preparing the warm-up requests: %w", err)
		}
		warm, err := runPhase(ctx, cfg, pool, cfg.warmup)
		if err != nil {
			return nil, fmt.Errorf("warm-up: %w", err)
		}
		if cfg.requests <= 0 {
			rate := float64(warm.count) / warm.elapsed.Seconds()
			poolSize = int(math.Ceil(rate*cfg.duration.Seconds()*poolHeadroom)) + 2*cfg.concurrency
		}
	} else if cfg.requests <= 0 {
		poolSize = cfg.maxPrepare
	}
	poolSize = min(max(poolSize, minPoolSize, cfg.concurrency), cfg.maxPrepare)
	if cfg.requests > 0 {
		poolSize = cfg.requests
	}
	pool, err := cfg.workload.Prepare(poolSize)
	if err != nil {
		return nil, fmt.Errorf("preparing %d requests: %w", poolSize, err)
	}

	var tree processTree
	var before processUsage
	var sampler *rssSampler
	if cfg.serverPID > 0 {
		tree = processTree{root: cfg.serverPID}
		if before, err = tree.usage(); err != nil {
			return nil, fmt.Errorf("reading the server's usage: %w", err)
		}
		sampler = sampleRSS(tree, rssInterval)
	}
	selfBefore := selfCPUSeconds()

	duration := cfg.duration
	if cfg.requests > 0 {
		duration = 0
	}
	phase, err := runPhase(ctx, cfg, pool, duration)
	if err != nil {
		if sampler != nil {
			sampler.finish()
		}
		return nil, err
	}

	result := &loadResult{
		Kind:                "load",
		Target:              cfg.target,
		Workload:            cfg.workloadName,
		Description:         cfg.workload.Describe(),
		Concurrency:         cfg.concurrency,
		Requests:            phase.count,
		Succeeded:           phase.count - phase.failed,
		ElapsedSeconds:      phase.elapsed.Seconds(),
		Errors:              phase.errors,
		PoolExhausted:       cfg.requests <= 0 && phase.exhausted,
		GeneratorCPUSeconds: selfCPUSeconds() - selfBefore,
	}
	result.RequestsPerSecond = float64(result.Requests) / result.ElapsedSeconds
	result.EnrollmentsPerSecond = float64(result.Succeeded) / result.ElapsedSeconds
	result.P50Millis, result.P90Millis, result.P99Millis = percentiles(phase.latencies)

	if sampler != nil {
		peak, sampleErr := sampler.finish()
		after, err := tree.usage()
		if err = errors.Join(err, sampleErr); err != nil {
			return nil, fmt.Errorf("reading the server's usage: %w", err)
		}
		result.ServerProcesses = len(after.pids)
		result.ServerCPUSeconds = after.cpuSeconds - before.cpuSeconds
		result.ServerPeakRSSMiB = float64(peak) / (1 << 20)
	}
	return result, nil
}

// phaseOutcome is the combined record of the clients of one phase.
type phaseOutcome struct {
	count     int
	failed    int
	elapsed   time.Duration
	latencies []time.Duration
	errors    map[string]int
	exhausted bool // every prepared request was sent
}

// runPhase sends the pool's requests from cfg.concurrency clients until duration has
// passed, or until the pool is used up when duration is zero. Requests in flight at the
// end complete and count; elapsed runs until the last one has.
func runPhase(ctx context.Context, cfg loadConfig, pool [][]byte, duration time.Duration) (*phaseOutcome, error) {
	type clientRecord struct {
		latencies []time.Duration
		errors    map[string]int
		failed    int
		err       error
	}
	records := make([]clientRecord, cfg.concurrency)
	var next atomic.Int64
	var exhausted atomic.Bool
	start := time.Now()
	deadline := start.Add(duration)

	var wg sync.WaitGroup
	for c := range cfg.concurrency {
		record := &records[c]
		record.latencies = make([]time.Duration, 0, len(pool)/cfg.concurrency+1)
		record.errors = map[string]int{}
		wg.Go(func() {
			sender, err := cfg.workload.NewSender()
			if err != nil {
				record.err = err
				return
			}
			defer sender.Close()
			for ctx.Err() == nil {
				if duration > 0 && !time.Now().Before(deadline) {
					return
				}
				i := next.Add(1) - 1
				if i >= int64(len(pool)) {
					exhausted.Store(true)
					return
				}
				kind, latency := exchange(ctx, cfg, sender, pool[i])
				record.latencies = append(record.latencies, latency)
				if kind != "" {
					record.errors[kind]++
					record.failed++
				}
			}
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	out := &phaseOutcome{elapsed: time.Since(start), errors: map[string]int{}, exhausted: exhausted.Load()}
	for _, record := range records {
		if record.err != nil {
			return nil, record.err
		}
		out.latencies = append(out.latencies, record.latencies...)
		out.failed += record.failed
		for kind, n := range record.errors {
			out.errors[kind] += n
		}
	}
	out.count = len(out.latencies)
	return out, nil
}

// exchange sends one request and returns its error kind ("" for success) and latency.
func exchange(ctx context.Context, cfg loadConfig, sender Sender, request []byte) (string, time.Duration) {
	ctx, cancel := context.WithTimeout(ctx, cfg.timeout)
	defer cancel()
	start := time.Now()
	response, err := sender.Send(ctx, request)
	latency := time.Since(start)
	if err != nil {
		var exchangeErr *exchangeError
		if errors.As(err, &exchangeErr) {
			return exchangeErr.kind, latency
		}
		return transportKind(err), latency
	}
	return cfg.workload.Classify(response), latency
}

// percentiles returns p50, p90 and p99 in milliseconds by the nearest-rank method.
func percentiles(latencies []time.Duration) (p50, p90, p99 float64) {
	if len(latencies) == 0 {
		return 0, 0, 0
	}
	sorted := slices.Clone(latencies)
	slices.Sort(sorted)
	rank := func(p float64) float64 {
		i := int(math.Ceil(p*float64(len(sorted)))) - 1
		return float64(sorted[max(i, 0)]) / float64(time.Millisecond)
	}
	return rank(0.50), rank(0.90), rank(0.99)
}

// selfCPUSeconds returns the user and system CPU time of this process.
func selfCPUSeconds() float64 {
	var usage syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &usage); err != nil {
		return 0
	}
	seconds := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return seconds(usage.Utime) + seconds(usage.Stime)
}
