package report

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// Outputs as the guest tests print them: pidlab's report() in
// userspace/profilecheck (copied from a run of the OSC10e static-EOF-flag
// module) and testify's assert.Equal (copied from go test -v with the
// testify version in go.mod).
const (
	pidlabReport = `    checks_test.go:126: reading 4 bytes at a time (dd bs=4)
        want: the record as one read gives it: "command = [pidlab-target] pid = [107] state = [1]\n"
        got: "comm"
        hint: the read handler ignores *ppos (the file offset): return 0 once *ppos is past the record and advance *ppos by what you copied; simple_read_from_buffer() or seq_file do both
`
	testifyEqual = "    x_test.go:16: \n" +
		"        \tError Trace:\t/tmp/rt-helper/tfy/x_test.go:11\n" +
		"        \t            \t\t\t\t/tmp/rt-helper/tfy/x_test.go:16\n" +
		"        \tError:      \tNot equal: \n" +
		"        \t            \texpected: 96\n" +
		"        \t            \tactual  : 114\n" +
		"        \tTest:       \tTestPPID/traced\n" +
		"        \tMessages:   \tppid: module vs /proc/114/stat field 4\n" +
		"        \t            \thint: ppid is the TGID of the real parent: task_ppid_nr_ns(task, ns)\n"
)

func TestExplain(t *testing.T) {
	for _, tc := range []struct {
		name, output        string
		expected, got, hint string
	}{
		{
			name:     "pidlab want, got and hint",
			output:   pidlabReport,
			expected: `the record as one read gives it: "command = [pidlab-target] pid = [107] state = [1]\n"`,
			got:      `"comm"`,
			hint:     "the read handler ignores *ppos (the file offset): return 0 once *ppos is past the record and advance *ppos by what you copied; simple_read_from_buffer() or seq_file do both",
		},
		{
			// "Messages:   ppid: …" is testify's label, not a "ppid" key.
			name:     "testify expected and actual, the hint from its messages",
			output:   testifyEqual,
			expected: "96",
			got:      "114",
			hint:     "ppid is the TGID of the real parent: task_ppid_nr_ns(task, ns)",
		},
		{
			name: "testify in a goroutine, with a diff",
			output: "    y_test.go:15: \n" +
				"        \tError Trace:\t/tmp/rt-helper/tfy/y_test.go:15\n" +
				"        \t            \t\t\t\t/usr/local/go/src/runtime/asm_amd64.s:1771\n" +
				"        \tError:      \tNot equal: \n" +
				"        \t            \texpected: \"command = [sleep] pid = [7] state = [S]\\n\"\n" +
				"        \t            \tactual  : \"command = [sleep] pid = [7] state = [1]\\n\"\n" +
				"        \t            \t\n" +
				"        \t            \tDiff:\n" +
				"        \t            \t--- Expected\n" +
				"        \t            \t+++ Actual\n" +
				"        \t            \t@@ -1,2 +1,2 @@\n" +
				"        \t            \t-command = [sleep] pid = [7] state = [S]\n" +
				"        \t            \t+command = [sleep] pid = [7] state = [1]\n" +
				"        \t            \t \n" +
				"        \tTest:       \tTestRecord\n" +
				"        \tMessages:   \trecord: module vs /proc/7/stat\n" +
				"        \t            \thint: state is one letter: task_state_to_char(task)\n",
			expected: `"command = [sleep] pid = [7] state = [S]\n"`,
			got:      `"command = [sleep] pid = [7] state = [1]\n"`,
			hint:     "state is one letter: task_state_to_char(task)",
		},
		{
			name: "the first failure's values win",
			output: "    checks_test.go:240: writing \"\"\n" +
				"        want: an errno (EINVAL) or 0\n" +
				"        got: write returned 0\n" +
				"        hint: return count or a negative errno\n" +
				"    checks_test.go:240: writing \"abc\"\n" +
				"        want: an errno (EINVAL) or 3\n" +
				"        got: write returned 1\n" +
				"        hint: a second hint\n",
			expected: "an errno (EINVAL) or 0",
			got:      "write returned 0",
			hint:     "return count or a negative errno",
		},
		{
			name: "pidlab before testify: the first of each, across styles",
			output: "    checks_test.go:10: reading\n        want: A\n        got: B\n" +
				testifyEqual,
			expected: "A",
			got:      "B",
			hint:     "ppid is the TGID of the real parent: task_ppid_nr_ns(task, ns)",
		},
		{
			// TestReadBeforeAnyWrite logs what it read ("got: …") before it
			// reports: a log line carries go test's file:line prefix and is
			// no value.
			name: "a logged got: is not the failure's",
			output: "    checks_test.go:38: got: \"\" (EOF)\n" +
				"    checks_test.go:40: reading before any PID was written\n" +
				"        want: an error, a message or nothing, then end of file\n" +
				"        got: \"x\" then read returned -1 (EIO)\n",
			expected: "an error, a message or nothing, then end of file",
			got:      `"x" then read returned -1 (EIO)`,
		},
		{
			name:   "testify messages alone are no values",
			output: "        \tError:      \tShould be true\n        \tTest:       \tTestPPID\n        \tMessages:   \tppid: 5\n",
		},
		{
			name: "values keep their colons",
			output: "        want: 0: read /proc/pid: success\n" +
				"        got: read /proc/pid: input/output error\n" +
				"        hint: return -ESRCH: the process is gone\n",
			expected: "0: read /proc/pid: success",
			got:      "read /proc/pid: input/output error",
			hint:     "return -ESRCH: the process is gone",
		},
		{
			name:   "a bare failure",
			output: "    checks_test.go:12: boom\n",
		},
		{name: "nothing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			expected, got, hint := Explain(tc.output)
			assert.Equal(t, tc.expected, expected, "expected")
			assert.Equal(t, tc.got, got, "got")
			assert.Equal(t, tc.hint, hint, "hint")
		})
	}
}
