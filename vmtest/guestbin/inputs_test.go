package guestbin

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pidlab/pidlab/vmtest/progress"
)

// A module of two packages: a suite and a helper package it imports.
func suiteModule(t *testing.T) string {
	t.Helper()
	repo := t.TempDir()
	files := map[string]string{
		"go.mod":              "module example.com/m\n\ngo 1.24\n",
		"helper/helper.go":    "package helper\n\nfunc Answer() int { return 42 }\n",
		"helper/notes.txt":    "not Go, not embedded\n",
		"suite/suite_test.go": "//go:build " + GuestTag + "\n\npackage suite\n\nimport (\n\t\"testing\"\n\n\t\"example.com/m/helper\"\n)\n\nfunc TestAnswer(t *testing.T) {\n\tif helper.Answer() != 42 {\n\t\tt.Fatal()\n\t}\n}\n",
		"suite/doc.go":        "package suite\n",
	}
	for name, text := range files {
		path := filepath.Join(repo, name)
		require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
		require.NoError(t, os.WriteFile(path, []byte(text), 0o644))
	}
	return repo
}

// A suite whose inputs did not change is not built again (no go test -c);
// a change to a package it imports builds it again, and a file that is
// no input does not.
func TestTestBinaryIsReusedWhileItsInputsStay(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a test binary (a few seconds)")
	}
	repo, out := suiteModule(t), t.TempDir()
	var said strings.Builder
	log := &progress.Log{W: &said, Verbose: true}
	binary := func() string {
		t.Helper()
		said.Reset()
		bin, err := ReadInputs(t.Context(), repo, []string{"./suite"}, log).TestBinary(t.Context(), repo, "./suite", out, log)
		require.NoError(t, err, "log:\n%s", said.String())
		return bin
	}
	built := func() bool { return strings.Contains(said.String(), "go test -c") }

	first := binary()
	assert.True(t, built(), "the first run builds")
	assert.Equal(t, first, binary())
	assert.False(t, built(), "the same inputs: reused without go test -c; log:\n%s", said.String())

	require.NoError(t, os.WriteFile(filepath.Join(repo, "helper/notes.txt"), []byte("changed\n"), 0o644))
	binary()
	assert.False(t, built(), "a file that is no input changed: still reused")

	require.NoError(t, os.WriteFile(filepath.Join(repo, "helper/helper.go"), []byte("package helper\n\nfunc Answer() int { return 43 }\n"), 0o644))
	second := binary()
	assert.True(t, built(), "an imported package changed: built again")
	assert.NotEqual(t, first, second)

	require.NoError(t, os.Remove(second))
	assert.Equal(t, second, binary(), "a binary gone from the cache is built again")
	assert.True(t, built())
}

// Inputs go list cannot read leave the build to go test -c, which says
// what is wrong as a build failure.
func TestUnreadableInputsFallBackToTheBuild(t *testing.T) {
	repo := suiteModule(t)
	in := ReadInputs(t.Context(), repo, []string{"./missing"}, nil)
	assert.Empty(t, in.keys)
	_, err := in.TestBinary(t.Context(), repo, "./missing", t.TempDir(), nil)
	assert.ErrorContains(t, err, "the guest tests did not compile")
}
