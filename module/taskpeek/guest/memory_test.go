//go:build pidlab_guest

package guest

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/pidlab/pidlab/userspace/guestapi"
	"github.com/pidlab/pidlab/userspace/guesttest"
)

// memory is what /proc/taskpeek/memory says of a process, in bytes.
type memory struct {
	VSize, Resident uint64
}

func readMemory(t *testing.T, pid int) memory {
	t.Helper()
	text := readSelected(t, memoryPath, pid)
	var m memory
	n, err := fmt.Sscanf(text, "vsize %d\nresident %d\n", &m.VSize, &m.Resident)
	if err != nil || n != 2 || !strings.HasSuffix(text, "\n") || strings.Count(text, "\n") != 2 {
		guesttest.FailNow(t, guestapi.Failure{Check: memoryPath, Expected: "vsize <bytes>\\nresident <bytes>\\n", Got: strconv.Quote(text)})
	}
	return m
}

// kernelMemory is what the kernel says: VmSize, and smaps' Rss, a walk of
// the page tables like the module's. Not VmRSS: in 6.1 each thread counts
// its own page faults and adds them to the mm's total only every 64 faults
// (SPLIT_RSS_COUNTING, TASK_RSS_EVENTS_THRESH), and a fault of a file page
// maps up to 16 pages (fault-around), so a process that sleeps can show a
// VmRSS far below what it maps: 4 KiB against 776 KiB for the helper when
// measured.
type kernelMemory struct {
	VmSize, Rss uint64
}

func readKernelMemory(t *testing.T, pid int) kernelMemory {
	t.Helper()
	return kernelMemory{
		VmSize: kBField(t, fmt.Sprintf("/proc/%d/status", pid), "VmSize"),
		Rss:    kBField(t, fmt.Sprintf("/proc/%d/smaps_rollup", pid), "Rss"),
	}
}

// compareMemory checks the module against the kernel for a process that
// sleeps, so that nothing changes between the reads: it waits until the
// process is asleep in its read of the next command (after its "ready",
// the helper's first read still allocates stdin's buffer, a page fault).
func compareMemory(t *testing.T, pid int, when string) memory {
	t.Helper()
	guesttest.WaitState(t, pid, "S")
	m := readMemory(t, pid)
	k := readKernelMemory(t, pid)
	guesttest.Same(t, fmt.Sprintf("vsize %s: module vs /proc/%d/status VmSize", when, pid), k.VmSize, m.VSize,
		"vsize is the sum of vm_end - vm_start over every VMA (for_each_vma under mmap_read_lock)")
	guesttest.Same(t, fmt.Sprintf("resident %s: module vs /proc/%d/smaps_rollup Rss", when, pid), k.Rss, m.Resident,
		"resident counts present PTEs of normal pages: not the zero page (pte_special / is_zero_pfn) nor PFN maps; a huge PMD counts its pages")
	return m
}

// The module's sizes are the kernel's, and move by exactly what a process
// maps and touches: mapping adds to the virtual size only, touching to the
// resident size, and reading untouched pages (the shared zero page) to
// neither.
func TestMemoryMatchesTheKernel(t *testing.T) {
	guesttest.Mark(t)
	const mapped, touched, read = 400, 150, 100
	target := startDriven(t, nil, "mem")
	start := compareMemory(t, target.PID, "at start")

	addr := target.mapPages(mapped)
	m := compareMemory(t, target.PID, fmt.Sprintf("after mapping %d pages", mapped))
	guesttest.Same(t, fmt.Sprintf("the rise of vsize after mapping %d pages", mapped), uint64(mapped*pageSize), m.VSize-start.VSize, "")
	guesttest.Same(t, fmt.Sprintf("the rise of resident after mapping %d pages", mapped), uint64(0), m.Resident-start.Resident,
		"a mapping's pages are not resident until touched")

	target.ask("touch %#x %d 7", addr, touched)
	m = compareMemory(t, target.PID, fmt.Sprintf("after touching %d of them", touched))
	guesttest.Same(t, fmt.Sprintf("the rise of resident after touching %d pages", touched), uint64(touched*pageSize), m.Resident-start.Resident, "")

	target.ask("read %#x %d", addr+touched*pageSize, read)
	m = compareMemory(t, target.PID, fmt.Sprintf("after reading %d untouched pages", read))
	guesttest.Same(t, fmt.Sprintf("the rise of resident after reading %d untouched pages as well", read), uint64(touched*pageSize), m.Resident-start.Resident,
		"a read of an untouched anonymous page maps the shared zero page, which is not the process's: skip is_zero_pfn() / pte_special()")
}

// A kernel thread and a zombie have no address space: zero, not an error.
func TestMemoryOfProcessesWithoutAnAddressSpace(t *testing.T) {
	guesttest.Mark(t)
	zombie := start(t, nil, "pause")
	guesttest.WaitState(t, zombie.PID, "S")
	require.NoError(t, unix.Kill(zombie.PID, unix.SIGKILL))
	guesttest.WaitState(t, zombie.PID, "Z")
	for _, tc := range []struct {
		what string
		pid  int
	}{{"kthreadd (a kernel thread)", 2}, {"a zombie", zombie.PID}} {
		m := readMemory(t, tc.pid)
		guesttest.Same(t, fmt.Sprintf("memory of %s, pid %d", tc.what, tc.pid), memory{}, m,
			"get_task_mm() is NULL without an address space: report 0 for both")
	}
}

// A process's memory is read by those who may read its smaps: its own
// user's processes, and root.
func TestMemoryOfOthersIsForThoseWhoMayTraceThem(t *testing.T) {
	guesttest.Mark(t)
	nobody := startDriven(t, &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}, "mem")
	hint := "reading the memory walks the process's page tables under its mmap lock: allow it as smaps does " +
		"(the reader's fsuid/fsgid are all the process's ids and it is dumpable, or CAP_SYS_PTRACE), else -EACCES"
	for _, tc := range []struct {
		what  string
		pid   int
		errno syscall.Errno
	}{
		{"its own process", nobody.PID, 0},
		{"init (root's)", 1, unix.EACCES},
		{"this test (root's)", os.Getpid(), unix.EACCES},
	} {
		errno := nobody.askErrno("memory %d", tc.pid)
		guesttest.Same(t, fmt.Sprintf("read %s of %s as uid 65534", memoryPath, tc.what), guesttest.ErrnoString(tc.errno), guesttest.ErrnoString(errno), hint)
	}
}
