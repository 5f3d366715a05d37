//go:build pidlab_guest

package guest

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/pidlab/pidlab/userspace/guestapi"
	"github.com/pidlab/pidlab/userspace/guesttest"
	"github.com/pidlab/pidlab/userspace/procfs"
)

const (
	devPath      = "/dev/taskpeek"
	runnablePath = "/proc/taskpeek/runnable"
	childrenPath = "/proc/taskpeek/children"
	memoryPath   = "/proc/taskpeek/memory"
	pageSize     = 4096
)

// replyTimeout is how long a driven helper may take to answer a command;
// a soldier's signal alone may take 20 s before the helper says "none".
const replyTimeout = 40 * time.Second

func TestMain(m *testing.M) {
	guesttest.Main(m, "taskpeek", "load a module that writes physical memory, and start processes", func() error {
		_, err := targetPath()
		return err
	})
}

// targetPath is the path of the helper (TASKPEEK_TARGET).
func targetPath() (string, error) {
	return guesttest.HelperPath("TASKPEEK_TARGET", "module/taskpeek/child")
}

// start runs taskpeek-target with args until its ready line; it is
// killed and reaped when t ends.
func start(t *testing.T, attr *syscall.SysProcAttr, args ...string) *guesttest.Target {
	t.Helper()
	path, err := targetPath()
	require.NoError(t, err)
	return guesttest.StartTarget(t, path, attr, args...)
}

// driven is a taskpeek-target that answers commands on its stdin (the mem
// and station modes), a line each.
type driven struct {
	t     *testing.T
	PID   int
	Info  []string // the words after "ready"
	in    io.WriteCloser
	lines chan string
	cmd   *exec.Cmd
}

func startDriven(t *testing.T, attr *syscall.SysProcAttr, args ...string) *driven {
	t.Helper()
	path, err := targetPath()
	require.NoError(t, err)
	cmd := exec.Command(path, args...)
	cmd.SysProcAttr = attr
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	require.NoError(t, err)
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start(), "start taskpeek-target %q", args)
	d := &driven{t: t, PID: cmd.Process.Pid, in: in, lines: make(chan string, 64), cmd: cmd}
	t.Cleanup(func() {
		_ = cmd.Process.Kill() // fails harmlessly once it has exited
		_ = cmd.Wait()
	})
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			d.lines <- sc.Text()
		}
		close(d.lines)
	}()
	words := strings.Fields(d.reply("start " + strings.Join(args, " ")))
	require.True(t, len(words) > 0 && words[0] == "ready", "taskpeek-target %q: first line %q, want ready", args, words)
	d.Info = words[1:]
	return d
}

// reply is the helper's next line.
func (d *driven) reply(what string) string {
	d.t.Helper()
	select {
	case line, ok := <-d.lines:
		require.True(d.t, ok, "taskpeek-target %d ended before answering %q (its stderr is above)", d.PID, what)
		require.False(d.t, strings.HasPrefix(line, "error"), "taskpeek-target %d, %q: %s", d.PID, what, line)
		return line
	case <-time.After(replyTimeout):
		require.FailNow(d.t, fmt.Sprintf("taskpeek-target %d did not answer %q within %v", d.PID, what, replyTimeout))
		return ""
	}
}

// send sends a command.
func (d *driven) send(command string) {
	d.t.Helper()
	_, err := fmt.Fprintln(d.in, command)
	require.NoError(d.t, err, "taskpeek-target %d: %s", d.PID, command)
}

// ask sends a command and returns the answer's words.
func (d *driven) ask(format string, args ...any) []string {
	d.t.Helper()
	command := fmt.Sprintf(format, args...)
	d.send(command)
	return strings.Fields(d.reply(command))
}

// askErrno sends a command the helper answers with an errno.
func (d *driven) askErrno(format string, args ...any) syscall.Errno {
	d.t.Helper()
	words := d.ask(format, args...)
	require.Len(d.t, words, 1, "the answer to %q", fmt.Sprintf(format, args...))
	return syscall.Errno(atoi(d.t, words[0]))
}

// mapTouched has the mem helper map n pages and write b into each.
func (d *driven) mapTouched(n int, b byte) uint64 {
	d.t.Helper()
	addr := d.mapPages(n)
	d.ask("touch %#x %d %d", addr, n, b)
	return addr
}

func (d *driven) mapPages(n int) uint64 {
	d.t.Helper()
	words := d.ask("map %d", n)
	require.Len(d.t, words, 1)
	return parseUint(d.t, words[0])
}

// close ends the helper's input and waits for it to exit.
func (d *driven) close() {
	d.t.Helper()
	require.NoError(d.t, d.in.Close())
	require.NoError(d.t, d.cmd.Wait(), "taskpeek-target %d", d.PID)
}

// sliceAddr is the virtual address of b's first byte.
func sliceAddr(b []byte) uint64 { return uint64(uintptr(unsafe.Pointer(&b[0]))) }

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	require.NoError(t, err)
	return n
}

func parseUint(t *testing.T, s string) uint64 {
	t.Helper()
	n, err := strconv.ParseUint(s, 0, 64)
	require.NoError(t, err)
	return n
}

// ---- the ioctls of taskpeek.h ----

type v2pRequest struct {
	PID      int32
	Flags    uint32
	VAddr    uint64
	PAddr    uint64
	PageSize uint64
}

