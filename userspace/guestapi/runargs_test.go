package guestapi

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRunArgsSurviveTheKernelCommandLine(t *testing.T) {
	args := []string{"-test.timeout=15m0s", `-test.run=^Test(A|B c)$/"x y"+1%`}
	arg := RunArgsKernelArg(args)
	assert.NotContains(t, arg, " ", "the kernel splits its command line at spaces")
	assert.NotContains(t, arg, `"`, "and treats quotes")
	got, err := RunArgs("console=ttyS0,115200 ignore_loglevel " + arg + " oops=panic")
	require.NoError(t, err)
	assert.Equal(t, args, got)

	got, err = RunArgs("console=ttyS0 quiet")
	require.NoError(t, err)
	assert.Empty(t, got, "no argument, no flags")
	_, err = RunArgs(RunArgsParam + "=%zz")
	assert.Error(t, err)
}

func TestWithArgsAddsToEveryBinaryAndLeavesTheManifest(t *testing.T) {
	m := Manifest{Modules: []ModuleRun{
		{Name: "a", Tests: []TestBinary{{Path: "/a.test", Args: []string{"-test.v=test2json"}}, {Path: "/b.test"}}},
		{Name: "b", Tests: []TestBinary{{Path: "/c.test"}}},
	}}
	got := m.WithArgs([]string{"-test.run=X"})
	assert.Equal(t, []string{"-test.v=test2json", "-test.run=X"}, got.Modules[0].Tests[0].Args)
	assert.Equal(t, []string{"-test.run=X"}, got.Modules[0].Tests[1].Args)
	assert.Equal(t, []string{"-test.run=X"}, got.Modules[1].Tests[0].Args, "every module's binaries")
	assert.Equal(t, []string{"-test.v=test2json"}, m.Modules[0].Tests[0].Args, "the original is unchanged")
}
