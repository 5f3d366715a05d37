package kernel

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pidlab/pidlab/vmtest/hostdeps"
	"github.com/pidlab/pidlab/vmtest/progress"
	"github.com/pidlab/pidlab/vmtest/verdict"
)

// fakeApt puts apt-cache, apt-get and dpkg-deb on PATH that behave like a
// machine whose package lists are stale while $state/stale exists: the
// metapackage points at ABI 48, whose packages the mirror no longer has
// (404); fresh lists point at ABI 57. It returns the state folder.
func fakeApt(t *testing.T) string {
	t.Helper()
	bin, state := t.TempDir(), t.TempDir()
	scripts := map[string]string{
		"apt-cache": `case "$2" in
linux-image-cloud-amd64)
	abi=57; [ -e "$STATE/stale" ] && abi=48
	printf 'linux-image-cloud-amd64\n  Depends: linux-image-6.1.0-%s-cloud-amd64\n' $abi ;;
linux-headers-6.1.0-*-cloud-amd64)
	abi=${2#linux-headers-6.1.0-}; abi=${abi%-cloud-amd64}
	printf '%s\n  Depends: linux-headers-6.1.0-%s-common\n  Depends: linux-kbuild-6.1\n' "$2" $abi ;;
*) echo "E: No packages found" >&2; exit 100 ;;
esac`,
		"apt-get": `[ "$1" = download ] || exit 100
shift; [ "$1" = -o ] && shift 2
for p in "$@"; do
	case "$p" in *-48-*) [ -e "$STATE/stale" ] || exit 100
		echo "E: Failed to fetch http://deb.debian.org/debian/pool/main/l/linux-signed-amd64/$p.deb  404  Not Found [IP: 1.2.3.4 80]" >&2; exit 100 ;;
	esac
done
for p in "$@"; do : > "${p}_1_amd64.deb"; echo "Get:1 http://deb.debian.org/debian bookworm/main amd64 $p amd64 1 [1 kB]"; done`,
		"dpkg-deb": `deb=$(basename "$2"); pkg=${deb%%_*}
case "$pkg" in
linux-image-*-unsigned) r=${pkg#linux-image-}; r=${r%-unsigned}; mkdir -p "$3/boot" "$3/lib/modules/$r"; : > "$3/boot/vmlinuz-$r" ;;
linux-headers-*-cloud-amd64) mkdir -p "$3/usr/src/$pkg"; echo "include /usr/src/common/Makefile" > "$3/usr/src/$pkg/Makefile" ;;
esac`,
	}
	for name, body := range scripts {
		require.NoError(t, os.WriteFile(filepath.Join(bin, name), []byte("#!/bin/sh\n"+body+"\n"), 0o755))
	}
	require.NoError(t, os.WriteFile(filepath.Join(state, "stale"), nil, 0o644))
	t.Setenv("STATE", state)
	// The fake lists are $STATE's files: the ABI apt said is kept for them.
	saved := aptState
	aptState = []string{filepath.Join(state, "*")}
	t.Cleanup(func() { aptState = saved })
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	return state
}

// fakeLists is an AptLists whose apt-get update makes the fake lists fresh
// (or fails with err), counting its runs.
func fakeLists(state string, root bool, err error, runs *int) *hostdeps.AptLists {
	return &hostdeps.AptLists{
		CanUpdate: func() bool { return root },
		Update: func(context.Context, *progress.Log) error {
			*runs++
			if err != nil {
				return err
			}
			return os.Remove(filepath.Join(state, "stale"))
		},
	}
}

func TestDebianRefreshesStaleListsAsRoot(t *testing.T) {
	state := fakeApt(t)
	var out bytes.Buffer
	runs := 0
	d := Debian{Flavour: "cloud", CacheDir: t.TempDir(), Log: &progress.Log{W: &out}, Lists: fakeLists(state, true, nil, &runs)}
	k, err := d.Provision(t.Context())
	require.NoError(t, err, "log:\n%s", out.String())
	assert.Equal(t, 1, runs, "apt-get update runs")
	assert.Equal(t, "6.1.0-57-cloud-amd64", k.Release, "the ABI the fresh lists name, not the stale 48")
	assert.FileExists(t, k.Image)
	assert.Contains(t, out.String(), "apt's package lists are stale or missing: running apt-get update")
	assert.NoDirExists(t, filepath.Join(d.CacheDir, "6.1.0-48-cloud-amd64"), "nothing is kept of the failed ABI")
}

