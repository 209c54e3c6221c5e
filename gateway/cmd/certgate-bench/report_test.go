package main

import (
	"strings"
	"testing"
)

// mixedResults returns CMP and SCEP measurements of certgate and one peer each, at 1
// and 8 clients.
func mixedResults() *results {
	load := func(workload, target string, clients int, rate float64, errs map[string]int) loadResult {
		return loadResult{Kind: "load", Workload: workload, Target: target, Description: workload + " against " + target,
			Concurrency: clients, Requests: int(rate), Succeeded: int(rate), ElapsedSeconds: 1, EnrollmentsPerSecond: rate, Errors: errs}
	}
	return &results{
		floors: []floorResult{{Kind: "floor", Workers: 2, Enrollments: 4000, EnrollmentsPerSecond: 4000, CPUSeconds: 2}},
		loads: []loadResult{
			load("cmp-http-ir", "certgate", 1, 500, nil),
			load("cmp-http-ir", "openssl-mock", 1, 800, nil),
			load("scep-pkcsreq", "certgate", 1, 150, nil),
			load("scep-pkcsreq", "scepserver", 1, 100, nil),
			load("cmp-http-ir", "certgate", 8, 600, nil),
			load("cmp-http-ir", "openssl-mock", 8, 900, nil),
			load("scep-pkcsreq", "certgate", 8, 300, nil),
			load("scep-pkcsreq", "scepserver", 8, 100, map[string]int{"scep badRequest": 5}),
		},
		startups:  map[string]startupResult{},
		idles:     map[string]idleResult{},
		workloads: []string{"cmp-http-ir", "scep-pkcsreq"},
	}
}

// section returns the text of report from the heading to the next heading.
func section(t *testing.T, report, heading string) string {
	t.Helper()
	start := strings.Index(report, heading+"\n")
	if start < 0 {
		t.Fatalf("the report has no %q section:\n%s", heading, report)
	}
	rest := report[start+len(heading):]
	if end := strings.Index(rest, "\n### "); end >= 0 {
		rest = rest[:end]
	}
	return rest
}

func TestReportSeparatesWorkloads(t *testing.T) {
	report := renderReport(mixedResults(), reportOptions{command: "run.sh", primary: "certgate"})

	cmp := section(t, report, "### Throughput and latency")
	if strings.Contains(cmp, "scepserver") {
		t.Errorf("the CMP table contains scepserver:\n%s", cmp)
	}
	if strings.Contains(cmp, "| certgate | 1 | 150 |") {
		t.Errorf("the CMP table contains certgate's SCEP row:\n%s", cmp)
	}
	if !strings.Contains(cmp, "| certgate | 1 | 500 | 12% |") {
		t.Errorf("the CMP table lacks certgate's row with its share of the floor:\n%s", cmp)
	}

	scep := section(t, report, "### SCEP PKCSReq: throughput and latency")
	if strings.Contains(scep, "openssl-mock") {
		t.Errorf("the SCEP table contains openssl-mock:\n%s", scep)
	}
	if strings.Contains(scep, "| floor") {
		t.Errorf("the SCEP table contains the floor row:\n%s", scep)
	}
	if !strings.Contains(scep, "| scepserver | 8 | 100 | ") {
		t.Errorf("the SCEP table lacks scepserver's row at 8 clients:\n%s", scep)
	}
	if !strings.Contains(scep, "5 (scep badRequest: 5)") {
		t.Errorf("the SCEP table lacks scepserver's errors:\n%s", scep)
	}

	cmpRatios := section(t, report, "### Side by side")
	if !strings.Contains(cmpRatios, "| 1 | 0.12 | 0.62 |") {
		t.Errorf("the CMP ratios are wrong:\n%s", cmpRatios)
	}
	scepRatios := section(t, report, "### SCEP PKCSReq: side by side")
	if !strings.Contains(scepRatios, "| 1 | 1.50 |") {
		t.Errorf("the SCEP ratio at 1 client is wrong:\n%s", scepRatios)
	}
	if !strings.Contains(scepRatios, "| 8 | 3.00 |") {
		t.Errorf("the SCEP ratio at 8 clients is wrong:\n%s", scepRatios)
	}
	if strings.Contains(scepRatios, "floor") {
		t.Errorf("the SCEP ratios divide by the floor:\n%s", scepRatios)
	}
}

func TestReportRatioTarget(t *testing.T) {
	report := renderReport(mixedResults(), reportOptions{command: "run.sh", primary: "certgate"})
	targets := section(t, report, "### Targets (certgate)")

	if !strings.Contains(targets, "| SCEP PKCSReq: at least 2× scepserver's enrollments per second at every client count | lowest 1.50×, at 1 client | **no** |") {
		t.Errorf("the SCEP ratio target row is missing or wrong:\n%s", targets)
	}
	if !strings.Contains(targets, "| SCEP PKCSReq: zero errors | 0 | yes |") {
		t.Errorf("the SCEP error row is missing or counts the peer's errors:\n%s", targets)
	}
	if !strings.Contains(targets, "| at least 60% of the floor's enrollments per second | 15% at 8 clients (600 of 4000 per second) | **no** |") {
		t.Errorf("the floor target does not use the CMP workload alone:\n%s", targets)
	}
}
