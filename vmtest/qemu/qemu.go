// Package qemu starts a pidlab VM: a kernel and initramfs under
// qemu-system-x86_64, the kernel console on the first 16550 UART (QEMU's
// standard output) and the guest runner's results on the second (a unix
// socket). The cloud kernel has no built-in virtio console, but every x86
// kernel has the 8250 driver. An Interactive VM instead gives its console
// to the terminal, for a person, and has no results port.
package qemu

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pidlab/pidlab/vmtest/internal/lockeddir"
)

// Accel is how QEMU runs guest code.
type Accel string

// Accelerators pidlab uses.
const (
	KVM Accel = "kvm"
	TCG Accel = "tcg" // software emulation: slow, works everywhere
)

// EnvAccel overrides the accelerator choice (kvm or tcg).
const EnvAccel = "PIDLAB_ACCEL"

// ChooseAccel picks KVM only when /dev/kvm opens and the CPU advertises
// vmx or svm: a bare /dev/kvm on a nested VM without them hangs or aborts
// QEMU. why says what was decided and why, for a one-line notice. KVM
// asked for where it cannot work is an error that says why, so that no
// QEMU is started to find out.
func ChooseAccel(override string) (accel Accel, why string, err error) {
	switch Accel(override) {
	case KVM:
		if err := KVMUsable(); err != nil {
			return "", "", fmt.Errorf("%s=kvm, but KVM cannot work here: %w; QEMU would abort or hang", EnvAccel, err)
		}
		return KVM, EnvAccel + "=" + override, nil
	case TCG:
		return TCG, EnvAccel + "=" + override, nil
	case "":
	default:
		return "", "", fmt.Errorf("%s=%q: want kvm or tcg", EnvAccel, override)
	}
	if err := KVMUsable(); err != nil {
		return TCG, err.Error() + ": emulating with TCG, which is slower", nil
	}
	return KVM, "KVM", nil
}

// Where KVMUsable looks; tests point them elsewhere.
var (
	devKVM  = "/dev/kvm"
	cpuinfo = "/proc/cpuinfo"
)

// KVMUsable says why KVM cannot run a guest here, or nil when it can.
func KVMUsable() error {
	f, err := os.OpenFile(devKVM, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("no usable /dev/kvm (%w)", err)
	}
	f.Close()
	info, _ := os.ReadFile(cpuinfo)
	if !hasVirtFlag(string(info)) {
		return errors.New("/dev/kvm exists but the CPU advertises no vmx/svm (a nested VM)")
	}
	return nil
}

func hasVirtFlag(cpuinfo string) bool {
	for _, line := range strings.Split(cpuinfo, "\n") {
		if !strings.HasPrefix(line, "flags") {
			continue
		}
		for _, f := range strings.Fields(line) {
			if f == "vmx" || f == "svm" {
				return true
			}
		}
	}
	return false
}

// Config describes one VM.
type Config struct {
	Binary   string // qemu-system-x86_64
	Kernel   string
	Initrd   string
	Append   []string // kernel command line, added to the console defaults
	Accel    Accel
	MemoryMB int
	CPUs     int
	// Interactive connects the console to this process's terminal
	// (standard input and output) instead of the Console pipe.
	Interactive bool
}

// KernelArgs is the kernel command line: console on ttyS0 with every
// message (u-root's init lowers the console level, ignore_loglevel keeps
// them all in the log), and any oops or panic ends the VM at once.
func (c Config) KernelArgs() string {
	args := []string{"console=ttyS0,115200", "ignore_loglevel", "panic=-1", "oops=panic", "printk.devkmsg=on"}
	return strings.Join(append(args, c.Append...), " ")
}

// Args is QEMU's command line for a results socket at results (unused
// when Interactive).
func (c Config) Args(results string) []string {
	args := []string{
		"-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
		"-machine", "q35,accel=" + string(c.Accel),
		"-m", fmt.Sprint(c.MemoryMB), "-smp", fmt.Sprint(c.CPUs),
		"-kernel", c.Kernel, "-initrd", c.Initrd, "-append", c.KernelArgs(),
	}
	if c.Interactive {
		// signal=off: Ctrl-C goes to the guest; mux=on: Ctrl-A X still
		// ends QEMU.
		args = append(args, "-chardev", "stdio,id=console,signal=off,mux=on", "-serial", "chardev:console")
	} else {
		args = append(args,
			"-chardev", "stdio,id=console,signal=off", "-serial", "chardev:console",
			"-chardev", "socket,id=results,path="+results, "-serial", "chardev:results")
	}
	if c.Accel == KVM {
		args = append(args, "-cpu", "host")
	} else {
		args = append(args, "-cpu", "max")
	}
	return args
}

// VM is a running QEMU.
type VM struct {
	Cmd     *exec.Cmd
	Console *os.File // the kernel console and everything the guest's init prints
	Results net.Conn // the guest runner's events
	Stderr  *strings.Builder

	dir     *lockeddir.Dir // the results socket's; nil for an Interactive VM
	restore func()         // gives an Interactive VM's terminal back as it was
}

// TempDirPrefix names the private folders in the system's temp folder that
// hold running VMs' results sockets.
const TempDirPrefix = "pidlab-vm-"

// staleAge is how old a folder of TempDirPrefix with no VM must be for
// Start to remove it: far more than a VM's maker needs to lock its own.
const staleAge = 10 * time.Second

