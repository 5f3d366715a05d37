package vmtest

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/pidlab/pidlab/vmtest/manifest"
	"github.com/pidlab/pidlab/vmtest/report"
	"github.com/pidlab/pidlab/vmtest/verdict"
)

// ModulesDir is the repository's folder of modules: module/<name>/, each
// with its manifest (pidlab.toml).
const ModulesDir = "module"

// Modules lists the module folders of the repository at repo that have a
// manifest, sorted; only those PIDLAB_MODULES names (a comma-separated
// list of folder names) when it is set.
func Modules(repo string) ([]string, error) {
	manifests, err := filepath.Glob(filepath.Join(repo, ModulesDir, "*", manifest.File))
	if err != nil {
		return nil, err
	}
	have := map[string]string{}
	var all []string
	for _, m := range manifests {
		dir := filepath.Dir(m)
		have[filepath.Base(dir)] = dir
		all = append(all, dir)
	}
	sort.Strings(all)
	want := os.Getenv(EnvModules)
	if want == "" {
		if len(all) == 0 {
			return nil, verdict.SetupError("run in pidlab's repository", "%s has no module folder with a %s", filepath.Join(repo, ModulesDir), manifest.File)
		}
		return all, nil
	}
	var dirs []string
	for _, name := range strings.Split(want, ",") {
		dir, ok := have[strings.TrimSpace(name)]
		if !ok {
			return nil, verdict.SetupError(EnvModules+"="+strings.Join(slices.Sorted(maps.Keys(have)), ","),
				"%s=%q: no module folder %s/%s with a %s", EnvModules, want, ModulesDir, strings.TrimSpace(name), manifest.File)
		}
		dirs = append(dirs, dir)
	}
	return dirs, nil
}

// RunModules runs each module folder of dirs on kernels, one after the
// other, each with its verdict, then the counts of them all: go tool mage
// test. The report holds every module's runs.
func RunModules(ctx context.Context, c Config, dirs, kernels []string) (report.Report, []KernelRun) {
	var reports []report.Report
	var all []KernelRun
	for _, dir := range dirs {
		mc := c
		mc.ModuleDir = dir
		if len(dirs) > 1 {
			mc.Log.Step("module %s", filepath.Base(dir))
		}
		rep, runs := RunModule(ctx, mc, kernels, false)
		reports = append(reports, rep)
		all = append(all, runs...)
		if ctx.Err() != nil {
			break
		}
	}
	if len(dirs) > 1 {
		PrintTotal(c.Log, fmt.Sprintf("%d modules", len(dirs)), all)
	}
	return Combine(reports...), all
}

// RunModule runs c's module on kernels and prints its verdict: a table
// for a validation (table) or a matrix, else the counts and what failed.
func RunModule(ctx context.Context, c Config, kernels []string, table bool) (report.Report, []KernelRun) {
	if table || len(kernels) > 1 {
		c.Log.Step("validating %s with profile %s on %s", c.ModuleDir, c.profileName(), strings.Join(kernels, ", "))
	}
	runs := RunKernels(ctx, c, kernels)
	rep := Report(c, runs)
	if table || len(runs) > 1 {
		fmt.Fprintln(c.Log.W)
		report.PrintTable(c.Log.W, rep)
		for _, r := range runs {
			PrintWhereToLook(c.Log.Named(r.Name), r.Result, r.Err)
		}
	} else {
		PrintSummary(c.Log, runs[0].Result, runs[0].Err)
	}
	return rep, runs
}
