package report

import (
	"encoding/json"
	"encoding/xml"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// sample is a three-kernel validation: cloud crashed, rt passed but for a
// skipped check, and generic never got to build (a setup problem).
func sample() Report {
	r := Report{
		Schema: Schema, Profile: "osc10e", ExitCode: 5,
		Runs: []Run{
			{
				Kernel: "cloud", Release: "6.1.0-56-cloud-amd64", ExitCode: 3, Outcome: "kernel trouble",
				Reason: "kernel Oops:\n    BUG: kernel NULL pointer dereference, address: 00000000000000c0\nhint: check the task for NULL",
				Checks: []Check{
					{Name: CheckBuild, Verdict: Pass},
					{Name: "TestSmallReadsAreNotOverrun", Verdict: Fail, Expected: "at most 4", Got: "read 1 returned 50 bytes",
						Hint: "the read handler ignores count", Message: "checks_test.go:124: reading 4 bytes at a time (dd bs=4)\nwant: at most 4", Seconds: 0.03},
					{Name: "TestKthreadd", Verdict: Error, Got: "the kernel died while it ran: kernel Oops:", Hint: "check the task for NULL"},
					{Name: CheckClean, Verdict: Fail, Expected: "no oops, warning, leak or new taint", Got: "kernel Oops:"},
				},
				ConsoleExcerpt: []string{"[    2.869527] BUG: kernel NULL pointer dereference, address: 00000000000000c0", "[    2.870323] Oops: 0000 [#1] PREEMPT SMP NOPTI"},
				ConsoleLog:     "/root/.cache/pidlab/runs/20261122-110854-1442346647/console.log",
				BootSeconds:    5.9, VMSeconds: 12.5,
			},
			{
				Kernel: "rt", Release: "6.1.0-56-rt-amd64", Outcome: "pass",
				Checks: []Check{
					{Name: CheckBuild, Verdict: Pass},
					{Name: "TestBadInputIsHarmless", Verdict: Skip, Message: "the profile has no write checks\nsecond line"},
					{Name: CheckClean, Verdict: Pass},
				},
				ConsoleLog: "/root/.cache/pidlab/runs/20261122-111027-2224260305/console.log",
			},
			{Kernel: "generic", ExitCode: 5, Outcome: "setup problem", Reason: "fetching linux-image-amd64: no network"},
		},
	}
	for i := range r.Runs {
		r.Runs[i].Module, r.Runs[i].ModuleDir = "osc-static-eof-flag", "/tmp/osc-static-eof-flag"
		for j := range r.Runs[i].Checks {
			r.Runs[i].Checks[j].Module = "osc-static-eof-flag"
		}
	}
	return r
}

func TestWriteJSONFieldNames(t *testing.T) {
	path := filepath.Join(t.TempDir(), "report.json")
	require.NoError(t, WriteJSON(path, sample()))
	b, err := os.ReadFile(path)
	require.NoError(t, err)

	// Decoded without the package's types: these are the names the README
	// documents and CI scripts read.
	var doc struct {
		Schema   *string `json:"schema"`
		Profile  *string `json:"profile"`
		ExitCode *int    `json:"exit_code"`
		Runs     []struct {
			Module         *string          `json:"module"`
			ModuleDir      *string          `json:"module_dir"`
			Kernel         *string          `json:"kernel"`
			Release        *string          `json:"release"`
			ExitCode       *int             `json:"exit_code"`
			Outcome        *string          `json:"outcome"`
			Reason         *string          `json:"reason"`
			Checks         []map[string]any `json:"checks"`
			ConsoleExcerpt []string         `json:"console_excerpt"`
			ConsoleLog     *string          `json:"console_log"`
			BootSeconds    *float64         `json:"boot_to_first_test_seconds"`
			VMSeconds      *float64         `json:"vm_seconds"`
		} `json:"runs"`
	}
	require.NoError(t, json.Unmarshal(b, &doc))
	require.NotNil(t, doc.Schema)
	assert.Equal(t, "pidlab-report/2", *doc.Schema)
	require.NotNil(t, doc.Profile)
	assert.Equal(t, "osc10e", *doc.Profile)
	require.NotNil(t, doc.ExitCode)
	assert.Equal(t, 5, *doc.ExitCode)
	require.Len(t, doc.Runs, 3)

	cloud := doc.Runs[0]
	for field, v := range map[string]any{"module": cloud.Module, "module_dir": cloud.ModuleDir, "kernel": cloud.Kernel, "release": cloud.Release, "exit_code": cloud.ExitCode, "outcome": cloud.Outcome,
		"reason": cloud.Reason, "console_log": cloud.ConsoleLog, "boot_to_first_test_seconds": cloud.BootSeconds, "vm_seconds": cloud.VMSeconds} {
		assert.NotNil(t, v, "runs[0].%s", field)
	}
	assert.Equal(t, "cloud", *cloud.Kernel)
	assert.Equal(t, "osc-static-eof-flag", *cloud.Module)
	assert.Equal(t, "/tmp/osc-static-eof-flag", *cloud.ModuleDir)
	assert.Equal(t, "osc-static-eof-flag", cloud.Checks[0]["module"], "a check names its module")
	assert.Equal(t, "6.1.0-56-cloud-amd64", *cloud.Release)
	assert.Equal(t, 3, *cloud.ExitCode)
	assert.Equal(t, "kernel trouble", *cloud.Outcome)
	assert.True(t, strings.HasPrefix(*cloud.Reason, "kernel Oops:\n"), "reason: %q", *cloud.Reason)
	assert.Equal(t, sample().Runs[0].ConsoleExcerpt, cloud.ConsoleExcerpt, "console_excerpt")
	assert.Equal(t, "/root/.cache/pidlab/runs/20261122-110854-1442346647/console.log", *cloud.ConsoleLog)
	assert.Equal(t, 5.9, *cloud.BootSeconds)
	assert.Equal(t, 12.5, *cloud.VMSeconds)

	require.Len(t, cloud.Checks, 4)
	assert.Equal(t, map[string]any{
		"name": "TestSmallReadsAreNotOverrun", "verdict": "FAIL", "expected": "at most 4", "got": "read 1 returned 50 bytes",
		"hint": "the read handler ignores count", "message": "checks_test.go:124: reading 4 bytes at a time (dd bs=4)\nwant: at most 4",
		"duration_seconds": 0.03, "module": "osc-static-eof-flag",
	}, cloud.Checks[1], "a failed check has every field")
	assert.Equal(t, map[string]any{"module": "osc-static-eof-flag", "name": "module builds", "verdict": "PASS", "duration_seconds": 0.0}, cloud.Checks[0],
		"a passed check has no empty fields, but its duration")
	assert.Equal(t, "ERROR", cloud.Checks[2]["verdict"])

	assert.Nil(t, doc.Runs[1].Reason, "a run that passed has no reason")
	if assert.NotNil(t, doc.Runs[1].ExitCode, "exit_code is there when 0") {
		assert.Zero(t, *doc.Runs[1].ExitCode)
	}
	assert.Equal(t, "SKIP", doc.Runs[1].Checks[1]["verdict"])

	assert.Contains(t, string(b), `"checks": []`, "a run without checks has an empty list, not null")
	assert.NotContains(t, string(b), "null")
}

// JUnit XML as a reader of it sees it, decoded without the package's types.
type (
	xmlSuites struct {
		XMLName  xml.Name   `xml:"testsuites"`
		Name     string     `xml:"name,attr"`
		Tests    int        `xml:"tests,attr"`
		Failures int        `xml:"failures,attr"`
		Errors   int        `xml:"errors,attr"`
		Suites   []xmlSuite `xml:"testsuite"`
	}
	xmlSuite struct {
		Name       string `xml:"name,attr"`
		Tests      int    `xml:"tests,attr"`
		Failures   int    `xml:"failures,attr"`
		Errors     int    `xml:"errors,attr"`
		Skipped    int    `xml:"skipped,attr"`
		Time       string `xml:"time,attr"`
		Properties []struct {
			Name  string `xml:"name,attr"`
			Value string `xml:"value,attr"`
		} `xml:"properties>property"`
		Cases     []xmlCase `xml:"testcase"`
		SystemOut *string   `xml:"system-out"`
	}
	xmlCase struct {
		ClassName string      `xml:"classname,attr"`
		Name      string      `xml:"name,attr"`
		Time      string      `xml:"time,attr"`
		Failure   *xmlProblem `xml:"failure"`
		Error     *xmlProblem `xml:"error"`
		Skipped   *xmlProblem `xml:"skipped"`
	}
	xmlProblem struct {
		Message string `xml:"message,attr"`
		Text    string `xml:",chardata"`
	}
)

func TestWriteJUnit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "junit.xml")
	require.NoError(t, WriteJUnit(path, sample()))
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(string(b), `<?xml version="1.0" encoding="UTF-8"?>`+"\n"), "XML declaration")

	var doc xmlSuites
	require.NoError(t, xml.Unmarshal(b, &doc))
	assert.Equal(t, "pidlab osc10e", doc.Name)
	assert.Equal(t, 7, doc.Tests, "testsuites tests")
	assert.Equal(t, 2, doc.Failures, "testsuites failures")
	assert.Equal(t, 1, doc.Errors, "testsuites errors")
	require.Len(t, doc.Suites, 3, "a testsuite per kernel")

	cloud := doc.Suites[0]
	assert.Equal(t, "pidlab/osc-static-eof-flag/cloud", cloud.Name)
	assert.Equal(t, 4, cloud.Tests)
	assert.Equal(t, 2, cloud.Failures)
	assert.Equal(t, 1, cloud.Errors)
	assert.Equal(t, 0, cloud.Skipped)
	assert.Equal(t, "12.500", cloud.Time)
	props := map[string]string{}
	for _, p := range cloud.Properties {
		props[p.Name] = p.Value
	}
	assert.Equal(t, map[string]string{
		"module": "/tmp/osc-static-eof-flag", "profile": "osc10e", "kernel": "cloud",
		"release": "6.1.0-56-cloud-amd64", "exit_code": "3", "outcome": "kernel trouble",
	}, props)

	require.Len(t, cloud.Cases, 4, "a testcase per check")
	for _, c := range cloud.Cases {
		assert.Equal(t, "osc-static-eof-flag.cloud", c.ClassName, c.Name)
	}
	assert.Equal(t, CheckBuild, cloud.Cases[0].Name)
	assert.Nil(t, cloud.Cases[0].Failure, "a passed check has no failure")
	assert.Nil(t, cloud.Cases[0].Error)
	assert.Nil(t, cloud.Cases[0].Skipped)

	small := cloud.Cases[1]
	assert.Equal(t, "TestSmallReadsAreNotOverrun", small.Name)
	assert.Equal(t, "0.030", small.Time)
	require.NotNil(t, small.Failure, "a FAIL is a failure")
	assert.Nil(t, small.Error)
	assert.Equal(t, "read 1 returned 50 bytes", small.Failure.Message)
	assert.Equal(t, "expected: at most 4\ngot: read 1 returned 50 bytes\nhint: the read handler ignores count\n\n"+
		"checks_test.go:124: reading 4 bytes at a time (dd bs=4)\nwant: at most 4", small.Failure.Text)

	crashed := cloud.Cases[2]
	require.NotNil(t, crashed.Error, "an ERROR is an error")
	assert.Nil(t, crashed.Failure)
	assert.Equal(t, "the kernel died while it ran: kernel Oops:", crashed.Error.Message)
	assert.Contains(t, crashed.Error.Text, "hint: check the task for NULL")

	require.NotNil(t, cloud.SystemOut, "a failed run's reason and console excerpt are its system-out")
	assert.Equal(t, sample().Runs[0].Reason+"\n\n"+strings.Join(sample().Runs[0].ConsoleExcerpt, "\n"), *cloud.SystemOut)

	rt := doc.Suites[1]
	assert.Nil(t, rt.SystemOut, "a run that passed has no system-out")
	assert.Equal(t, 1, rt.Skipped)
	require.NotNil(t, rt.Cases[1].Skipped, "a SKIP is skipped")
	assert.Nil(t, rt.Cases[1].Failure)
	assert.Equal(t, "the profile has no write checks\n…", rt.Cases[1].Skipped.Message)

	generic := doc.Suites[2]
	assert.Zero(t, generic.Tests, "a run that never built has no testcases")
	require.NotNil(t, generic.SystemOut)
	assert.Equal(t, "fetching linux-image-amd64: no network", *generic.SystemOut)
}

