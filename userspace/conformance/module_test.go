//go:build pidlab_guest

package conformance

import (
	"errors"
	"os"
	"strconv"
	"sync"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/pidlab/pidlab/userspace/guest"
	"github.com/pidlab/pidlab/userspace/procfs"
)

const (
	procPID = "/proc/pid"

	// pidMaxLimit is PID_MAX_LIMIT on 64-bit kernels: the largest value
	// pid_max can take, so no process ever has this number.
	pidMaxLimit = 4194304

	// writeMax is the longest write the module accepts, in bytes.
	writeMax = 32

	// maxRecord bounds a read so that a module that never returns end of
	// file fails the test instead of hanging it.
	maxRecord = 64 << 10
)

// The helpers below use raw system calls instead of *os.File so that each
// one is exactly one open and one read(2) or write(2) at a known offset:
// the contract is about single calls and their errno.

// errPath attributes a system call error to /proc/pid; errors.Is still
// finds the errno through it.
func errPath(op string, err error) error {
	return &os.PathError{Op: op, Path: procPID, Err: err}
}

// firstRead is the result of the first read of /proc/pid after the module
// loaded. "ENODATA before any write" can be seen only once per load, so
// every open goes through takeFirstRead: whichever test touches the module
// first reads it first, whatever order or subset of tests runs. It happens
// inside a test, not in TestMain, so that a read that hangs is a hung test
// that the harness can name.
var firstRead struct {
	once sync.Once
	data []byte
	err  error
}

func takeFirstRead() {
	firstRead.once.Do(func() {
		fd, err := openModuleNow(unix.O_RDONLY)
		if err != nil {
			firstRead.err = err
			return
		}
		defer unix.Close(fd)
		firstRead.data, firstRead.err = readAll(fd, 4096)
	})
}

// openModule opens /proc/pid, after the first read has been taken.
func openModule(flags int) (int, error) {
	takeFirstRead()
	return openModuleNow(flags)
}

func openModuleNow(flags int) (int, error) {
	fd, err := unix.Open(procPID, flags|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, errPath("open", err)
	}
	return fd, nil
}

// writeRaw does one write(2) of b on a fresh descriptor, at offset 0.
func writeRaw(b []byte) (int, error) {
	fd, err := openModule(unix.O_WRONLY)
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	n, err := unix.Write(fd, b)
	if err != nil {
		return 0, errPath("write", err)
	}
	return n, nil
}

// writePID writes "<pid>\n", as echo would, and checks that a successful
// write returns the byte count.
func writePID(t *testing.T, pid int) error {
	t.Helper()
	text := strconv.Itoa(pid) + "\n"
	n, err := writeRaw([]byte(text))
	if err == nil {
		checkEqual(t, len(text), n, hintWriteCount, "return value of write(%q) to /proc/pid", text)
	}
	return err
}

func requireWritePID(t *testing.T, pid int) {
	t.Helper()
	require.NoError(t, writePID(t, pid), "write %d to /proc/pid", pid)
}

// readRaw reads /proc/pid to end of file on a fresh descriptor.
func readRaw() ([]byte, error) {
	return readRawBy(4096)
}

// readRawBy is readRaw with chunk bytes per read(2).
func readRawBy(chunk int) ([]byte, error) {
	fd, err := openModule(unix.O_RDONLY)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	return readAll(fd, chunk)
}

// readAll reads fd from its current offset to end of file, chunk bytes
// per read(2).
func readAll(fd, chunk int) ([]byte, error) {
	var out []byte
	buf := make([]byte, chunk)
	for len(out) <= maxRecord {
		n, err := unix.Read(fd, buf)
		if err != nil {
			return out, errPath("read", err)
		}
		if n == 0 {
			return out, nil
		}
		out = append(out, buf[:n]...)
	}
	return out, errNoEOF
}

// errNoEOF is a read that never reached end of file; readHint gives its
// hint to a check it fails.
var errNoEOF = errors.New("/proc/pid: no end of file after 64 KiB")

// readHint is the hint for a read that failed with err where h's cause was
// expected: a read without end of file has its own.
func readHint(err error, h hint) hint {
	if errors.Is(err, errNoEOF) {
		return hintReadNoEOF
	}
	return h
}

// readRecord reads and parses the module's record. A read error is
// returned for the test to judge; a malformed record always fails.
func readRecord(t *testing.T) (procfs.Record, error) {
	t.Helper()
	raw, err := readRaw()
	if err != nil {
		return procfs.Record{}, err
	}
	return requireParse(t, raw), nil
}

