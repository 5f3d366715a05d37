//go:build pidlab_guest

package conformance

// Module lifecycle. These tests unload and reload the module, so they live
// in the file that sorts last: a failure here cannot disturb the others.
// Each one restores the module loaded when it ends (t.Cleanup), because
// later tests and the guest runner's final unload need it. A reloaded
// module starts empty: nothing selected, reads give ENODATA.

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/pidlab/pidlab/userspace/guesttest"
)

// kmod is the module under test, as the guest runner loaded it.
type kmod struct{ guesttest.Module }

// requireModule finds the module from the runner's environment and makes
// sure it is loaded again when t ends.
func requireModule(t *testing.T) kmod {
	t.Helper()
	m := guesttest.ModuleUnderTest(t)
	require.True(t, m.Loaded(), "module %s is loaded (precondition)", m.Name)
	// "ENODATA before any write" is seen once per load: take it from the
	// runner's load before this test reloads the module.
	takeFirstRead()
	t.Cleanup(func() {
		if !m.Loaded() {
			assert.NoError(t, m.Load(""), "reload module %s after %s", m.Name, t.Name())
		}
	})
	return kmod{m}
}

// requireUnload removes the module (delete_module, O_NONBLOCK) and checks
// that /proc/pid went with it.
func (m kmod) requireUnload(t *testing.T, when string) {
	t.Helper()
	require.NoError(t, m.Unload(), "%s: delete_module(%s)", when, m.Name)
	require.False(t, m.Loaded(), "%s: /sys/module/%s after delete_module", when, m.Name)
	_, err := os.Stat(procPID)
	requireErrorIs(t, err, os.ErrNotExist, hintEntryRemoved, "%s: stat %s after delete_module(%s)", when, procPID, m.Name)
}

// requireLoad loads the module (finit_module) and checks that /proc/pid
// is back, empty.
func (m kmod) requireLoad(t *testing.T, when string) {
	t.Helper()
	require.NoError(t, m.Load(""), "%s: finit_module(%s)", when, m.Path)
	_, err := os.Stat(procPID)
	require.NoError(t, err, "%s: stat %s after finit_module(%s)", when, procPID, m.Path)
	_, err = readRaw()
	requireErrorIs(t, err, unix.ENODATA, readHint(err, hintNoSelection), "%s: read of a freshly loaded module, before any write", when)
}

// reloadCycles is how many times TestModuleReloadCycles unloads and
// reloads the module.
const reloadCycles = 50

func TestModuleReloadCycles(t *testing.T) {
	markTest(t)
	m := requireModule(t)
	tg := startTarget(t, "sleep")
	noNewKernelWarning(t)
	begin := time.Now()
	for i := range reloadCycles {
		when := fmt.Sprintf("cycle %d", i+1)
		m.requireUnload(t, when)
		m.requireLoad(t, when)
		require.NoError(t, writePID(t, tg.PID), "%s: write %d", when, tg.PID)
		rec := requireRecord(t)
		require.Equal(t, tg.PID, rec.PID, "%s: pid read after writing %d", when, tg.PID)
	}
	elapsed := time.Since(begin)
	t.Logf("%d unload/load cycles in %v (%v each)", reloadCycles, elapsed.Round(time.Millisecond),
		(elapsed / reloadCycles).Round(time.Millisecond))
}

