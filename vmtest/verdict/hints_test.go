package verdict

import (
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// hintOf is the hint line of a verdict, "" if it has none. A verdict has
// at most one here: the cases below each have one cause.
func hintOf(t *testing.T, err *Error) string {
	t.Helper()
	require.NotNil(t, err)
	var hints []string
	for _, l := range strings.Split(err.Error(), "\n") {
		if h, ok := strings.CutPrefix(l, "hint: "); ok {
			hints = append(hints, h)
		}
	}
	require.LessOrEqual(t, len(hints), 1, "hint lines in %s", err)
	if len(hints) == 0 {
		return ""
	}
	return hints[0]
}

// crashed is what the host saw of a run that a kernel report ended: the
// console's reports, and the tests that ran.
func crashed(t *testing.T, log string, tests ...TestResult) Observations {
	return Observations{RunnerStarted: true, Troubles: scanFile(t, "testdata/"+log), Tests: tests}
}

// The console logs are excerpts of real runs of the buggy fixtures
// (module/procpid/testdata/buggy) on the cloud and debug kernels; the tests named
// are the ones that were running, as the host saw them.
func TestHintsForRealKernelReports(t *testing.T) {
	for name, tc := range map[string]struct {
		o    Observations
		hint string
	}{
		// procpid's manifest tells these apart (vmtest/manifest's tests);
		// pidlab's own hint is the general one.
		"NULL pointer, no test known":                {crashed(t, "null-task-on-read.log"), hintNull},
		"kernel BUG in fortify_panic from the write": {crashed(t, "fortify-on-write.log"), hintOverflowInWrite},
		// A 4096-byte write warns in check_copy_size() before the copy.
		"WARN Buffer overflow detected from the write": {crashed(t, "copy-overflow-warn.log"), hintOverflowInWrite},
		"sleeping under a spinlock (debug kernel)": {crashed(t, "sleep-under-spinlock.log"),
			"a function that may sleep (copy_from_user/copy_to_user, kmalloc(GFP_KERNEL), mutex_lock) was called under a spinlock"},
		"WARN already registered on reload": {crashed(t, "proc-entry-not-removed.log"),
			"the exit function must remove it (remove_proc_entry(name, NULL) or proc_remove(entry))"},
		// module/testdata/osc10e-buggy/user-pointer-printed: SMAP stops
		// printk's %s at the user's buffer.
		"page fault at a user address in printk from the write": {crashed(t, "user-pointer-printed.log"), hintUserPointer},
		// module/testdata/osc10e-buggy/unchecked-kmalloc: a 4 MiB write
		// into kmalloc(count); the guest lived on.
		"page allocator's warning for a 4 MiB kmalloc from the write": {crashed(t, "kmalloc-too-big-warn.log"), "kmalloc(count)"},
	} {
		t.Run(name, func(t *testing.T) {
			require.NotEmpty(t, tc.o.Troubles, "the log holds a kernel report")
			err := Decide(tc.o)
			assert.Equal(t, KernelTrouble, err.Code)
			assert.Contains(t, hintOf(t, err), tc.hint)
			assert.True(t, strings.HasSuffix(err.Error(), "\nhint: "+hintOf(t, err)), "the hint is the last line:\n%s", err)
		})
	}
}

// A module's own hints come first, in order; a hint's function and test
// narrow it to the reports of that module function and of those tests.
func TestModuleHintsComeFirst(t *testing.T) {
	hint := func(report, function, test, text string) ModuleHint {
		h, err := NewModuleHint(report, function, test, text)
		require.NoError(t, err)
		return h
	}
	module := []ModuleHint{
		hint("NULL pointer", "write", "", "in the write"),
		hint("NULL pointer", "", "(?i)zombie", "a zombie's"),
		hint("NULL pointer", "", "", "the module's own"),
	}
	null := scanFile(t, "testdata/oops-on-read.log")[0]
	inWrite := Trouble{Kind: "Oops", Report: strings.Replace(scanFile(t, "testdata/fortify-on-write.log")[0].Report,
		"kernel BUG at lib/string_helpers.c:1027!", "BUG: kernel NULL pointer dereference, address: 0000000000000008", 1)}
	assert.Equal(t, "in the write", troubleHint(inWrite, []string{"TestZombie"}, module), "the function narrows first here: the first hint")
	assert.Equal(t, "a zombie's", troubleHint(null, []string{"TestZombie", "TestZombie/child"}, module))
	assert.Equal(t, "the module's own", troubleHint(null, []string{"TestRecordFields/running"}, module))
	assert.Equal(t, hintNull, troubleHint(null, nil, nil), "without the module's, pidlab's")
	assert.Equal(t, hintOverflowInWrite, troubleHint(scanFile(t, "testdata/fortify-on-write.log")[0], nil, module),
		"a report no module hint matches gets pidlab's")

	for _, bad := range [][4]string{{"", "", "", "text"}, {"x", "", "", ""}, {"(", "", "", "text"}, {"x", "", "[", "text"}} {
		_, err := NewModuleHint(bad[0], bad[1], bad[2], bad[3])
		assert.Error(t, err, "%q", bad)
	}
}

func TestOverflowHintFollowsTheModuleFunction(t *testing.T) {
	for fn, want := range map[string]string{
		"procpid_write.cold+0xc/0x90d [procpid]": hintOverflowInWrite,
		"procpid_show+0x1b1/0x1d0 [procpid]":     hintOverflowInRead,
		"procpid_init+0x1f/0x1000 [procpid]":     hintOverflow,
		"? procpid_write+0x1b1/0x1d0 [procpid]":  hintOverflow, // a stale frame is no caller
	} {
		report := "[    9.6] detected buffer overflow in __fortify_strlen\n[    9.7] Call Trace:\n[    9.7]  " + fn + "\n"
		assert.Equal(t, want, troubleHint(Trouble{Kind: "BUG", Report: report}, nil, nil), fn)
	}
}

// reportHints are first lines of kernel reports, as the kernel prints
// them, with words of the hint each must get. Together they reach every
// rule of troubleRules (TestEveryTroubleRuleIsReached).
var reportHints = map[string]string{
	"BUG: kernel NULL pointer dereference, address: 0000000000000cb0":                                                                                                                      "NULL",
	"BUG: unable to handle page fault for address: 00007ffc8b1e2c40\n#PF: supervisor read access in kernel mode\n#PF: error_code(0x0001) - permissions violation":                          "copy_from_user()",
	"general protection fault, probably for non-canonical address 0xdffffc0000000001: 0000 [#1] PREEMPT SMP KASAN\nKASAN: null-ptr-deref in range [0x0000000000000008-0x000000000000000f]": "NULL",
	"WARNING: CPU: 1 PID: 100 at mm/page_alloc.c:5634 __alloc_pages+0x2a9/0x330\nCall Trace:\n __kmalloc_large_node+0x6e/0xe0\n __kmalloc+0xbf/0x150":                                      "kmalloc(count)",
	"BUG: sleeping function called from invalid context at lib/usercopy.c:14":                                                                                                              "may sleep",
	"BUG: scheduling while atomic: cat/77/0x00000002":                                                                                                                                      "may sleep",
	"[ BUG: Invalid wait context ]": "may sleep",
	"detected buffer overflow in __fortify_strlen\n------------[ cut here ]------------\nkernel BUG at lib/string_helpers.c:1027!\nRIP: 0010:fortify_panic+0xf/0x11":                                 "past the end",
	"------------[ cut here ]------------\nBuffer overflow detected (33 < 4096)!\nWARNING: CPU: 0 PID: 99 at mm/maccess.c:228 __copy_overflow+0x16/0x30":                                             "past the end",
	"usercopy: Kernel memory overwrite attempt detected to stack (offset 0, size 4096)!\n------------[ cut here ]------------\nkernel BUG at mm/usercopy.c:102!\nRIP: 0010:usercopy_abort+0x6e/0x80": "past the end",
	"------------[ cut here ]------------\nproc_dir_entry '/proc/pid' already registered\nWARNING: CPU: 1 PID: 98 at fs/proc/generic.c:400 proc_register+0x19f/0x240":                                "remove_proc_entry(name, NULL)",
	"------------[ cut here ]------------\nname 'pid'\nWARNING: CPU: 1 PID: 80 at fs/proc/generic.c:715 remove_proc_entry+0x1a0/0x1b0":                                                               "removed twice",
	"BUG: KASAN: slab-use-after-free in procpid_show+0x5a/0x90 [procpid]":                                                                                                                            "after it was freed",
	"BUG: KASAN: use-after-free in procpid_show+0x5a/0x90 [procpid]":                                                                                                                                 "after it was freed",
	"BUG: KASAN: stack-out-of-bounds in procpid_write+0x5a/0x90 [procpid]":                                                                                                                           "write copies more than its buffer",
	"BUG: KASAN: double-free in procpid_exit+0x5a/0x90 [procpid]":                                                                                                                                    "freed twice",
	"WARNING: possible recursive locking detected":                                                                                                                                                   "already holds it",
	"WARNING: possible circular locking dependency detected":                                                                                                                                         "opposite orders",
	"WARNING: inconsistent lock state":                 "spin_lock_irqsave",
	"WARNING: suspicious RCU usage":                    "outside rcu_read_lock()",
	"WARNING: bad unlock balance detected!":            "not held",
	"WARNING: lock held when returning to user space!": "returned with a lock held",
	"------------[ cut here ]------------\nlist_add corruption. next->prev should be prev (ffff888003a1b500), but was 0000000000000000. (next=ffff888003a1b508).\nkernel BUG at lib/list_debug.c:30!": "added twice",
	"general protection fault, probably for non-canonical address 0x6b6b6b6b6b6b6b6b: 0000 [#1]":                                                                                                      "wild pointer",
	"INFO: task cat:77 blocked for more than 120 seconds.":                                                                                                                                            "never unlocked",
	"watchdog: BUG: soft lockup - CPU#0 stuck for 22s! [cat:80]":                                                                                                                                      "without yielding",
	"rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:":                                                                                                                                           "without yielding",
	"WARNING: held lock freed!": "locking mistake",
	"kernel BUG at /home/student/procpid/procpid.c:143!\ninvalid opcode: 0000 [#1] PREEMPT SMP NOPTI": "a BUG() or BUG_ON() fired",
}

func TestHintsForReportKinds(t *testing.T) {
	for report, want := range reportHints {
		var s ConsoleScanner
		for _, l := range strings.Split(report, "\n") {
			s.Scan("[    5.1] " + l)
		}
		require.NotEmpty(t, s.Troubles, "%q is a kernel report", report)
		err := Decide(Observations{RunnerStarted: true, Troubles: s.Troubles})
		assert.Contains(t, hintOf(t, err), want, report)
	}
	var s ConsoleScanner
	s.Scan("[    5.1] BUG: Bad rss-counter state mm:0000000012345678 type:MM_ANONPAGES val:1")
	assert.Empty(t, hintOf(t, Decide(Observations{RunnerStarted: true, Troubles: s.Troubles})),
		"no hint for a report without a known cause")
}

func TestEveryTroubleRuleIsReached(t *testing.T) {
	// A rule no report reaches is shadowed by an earlier one or dead.
	reached := map[int]bool{}
	for report := range reportHints {
		for i, r := range troubleRules {
			if r.re.MatchString(report) {
				reached[i] = true
				break
			}
		}
	}
	for i, r := range troubleRules {
		assert.True(t, reached[i], "no report in reportHints reaches rule %d (%s)", i, r.re)
	}
}

func TestHintNamesTheFirstReportThatHasOne(t *testing.T) {
	ts := []Trouble{{Kind: "Call Trace", Report: "Call Trace:\n dump_stack_lvl+0x4c/0x5f\n"},
		{Kind: "WARNING", Report: "proc_dir_entry '/proc/pid' already registered\nWARNING: CPU: 1 PID: 98 at fs/proc/generic.c:400"}}
	assert.Contains(t, hintOf(t, Decide(Observations{Troubles: ts})), "remove_proc_entry")
}

func TestLeakHintNamesTheAllocationSite(t *testing.T) {
	// Real kmemleak reports of the pid-reference-leaked fixture on the
	// debug kernel: struct pids from fork, and a PID namespace they kept.
	b, err := os.ReadFile("testdata/kmemleak-pid-reference-leaked.txt")
	require.NoError(t, err)
	leaks := string(b)
	v := Decide(Observations{RunnerStarted: true, Done: true, Leaks: leaks,
		Troubles: []Trouble{{Kind: "kmemleak", Report: "[   70.1] kmemleak: 3 new suspected memory leaks (see /sys/kernel/debug/kmemleak)\n"}}})
	require.NotNil(t, v)
	assert.Equal(t, KernelTrouble, v.Code)
	msg := v.Error()
	assert.Contains(t, msg, "kmemleak: 3 suspected memory leak(s) after the module was unloaded")
	assert.Contains(t, msg, "alloc_pid+0xa6/0xb60", "the reports are quoted, not just the console's notice")
	assert.Contains(t, msg, "\nhint: a struct pid (or the PID namespace a leaked one keeps) was never freed, alloc_pid in the backtrace: put_pid()")
	assert.Equal(t, 1, strings.Count(msg, "\nhint: "), "one hint per kind of site, not per report:\n%s", msg)
}

func TestLeakHintsBySite(t *testing.T) {
	report := func(frames ...string) string {
		r := "unreferenced object 0xffff888003a1b500 (size 64):\n  comm \"conformance.tes\", pid 48, jiffies 4294895923\n  backtrace:\n"
		for _, f := range frames {
			r += "    [<(____ptrval____)>] " + f + "\n"
		}
		return r
	}
	for name, tc := range map[string]struct{ leaks, hint string }{
		"task": {report("kmem_cache_alloc_node+0x1a0/0x360", "dup_task_struct+0x3a/0x9f0", "copy_process+0x3d0/0x5100"),
			"a task_struct was never freed (dup_task_struct in the backtrace): put_task_struct()"},
		"mm": {report("kmem_cache_alloc+0x19b/0x330", "dup_mm+0x2a/0x6e0", "copy_process+0x2f5e/0x5100"),
			"an mm was never freed (dup_mm in the backtrace): mmput()"},
		"kmalloc in the module": {report("kmalloc_trace+0x26/0x90", "procpid_write+0x9a/0x200 [procpid]", "proc_reg_write+0x1a1/0x270"),
			"memory the module allocated in procpid_write was never freed: kfree()"},
		"unknown site": {report("kmem_cache_alloc+0x19b/0x330", "something_else+0x2a/0x6e0"), hintLeak},
		"no backtrace": {"unreferenced object 0xffff888003a1b500 (size 64):\n", hintLeak},
		"not a report": {"kmemleak: scan failed", hintLeak},
	} {
		assert.Equal(t, []string{tc.hint}, trimHints(leakHints(tc.leaks), tc.hint), name)
	}
}

// trimHints cuts each hint to want's length, so that a case names only
// the part of the hint it is about.
func trimHints(hints []string, want string) []string {
	for i, h := range hints {
		if len(h) > len(want) {
			hints[i] = h[:len(want)]
		}
	}
	return hints
}

func TestHangHintOnlyForAStoppedTest(t *testing.T) {
	hung := Observations{RunnerStarted: true, Stopped: "test TestReadBeforeAnyWrite did not finish within 45s (PIDLAB_TEST_TIMEOUT): it hangs",
		Tests: []TestResult{{Name: "TestEntryExists", Outcome: Passed}, {Name: "TestReadBeforeAnyWrite", Outcome: Hung}}}
	assert.Equal(t, hintHang, hintOf(t, Decide(hung)))

	boot := Observations{Stopped: "the guest did not start the test runner within 1s: it hung while booting"}
	assert.Empty(t, hintOf(t, Decide(boot)), "a boot hang is not the module's read")
}

func TestTestFailuresKeepTheirHints(t *testing.T) {
	// Three failed assertions in one test: the summary keeps 8 lines, and
	// every distinct hint past them.
	var out strings.Builder
	for _, f := range []struct{ field, hint string }{
		{"utime", "utime/stime must be clock ticks (USER_HZ)"},
		{"stime", "utime/stime must be clock ticks (USER_HZ)"},
		{"start_time", "start_time must be clock ticks (USER_HZ) since boot"},
	} {
		out.WriteString("    stat_test.go:37: \n        \tError Trace:\t/work/main/userspace/conformance/compare_test.go:117\n" +
			"        \tError:      \tShould be true\n        \tTest:       \tTestSleepingProcess\n" +
			"        \tMessages:   \t" + f.field + ": module reports 3504484 ticks\n        \t            \thint: " + f.hint + "\n")
	}
	err := Decide(Observations{RunnerStarted: true, Done: true, Tests: []TestResult{{Name: "TestSleepingProcess", Outcome: Failed, Output: out.String()}}})
	require.NotNil(t, err)
	msg := err.Error()
	assert.Equal(t, 1, strings.Count(msg, "hint: utime/stime must be clock ticks"), "a repeated hint once:\n%s", msg)
	assert.Contains(t, msg, "hint: start_time must be clock ticks", "a hint past the line limit is kept:\n%s", msg)
	assert.Contains(t, msg, "…", "lines were left out")
	assert.NotContains(t, msg, "compare_test.go:117")
}

func TestHangHintFollowsThePhase(t *testing.T) {
	loading := Observations{RunnerStarted: true, Phase: PhaseLoading, Stopped: "the guest was loading the module for over 1m0s (the limit on cloud under tcg): it hangs"}
	assert.Equal(t, hintInitHang, hintOf(t, Decide(loading)))
	unloading := Observations{RunnerStarted: true, Phase: PhaseUnloading, Stopped: "the guest was unloading the module for over 1m0s",
		Tests: []TestResult{{Name: "TestEntryExists", Outcome: Passed}}}
	assert.Equal(t, hintExitHang, hintOf(t, Decide(unloading)))
	flooded := Observations{RunnerStarted: true, Phase: PhaseTesting, Flooded: true, Stopped: "the console is flooded: 5000 lines/s",
		Tests: []TestResult{{Name: "TestReadBeforeAnyWrite", Outcome: Hung}}}
	err := Decide(flooded)
	require.NotNil(t, err)
	assert.Equal(t, Timeout, err.Code, "a flood is stopped like a hang")
	assert.Equal(t, hintFlood, hintOf(t, err))
}

// Only a user-space address gets the __user pointer hint: a fault at a
// kernel address (a freed vmalloc area, here) is another bug.
func TestUserPointerHintIsForUserAddresses(t *testing.T) {
	for addr, user := range map[string]bool{
		"00007ffc8b1e2c40": true,
		"0000000000601000": true,
		"00007fffffffe000": true,
		"ffffc90000abc000": false,
		"ffff888003a1b500": false,
	} {
		report := "BUG: unable to handle page fault for address: " + addr + "\n#PF: supervisor read access in kernel mode"
		hint := troubleHint(Trouble{Kind: "BUG", Report: report}, nil, nil)
		assert.Equal(t, user, hint == hintUserPointer, "%s: %q", addr, hint)
	}
}