func TestDebianStaleListsWithoutRootKeepTheFix(t *testing.T) {
	state := fakeApt(t)
	runs := 0
	d := Debian{Flavour: "cloud", CacheDir: t.TempDir(), Lists: fakeLists(state, false, nil, &runs)}
	_, err := d.Provision(t.Context())
	require.Error(t, err)
	assert.Equal(t, 0, runs, "apt-get update runs without root")
	assert.Equal(t, verdict.Setup, verdict.CodeOf(err))
	assert.ErrorContains(t, err, "404  Not Found")
	assert.ErrorContains(t, err, "fix: apt-get update, then run again")
}

func TestDebianFailedUpdateIsASetupErrorNamingIt(t *testing.T) {
	state := fakeApt(t)
	runs := 0
	d := Debian{Flavour: "cloud", CacheDir: t.TempDir(), Lists: fakeLists(state, true, errors.New("Temporary failure resolving 'deb.debian.org'"), &runs)}
	_, err := d.Provision(t.Context())
	require.Error(t, err)
	assert.Equal(t, 1, runs, "apt-get update runs")
	assert.Equal(t, verdict.Setup, verdict.CodeOf(err))
	assert.ErrorContains(t, err, "apt-get update failed: Temporary failure resolving")
	assert.ErrorContains(t, err, "downloading the kernel packages failed", "what made it run")
}

// The stale lists name linux-source-6.1 6.1.190-1, which the mirror has
// dropped; the fresh ones name 6.1.192-2.
func TestDebugRefreshesStaleListsAsRoot(t *testing.T) {
	bin, state := t.TempDir(), t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(bin, "apt-get"), []byte(`#!/bin/sh
v=6.1.192-2; [ -e "$STATE/stale" ] && v=6.1.190-1
case "$*" in
*--print-uris*) echo "'http://deb.debian.org/debian/pool/main/l/linux/linux-source-6.1_${v}_all.deb' linux-source-6.1_${v}_all.deb 139331676 SHA256:ab" ;;
*=6.1.190-1) echo "E: Failed to fetch http://deb.debian.org/debian/pool/main/l/linux/linux-source-6.1_6.1.190-1_all.deb  404  Not Found" >&2; exit 100 ;;
*) exit 100 ;;
esac
`), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(state, "stale"), nil, 0o644))
	t.Setenv("STATE", state)
	// The fake lists are $STATE's files: the ABI apt said is kept for them.
	saved := aptState
	aptState = []string{filepath.Join(state, "*")}
	t.Cleanup(func() { aptState = saved })
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))

	runs := 0
	d := SourceBuild{Desc: debugDescription(t), CacheDir: t.TempDir(), Fragment: "CONFIG_KASAN=y\n", Lists: fakeLists(state, true, nil, &runs)}
	// The build the fresh lists' version names is cached: no compiling.
	dir := filepath.Join(d.CacheDir, "debug-"+debugKey("6.1.192-2", d.Fragment, d.compiler(t.Context())))
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "linux/arch/x86/boot"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "linux/arch/x86/boot/bzImage"), []byte("image"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, readyMarker), []byte(debugMarker("6.1.192-pidlab-debug", "6.1.192-2")), 0o644))

	k, err := d.Provision(t.Context())
	require.NoError(t, err)
	assert.Equal(t, 1, runs, "apt-get update runs")
	assert.Equal(t, "6.1.192-pidlab-debug", k.Release)
}

// apt is asked once for the same package lists: its answer is kept in the
// cache with the lists' state, and asked again once they change.
func TestDebianAsksAptOnceForTheSameLists(t *testing.T) {
	state := fakeApt(t)
	require.NoError(t, os.Remove(filepath.Join(state, "stale")))
	asked := filepath.Join(t.TempDir(), "asked") // not among the lists
	bin := filepath.SplitList(os.Getenv("PATH"))[0]
	require.NoError(t, os.WriteFile(filepath.Join(bin, "apt-cache"), []byte("#!/bin/sh\necho >> "+asked+
		"\nprintf 'linux-image-cloud-amd64\\n  Depends: linux-image-6.1.0-57-cloud-amd64\\n'\n"), 0o755))
	d := Debian{Flavour: "cloud", CacheDir: t.TempDir()}
	count := func() int {
		b, _ := os.ReadFile(asked)
		return strings.Count(string(b), "\n")
	}

	for range 2 {
		abi, err := d.resolveABI(t.Context(), "cloud-amd64")
		require.NoError(t, err)
		assert.Equal(t, "6.1.0-57", abi)
	}
	assert.Equal(t, 1, count(), "apt-cache runs once for two resolutions")

	require.NoError(t, os.WriteFile(filepath.Join(state, "Packages"), []byte("updated"), 0o644))
	_, err := d.resolveABI(t.Context(), "cloud-amd64")
	require.NoError(t, err)
	assert.Equal(t, 2, count(), "new lists: apt is asked again")
}
