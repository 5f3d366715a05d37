package manifest

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestProcpidsManifest(t *testing.T) {
	m, err := Load("../../module/procpid")
	require.NoError(t, err)
	assert.Equal(t, "procpid", m.Name)
	assert.True(t, m.Reload, "procpid's first checks read before any write")
	require.Len(t, m.Helpers, 1)
	assert.Equal(t, "/pidlab/bin/pidlab-target", m.Helpers[0].GuestPath())
	assert.Equal(t, "PIDLAB_TARGET", m.Helpers[0].Env)

	var names []string
	for _, s := range m.SuitesFor(nil) {
		names = append(names, s.Name)
	}
	assert.Equal(t, []string{"profilecheck"}, names, "a profile without suites: not conformance")
	names = nil
	for _, s := range m.SuitesFor([]string{"conformance"}) {
		names = append(names, s.Name)
	}
	assert.Equal(t, []string{"profilecheck", "conformance"}, names, "in the manifest's order")
}

func TestBadManifestsAreNamed(t *testing.T) {
	for want, text := range map[string]string{
		"no name":                     "[[suite]]\nname = \"a\"\npackage = \"./a\"\n",
		"needs a guest test package":  "name = \"x\"\n",
		"is a path in the repository": "name = \"x\"\n[[suite]]\nname = \"a\"\npackage = \"userspace/a\"\n",
		"named twice":                 "name = \"x\"\n[[suite]]\nname = \"a\"\npackage = \"./a\"\n[[suite]]\nname = \"a\"\npackage = \"./b\"\n",
		"needs a C source":            "name = \"x\"\n[[suite]]\nname = \"a\"\npackage = \"./a\"\n[[helper]]\nsource = \"t.go\"\nenv = \"T\"\n",
		"unknown key reloads":         "name = \"x\"\nreloads = true\n[[suite]]\nname = \"a\"\npackage = \"./a\"\n",
	} {
		dir := t.TempDir()
		require.NoError(t, os.WriteFile(filepath.Join(dir, File), []byte(text), 0o644))
		_, err := Load(dir)
		assert.ErrorContains(t, err, want, "%q", text)
		assert.ErrorContains(t, err, filepath.Join(dir, File), "the error names the file")
	}
	_, err := Load(t.TempDir())
	assert.True(t, IsNotExist(err), "a folder without a manifest")
}
