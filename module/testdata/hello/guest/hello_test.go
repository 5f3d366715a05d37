//go:build pidlab_guest

// Package guest is the hello module's guest suite.
package guest

import (
	"os"
	"strconv"
	"testing"

	"github.com/pidlab/pidlab/userspace/guestapi"
	"github.com/pidlab/pidlab/userspace/guesttest"
)

func TestMain(m *testing.M) {
	guesttest.Main(m, "hello", "read a kernel module's /proc entry", nil)
}

func TestEntryReadsHello(t *testing.T) {
	guesttest.Mark(t)
	b, err := os.ReadFile("/proc/pidlab_hello")
	if err != nil {
		guesttest.FailNow(t, guestapi.Failure{Check: "reading /proc/pidlab_hello", Expected: `"hello\n"`, Got: guesttest.ErrnoName(err),
			Hint: "the module's init function creates the entry with proc_create_single()"})
	}
	if string(b) != "hello\n" {
		guesttest.Fail(t, guestapi.Failure{Check: "what /proc/pidlab_hello reads", Expected: `"hello\n"`, Got: strconv.Quote(string(b)),
			Hint: `hello_show() prints what the entry reads: seq_puts(m, "hello\n")`})
	}
}
