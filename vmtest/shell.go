package vmtest

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/pidlab/pidlab/userspace/guestapi"
	"github.com/pidlab/pidlab/vmtest/initramfs"
	"github.com/pidlab/pidlab/vmtest/kbuild"
	"github.com/pidlab/pidlab/vmtest/manifest"
	"github.com/pidlab/pidlab/vmtest/progress"
	"github.com/pidlab/pidlab/vmtest/qemu"
	"github.com/pidlab/pidlab/vmtest/verdict"
)

// shellCommands are the u-root commands of a shell VM: gosh (echo, cd,
// test and read are builtins) and a few to look around with; echo too,
// because gosh's own ignores write errors (EINVAL from /proc/pid, say).
// go.mod pins each as a tool, which keeps its dependencies in go.sum.
var shellCommands = []string{
	"github.com/u-root/u-root/cmds/core/gosh",
	"github.com/u-root/u-root/cmds/core/echo",
	"github.com/u-root/u-root/cmds/core/cat",
	"github.com/u-root/u-root/cmds/core/ls",
	"github.com/u-root/u-root/cmds/core/dmesg",
	"github.com/u-root/u-root/cmds/core/grep",
	"github.com/u-root/u-root/cmds/core/tail",
	"github.com/u-root/u-root/cmds/core/ps",
	"github.com/u-root/u-root/cmds/core/sleep",
	"github.com/u-root/u-root/cmds/core/kill",
	"github.com/u-root/u-root/cmds/core/insmod",
	"github.com/u-root/u-root/cmds/core/rmmod",
	"github.com/u-root/u-root/cmds/core/lsmod",
}

// shellTags builds gosh without its line editors. Over a serial console
// the default one (bubbline) garbles lines typed ahead, and with either
// one a Ctrl-C that interrupts a command kills gosh too; the console's
// own line editing (erase, kill, ^C, ^D) has neither problem.
var shellTags = []string{"goshsmall"}

// Shell boots the VM with the module of c.ModuleDir loaded and gives this
// terminal a shell in the guest: `mage vm:shell`. Leaving the shell
// unloads the module and powers the VM off; Shell returns then.
func Shell(ctx context.Context, c Config) error {
	if err := qemu.CheckTerminal(); err != nil {
		return verdict.SetupError("run it in a terminal (or tmux), with standard input not redirected", "%v", err)
	}
	k, mod, err := provisionModule(ctx, c)
	if err != nil {
		return err
	}
	man, err := c.manifestFor(c.ModuleDir)
	if err != nil {
		return verdict.SetupError("fix the module's "+manifest.File, "%v", err)
	}
	initrd, err := buildShellInitramfs(ctx, c, mod, man.Try)
	if err != nil {
		return err
	}
	accel, why, err := qemu.ChooseAccel(c.Accel)
	if err != nil {
		return verdict.SetupError(qemu.EnvAccel+"=tcg", "%v", err)
	}
	if accel == qemu.TCG {
		c.Log.Info("note: %s", why)
	}
	c.Log.Step("booting %s (%s) with module %s from %s; its shell is this terminal", k.Release, accel, mod.Name, c.ModuleDir)
	c.Log.Info("exit in the guest's shell unloads the module and powers off; Ctrl-A X kills the VM")
	vm, err := qemu.Start(ctx, qemu.Config{
		Binary: "qemu-system-x86_64", Kernel: k.Image, Initrd: initrd,
		Accel: accel, MemoryMB: 1024, CPUs: 2, Interactive: true,
	})
	if err != nil {
		return verdict.SetupError("apt-get install qemu-system-x86", "starting QEMU: %v", err)
	}
	c.Log.Debug("exec: %s", progress.Cmdline(vm.Cmd))
	if err := vm.Wait(); err != nil && ctx.Err() == nil {
		return fmt.Errorf("QEMU failed: %v %s", err, strings.TrimSpace(vm.Stderr.String()))
	}
	c.Log.Step("the VM is off")
	return ctx.Err()
}

// buildShellInitramfs is u-root's init and shell, the runner and the
// module. The Go commands are built once into a base archive and the
// module laid over a copy of it, so that a changed module boots at once.
func buildShellInitramfs(ctx context.Context, c Config, mod *kbuild.Module, try string) (string, error) {
	base, _, err := initramfs.Build(ctx, initramfs.Spec{
		RepoDir:  c.RepoDir,
		Manifest: guestapi.Manifest{Shell: true},
		Commands: shellCommands,
		Tags:     shellTags,
	}, c.CacheDir, c.Log)
	if err != nil {
		return "", err
	}
	guestKO := filepath.Join(guestModuleDir, filepath.Base(mod.Path))
	return initramfs.Overlay(base, []initramfs.File{{Host: mod.Path, Guest: guestKO}},
		guestapi.Manifest{Modules: []guestapi.ModuleRun{{Name: filepath.Base(c.ModuleDir), Module: guestKO, ModuleName: mod.Name}}, Shell: true, Try: try},
		c.CacheDir, c.Log.Info)
}
