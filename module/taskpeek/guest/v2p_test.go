//go:build pidlab_guest

package guest

import (
	"bufio"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/pidlab/pidlab/userspace/guestapi"
	"github.com/pidlab/pidlab/userspace/guesttest"
)

const walkHint = "walk the page tables (pgd_offset … pte_offset_map_lock, pmd_leaf for a huge page) under mmap_read_lock; paddr = pte_pfn << PAGE_SHIFT | offset_in_page(vaddr)"

// checkV2P compares the module's answer for vaddr of pid with pagemap's,
// and returns the answer.
func checkV2P(t *testing.T, fd, pid int, vaddr uint64, what string) v2pRequest {
	t.Helper()
	got, err := v2p(t, fd, pid, vaddr)
	if err != nil {
		guesttest.Fail(t, guestapi.Failure{Check: fmt.Sprintf("TASKPEEK_V2P of %s (%#x) in process %d", what, vaddr, pid), Expected: "an answer", Got: guesttest.ErrnoName(err), Hint: walkHint})
		return got
	}
	pm := pagemap(t, pid, vaddr)
	check := fmt.Sprintf("%s (%#x) in process %d: module vs /proc/%d/pagemap", what, vaddr, pid, pid)
	guesttest.Same(t, "present: "+check, pm.Present, got.Flags&v2pPresent != 0, walkHint)
	want := uint64(0)
	if pm.Present {
		want = pm.PFN*pageSize + vaddr%pageSize
	}
	guesttest.Same(t, "physical address: "+check, fmt.Sprintf("%#x", want), fmt.Sprintf("%#x", got.PAddr), walkHint)
	return got
}

// A process's pages, touched, untouched, read (the zero page), its
// program's text, its stack and its vDSO, each where pagemap says.
func TestV2PMatchesPagemap(t *testing.T) {
	guesttest.Mark(t)
	fd := device(t)
	target := startDriven(t, nil, "mem")
	addr := target.mapPages(8)
	for _, p := range []uint64{0, 2, 4} {
		target.ask("touch %#x 1 9", addr+p*pageSize)
	}
	target.ask("read %#x 1", addr+6*pageSize)
	guesttest.WaitState(t, target.PID, "S") // asleep: its pages stay as they are

	for p := uint64(0); p < 8; p++ {
		what := fmt.Sprintf("page %d of 8 (touched: 0, 2, 4; read: 6)", p)
		got := checkV2P(t, fd, target.PID, addr+p*pageSize+0x123, what)
		switch p {
		case 0, 2, 4:
			guesttest.Same(t, "writable: "+what, true, got.Flags&v2pWritable != 0, "a written anonymous page is mapped writable: pte_write()")
			guesttest.Same(t, "page size: "+what, uint64(pageSize), got.PageSize, "")
		case 6:
			guesttest.Same(t, "the zero page flag: "+what, true, got.Flags&v2pZeroPage != 0, "a read of an untouched page maps the zero page: is_zero_pfn(pte_pfn())")
			guesttest.Same(t, "writable: "+what, false, got.Flags&v2pWritable != 0, "the zero page is mapped read-only")
		default:
			guesttest.Same(t, "flags: "+what, uint32(0), got.Flags, "an untouched page has no PTE: no flags, paddr 0")
		}
	}
	for _, m := range []struct{ name, perms string }{{"/taskpeek-target", "r-xp"}, {"[stack]", "rw-p"}, {"[vdso]", "r-xp"}} {
		start, ok := findMapping(t, target.PID, m.name, m.perms)
		require.True(t, ok, "process %d maps %s %s", target.PID, m.perms, m.name)
		checkV2P(t, fd, target.PID, start+0x42, m.name+"'s first page")
	}
}

// findMapping is the start of the first mapping of pid whose path ends in
// name, with permissions perms, from /proc/<pid>/maps.
func findMapping(t *testing.T, pid int, name, perms string) (uint64, bool) {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/maps", pid))
	require.NoError(t, err)
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 6 && fields[1] == perms && strings.HasSuffix(fields[5], name) {
			start, _, _ := strings.Cut(fields[0], "-")
			return parseUint(t, "0x"+start), true
		}
	}
	require.NoError(t, sc.Err())
	return 0, false
}

