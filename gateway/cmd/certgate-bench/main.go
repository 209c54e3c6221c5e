// Command certgate-bench measures enrollment speed: a load generator for certgate and
// other enrollment servers, the crypto floor that no server can beat, and a report that
// puts them side by side. examples/bench/run.sh runs the whole comparison.
//
//	certgate-bench load   -workload cmp-http-ir -url URL -secret-file FILE [-server-pid PID] ...
//	certgate-bench load   -workload scep-pkcsreq -scep-url URL -challenge-file FILE [-server-pid PID] ...
//	certgate-bench floor  [-duration 10s] [-workers N]
//	certgate-bench ready  (-log FILE | -addr HOST:PORT) [-pid PID] [-started-at UNIX_NANOS]
//	certgate-bench idle   -pid PID
//	certgate-bench report -results FILE -out FILE [-command TEXT] [-version TEXT ...]
//
// Every measuring subcommand appends one JSON line per measurement to the file named
// by -results, and report turns that file into Markdown tables.
//
// The load subcommand prepares every request before its timed phase, so the generator
// spends its CPU on sending and on a short check of each response. It reads the
// server's CPU time and RSS from /proc for the given process and its children, such as
// certgate's plugin processes, and so works on Linux only.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		usage()
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	var err error
	switch os.Args[1] {
	case "load":
		err = loadCommand(ctx, os.Args[2:])
	case "floor":
		err = floorCommand(os.Args[2:])
	case "ready":
		err = readyCommand(os.Args[2:])
	case "idle":
		err = idleCommand(os.Args[2:])
	case "report":
		err = reportCommand(os.Args[2:])
	case "-h", "-help", "--help", "help":
		usage()
		return
	default:
		fmt.Fprintf(os.Stderr, "certgate-bench: unknown subcommand %q\n", os.Args[1])
		usage()
		os.Exit(2)
	}
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "certgate-bench:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintf(os.Stderr, `usage: certgate-bench SUBCOMMAND [flags]

  load    send enrollments to a server at several client counts (workloads: %s)
  floor   measure the crypto of an enrollment alone, on all cores
  ready   wait until a server is ready and record its start-to-ready time
  idle    record the RSS of a server process and its children
  report  write the Markdown report of a results file

