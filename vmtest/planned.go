package vmtest

import (
	"context"
	"path/filepath"

	"github.com/pidlab/pidlab/vmtest/guestbin"
	"github.com/pidlab/pidlab/vmtest/manifest"
	"github.com/pidlab/pidlab/vmtest/report"
)

// PlannedChecks are the top-level checks of a run of a module without a
// manifest of its own (a student's, validated with c's profile) that
// boots: its build and load, the guest tests of the profile's module, its
// unload and the kernel's health. A grade scores every submission out of
// them, however far each got. It builds the guest test binaries, which
// the runs then reuse.
func PlannedChecks(ctx context.Context, c Config) ([]string, error) {
	prof, err := c.profile()
	if err != nil {
		return nil, err
	}
	man, err := manifest.Load(filepath.Join(c.RepoDir, ModulesDir, prof.Module))
	if err != nil {
		return nil, err
	}
	var suites []string
	for _, s := range man.SuitesFor(prof.Suites) {
		suites = append(suites, s.Package)
	}
	inputs := guestbin.ReadInputs(ctx, c.RepoDir, suites, c.Log)
	names := []string{report.CheckBuild, report.CheckLoad}
	for _, pkg := range suites {
		bin, err := inputs.TestBinary(ctx, c.RepoDir, pkg, filepath.Join(c.CacheDir, "guestbin"), c.Log)
		if err != nil {
			return nil, err
		}
		tests, err := c.planned(ctx, bin)
		if err != nil {
			return nil, err
		}
		names = append(names, tests...)
	}
	return append(names, report.CheckUnload, report.CheckClean), nil
}
