//go:build pidlab_guest

package guest

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/pidlab/pidlab/userspace/guestapi"
	"github.com/pidlab/pidlab/userspace/guesttest"
)

const ownPageHint = "write only where the caller's own page tables map a normal, anonymous page writable (pte_write): " +
	"walk the caller's VMAs for a PTE with that pfn, and write under its PTE lock"

// mmapAnon maps n anonymous pages into this test, 4 KiB ones even if
// the mapping merges into a larger one (EINVAL: a kernel without THP);
// unmapped when t ends.
func mmapAnon(t *testing.T, n int) []byte {
	t.Helper()
	b, err := unix.Mmap(-1, 0, n*pageSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	require.NoError(t, err)
	t.Cleanup(func() { unix.Munmap(b) })
	if err := unix.Madvise(b, unix.MADV_NOHUGEPAGE); err != nil && !errors.Is(err, unix.EINVAL) {
		require.NoError(t, err)
	}
	return b
}

// physOf is where pagemap says this process's vaddr is; it must be present.
func physOf(t *testing.T, pid int, vaddr uint64) uint64 {
	t.Helper()
	pm := pagemap(t, pid, vaddr)
	require.True(t, pm.Present, "%#x of process %d is present", vaddr, pid)
	require.NotZero(t, pm.PFN, "pagemap shows root the PFN")
	return pm.PFN*pageSize + vaddr%pageSize
}

// A byte written at the physical address of the caller's own page reads
// back through its virtual address, and nothing else on the page changes.
func TestPokeWritesTheCallersOwnPage(t *testing.T) {
	guesttest.Mark(t)
	fd := device(t)
	b := mmapAnon(t, 2)
	for i := range b {
		b[i] = byte(i % 251)
	}
	want := bytes.Clone(b)
	for _, off := range []int{0, 100, pageSize - 1, pageSize + 2049} {
		paddr := physOf(t, 0, sliceAddr(b)+uint64(off))
		err := poke(fd, paddr, 0xa5)
		if err != nil {
			guesttest.FailNow(t, guestapi.Failure{Check: fmt.Sprintf("TASKPEEK_POKE of the caller's own page at %#x (offset %d)", paddr, off),
				Expected: "success", Got: guesttest.ErrnoName(err), Hint: ownPageHint})
		}
		want[off] = 0xa5
	}
	for i := range b {
		if b[i] != want[i] {
			guesttest.FailNow(t, guestapi.Failure{Check: fmt.Sprintf("byte %d of the poked pages, read through the virtual address", i),
				Expected: fmt.Sprintf("%#x", want[i]), Got: fmt.Sprintf("%#x", b[i]),
				Hint: "write value at offset_in_page(paddr) of the page (kmap_local_page(page) + offset), nothing else"})
		}
	}
}

// pokeRefused asks for a write that must be refused, and checks that it is.
func pokeRefused(t *testing.T, fd int, paddr uint64, what string) {
	t.Helper()
	err := poke(fd, paddr, 0xa5)
	if guesttest.Errno(err) != unix.EACCES {
		guesttest.FailNow(t, guestapi.Failure{Check: fmt.Sprintf("TASKPEEK_POKE of %s (%#x)", what, paddr),
			Expected: guesttest.ErrnoString(unix.EACCES), Got: guesttest.ErrnoString(guesttest.Errno(err)), Hint: ownPageHint})
	}
}

// unchanged checks that a write left memory as it was.
func unchanged(t *testing.T, what string, before, after []byte) {
	t.Helper()
	if !bytes.Equal(before, after) {
		i := 0
		for before[i] == after[i] {
			i++
		}
		guesttest.FailNow(t, guestapi.Failure{Check: fmt.Sprintf("%s after a refused TASKPEEK_POKE", what),
			Expected: "unchanged", Got: fmt.Sprintf("byte %d is %#x, was %#x", i, after[i], before[i]), Hint: ownPageHint})
	}
}

// Every physical address that is not in a page the caller may write is
// refused, and the memory there is checked to be unchanged where it can be
// read. The order matters: a module without the check would corrupt the
// zero page, the vDSO and page tables in turn, so the first refusal it
// misses stops the test.
func TestPokeRefusesWhatIsNotTheCallers(t *testing.T) {
	guesttest.Mark(t)
	fd := device(t)

	// Another process's page.
	other := startDriven(t, nil, "mem")
	addr := other.mapTouched(1, 0x5a)
	before := readMem(t, other.PID, addr, pageSize)
	pokeRefused(t, fd, physOf(t, other.PID, addr)+9, fmt.Sprintf("a page of process %d", other.PID))
	unchanged(t, fmt.Sprintf("the page of process %d", other.PID), before, readMem(t, other.PID, addr, pageSize))

	// The zero page, which a read of an untouched page of ours maps.
	zero := mmapAnon(t, 1)
	require.Zero(t, zero[0])
	zaddr := sliceAddr(zero)
	got, err := v2p(t, fd, 0, zaddr)
	require.NoError(t, err)
	require.NotZero(t, got.Flags&v2pZeroPage, "a read maps the zero page")
	pokeRefused(t, fd, physOf(t, 0, zaddr)+9, "the shared zero page, mapped read-only in the caller")
	unchanged(t, "the zero page", make([]byte, pageSize), zero)
	unchanged(t, "a fresh zero page", make([]byte, pageSize), mmapAnon(t, 1))

	// The vDSO: kernel pages mapped read-only into every process.
	vdso, ok := findMapping(t, os.Getpid(), "[vdso]", "r-xp")
	require.True(t, ok)
	before = readMem(t, os.Getpid(), vdso, pageSize)
	pokeRefused(t, fd, physOf(t, 0, vdso)+0x40, "the vDSO, kernel pages mapped read-only")
	unchanged(t, "the vDSO", before, readMem(t, os.Getpid(), vdso, pageSize))

	// A file's page cache: mapped shared read-only, and mapped private
	// writable but only read (copy-on-write not broken yet).
	path := filepath.Join(t.TempDir(), "cached")
	content := bytes.Repeat([]byte("taskpeek"), pageSize/8)
	require.NoError(t, os.WriteFile(path, content, 0o644))
	for _, m := range []struct {
		what        string
		prot, flags int
	}{
		{"a file's page mapped shared, read-only", unix.PROT_READ, unix.MAP_SHARED},
		{"a file's page mapped private, writable, only read", unix.PROT_READ | unix.PROT_WRITE, unix.MAP_PRIVATE},
	} {
		f, err := os.Open(path)
		require.NoError(t, err)
		b, err := unix.Mmap(int(f.Fd()), 0, pageSize, m.prot, m.flags)
		f.Close()
		require.NoError(t, err)
		t.Cleanup(func() { unix.Munmap(b) })
		require.Equal(t, content[0], b[0])
		pokeRefused(t, fd, physOf(t, 0, sliceAddr(b))+3, m.what)
		after, err := os.ReadFile(path)
		require.NoError(t, err)
		unchanged(t, "the file", content, after)
	}

	// Beyond RAM, and a kernel page (its code).
	ram, kernelCode := iomem(t)
	pokeRefused(t, fd, ram+pageSize, "an address beyond RAM")
	pokeRefused(t, fd, 1<<51, "an address beyond any RAM")
	pokeRefused(t, fd, kernelCode+0x100, "the kernel's code")

	// A page table (not readable from userspace: the refusal is the check,
	// and a write would be a kernel report).
	pokeRefused(t, fd, pageTablePage(t)+8, "a page table")
}

// iomem is the end of the highest System RAM range and the start of the
// kernel's code, from /proc/iomem (whose addresses root sees).
func iomem(t *testing.T) (ramEnd, kernelCode uint64) {
	t.Helper()
	f, err := os.Open("/proc/iomem")
	require.NoError(t, err)
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		span, name, ok := strings.Cut(sc.Text(), " : ")
		if !ok {
			continue
		}
		first, last, _ := strings.Cut(strings.TrimSpace(span), "-")
		switch name {
		case "System RAM":
			ramEnd = max(ramEnd, parseUint(t, "0x"+last)+1)
		case "Kernel code":
			kernelCode = parseUint(t, "0x"+first)
		}
	}
	require.NoError(t, sc.Err())
	require.NotZero(t, ramEnd, "/proc/iomem lists System RAM")
	require.NotZero(t, kernelCode, "/proc/iomem lists Kernel code")
	return ramEnd, kernelCode
}

