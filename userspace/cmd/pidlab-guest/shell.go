package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/pidlab/pidlab/userspace/guest"
	"github.com/pidlab/pidlab/userspace/guestapi"
)

// shell is u-root's gosh, which the host builds into a shell VM's
// initramfs without its line editor: the console's own line discipline
// edits lines, and gosh then survives a Ctrl-C meant for its command.
const shell = "gosh"

// runShell is `mage vm:shell`: it loads the module, gives the console to a
// shell until the person leaves it, then unloads the module.
func runShell(man guestapi.Manifest) error {
	if len(man.Modules) == 0 {
		return fmt.Errorf("the manifest names no module to load")
	}
	m := man.Modules[0]
	sys := guest.LinuxSystem{}
	loadErr := sys.LoadModule(m.Module)
	if loadErr != nil {
		say("module %s did not load: %v", m.ModuleName, loadErr)
		say("dmesg may say why; insmod %s tries again", m.Module)
	} else {
		say("module %s loaded from %s", m.ModuleName, m.Module)
		if man.Try != "" {
			say("try:  %s", man.Try)
		}
	}
	say("the shell's echo hides write errors; /bbin/echo reports them")
	say("exit leaves the shell, unloads the module and powers off")
	shellErr := runShellOnConsole()
	say("") // after a Ctrl-D, the prompt's line is still open
	switch err := guest.Unload(sys, m.ModuleName); {
	case err == nil:
		say("module %s unloaded", m.ModuleName)
	case errors.Is(err, unix.ENOENT):
		// Never loaded, or removed by hand.
	default:
		say("module %s did not unload: %v", m.ModuleName, err)
	}
	say("powering off")
	return shellErr
}

// say writes a line to the console, opened anew each time: the kernel
// hangs the console up when the shell, its session leader, exits.
func say(format string, args ...any) {
	tty, err := os.OpenFile(guestapi.ConsolePort, os.O_WRONLY, 0)
	if err != nil {
		return
	}
	defer tty.Close()
	if format == "" {
		fmt.Fprintln(tty)
		return
	}
	fmt.Fprintf(tty, "pidlab: "+format+"\n", args...)
}

// runShellOnConsole runs the shell in a session of its own with the
// console as its controlling terminal, so that Ctrl-C interrupts the
// command it runs. What the shell leaves running is killed after it, lest
// it hold the module.
func runShellOnConsole() error {
	path, err := exec.LookPath(shell)
	if err != nil {
		return err
	}
	tty, err := os.OpenFile(guestapi.ConsolePort, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("opening the console: %w", err)
	}
	defer tty.Close()
	cmd := exec.Command(path)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, tty, tty
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	err = cmd.Wait()
	syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return nil // the status of the person's last command, not a fault
	}
	return err
}