// A query reads the page tables and changes nothing: an untouched page is
// still untouched after it, however often it is asked about.
func TestV2PDoesNotFaultPagesIn(t *testing.T) {
	guesttest.Mark(t)
	const pages = 32
	fd := device(t)
	target := startDriven(t, nil, "mem")
	addr := target.mapPages(pages)
	guesttest.WaitState(t, target.PID, "S") // asleep in its read of the next command
	rss := readKernelMemory(t, target.PID).Rss

	for round := 0; round < 2; round++ {
		for p := uint64(0); p < pages; p++ {
			got, err := v2p(t, fd, target.PID, addr+p*pageSize)
			require.NoError(t, err)
			if got.Flags&v2pPresent != 0 {
				guesttest.FailNow(t, guestapi.Failure{Check: fmt.Sprintf("TASKPEEK_V2P of untouched page %d (round %d)", p, round+1),
					Expected: "not present", Got: fmt.Sprintf("present at %#x", got.PAddr),
					Hint: "the query faulted the page in: get_user_pages_remote() does, it is not a pure query; walk the page tables instead"})
			}
		}
	}
	for p := uint64(0); p < pages; p++ {
		if pagemap(t, target.PID, addr+p*pageSize).Present {
			guesttest.FailNow(t, guestapi.Failure{Check: fmt.Sprintf("untouched page %d after the queries, in /proc/%d/pagemap", p, target.PID),
				Expected: "not present", Got: "present", Hint: "the query faulted the page in: get_user_pages_remote() does; walk the page tables instead"})
		}
	}
	guesttest.Same(t, fmt.Sprintf("Rss of process %d after %d queries of untouched pages", target.PID, 2*pages), rss, readKernelMemory(t, target.PID).Rss,
		"a query must not change the process")
}

// The caller's own address space: pid 0.
func TestV2POfTheCaller(t *testing.T) {
	guesttest.Mark(t)
	fd := device(t)
	b := mmapAnon(t, 2)
	b[pageSize] = 1
	addr := sliceAddr(b)
	checkV2P(t, fd, 0, addr+pageSize+17, "a touched page of this test (pid 0)")
	got := checkV2P(t, fd, 0, addr+5, "an untouched page of this test (pid 0)")
	guesttest.Same(t, "flags of an untouched page", uint32(0), got.Flags, "")
}

// A huge page is one PMD: its 4 KiB pages are at consecutive physical
// addresses, which pagemap lists one by one.
func TestV2PHugePage(t *testing.T) {
	guesttest.Mark(t)
	mode, err := os.ReadFile("/sys/kernel/mm/transparent_hugepage/enabled")
	if err != nil || strings.Contains(string(mode), "[never]") {
		t.Skip("this kernel gives no transparent huge pages (CONFIG_TRANSPARENT_HUGEPAGE)")
	}
	fd := device(t)
	target := startDriven(t, nil, "mem")
	words := target.ask("thp")
	require.Len(t, words, 1)
	addr := parseUint(t, words[0])
	if kBField(t, fmt.Sprintf("/proc/%d/smaps_rollup", target.PID), "AnonHugePages") == 0 {
		t.Skip("the kernel gave the helper no huge page (memory too fragmented?)")
	}
	for _, off := range []uint64{0, 5*pageSize + 0x77, 511*pageSize + 0xfff} {
		got := checkV2P(t, fd, target.PID, addr+off, fmt.Sprintf("offset %#x of a huge page", off))
		guesttest.Same(t, fmt.Sprintf("flags at offset %#x of a huge page", off), uint32(v2pPresent|v2pWritable|v2pHuge), got.Flags,
			"a huge page is a leaf PMD (pmd_leaf): its pfn is pmd_pfn + the 4 KiB page's index in it")
		guesttest.Same(t, fmt.Sprintf("page size at offset %#x of a huge page", off), uint64(2<<20), got.PageSize, "PMD_SIZE")
	}
}

// Where nothing is mapped there is no answer.
func TestV2PUnmappedAddress(t *testing.T) {
	guesttest.Mark(t)
	fd := device(t)
	target := startDriven(t, nil, "mem")
	for _, addr := range []uint64{0, 0x10, 0xffffffff81000000, 1 << 63} {
		_, err := v2p(t, fd, target.PID, addr)
		guesttest.Same(t, fmt.Sprintf("TASKPEEK_V2P of unmapped %#x", addr), guesttest.ErrnoString(unix.ENXIO), guesttest.ErrnoString(guesttest.Errno(err)),
			"no VMA at the address (vma_lookup() is NULL): -ENXIO")
	}
}

// Physical addresses are for CAP_SYS_ADMIN only, as in pagemap.
func TestV2PIsRootOnly(t *testing.T) {
	guesttest.Mark(t)
	nobody := startDriven(t, &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}, "mem")
	addr := nobody.mapTouched(1, 3)
	words := nobody.ask("v2p 0 %#x", addr)
	require.Len(t, words, 4)
	guesttest.Same(t, "TASKPEEK_V2P of its own page by uid 65534", guesttest.ErrnoString(unix.EPERM), guesttest.ErrnoString(syscall.Errno(atoi(t, words[0]))),
		"physical addresses help attacks (rowhammer): check capable(CAP_SYS_ADMIN), as pagemap does")
	guesttest.Same(t, "the physical address uid 65534 got", "0", words[2], "a refused request writes nothing back")
}