func requireParse(t *testing.T, raw []byte) procfs.Record {
	t.Helper()
	rec, err := procfs.ParseRecord(raw)
	requireNoError(t, err, hintRecordFormat, "the module's record is not 14 \"key: value\" lines:\n%s", raw)
	return rec
}

func requireRecord(t *testing.T) procfs.Record {
	t.Helper()
	rec, err := readRecord(t)
	requireNoError(t, err, readHint(err, ""), "read /proc/pid")
	return rec
}

// assertStillSelected checks that the module still reports tg, after a
// write that should have been rejected. The start time tells tg apart
// from a later process that got the same number.
func assertStillSelected(t *testing.T, tg *target, after string) {
	t.Helper()
	rec, err := readRecord(t)
	if !checkNoError(t, err, readHint(err, hintWriteKeeps), "read /proc/pid after %s", after) {
		return
	}
	checkEqual(t, tg.PID, rec.PID, hintWriteKeeps, "pid: the stored PID must be unchanged after %s", after)
	checkEqual(t, requireStat(t, tg.PID).StartTime, rec.StartTime, hintWriteKeeps,
		"start_time: the stored process must be unchanged after %s", after)
}

func requireStat(t *testing.T, pid int) procfs.Stat {
	t.Helper()
	s, err := procfs.ReadStat(pid)
	require.NoError(t, err)
	return s
}

func requireStatus(t *testing.T, pid int) procfs.Status {
	t.Helper()
	s, err := procfs.ReadStatus(pid)
	require.NoError(t, err)
	return s
}

// taintWarn is TAINT_WARN, bit 9 ('W') of /proc/sys/kernel/tainted: set
// by the first WARN_ON or WARN the kernel prints, and never cleared.
const taintWarn = 1 << 9

// noNewKernelWarning asserts, when t ends, that the kernel printed no
// warning while t ran: the taint flag W must not have appeared. The flag
// is sticky, so once set it proves nothing more; the host's scan of the
// console for WARNING, BUG and Oops reports is the backstop that quotes
// them.
func noNewKernelWarning(t *testing.T) {
	t.Helper()
	before, err := guest.LinuxSystem{}.Taint()
	require.NoError(t, err, "read the kernel's taint mask")
	if before&taintWarn != 0 {
		t.Logf("the kernel was already tainted W (%#x) before %s: the host's console scan reports the warning", before, t.Name())
		return
	}
	t.Cleanup(func() {
		after, err := guest.LinuxSystem{}.Taint()
		if assert.NoError(t, err, "read the kernel's taint mask") {
			assert.Zerof(t, after&taintWarn,
				"%s: the kernel printed a warning (taint %#x -> %#x, flag W); the console holds it", t.Name(), before, after)
		}
	})
}

// guardPage is two pages of memory: the first readable and writable, the
// second PROT_NONE, so that any access to it faults. Unlike an unmapped
// address, the Go runtime cannot map something there meanwhile.
type guardPage struct {
	mem []byte
}

func newGuardPage(t *testing.T) guardPage {
	t.Helper()
	size := os.Getpagesize()
	mem, err := unix.Mmap(-1, 0, 2*size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	require.NoError(t, err, "mmap two pages")
	t.Cleanup(func() { unix.Munmap(mem) })
	require.NoError(t, unix.Mprotect(mem[size:], unix.PROT_NONE), "mprotect the second page PROT_NONE")
	return guardPage{mem: mem}
}

// fault is the address of the inaccessible page.
func (g guardPage) fault() uintptr {
	return uintptr(unsafe.Pointer(&g.mem[len(g.mem)/2]))
}

// tail puts text at the very end of the accessible page and returns its
// address: a read of more than len(text) bytes from it runs into the
// inaccessible page.
func (g guardPage) tail(text string) uintptr {
	end := len(g.mem) / 2
	copy(g.mem[end-len(text):end], text)
	return uintptr(unsafe.Pointer(&g.mem[end-len(text)]))
}

// Addresses a process can never access. Address 1 is a user address (so
// the VFS passes it on) in page 0, which mmap_min_addr keeps unmapped; the
// kernel address fails access_ok() in the VFS before the module sees it.
const (
	pageZeroAddr uintptr = 1
	kernelAddr   uintptr = 0xffffffff81000000
)
