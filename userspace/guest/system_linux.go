package guest

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/u-root/u-root/pkg/kmodule"
	"golang.org/x/sys/unix"
)

// LinuxSystem is the real kernel of the guest.
type LinuxSystem struct{}

// Mark writes a test mark to the kernel log.
func (LinuxSystem) Mark(name string) { MarkTest(name) }

// LoadModule loads a .ko with finit_module.
func (LinuxSystem) LoadModule(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := kmodule.FileInit(f, "", 0); err != nil {
		return fmt.Errorf("finit_module %s: %w", path, err)
	}
	return nil
}

// UnloadModule removes a module with delete_module.
func (LinuxSystem) UnloadModule(name string) error {
	if err := kmodule.Delete(name, unix.O_NONBLOCK); err != nil {
		return fmt.Errorf("delete_module %s: %w", name, err)
	}
	return nil
}

// ProcEntries names the entries of /proc that are not a process's folder.
func (LinuxSystem) ProcEntries() []string {
	entries, _ := os.ReadDir("/proc")
	var names []string
	for _, e := range entries {
		if strings.Trim(e.Name(), "0123456789") != "" {
			names = append(names, e.Name())
		}
	}
	return names
}

// Taint reads the kernel's taint mask.
func (LinuxSystem) Taint() (uint64, error) {
	b, err := os.ReadFile("/proc/sys/kernel/tainted")
	if err != nil {
		return 0, err
	}
	return strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
}

// Kernel returns the kernel release (uname -r).
func (LinuxSystem) Kernel() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "unknown"
	}
	return unix.ByteSliceToString(u.Release[:])
}

// kmemleakFile is kmemleak's control file in debugfs.
const (
	debugfs      = "/sys/kernel/debug"
	kmemleakFile = debugfs + "/kmemleak"
)

// Leaks returns kmemleak when the kernel has it, mounting debugfs first.
func (LinuxSystem) Leaks() LeakDetector {
	if _, err := os.Stat(kmemleakFile); err != nil {
		if err := unix.Mount("debugfs", debugfs, "debugfs", 0, ""); err != nil {
			return nil
		}
	}
	if _, err := os.Stat(kmemleakFile); err != nil {
		return nil
	}
	return kmemleak{}
}

type kmemleak struct{}

// kmemleakMinAge is how old an unreferenced object must be before kmemleak
// reports it (jiffies_min_age, 5 s), plus a margin.
const kmemleakMinAge = 6 * time.Second

// Forget waits until what boot allocated is old enough to be reported,
// then scans and clears, so that boot's leaks are not blamed on the module.
func (kmemleak) Forget() error {
	if up, err := uptime(); err == nil && up < kmemleakMinAge {
		time.Sleep(kmemleakMinAge - up)
	}
	if err := kmemleakCommand("scan"); err != nil {
		return err
	}
	return kmemleakCommand("clear")
}

// kmemleakScans bounds the scans after the run: an object changed since
// the previous scan counts as referenced in the next one (kmemleak's
// checksum), so a leak needs two scans to show, and more when what
// releases the last real reference (RCU callbacks, a slow guest) is late.
// (A CI run of the fixture that leaks a struct pid on every read once got
// no report from two scans, before scans ran with signals blocked; more
// scans a few seconds apart give a late release its chance too.)
const (
	kmemleakScans   = 5
	kmemleakRescans = 2 * time.Second
)

// Scan waits until what the run allocated last is old enough to report,
// then scans until kmemleak reports something or kmemleakScans are done,
// and returns the reports.
func (kmemleak) Scan() (string, error) {
	time.Sleep(kmemleakMinAge)
	for i := range kmemleakScans {
		if i >= 2 {
			time.Sleep(kmemleakRescans)
		}
		if err := withSignalsBlocked(func() error { return kmemleakCommand("scan") }); err != nil {
			return "", err
		}
		if i < 1 {
			continue
		}
		b, err := os.ReadFile(kmemleakFile)
		if err != nil || len(b) > 0 || i == kmemleakScans-1 {
			return string(b), err
		}
	}
	return "", nil
}

// withSignalsBlocked runs f on one thread with every signal blocked there.
// kmemleak drops a scan's reports without a word when the thread that
// asked for it has a signal pending as the scan ends (scan_should_stop in
// mm/kmemleak.c), and a process-directed signal (SIGCHLD, …) may land on
// any thread of a Go program that does not block it.
func withSignalsBlocked(f func() error) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var all, old unix.Sigset_t
	for i := range all.Val {
		all.Val[i] = ^all.Val[i]
	}
	if err := unix.PthreadSigmask(unix.SIG_BLOCK, &all, &old); err != nil {
		return fmt.Errorf("blocking signals: %w", err)
	}
	defer unix.PthreadSigmask(unix.SIG_SETMASK, &old, nil)
	return f()
}

func uptime() (time.Duration, error) {
	b, err := os.ReadFile("/proc/uptime")
	if err != nil {
		return 0, err
	}
	secs, _, _ := strings.Cut(string(b), " ")
	return time.ParseDuration(secs + "s")
}

func kmemleakCommand(cmd string) error {
	if err := os.WriteFile(kmemleakFile, []byte(cmd), 0); err != nil {
		return fmt.Errorf("kmemleak %s: %w", cmd, err)
	}
	return nil
}

func isBusy(err error) bool {
	return errors.Is(err, unix.EBUSY) || errors.Is(err, unix.EAGAIN)
}

// MakeRaw puts a serial port in raw mode so events cross it byte for byte
// (no \n to \r\n translation, no echo).
func MakeRaw(f *os.File) error {
	fd := int(f.Fd())
	t, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return err
	}
	t.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
	t.Oflag &^= unix.OPOST
	t.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	t.Cflag &^= unix.CSIZE | unix.PARENB
	t.Cflag |= unix.CS8
	return unix.IoctlSetTermios(fd, unix.TCSETS, t)
}

// Drain waits until everything written to a serial port has left it.
func Drain(f *os.File) error {
	return unix.IoctlSetInt(int(f.Fd()), unix.TCSBRK, 1)
}

// Reboot ends the VM: QEMU runs with -no-reboot, so a restart exits it on
// every kernel, with or without ACPI.
func Reboot() error {
	unix.Sync()
	return unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART)
}