// kpfPgtable is /proc/kpageflags' bit for a page-table page (KPF_PGTABLE).
const kpfPgtable = 26

// pageTablePage is the physical address of some page table, found in
// /proc/kpageflags.
func pageTablePage(t *testing.T) uint64 {
	t.Helper()
	f, err := os.Open("/proc/kpageflags")
	require.NoError(t, err)
	defer f.Close()
	r := bufio.NewReaderSize(f, 1<<16)
	var flags [8]byte
	for pfn := uint64(0); ; pfn++ {
		if _, err := io.ReadFull(r, flags[:]); err != nil {
			require.FailNow(t, "no page table page in /proc/kpageflags", "%v", err)
		}
		if binary.LittleEndian.Uint64(flags[:])&(1<<kpfPgtable) != 0 {
			return pfn * pageSize
		}
	}
}

// Writing physical memory is for CAP_SYS_RAWIO (root), even on one's own
// page.
func TestPokeIsRootOnly(t *testing.T) {
	guesttest.Mark(t)
	nobody := startDriven(t, &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}, "mem")
	addr := nobody.mapTouched(1, 0x5a)
	before := readMem(t, nobody.PID, addr, pageSize)
	errno := nobody.askErrno("poke %#x 0xa5", physOf(t, nobody.PID, addr))
	guesttest.Same(t, "TASKPEEK_POKE of its own page by uid 65534", guesttest.ErrnoString(unix.EPERM), guesttest.ErrnoString(errno),
		"check capable(CAP_SYS_RAWIO) (what /dev/mem asks for) before anything else")
	unchanged(t, fmt.Sprintf("the page of uid 65534's process %d", nobody.PID), before, readMem(t, nobody.PID, addr, pageSize))
}
