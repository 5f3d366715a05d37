// Package hostdeps checks the host programs and libraries a run needs and,
// on Debian or Ubuntu as root, installs the missing ones with apt-get.
package hostdeps

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/pidlab/pidlab/vmtest/progress"
	"github.com/pidlab/pidlab/vmtest/verdict"
)

// Need is one prerequisite: a program on PATH or a file matching a glob,
// and the Debian package that provides it.
type Need struct {
	Program string // looked up on PATH
	Glob    string // or: a file that must exist
	Package string
}

// Boot is what building a module and booting it needs on any host.
var Boot = []Need{
	{Program: "qemu-system-x86_64", Package: "qemu-system-x86"},
	{Program: "make", Package: "make"},
	{Program: "gcc", Package: "gcc"},
	{Glob: "/usr/lib/*/libc.a", Package: "libc6-dev"}, // static guest helper programs
}

// DebianKernel is what fetching and using Debian's kernel packages needs:
// apt to fetch, dpkg-deb to unpack, and what linux-kbuild and the headers'
// compiler setting (gcc-12) need.
var DebianKernel = []Need{
	{Program: "apt-get", Package: "apt"},
	{Program: "dpkg-deb", Package: "dpkg"},
	{Program: "gcc-12", Package: "gcc-12"},
	{Glob: "/usr/lib/*/libelf.so.1", Package: "libelf1"},
	{Glob: "/usr/lib/*/libssl.so.3", Package: "libssl3"},
}

// SourceKernel is what building a kernel from Debian's linux-source-6.1
// (the debug kernel) needs: apt and dpkg-deb to fetch and unpack the
// source, tar and xz for its tarball, patch for its patches, and the
// kernel's own build tools (Kconfig: flex and bison; bc and perl for
// generated headers; libelf for objtool; OpenSSL's headers for the signing
// and certificate tools).
var SourceKernel = []Need{
	{Program: "apt-get", Package: "apt"},
	{Program: "dpkg-deb", Package: "dpkg"},
	{Program: "tar", Package: "tar"},
	{Program: "xz", Package: "xz-utils"},
	{Program: "patch", Package: "patch"},
	{Program: "make", Package: "make"},
	{Program: "gcc", Package: "gcc"},
	{Program: "flex", Package: "flex"},
	{Program: "bison", Package: "bison"},
	{Program: "bc", Package: "bc"},
	{Program: "perl", Package: "perl"},
	{Glob: "/usr/include/libelf.h", Package: "libelf-dev"},
	{Glob: "/usr/include/openssl/opensslv.h", Package: "libssl-dev"},
}

func (n Need) present() bool {
	if n.Program != "" {
		_, err := exec.LookPath(n.Program)
		return err == nil
	}
	m, _ := filepath.Glob(n.Glob)
	if len(m) == 0 {
		m, _ = filepath.Glob(strings.Replace(n.Glob, "/usr/lib/", "/lib/", 1))
	}
	return len(m) > 0
}

var aptEnv = []string{"DEBIAN_FRONTEND=noninteractive"}

// Ensure checks needs and installs the missing ones when it can (root and
// apt-get); otherwise it returns a setup error with the command to run.
func Ensure(ctx context.Context, log *progress.Log, needs ...Need) error {
	var missing []string
	seen := map[string]bool{}
	for _, n := range needs {
		if !n.present() && !seen[n.Package] {
			missing = append(missing, n.Package)
			seen[n.Package] = true
		}
	}
	if len(missing) == 0 {
		return nil
	}
	install := "apt-get install -y --no-install-recommends " + strings.Join(missing, " ")
	if !CanInstall() {
		return verdict.SetupError("sudo "+install, "missing host packages: %s", strings.Join(missing, ", "))
	}
	log.Step("installing missing host packages: %s", strings.Join(missing, " "))
	args := append([]string{"install", "-y", "--no-install-recommends"}, missing...)
	err := Lists.Retry(ctx, log, func() error {
		if _, err := log.CombinedOutput(ctx, "", aptEnv, "apt-get", args...); err != nil {
			return AptFailed(verdict.SetupError(install, "installing %s failed: %v", strings.Join(missing, " "), err))
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, n := range needs {
		if !n.present() {
			return verdict.SetupError(install, "%s is still missing after installing %s", n.Program+n.Glob, n.Package)
		}
	}
	return nil
}
