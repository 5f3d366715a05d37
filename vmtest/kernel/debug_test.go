package kernel

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pidlab/pidlab/vmtest/verdict"
)

func TestParseSelectionAcceptsDebug(t *testing.T) {
	sel, err := ParseSelection("debug", "")
	require.NoError(t, err)
	assert.Equal(t, Selection{Flavour: DebugName}, sel)
	assert.True(t, sel.IsBuilt())

	sel, err = ParseSelection("cloud", "")
	require.NoError(t, err)
	assert.False(t, sel.IsBuilt())

	_, err = ParseSelection("fedora", "")
	assert.ErrorContains(t, err, "debug", "the error lists debug among the kernel names")
}

func TestParseFragment(t *testing.T) {
	opts, err := ParseFragment(testFragment, `# a comment
CONFIG_KASAN=y

  CONFIG_SERIAL_8250_NR_UARTS=4
CONFIG_LOCALVERSION="-x"
# CONFIG_DEBUG_KMEMLEAK_AUTO_SCAN is not set
`)
	require.NoError(t, err)
	assert.Equal(t, []Option{
		{Name: "CONFIG_KASAN", Value: "y", Line: 2},
		{Name: "CONFIG_SERIAL_8250_NR_UARTS", Value: "4", Line: 4},
		{Name: "CONFIG_LOCALVERSION", Value: `"-x"`, Line: 5},
		{Name: "CONFIG_DEBUG_KMEMLEAK_AUTO_SCAN", Value: "n", Line: 6},
	}, opts)
	assert.Equal(t, "# CONFIG_DEBUG_KMEMLEAK_AUTO_SCAN is not set", opts[3].String())

	for text, want := range map[string]string{
		"CONFIG_KASAN=y\nKASAN=y\n":             ":2: not a config line",
		"CONFIG_KASAN=y\nCONFIG_KASAN=n\n":      ":2: CONFIG_KASAN is already set on line 1",
		"CONFIG_KASAN=\n":                       ":1: CONFIG_KASAN has no value",
		"CONFIG_A=y\n# CONFIG_A is not set\n":   "already set",
		"CONFIG_A=y\nCONFIG_B y\n":              "not a config line",
		"CONFIG_A=y\n#CONFIG_B is not set\nx\n": ":3:",
	} {
		_, err := ParseFragment(testFragment, text)
		assert.ErrorContains(t, err, want, "fragment %q", text)
		assert.Equal(t, verdict.Setup, verdict.CodeOf(err), "fragment %q", text)
	}
}

// The fragment in the repo parses and asks for what the brief of the
// debug kernel promises: the debugging features and what the suite needs.
func TestDebugFragmentHasTheDebuggingOptions(t *testing.T) {
	opts, err := ParseFragment(testFragment, debugFragment(t))
	require.NoError(t, err)
	got := map[string]string{}
	for _, o := range opts {
		got[o.Name] = o.Value
	}
	for _, name := range []string{
		"64BIT", "SMP", "SLUB", "KASAN", "KASAN_GENERIC", "PROVE_LOCKING", "DEBUG_ATOMIC_SLEEP",
		"DEBUG_KMEMLEAK", "DEBUG_LIST", "HARDENED_USERCOPY", "DETECT_HUNG_TASK", "SOFTLOCKUP_DETECTOR",
		"MODULES", "MODULE_UNLOAD", "PROC_FS", "PROC_SYSCTL", "SYSFS", "DEBUG_FS", "PID_NS",
		"CHECKPOINT_RESTORE", "SERIAL_8250", "SERIAL_8250_CONSOLE", "BLK_DEV_INITRD", "DEVTMPFS",
		"FUTEX", "EPOLL", "MULTIUSER",
	} {
		assert.Equal(t, "y", got["CONFIG_"+name], "CONFIG_%s in %s", name, testFragment)
	}
	assert.Equal(t, "n", got["CONFIG_DEBUG_KMEMLEAK_AUTO_SCAN"], "kmemleak scans only when asked")
	uarts, err := strconv.Atoi(got["CONFIG_SERIAL_8250_RUNTIME_UARTS"])
	require.NoError(t, err, "CONFIG_SERIAL_8250_RUNTIME_UARTS")
	assert.GreaterOrEqual(t, uarts, 2, "UARTs: ttyS0 and ttyS1 must both exist")
}

// A fake .config where Kconfig dropped what had unmet dependencies.
const fakeConfig = `#
# Automatically generated file; DO NOT EDIT.
#
CONFIG_64BIT=y
CONFIG_SLUB=y
# CONFIG_KASAN is not set
CONFIG_SERIAL_8250_NR_UARTS=1
CONFIG_LOCALVERSION="-pidlab-debug"
# CONFIG_DEBUG_KMEMLEAK_AUTO_SCAN is not set
CONFIG_HZ_250=y
`

