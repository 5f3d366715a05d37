package guest

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/u-root/u-root/pkg/kmodule"
	"golang.org/x/sys/unix"
)

// LinuxSystem is the real kernel of the guest.
type LinuxSystem struct{}

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
