package verdict

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// A hint names the likely cause of a failure and its fix, in the terms of
// someone writing the module. A verdict keeps its hints as Error.Hints.

// hintNull is pidlab's hint for a NULL pointer dereference; a module's
// manifest tells the causes of its own apart (procpid's: a task, an mm).
const hintNull = "the module followed a NULL pointer: check each pointer that can be NULL — a lookup's result, " +
	"an optional field, a reference already dropped — before using it, and return an error (-ESRCH, -EINVAL) instead"

// hintUserPointer is for the kernel touching a user-space address itself.
const hintUserPointer = "the module used a user-space address as if it were the kernel's: a __user pointer " +
	"(the buffer read() or write() was given) may only be passed to copy_from_user()/copy_to_user(), never " +
	"dereferenced, printed with %s or parsed with sscanf()/kstrtol(); copy it into a kernel buffer first"

// ModuleHint is a module's own likely cause of a kernel report, from its
// manifest: it is tried before pidlab's general rules, in order, and the
// first that matches wins.
type ModuleHint struct {
	report   *regexp.Regexp
	function string
	test     *regexp.Regexp
	text     string
}

// NewModuleHint is the hint text for a report that matches the regular
// expression report, and, when they are not empty, whose first module
// function has function in its name and while a test whose name matches
// the regular expression test runs.
func NewModuleHint(report, function, test, text string) (ModuleHint, error) {
	h := ModuleHint{function: function, text: text}
	var err error
	if report == "" || text == "" {
		return h, fmt.Errorf("a hint needs a report pattern and a text")
	}
	if h.report, err = regexp.Compile(report); err != nil {
		return h, fmt.Errorf("report pattern: %w", err)
	}
	if test != "" {
		if h.test, err = regexp.Compile(test); err != nil {
			return h, fmt.Errorf("test pattern: %w", err)
		}
	}
	return h, nil
}

func (h ModuleHint) matches(t Trouble, running []string) bool {
	if !h.report.MatchString(t.Report) {
		return false
	}
	if h.function != "" && !strings.Contains(moduleFunction(t.Report), h.function) {
		return false
	}
	return h.test == nil || slices.ContainsFunc(running, h.test.MatchString)
}

// moduleFrame is a frame of a loaded module's function in a report, e.g.
// "RIP: 0010:procpid_show+0x209/0x4b3 [procpid]" or, in a call trace,
// "procpid_write.cold+0xc/0x90d [procpid]"; a frame marked "? " is a
// stale return address on the stack, not a caller.
var moduleFrame = regexp.MustCompile(`(\? )?\b([a-z_][a-z_0-9]*)(?:\.[a-z]+)?\+0x[0-9a-f]+/0x[0-9a-f]+ \[[a-z_0-9]+\]`)

// moduleFunction names the first module function in a report (the RIP
// line, then the call trace), "" if there is none.
func moduleFunction(report string) string {
	for _, m := range moduleFrame.FindAllStringSubmatch(report, -1) {
		if m[1] == "" {
			return m[2]
		}
	}
	return ""
}