func TestDroppedNamesWhatKconfigDropped(t *testing.T) {
	frag, err := ParseFragment(testFragment, `CONFIG_64BIT=y
CONFIG_SLUB=y
CONFIG_KASAN=y
CONFIG_PROVE_LOCKING=y
CONFIG_SERIAL_8250_NR_UARTS=4
CONFIG_LOCALVERSION="-pidlab-debug"
# CONFIG_DEBUG_KMEMLEAK_AUTO_SCAN is not set
# CONFIG_KPROBES is not set
# CONFIG_HZ_250 is not set
`)
	require.NoError(t, err)
	dropped := Dropped(frag, ParseConfig(fakeConfig))
	var names []string
	for _, d := range dropped {
		names = append(names, d.Name)
	}
	// KPROBES is absent from .config: off, as asked.
	assert.Equal(t, []string{"CONFIG_KASAN", "CONFIG_PROVE_LOCKING", "CONFIG_SERIAL_8250_NR_UARTS", "CONFIG_HZ_250"}, names)

	err = droppedError(testFragment, dropped, "/cache/kernels/debug-x.rejected.config")
	assert.Equal(t, verdict.Setup, verdict.CodeOf(err))
	for _, want := range []string{
		"Kconfig dropped 4 option(s) of vmtest/kernel/kernels/debug.config",
		"CONFIG_KASAN=y (line 3): not set in .config",
		"CONFIG_PROVE_LOCKING=y (line 4): not in .config (a dependency is off)",
		"CONFIG_SERIAL_8250_NR_UARTS=4 (line 5): .config has CONFIG_SERIAL_8250_NR_UARTS=1",
		"# CONFIG_HZ_250 is not set (line 9): .config has CONFIG_HZ_250=y",
		"/cache/kernels/debug-x.rejected.config",
		"depends on",
	} {
		assert.ErrorContains(t, err, want)
	}

	assert.Empty(t, Dropped(frag[:2], ParseConfig(fakeConfig)), "options that are there as asked")
}

func TestDebugKeyIsStableAndCoversItsInputs(t *testing.T) {
	const frag = "CONFIG_KASAN=y\n"
	const cc = "gcc (Debian 12.2.0-14+deb12u1) 12.2.0"
	// The recipe's key, without the description's patches: a golden value
	// that no patch edit moves.
	recipeKey := func(version, fragment, compiler string) string {
		return SourceBuild{Desc: debugDescription(t), Fragment: fragment}.key(version, nil, compiler)
	}
	key := recipeKey("6.1.192-2", frag, cc)
	assert.Len(t, key, 16)
	assert.Equal(t, key, recipeKey("6.1.192-2", frag, cc), "same inputs, same key")
	// A golden value: the key must not change by accident (a refactor that
	// does would rebuild every user's debug kernel). Change it only
	// with the recipe, and then bump debugRecipeVersion or edit the steps.
	assert.Equal(t, "03727c5a798274c5", key, "the debug kernel's cache key for fixed inputs")

	assert.NotEqual(t, key, recipeKey("6.1.192-3", frag, cc), "a new source version")
	assert.NotEqual(t, key, recipeKey("6.1.192-2", frag+"CONFIG_DEBUG_LIST=y\n", cc), "a changed fragment")
	assert.NotEqual(t, key, recipeKey("6.1.192-2", frag, "gcc 13"), "another compiler")
	assert.NotEqual(t, key, debugKey("6.1.192-2", frag, cc), "the description's patches")
}

func TestPrintURIsGivesTheSourceVersion(t *testing.T) {
	out := "'http://deb.debian.org/debian-security/pool/updates/main/l/linux/linux-source-6.1_6.1.192-2_all.deb' " +
		"linux-source-6.1_6.1.192-2_all.deb 139331676 SHA256:ae95fe63d4c553f8d0e6c86cb1ab566f3894a43743eb19ab585cd97d82f26514\n"
	m := printURIs("linux-source-6.1").FindStringSubmatch(out)
	require.NotNil(t, m)
	assert.Equal(t, "linux-source-6.1_6.1.192-2_all.deb", m[1])
	assert.Equal(t, "6.1.192-2", m[2])
	assert.Equal(t, "139331676", m[3])
}

