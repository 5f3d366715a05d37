package guesttest

import (
	"os"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/pidlab/pidlab/userspace/guest"
)

// Module is the module under test, as the guest runner loaded it, for the
// tests that unload and reload it.
type Module struct {
	Path string // its .ko in the guest (PIDLAB_MODULE)
	Name string // for delete_module (PIDLAB_MODULE_NAME)
}

// ModuleUnderTest finds the module in the runner's environment.
func ModuleUnderTest(t testing.TB) Module {
	t.Helper()
	m := Module{Path: os.Getenv("PIDLAB_MODULE"), Name: os.Getenv("PIDLAB_MODULE_NAME")}
	require.NotEmpty(t, m.Path, "PIDLAB_MODULE: the guest runner names the module's .ko in it")
	require.NotEmpty(t, m.Name, "PIDLAB_MODULE_NAME: the guest runner names the module in it")
	return m
}

// Loaded reports whether the kernel lists the module. Its /proc entries
// are no proof: a module that forgets to remove one leaves it behind.
func (m Module) Loaded() bool {
	_, err := os.Stat("/sys/module/" + m.Name + "/initstate")
	return err == nil
}

// Load loads the module with params ("ring_size=32", or "").
func (m Module) Load(params string) error {
	f, err := os.Open(m.Path)
	if err != nil {
		return err
	}
	defer f.Close()
	return unix.FinitModule(int(f.Fd()), params, 0)
}

// Unload removes the module (delete_module), retrying while it is busy.
func (m Module) Unload() error { return guest.Unload(guest.LinuxSystem{}, m.Name) }

// AsLoadedAfter makes sure the module is loaded as the runner loaded it,
// without parameters, when t ends (unloaded first if it is loaded: a test
// may leave it with its own parameters), and returns it.
func (m Module) AsLoadedAfter(t testing.TB) Module {
	t.Cleanup(func() {
		if m.Loaded() {
			if err := m.Unload(); err != nil {
				t.Errorf("unloading %s after %s: %v", m.Name, t.Name(), err)
				return
			}
		}
		if err := m.Load(""); err != nil {
			t.Errorf("reloading %s after %s: %v", m.Name, t.Name(), err)
		}
	})
	return m
}