// troubleRules map a kernel report to its likely cause, first match wins:
// more specific patterns come first. A pattern is matched against the
// whole quoted report; running are the tests running when it was printed.
var troubleRules = []struct {
	re   *regexp.Regexp
	hint func(t Trouble, running []string) string
}{
	// x86's page fault report, and KASAN's, which sees a NULL pointer as
	// a general protection fault.
	{regexp.MustCompile(`NULL pointer dereference|KASAN: null-ptr-deref`), always(hintNull)},
	// A fault at a user-space address (below 0x0000800000000000; the page
	// below 4096 is the NULL report above) in kernel mode: with SMAP (on
	// in QEMU's max CPU, as on most real ones) the kernel may not read
	// user memory but through the uaccess functions.
	{regexp.MustCompile(`unable to handle page fault for address: 0000[0-7][0-9a-f]{11}\b`), always(hintUserPointer)},
	// kmalloc() past 4 MiB (MAX_ORDER) reaches the page allocator, which
	// warns once and returns NULL.
	{regexp.MustCompile(`WARNING: .* at mm/page_alloc\.c:\d+ __alloc_pages`),
		always("an allocation larger than the page allocator gives (over 4 MiB): a count from user space went to kmalloc() unchecked; " +
			"refuse a count past what the input can need (return -EINVAL) before kmalloc(count)")},
	{regexp.MustCompile(`sleeping function called from invalid context|scheduling while atomic|BUG: Invalid wait context`),
		always("a function that may sleep (copy_from_user/copy_to_user, kmalloc(GFP_KERNEL), mutex_lock) was called " +
			"under a spinlock or inside rcu_read_lock(): copy first, and hold the lock only around the shared variable")},
	// FORTIFY_SOURCE and HARDENED_USERCOPY (their message comes before the
	// BUG's "cut here", so the report shows the function that raised it);
	// check_copy_size() warns first.
	{regexp.MustCompile(`fortify_panic|detected buffer overflow|Buffer overflow detected|usercopy_abort|usercopy: Kernel memory (overwrite|exposure) attempt`),
		overflowHint},
	{regexp.MustCompile(`already registered`),
		always("the entry was still there when the module was loaded again: the exit function must remove it " +
			"(remove_proc_entry(name, NULL) or proc_remove(entry))")},
	{regexp.MustCompile(`WARNING: .* remove_proc_entry`),
		always("remove_proc_entry() found no such entry: it is removed twice, or with another name or parent than proc_create() used")},
	{regexp.MustCompile(`KASAN: (slab-|global-|stack-)?use-after-free`),
		always("memory was used after it was freed: e.g. a task, pid or mm used after put_task_struct(), put_pid() or mmput() " +
			"dropped the reference that kept it; drop each reference after its last use")},
	{regexp.MustCompile(`KASAN: (slab|global|stack|vmalloc)-out-of-bounds`), overflowHint},
	{regexp.MustCompile(`KASAN: (double-free|invalid-free)`),
		always("memory was freed twice, or a reference dropped twice (kfree, put_pid, put_task_struct on two paths)")},
	{regexp.MustCompile(`possible recursive locking detected`),
		always("a lock is taken again on a path that already holds it: take it once (a spinlock does not nest)")},
	{regexp.MustCompile(`possible circular locking dependency detected`),
		always("two locks are taken in opposite orders on different paths: always take them in one order")},
	{regexp.MustCompile(`inconsistent lock state`),
		always("a lock is taken both from interrupt (or softirq) context and with interrupts enabled: " +
			"use spin_lock_irqsave() (or spin_lock_bh()) everywhere it is taken")},
	{regexp.MustCompile(`suspicious RCU usage`),
		always("an RCU-protected pointer was read outside rcu_read_lock(): hold rcu_read_lock() around rcu_dereference() " +
			"and task walks (e.g. task->real_parent, for_each_thread)")},
	{regexp.MustCompile(`bad unlock balance`),
		always("a lock was released that is not held: an error path unlocks twice, or unlocks a lock it never took")},
	{regexp.MustCompile(`lock held when returning to user space`),
		always("a system call returned with a lock held: an error path returns before its unlock (use goto cleanup labels)")},
	{regexp.MustCompile(`list_(add|del) corruption`),
		always("a list entry was added twice, or used after it was deleted or freed")},
	{regexp.MustCompile(`kernel BUG at `),
		always("a BUG() or BUG_ON() fired at the file and line the report names: in the module, a condition it asserts " +
			"does not hold (return an error such as -EINVAL or -ESRCH instead of stopping the kernel); " +
			"in the kernel's own code, usually memory the module freed twice or overwrote")},
	{regexp.MustCompile(`general protection fault`),
		always("a wild pointer: often an object used after the reference that kept it was dropped, or a pointer never initialized")},
	{regexp.MustCompile(`INFO: task .* blocked for more than`),
		always("a task waited over two minutes in uninterruptible sleep: a mutex that is never unlocked, or a wait never woken")},
	{regexp.MustCompile(`soft lockup|hard LOCKUP|detected stall`),
		always("a CPU ran in the kernel for seconds without yielding: a loop that never ends, " +
			"or a wait for a condition with a spinlock held or inside rcu_read_lock()")},
}

func always(hint string) func(Trouble, []string) string {
	return func(Trouble, []string) string { return hint }
}

// Hints for a copy past the end of a buffer, told apart by the module
// function it happened in.
const (
	hintOverflowInWrite = "the write copies more than its buffer holds: check count against the buffer's size (return -EINVAL) " +
		"before copy_from_user(), leaving room for the terminating NUL"
	hintOverflowInRead = "the read copies more than its buffer holds: bound the length by the buffer's size, " +
		"or let seq_file (seq_printf) or simple_read_from_buffer() do the copying"
	hintOverflow = "an access past the end of a buffer: bound every length and index by the buffer's size " +
		"before copy_from_user(), copy_to_user(), memcpy() or indexing"
)

func overflowHint(t Trouble, _ []string) string {
	switch fn := moduleFunction(t.Report); {
	case strings.Contains(fn, "write"):
		return hintOverflowInWrite
	case strings.Contains(fn, "read") || strings.Contains(fn, "show"):
		return hintOverflowInRead
	}
	return hintOverflow
}

