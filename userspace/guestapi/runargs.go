package guestapi

import (
	"fmt"
	"net/url"
	"strings"
)

// RunArgsParam is the kernel command-line parameter that carries the test
// flags of one run (-test.run, -test.timeout). They travel on the command
// line, not in the manifest, so that a new pattern or limit boots the same
// cached initramfs instead of building another.
const RunArgsParam = "pidlab.args"

// RunArgsKernelArg is the kernel command-line argument for args: query
// escaping leaves no space or quote for the kernel to split on.
func RunArgsKernelArg(args []string) string {
	return RunArgsParam + "=" + url.QueryEscape(strings.Join(args, "\n"))
}

// RunArgs reads the test flags RunArgsKernelArg put on the kernel command
// line cmdline (/proc/cmdline); none when it has no such argument.
func RunArgs(cmdline string) ([]string, error) {
	for _, f := range strings.Fields(cmdline) {
		v, ok := strings.CutPrefix(f, RunArgsParam+"=")
		if !ok {
			continue
		}
		s, err := url.QueryUnescape(v)
		if err != nil {
			return nil, fmt.Errorf("kernel argument %s: %w", RunArgsParam, err)
		}
		if s == "" {
			return nil, nil
		}
		return strings.Split(s, "\n"), nil
	}
	return nil, nil
}

// WithArgs is m with args added to every test binary's flags.
func (m Manifest) WithArgs(args []string) Manifest {
	mods := make([]ModuleRun, len(m.Modules))
	for i, mod := range m.Modules {
		tests := make([]TestBinary, len(mod.Tests))
		for j, tb := range mod.Tests {
			tb.Args = append(append([]string(nil), tb.Args...), args...)
			tests[j] = tb
		}
		mod.Tests = tests
		mods[i] = mod
	}
	m.Modules = mods
	return m
}