func TestReadyDebugAndCachedFallback(t *testing.T) {
	d := SourceBuild{Desc: debugDescription(t), CacheDir: t.TempDir(), Fragment: "CONFIG_KASAN=y\n"}
	const cc = "gcc 12"
	patches, err := d.patches()
	require.NoError(t, err)
	mk := func(version, key string, ready bool) string {
		dir := filepath.Join(d.CacheDir, "debug-"+key)
		require.NoError(t, os.MkdirAll(dir, 0o755))
		if ready {
			require.NoError(t, os.WriteFile(filepath.Join(dir, readyMarker), []byte(debugMarker("6.1.192-pidlab-debug", version)), 0o644))
		}
		return dir
	}
	_, err = d.ready(mk("6.1.200-1", debugKey("6.1.200-1", d.Fragment, cc), false))
	assert.Error(t, err, "a build without its ready marker is not used")
	dir, _ := d.cachedFallback(patches, cc)
	assert.Empty(t, dir, "no finished build")

	mk("6.1.190-1", debugKey("6.1.190-1", "CONFIG_OTHER=y\n", cc), true) // another fragment
	dir, _ = d.cachedFallback(patches, cc)
	assert.Empty(t, dir, "a build of another fragment is not a fallback")

	want := mk("6.1.192-2", debugKey("6.1.192-2", d.Fragment, cc), true)
	dir, version := d.cachedFallback(patches, cc)
	assert.Equal(t, want, dir)
	assert.Equal(t, "6.1.192-2", version)

	k, err := d.ready(want)
	require.NoError(t, err)
	assert.Equal(t, &Kernel{
		Name:    "debug",
		Release: "6.1.192-pidlab-debug",
		Image:   filepath.Join(want, "linux/arch/x86/boot/bzImage"),
		KDIR:    filepath.Join(want, "linux"),
	}, k)
}

func TestBuildProgressPrintsATenthAtATime(t *testing.T) {
	now := time.Unix(0, 0)
	p := &buildProgress{Kernel: "debug", Expected: 1000, Every: 30 * time.Second, Now: func() time.Time { return now }}
	p.start()
	var msgs []string
	say := func(line string) {
		if m := p.Line(line); m != "" {
			msgs = append(msgs, m)
		}
	}
	say("make[1]: Entering directory") // not a kbuild line
	for i := 1; i <= 1000; i++ {
		say(fmt.Sprintf("  CC      kernel/f%d.o", i))
		say("  AR      kernel/built-in.a")
	}
	require.Len(t, msgs, 9, "one line per tenth, none at 100%% of an estimate: %q", msgs)
	assert.Equal(t, "compiling the debug kernel (CC 100/~1000, 10%; now: CC kernel/f100.o)", msgs[0])

	msgs = nil
	now = now.Add(31 * time.Second)
	say("  CC      kernel/one-more.o")
	require.Len(t, msgs, 1, "past the estimate: a line every 30 s")
	assert.Equal(t, "compiling the debug kernel (CC 1001, about done; now: CC kernel/one-more.o)", msgs[0])

	msgs = nil
	say("  LD      vmlinux.o")
	require.Len(t, msgs, 1)
	assert.Equal(t, "linking vmlinux (after CC 1001)", msgs[0])

	msgs = nil
	say("  OBJTOOL vmlinux.o")
	assert.Empty(t, msgs, "nothing new and no time passed")
	now = now.Add(31 * time.Second)
	say("  KSYMS   .tmp_vmlinux.kallsyms1.S")
	require.Len(t, msgs, 1, "a line every 30 s while nothing else moves")
	assert.True(t, strings.HasSuffix(msgs[0], "now: KSYMS .tmp_vmlinux.kallsyms1.S)"), msgs[0])
}

// testFragment names a fragment in the tests' messages.
const testFragment = "vmtest/kernel/kernels/debug.config"

func debugDescription(t *testing.T) Description {
	t.Helper()
	d, ok := Describe(DebugName)
	require.True(t, ok, "kernels.toml describes the debug kernel")
	return d
}

func debugFragment(t *testing.T) string {
	t.Helper()
	text, err := debugDescription(t).FragmentText()
	require.NoError(t, err)
	return text
}

// debugKey is the debug kernel's cache key for a fragment, without patches.
func debugKey(version, fragment, compiler string) string {
	d, _ := Describe(DebugName)
	b := SourceBuild{Desc: d, Fragment: fragment}
	patches, err := b.patches()
	if err != nil {
		panic(err) // embedded; TestPidInfoPatchAddsTheModulesHeader reads them too
	}
	return b.key(version, patches, compiler)
}

// debugMarker is the ready marker of a debug kernel build.
func debugMarker(release, version string) string {
	d, _ := Describe(DebugName)
	return SourceBuild{Desc: d}.marker(release, version)
}
