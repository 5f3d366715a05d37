package guesttest

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/pidlab/pidlab/userspace/guestapi"
)

func TestErrnoNameIsTheCName(t *testing.T) {
	assert.Equal(t, "ESRCH (no such process)", ErrnoName(unix.ESRCH))
	assert.Equal(t, "EINVAL (invalid argument)", ErrnoName(fmt.Errorf("write /proc/pid: %w", unix.EINVAL)), "wrapped")
	assert.Equal(t, "short write", ErrnoName(errors.New("short write")), "no errno")
}

func TestErrnoOfAnErrorAndItsName(t *testing.T) {
	assert.Equal(t, unix.EPERM, Errno(fmt.Errorf("ioctl: %w", unix.EPERM)), "wrapped")
	assert.Zero(t, Errno(nil))
	assert.Zero(t, Errno(errors.New("short write")), "no errno")
	assert.Equal(t, "success", ErrnoString(0))
	assert.Equal(t, "EPERM (operation not permitted)", ErrnoString(unix.EPERM))
}

func TestSuitesRefuseToRunOutsideTheGuest(t *testing.T) {
	t.Setenv("PIDLAB_GUEST", "")
	err := inGuest("kill processes")
	assert.ErrorContains(t, err, "refusing to run: PIDLAB_GUEST=1 is not set; these tests kill processes")
	t.Setenv("PIDLAB_GUEST", "1")
	assert.NoError(t, inGuest("kill processes"))
}

func TestTargetPathIsChecked(t *testing.T) {
	t.Setenv("PIDLAB_TARGET", "")
	_, err := TargetPath()
	assert.ErrorContains(t, err, "PIDLAB_TARGET is not set")

	dir := t.TempDir()
	t.Setenv("PIDLAB_TARGET", filepath.Join(dir, "missing"))
	_, err = TargetPath()
	assert.ErrorIs(t, err, os.ErrNotExist)

	plain := filepath.Join(dir, "pidlab-target")
	require.NoError(t, os.WriteFile(plain, nil, 0o644))
	t.Setenv("PIDLAB_TARGET", plain)
	_, err = TargetPath()
	assert.ErrorContains(t, err, "is not executable")

	require.NoError(t, os.Chmod(plain, 0o755))
	path, err := TargetPath()
	require.NoError(t, err)
	assert.Equal(t, plain, path)
}

// fakeT records what a test would print.
type fakeT struct {
	testing.TB
	errors, logs []string
}

func (f *fakeT) Helper()                   {}
func (f *fakeT) Name() string              { return "TestRecordFields/init/ppid" }
func (f *fakeT) Error(args ...any)         { f.errors = append(f.errors, fmt.Sprint(args...)) }
func (f *fakeT) Errorf(s string, a ...any) { f.errors = append(f.errors, fmt.Sprintf(s, a...)) }
func (f *fakeT) Logf(s string, a ...any)   { f.logs = append(f.logs, fmt.Sprintf(s, a...)) }

func TestFailRecordsDataAndTellsThePerson(t *testing.T) {
	r, w, err := os.Pipe()
	require.NoError(t, err)
	defer r.Close()
	records.f = w // as recordsFile opens the runner's descriptor
	defer func() { records.f = nil }()

	ft := &fakeT{}
	Fail(ft, guestapi.Failure{Check: "ppid: module vs /proc/1/stat field 4", Expected: "0", Got: "1", Hint: "ppid is the TGID of the real parent"})
	w.Close()
	line, err := io.ReadAll(r)
	require.NoError(t, err)
	assert.JSONEq(t, `{"failure":{"test":"TestRecordFields/init/ppid","check":"ppid: module vs /proc/1/stat field 4","expected":"0","got":"1","hint":"ppid is the TGID of the real parent"}}`, string(line))
	assert.Equal(t, []string{"ppid: module vs /proc/1/stat field 4\nexpected: 0\ngot: 1\nhint: ppid is the TGID of the real parent"}, ft.errors)
}

func TestFigureRecordsDataAndLogsIt(t *testing.T) {
	r, w, err := os.Pipe()
	require.NoError(t, err)
	defer r.Close()
	records.f = w
	defer func() { records.f = nil }()

	ft := &fakeT{}
	Figure(ft, guestapi.Figure{Name: "loaded/unloaded", Value: 1.0412, Unit: "×", About: "medians of 9 rounds"})
	w.Close()
	line, err := io.ReadAll(r)
	require.NoError(t, err)
	assert.JSONEq(t, `{"figure":{"test":"TestRecordFields/init/ppid","name":"loaded/unloaded","value":1.0412,"unit":"×","about":"medians of 9 rounds"}}`, string(line))
	assert.Equal(t, []string{"loaded/unloaded: 1.041 × (medians of 9 rounds)"}, ft.logs)
	assert.Empty(t, ft.errors)
}
