package guestapi

import "regexp"

// TestMarkPrefix starts the kernel-log line that names a test as it starts
// (guest.MarkTest writes it).
const TestMarkPrefix = "pidlab: test "

// NoTest is the mark of a time when no test runs.
const NoTest = "-"

// TestMark finds a test's name in a console line.
var TestMark = regexp.MustCompile(regexp.QuoteMeta(TestMarkPrefix) + `(\S+)`)