// troubleHint is the likely cause of a kernel report: the module's own
// hints first, then pidlab's rules; running are the tests that were
// running when it was printed, innermost last.
func troubleHint(t Trouble, running []string, module []ModuleHint) string {
	for _, h := range module {
		if h.matches(t, running) {
			return h.text
		}
	}
	for _, r := range troubleRules {
		if r.re.MatchString(t.Report) {
			return r.hint(t, running)
		}
	}
	if t.Kind == "lockdep" {
		return "lockdep saw a locking mistake: the report names each lock and where it was taken"
	}
	return ""
}

// firstTroubleHint is the hint of the first report that has one: a report
// without a known cause (a bare Call Trace) may precede the telling one.
func firstTroubleHint(o Observations) string {
	for _, t := range o.Troubles {
		if h := troubleHint(t, o.running(), o.ModuleHints); h != "" {
			return h
		}
	}
	return ""
}

// leakSites map a kmemleak backtrace frame to what the module failed to
// release; the hint names the frame's function (%s). A struct pid, task
// or mm leaked by a module was allocated by fork, so its backtrace shows
// fork's allocator, not the module; a leaked struct pid also keeps its
// PID namespace alive (copy_pid_ns).
var leakSites = []struct {
	re   *regexp.Regexp
	hint string
}{
	{regexp.MustCompile(`\] (alloc_pid|copy_pid_ns)\+`),
		"a struct pid (or the PID namespace a leaked one keeps) was never freed, %s in the backtrace: " +
			"put_pid() every reference from find_get_pid() or get_pid(), also on error paths and for the stored one in the exit function"},
	{regexp.MustCompile(`\] (dup_task_struct|alloc_task_struct_node)\+`),
		"a task_struct was never freed (%s in the backtrace): put_task_struct() after get_pid_task(), also on error paths"},
	{regexp.MustCompile(`\] (mm_alloc|dup_mm)\+`),
		"an mm was never freed (%s in the backtrace): mmput() after get_task_mm(), also on error paths"},
	{regexp.MustCompile(`\] ([a-z_0-9]+)(?:\.[a-z]+)?\+0x[0-9a-f]+/0x[0-9a-f]+ \[[a-z_0-9]+\]`),
		"memory the module allocated in %s was never freed: kfree() what kmalloc() returned, on every path"},
}

// hintLeak names what a module usually forgets to release.
const hintLeak = "a reference or allocation was never released: put_pid() after find_get_pid()/get_pid(), " +
	"put_task_struct() after get_pid_task(), mmput() after get_task_mm(), kfree() after kmalloc() — on every path"

// leakHints name what the kmemleak reports show was leaked: one hint per
// kind of site, naming the first report's function.
func leakHints(reports string) []string {
	var hints []string
	seen := map[int]bool{}
	for _, r := range strings.Split(reports, "unreferenced object")[1:] {
		if site, h := leakHint(r); !seen[site] {
			seen[site] = true
			hints = append(hints, h)
		}
	}
	if len(hints) == 0 {
		return []string{hintLeak}
	}
	return hints
}

// leakHint is the hint for one report and the index of its leakSites
// entry (-1 for none): the first known site in its backtrace, searched
// from the allocation outwards.
func leakHint(report string) (int, string) {
	_, trace, ok := strings.Cut(report, "backtrace:")
	if !ok {
		return -1, hintLeak
	}
	for _, frame := range strings.Split(trace, "\n") {
		for i, s := range leakSites {
			if m := s.re.FindStringSubmatch(frame); m != nil {
				return i, fmt.Sprintf(s.hint, m[1])
			}
		}
	}
	return -1, hintLeak
}

// hintHang is the likely cause of a test that never finished: every test
// spends its time in calls into the module, and a read that never reaches
// end of file fails the test (readAll's bound) instead of hanging it.
const hintHang = "a call into the module never returned: a read (or write) handler that blocks — wait_event on a condition " +
	"nothing makes true, a lock never released — or loops; a read returns its data, then 0 at end of file"

// Hints for a run the host stopped outside a test, told apart by what the
// guest was doing, and for a flooded console.
const (
	hintInitHang = "the module's init function never returned: a loop that never ends, or a wait for something " +
		"that never happens; init must set up (proc_create) and return 0 or an error at once"
	hintExitHang = "the module did not unload (or load again for the next test binary) in time: the exit function " +
		"(or init) waits for something that never happens, or loops"
	hintFlood = "the module prints in a loop: a pr_info()/printk() that runs on every call or every iteration " +
		"(e.g. in a read handler) floods the console; print once, or use pr_debug() or pr_info_ratelimited()"
)

// hangHint is the likely cause of a run the host stopped: a flood, a hung
// load or unload, or a hung test; none for a boot.
func hangHint(o Observations) string {
	switch {
	case o.Flooded:
		return hintFlood
	case o.Phase == PhaseLoading:
		return hintInitHang
	case o.Phase == PhaseUnloading:
		return hintExitHang
	case len(o.running()) > 0:
		return hintHang
	}
	return ""
}