const (
	v2pPresent  = 1 << 0
	v2pWritable = 1 << 1
	v2pHuge     = 1 << 2
	v2pZeroPage = 1 << 3
)

type pokeRequest struct {
	PAddr uint64
	Value uint8
	Pad   [7]uint8
}

type exitSignalRequest struct {
	PID    int32
	Signal int32
}

// ioc is the kernel's _IOC(): a direction, the size of the argument, the
// magic and the number, so a struct of the wrong size is another command.
func ioc(dir, nr, size uintptr) uintptr { return dir<<30 | size<<16 | 0xb7<<8 | nr }

const (
	iocWrite = 1
	iocRead  = 2
)

var (
	ioctlV2P        = ioc(iocRead|iocWrite, 1, unsafe.Sizeof(v2pRequest{}))
	ioctlPoke       = ioc(iocWrite, 2, unsafe.Sizeof(pokeRequest{}))
	ioctlExitSignal = ioc(iocWrite, 3, unsafe.Sizeof(exitSignalRequest{}))
)

// device opens /dev/taskpeek; it is closed when t ends.
func device(t testing.TB) int {
	t.Helper()
	fd, err := unix.Open(devPath, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		guesttest.FailNow(t, guestapi.Failure{Check: "open " + devPath, Expected: "a file descriptor", Got: guesttest.ErrnoName(err),
			Hint: "the module's init function registers a misc device named taskpeek (misc_register), mode 0666"})
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fd
}

func ioctl(fd int, cmd uintptr, arg unsafe.Pointer) error {
	_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), cmd, uintptr(arg))
	if e != 0 {
		return e
	}
	return nil
}

// v2p asks the module where vaddr of process pid (0: this one) is.
func v2p(t *testing.T, fd, pid int, vaddr uint64) (v2pRequest, error) {
	t.Helper()
	req := v2pRequest{PID: int32(pid), VAddr: vaddr}
	err := ioctl(fd, ioctlV2P, unsafe.Pointer(&req))
	return req, err
}

func poke(fd int, paddr uint64, value byte) error {
	req := pokeRequest{PAddr: paddr, Value: value}
	return ioctl(fd, ioctlPoke, unsafe.Pointer(&req))
}

// ---- what the kernel itself says ----

// pagemapEntry is vaddr's entry in /proc/<pid>/pagemap: bit 63 present,
// bits 0-54 the page frame number (to CAP_SYS_ADMIN).
type pagemapEntry struct {
	Present bool
	PFN     uint64
}

func pagemap(t *testing.T, pid int, vaddr uint64) pagemapEntry {
	t.Helper()
	path := fmt.Sprintf("/proc/%d/pagemap", pid)
	if pid == 0 {
		path = "/proc/self/pagemap"
	}
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	var b [8]byte
	_, err = f.ReadAt(b[:], int64(vaddr/pageSize*8))
	require.NoError(t, err, "%s at %#x", path, vaddr)
	e := binary.LittleEndian.Uint64(b[:])
	return pagemapEntry{Present: e>>63 == 1, PFN: e & (1<<55 - 1)}
}

// kBField is the value of "key: <n> kB" in a /proc file, in bytes.
func kBField(t *testing.T, path, key string) uint64 {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok || k != key {
			continue
		}
		n, unit, _ := strings.Cut(strings.TrimSpace(v), " ")
		require.Equal(t, "kB", unit, "%s: %s", path, line)
		return parseUint(t, n) * 1024
	}
	require.FailNow(t, fmt.Sprintf("%s has no %s line", path, key))
	return 0
}

// readMem reads n bytes at vaddr of process pid through /proc/<pid>/mem.
func readMem(t *testing.T, pid int, vaddr uint64, n int) []byte {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/mem", pid))
	require.NoError(t, err)
	defer f.Close()
	b := make([]byte, n)
	_, err = f.ReadAt(b, int64(vaddr))
	require.NoError(t, err, "/proc/%d/mem at %#x", pid, vaddr)
	return b
}

// ---- the module's /proc files ----

// selectPID writes pid to one of the module's selection files.
func selectPID(t *testing.T, path string, pid int) {
	t.Helper()
	err := os.WriteFile(path, []byte(strconv.Itoa(pid)), 0)
	if err != nil {
		guesttest.FailNow(t, guestapi.Failure{Check: fmt.Sprintf("write %d to %s", pid, path), Expected: "the PID is taken", Got: guesttest.ErrnoName(err),
			Hint: "the write handler parses a decimal PID and keeps a reference to its struct pid"})
	}
}

// readSelected writes pid to path and reads what the module says of it.
func readSelected(t *testing.T, path string, pid int) string {
	t.Helper()
	selectPID(t, path, pid)
	b, err := os.ReadFile(path)
	if err != nil {
		guesttest.FailNow(t, guestapi.Failure{Check: fmt.Sprintf("read %s after writing %d", path, pid), Expected: "the module's answer", Got: guesttest.ErrnoName(err)})
	}
	return string(b)
}

// unescape undoes the module's \ooo escapes of a comm.
func unescape(t *testing.T, s string) string {
	t.Helper()
	u, err := procfs.UnescapeOctal(s)
	require.NoError(t, err)
	return u
}