func TestWriteJUnitEscapes(t *testing.T) {
	// Console lines carry what the kernel printed: markup characters and
	// terminal escapes, which XML 1.0 cannot hold as they are.
	r := Report{Profile: "reference", Runs: []Run{{
		Kernel: "cloud", ExitCode: 3, Outcome: "kernel trouble", Reason: "kernel WARNING: <a & b>",
		ConsoleExcerpt: []string{"\x1b[0m[ 1.0] x ]]> y"},
		Checks:         []Check{{Name: `Test"<&>"`, Verdict: Fail, Got: "a\nb & <c>"}},
	}}}
	path := filepath.Join(t.TempDir(), "junit.xml")
	require.NoError(t, WriteJUnit(path, r))
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	var doc xmlSuites
	require.NoError(t, xml.Unmarshal(b, &doc), "%s", b)
	require.Len(t, doc.Suites, 1)
	require.Len(t, doc.Suites[0].Cases, 1)
	c := doc.Suites[0].Cases[0]
	assert.Equal(t, `Test"<&>"`, c.Name)
	require.NotNil(t, c.Failure)
	assert.Equal(t, "a\nb & <c>", c.Failure.Message)
	require.NotNil(t, doc.Suites[0].SystemOut)
	assert.Contains(t, *doc.Suites[0].SystemOut, "kernel WARNING: <a & b>")
	assert.Contains(t, *doc.Suites[0].SystemOut, "[ 1.0] x ]]> y")
}

// ReadJSON gives back what WriteJSON wrote, and refuses another schema.
func TestReadJSONReadsWhatWriteJSONWrote(t *testing.T) {
	path := filepath.Join(t.TempDir(), "report.json")
	want := sample()
	want.Runs[0].Prepared = []Span{{What: "build procpid", Seconds: 1.5}}
	want.Runs[2].Checks = []Check{} // WriteJSON's list for none
	require.NoError(t, WriteJSON(path, want))
	got, err := ReadJSON(path)
	require.NoError(t, err)
	assert.Equal(t, want, got)

	require.NoError(t, os.WriteFile(path, []byte(`{"schema":"pidlab-report/1","runs":[]}`), 0o644))
	_, err = ReadJSON(path)
	assert.ErrorContains(t, err, `schema "pidlab-report/1", want "pidlab-report/2"`)
}