func TestUnloadWithOpenDescriptors(t *testing.T) {
	markTest(t)
	// Open descriptors do not pin the module (proc_ops has no owner):
	// delete_module succeeds. remove_proc_entry() waits for calls in
	// progress, releases every open file itself (its seq_file) and
	// detaches the entry, and from then on proc answers the descriptors
	// without the module: read and write give EIO (proc_reg_read/write:
	// the entry is gone), lseek EINVAL, and close succeeds. A new open
	// finds no file. The old descriptors stay dead after a reload: they
	// belong to the removed entry, not the new one.
	m := requireModule(t)
	_, whole := sleepingRecord(t)

	fds := map[string]int{}
	open := func(name string, flags int) int {
		fd, err := openModule(flags)
		require.NoError(t, err, "open %s", name)
		fds[name] = fd
		return fd
	}
	t.Cleanup(func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	})
	open("never read", unix.O_RDONLY)
	half := open("read halfway", unix.O_RDONLY)
	n, err := unix.Read(half, make([]byte, 20))
	require.NoError(t, err, "read 20 bytes")
	require.Equal(t, 20, n, "bytes read")
	eof := open("read to end of file", unix.O_RDONLY)
	got, err := readAll(eof, 4096)
	require.NoError(t, err)
	require.Equal(t, string(whole), string(got), "record before the unload")
	open("write-only", unix.O_WRONLY)
	open("read-write", unix.O_RDWR)
	dup, err := unix.Dup(half)
	require.NoError(t, err, "dup")
	fds["dup of read halfway"] = dup

	noNewKernelWarning(t)
	m.requireUnload(t, fmt.Sprintf("with %d descriptors open", len(fds)))

	check := func(when string) {
		buf := make([]byte, 64)
		for name, fd := range fds {
			if name != "write-only" {
				_, err := unix.Read(fd, buf)
				assert.ErrorIs(t, err, unix.EIO, "%s: read on the %q descriptor", when, name)
				_, err = unix.Pread(fd, buf, 0)
				assert.ErrorIs(t, err, unix.EIO, "%s: pread on the %q descriptor", when, name)
			}
			if name == "write-only" || name == "read-write" {
				_, err := unix.Write(fd, []byte("1\n"))
				assert.ErrorIs(t, err, unix.EIO, "%s: write on the %q descriptor", when, name)
			}
			_, err := unix.Seek(fd, 0, unix.SEEK_SET)
			assert.ErrorIs(t, err, unix.EINVAL, "%s: lseek on the %q descriptor", when, name)
		}
	}
	check("after the unload")
	_, err = openModuleNow(unix.O_RDONLY)
	assert.ErrorIs(t, err, unix.ENOENT, "open %s after the unload", procPID)

	m.requireLoad(t, "after the unload with open descriptors")
	check("after the reload")
	for name, fd := range fds {
		assert.NoError(t, unix.Close(fd), "close the %q descriptor", name)
		delete(fds, name)
	}
}

func TestUnloadWhileReading(t *testing.T) {
	markTest(t)
	// Readers loop while the module is removed. delete_module waits for
	// the reads in progress (remove_proc_entry), and then every reader gets
	// a clean error: EIO on a descriptor it holds, ENOENT when it opens
	// anew. Every read that succeeded gave the whole record, and a read
	// cut off partway had read a prefix of it.
	m := requireModule(t)
	_, whole := sleepingRecord(t)
	noNewKernelWarning(t)

	type reader struct {
		name  string
		read  func() ([]byte, error)
		reads int
		last  []byte // what the failing read had got
		err   error
	}
	held, err := openModule(unix.O_RDONLY)
	require.NoError(t, err)
	defer unix.Close(held)
	buf := make([]byte, 4096)
	readers := []*reader{
		{name: "pread at 0 on a held descriptor", read: func() ([]byte, error) {
			n, err := unix.Pread(held, buf, 0)
			if err != nil {
				return nil, err
			}
			return buf[:n], nil
		}},
		{name: "open, read, close", read: readRaw},
		{name: "open, 1-byte reads, close", read: func() ([]byte, error) { return readRawBy(1) }},
	}

	stopCh := make(chan struct{})
	stop := sync.OnceFunc(func() { close(stopCh) })
	started := make(chan struct{}, len(readers))
	var wg sync.WaitGroup
	t.Cleanup(func() { // readers left looping by a failed unload
		stop()
		wg.Wait()
	})
	for _, r := range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				got, err := r.read()
				if err != nil {
					r.last, r.err = got, err
					return
				}
				if string(got) != string(whole) {
					r.last, r.err = got, errors.New("not the record")
					return
				}
				if r.reads++; r.reads == 1 {
					started <- struct{}{}
				}
				select {
				case <-stopCh:
					return
				default:
				}
			}
		}()
	}
	for range readers {
		select {
		case <-started:
		case <-time.After(guesttest.ReadyTimeout):
			require.FailNow(t, "the readers did not read once", "after %v", guesttest.ReadyTimeout)
		}
	}

	m.requireUnload(t, "while 3 readers loop")
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(guesttest.StateTimeout):
		stop()
		<-done
		assert.Fail(t, "readers still reading after the unload", "%v after it", guesttest.StateTimeout)
	}

	for _, r := range readers {
		t.Logf("%s: %d whole records, then %v", r.name, r.reads, r.err)
		if r.name == "pread at 0 on a held descriptor" {
			assert.ErrorIs(t, r.err, unix.EIO, "%s: the error after the unload", r.name)
		} else {
			assert.Truef(t, errors.Is(r.err, unix.ENOENT) || errors.Is(r.err, unix.EIO),
				"%s: the error after the unload is %v, want ENOENT (open) or EIO (read on a descriptor opened before)", r.name, r.err)
		}
		assert.Truef(t, len(r.last) <= len(whole) && string(r.last) == string(whole[:len(r.last)]),
			"%s: the read that failed had got %q, not a prefix of the record %q", r.name, r.last, whole)
	}
}