Run certgate-bench SUBCOMMAND -h for the flags of each.
`, workloadNames())
}

// intList is a flag of comma-separated positive integers.
type intList []int

func (l *intList) String() string {
	parts := make([]string, len(*l))
	for i, n := range *l {
		parts[i] = strconv.Itoa(n)
	}
	return strings.Join(parts, ",")
}

func (l *intList) Set(text string) error {
	*l = nil
	for part := range strings.SplitSeq(text, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(part))
		if err != nil || n < 1 {
			return fmt.Errorf("%q is not a positive integer", part)
		}
		*l = append(*l, n)
	}
	return nil
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, "; ") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

func loadCommand(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	workloadName := fs.String("workload", "cmp-http-ir", "workload to run: "+workloadNames())
	target := fs.String("target", "certgate", "name of the server in the results")
	concurrency := intList{1, 8, 32, 128}
	fs.Var(&concurrency, "concurrency", "comma-separated numbers of concurrent clients, each measured in turn")
	duration := fs.Duration("duration", 10*time.Second, "length of the timed phase at each client count")
	requests := fs.Int("requests", 0, "send exactly this many requests per client count instead of running for -duration")
	warmup := fs.Duration("warmup", time.Second, "warm-up before each timed phase, not measured; it also sizes the request pool")
	timeout := fs.Duration("timeout", 30*time.Second, "timeout of one request")
	maxPrepare := fs.Int("max-prepare", 2_000_000, "maximum number of requests prepared for one timed phase")
	serverPID := fs.Int("server-pid", 0, "process ID of the server; its CPU time and peak RSS, children included, are reported")
	results := fs.String("results", "", "file to append the JSON result lines to")
	skipCheck := fs.Bool("skip-check", false, "skip the full check of one exchange before the first warm-up")

	constructors := map[string]func() (Workload, error){}
	for name, factory := range workloads {
		constructors[name] = factory.register(fs)
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	construct, ok := constructors[*workloadName]
	if !ok {
		return fmt.Errorf("unknown workload %q; implemented: %s", *workloadName, workloadNames())
	}
	if *requests < 0 || (*requests == 0 && *duration <= 0) {
		return errors.New("set -duration to a positive time or -requests to a positive count")
	}
	w, err := construct()
	if err != nil {
		return err
	}
	if !*skipCheck {
		if err := checkOnce(ctx, w, *timeout); err != nil {
			return fmt.Errorf("%s: %w", *target, err)
		}
	}

	fmt.Printf("%s: %s\n", *target, w.Describe())
	for _, clients := range concurrency {
		result, err := runLoad(ctx, loadConfig{
			target: *target, workloadName: *workloadName, workload: w, concurrency: clients,
			duration: *duration, requests: *requests, warmup: *warmup, timeout: *timeout,
			maxPrepare: *maxPrepare, serverPID: *serverPID,
		})
		if err != nil {
			return fmt.Errorf("%s at %d clients: %w", *target, clients, err)
		}
		fmt.Printf("%s clients=%d enrollments/s=%.0f p50=%.2fms p90=%.2fms p99=%.2fms errors=%s server_cpu=%.1fs server_peak_rss=%.1fMiB generator_cpu=%.1fs\n",
			*target, clients, result.EnrollmentsPerSecond, result.P50Millis, result.P90Millis, result.P99Millis,
			errorSummary(result.Errors), result.ServerCPUSeconds, result.ServerPeakRSSMiB, result.GeneratorCPUSeconds)
		if err := appendResult(*results, result); err != nil {
			return err
		}
	}
	return nil
}

func floorCommand(args []string) error {
	fs := flag.NewFlagSet("floor", flag.ContinueOnError)
	duration := fs.Duration("duration", 10*time.Second, "length of the measurement")
	workers := fs.Int("workers", defaultWorkers(), "number of goroutines that enroll; the default is GOMAXPROCS")
	results := fs.String("results", "", "file to append the JSON result line to")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *workers < 1 || *duration <= 0 {
		return errors.New("-workers and -duration must be positive")
	}
	result, err := runFloor(*duration, *workers)
	if err != nil {
		return err
	}
	fmt.Printf("floor workers=%d enrollments/s=%.0f cpu=%.1fs\n", result.Workers, result.EnrollmentsPerSecond, result.CPUSeconds)
	return appendResult(*results, result)
}

func readyCommand(args []string) error {
	fs := flag.NewFlagSet("ready", flag.ContinueOnError)
	logPath := fs.String("log", "", "log file of a certgate server; ready when it contains \""+readyMessage+"\"")
	address := fs.String("addr", "", "host:port of a server without such a log; ready when it accepts TCP connections")
	pid := fs.Int("pid", 0, "process ID of the server; waiting fails when it exits")
	startedAt := fs.Int64("started-at", 0, "start time of the server in nanoseconds since the Unix epoch (date +%s%N), for the wall-clock time")
	timeout := fs.Duration("timeout", 30*time.Second, "how long to wait")
	target := fs.String("target", "certgate", "name of the server in the results")
	results := fs.String("results", "", "file to append the JSON result line to")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if (*logPath == "") == (*address == "") {
		return errors.New("set exactly one of -log and -addr")
	}
	startup, err := waitReady(*logPath, *address, *pid, *timeout)
	if err != nil {
		return fmt.Errorf("%s: %w", *target, err)
	}
	result := startupResult{Kind: "startup", Target: *target, StartupMillis: startup}
	if *startedAt > 0 {
		result.WallMillis = float64(time.Since(time.Unix(0, *startedAt))) / float64(time.Millisecond)
	}
	fmt.Printf("%s ready: startup=%.0fms wall=%.0fms\n", *target, result.StartupMillis, result.WallMillis)
	return appendResult(*results, result)
}

func idleCommand(args []string) error {
	fs := flag.NewFlagSet("idle", flag.ContinueOnError)
	pid := fs.Int("pid", 0, "process ID of the server (required)")
	target := fs.String("target", "certgate", "name of the server in the results")
	results := fs.String("results", "", "file to append the JSON result line to")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *pid <= 0 {
		return errors.New("-pid is required")
	}
	u, err := processTree{root: *pid}.usage()
	if err != nil {
		return err
	}
	result := idleResult{Kind: "idle", Target: *target, RSSMiB: float64(u.rssBytes) / (1 << 20), Processes: len(u.pids), PIDs: u.pids}
	fmt.Printf("%s idle: rss=%.1fMiB processes=%v\n", *target, result.RSSMiB, u.pids)
	return appendResult(*results, result)
}

func reportCommand(args []string) error {
	fs := flag.NewFlagSet("report", flag.ContinueOnError)
	resultsPath := fs.String("results", "", "results file written by the other subcommands (required)")
	out := fs.String("out", "", "Markdown file whose generated section is replaced; without it the section goes to stdout")
	command := fs.String("command", "certgate-bench report", "command that produced the results, quoted in the report")
	primary := fs.String("primary", "certgate", "server whose rate is compared with the floor and the other servers")
	var versions, notes stringList
	fs.Var(&versions, "version", "a version line for the report, such as the output of go version; repeatable")
	fs.Var(&notes, "note", "a line added to the run's description; repeatable")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *resultsPath == "" {
		return errors.New("-results is required")
	}
	r, err := readResults(*resultsPath)
	if err != nil {
		return err
	}
	section := renderReport(r, reportOptions{command: *command, primary: *primary, versions: versions, notes: notes})
	if *out == "" {
		_, err := os.Stdout.WriteString(section)
		return err
	}
	return writeReport(*out, section)
}