// Start boots the VM. The results socket lives in a private temp dir that
// Wait removes; a later Start removes it if this process is killed first.
func Start(ctx context.Context, c Config) (*VM, error) {
	if c.Interactive {
		return startInteractive(ctx, c)
	}
	// A run killed with SIGKILL could not remove its folder.
	lockeddir.RemoveStale("", TempDirPrefix, staleAge)
	dir, err := lockeddir.Make("", TempDirPrefix)
	if err != nil {
		return nil, err
	}
	sock := filepath.Join(dir.Path, "results.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		dir.Remove()
		return nil, err
	}
	defer ln.Close()
	cmd := exec.CommandContext(ctx, c.Binary, c.Args(sock)...)
	cmd.Stdin = nil // QEMU must not put a terminal in raw mode
	// If pidlab dies (a killed go test, say), QEMU must not live on. Its
	// own process group keeps a terminal's Ctrl-C from it: QEMU would
	// end on it at once, a guest's death pidlab could take for a crash;
	// pidlab, which gets the Ctrl-C, kills QEMU through ctx instead.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	// A pipe of our own, not StdoutPipe: Wait would close that one while
	// the last console lines (a panic's, say) are still unread.
	console, consoleW, err := os.Pipe()
	if err != nil {
		dir.Remove()
		return nil, err
	}
	vm := &VM{Cmd: cmd, Console: console, Stderr: &strings.Builder{}, dir: dir}
	cmd.Stdout, cmd.Stderr = consoleW, vm.Stderr
	err = cmd.Start()
	consoleW.Close()
	if err != nil {
		console.Close()
		dir.Remove()
		return nil, err
	}
	conn, err := accept(ctx, ln, cmd)
	if err != nil {
		cmd.Process.Kill()
		vm.Wait()
		vm.Close()
		return nil, fmt.Errorf("QEMU did not connect its results port: %w: %s", err, strings.TrimSpace(vm.Stderr.String()))
	}
	vm.Results = conn
	return vm, nil
}

// accept waits for QEMU's connection, or for QEMU to die trying, or for
// ctx to end (a Ctrl-C while QEMU starts: exec.CommandContext kills it).
func accept(ctx context.Context, ln net.Listener, cmd *exec.Cmd) (net.Conn, error) {
	ul := ln.(*net.UnixListener)
	deadline := time.Now().Add(connectTimeout)
	for time.Now().Before(deadline) {
		ul.SetDeadline(time.Now().Add(200 * time.Millisecond))
		conn, err := ul.Accept()
		if err == nil {
			return conn, nil
		}
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			return nil, err
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if exited(cmd) {
			return nil, errors.New("QEMU exited")
		}
	}
	return nil, fmt.Errorf("timed out after %v", connectTimeout)
}

// connectTimeout bounds how long QEMU may take to connect its results
// port: it does so before the guest runs.
const connectTimeout = 30 * time.Second

// exited reports whether QEMU has exited, without reaping it (Wait does
// that later). A dead child that is not reaped yet is a zombie, and
// kill -0 still reaches a zombie: it cannot tell.
func exited(cmd *exec.Cmd) bool {
	var info unix.Siginfo
	err := unix.Waitid(unix.P_PID, cmd.Process.Pid, &info, unix.WEXITED|unix.WNOHANG|unix.WNOWAIT, nil)
	return err != nil || info.Signo == int32(unix.SIGCHLD)
}

// ErrNoTerminal is an Interactive VM without a terminal to give it.
var ErrNoTerminal = errors.New("an interactive VM needs a terminal on standard input")

// CheckTerminal returns ErrNoTerminal unless standard input is a terminal.
func CheckTerminal() error {
	_, err := terminalState()
	return err
}

func terminalState() (*unix.Termios, error) {
	t, err := unix.IoctlGetTermios(int(os.Stdin.Fd()), unix.TCGETS)
	if err != nil {
		return nil, fmt.Errorf("%w (%v)", ErrNoTerminal, err)
	}
	return t, nil
}

// startInteractive boots a VM whose console is this terminal. QEMU makes
// the terminal raw and non-blocking and undoes that when it exits; Wait
// undoes it too, after a QEMU that was killed.
func startInteractive(ctx context.Context, c Config) (*VM, error) {
	saved, err := terminalState()
	if err != nil {
		return nil, err
	}
	fd := int(os.Stdin.Fd())
	flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, c.Binary, c.Args("")...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	vm := &VM{Cmd: cmd, Stderr: &strings.Builder{}, restore: func() {
		unix.IoctlSetTermios(fd, unix.TCSETS, saved)
		unix.FcntlInt(uintptr(fd), unix.F_SETFL, flags)
	}}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, vm.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return vm, nil
}

// Kill stops QEMU at once.
func (vm *VM) Kill() { vm.Cmd.Process.Kill() }

// Wait waits for QEMU to exit and removes its socket. The console and the
// results stay readable to their end; Close them after.
func (vm *VM) Wait() error {
	err := vm.Cmd.Wait()
	if vm.restore != nil {
		vm.restore()
	}
	vm.dir.Remove()
	return err
}

// Close releases the console and results channels.
func (vm *VM) Close() {
	if vm.Console != nil {
		vm.Console.Close()
	}
	if vm.Results != nil {
		vm.Results.Close()
	}
}

// Repro is the QEMU command for a person to rerun by hand: the same VM,
// with the results written to results.jsonl instead of pidlab's socket.
func (vm *VM) Repro() *exec.Cmd {
	args := append([]string(nil), vm.Cmd.Args[1:]...)
	for i, a := range args {
		if strings.HasPrefix(a, "socket,id=results,") {
			args[i] = "file,id=results,path=results.jsonl"
		}
	}
	return exec.Command(vm.Cmd.Args[0], args...)
}
