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

// RunModules tests each module folder of dirs on kernels, every module in
// one boot per kernel, then prints each module's verdict and the counts of
// them all: go tool mage test. The report holds every module's runs.
func RunModules(ctx context.Context, c Config, dirs, kernels []string) (report.Report, []KernelRun) {
	if len(kernels) > 1 {
		c.Log.Step("testing %s on %s", moduleList(dirs), strings.Join(kernels, ", "))
	}
	runs := RunKernels(ctx, c, dirs, kernels)
	for _, dir := range dirs {
		mine := runsOf(runs, dir)
		if len(dirs) > 1 {
			c.Log.Step("module %s", filepath.Base(dir))
		}
		printVerdict(c, mine, false)
	}
	if len(dirs) > 1 {
		PrintTotal(c.Log, fmt.Sprintf("%d modules", len(dirs)), runs)
	}
	PrintTimes(c.Log, runs)
	return Report(c, runs), runs
}

// moduleList names the modules of dirs by folder.
func moduleList(dirs []string) string {
	var names []string
	for _, d := range dirs {
		names = append(names, filepath.Base(d))
	}
	return modulesPhrase(names)
}

// modulesPhrase is "module procpid", or "modules hello, procpid".
func modulesPhrase(names []string) string {
	if len(names) == 1 {
		return "module " + names[0]
	}
	return "modules " + strings.Join(names, ", ")
}

// runsOf are the runs of the module in dir.
func runsOf(runs []KernelRun, dir string) []KernelRun {
	var mine []KernelRun
	for _, r := range runs {
		if r.ModuleDir == dir {
			mine = append(mine, r)
		}
	}
	return mine
}

// RunModule runs c's module on kernels and prints its verdict: a table
// for a validation (table) or a matrix, else the counts and what failed.
func RunModule(ctx context.Context, c Config, kernels []string, table bool) (report.Report, []KernelRun) {
	if table || len(kernels) > 1 {
		c.Log.Step("validating %s with profile %s on %s", c.ModuleDir, c.profileName(), strings.Join(kernels, ", "))
	}
	runs := RunKernels(ctx, c, []string{c.ModuleDir}, kernels)
	printVerdict(c, runs, table)
	return Report(c, runs), runs
}

// printVerdict prints one module's verdict on its kernels: a table for a
// validation (table) or a matrix, else the counts and what failed.
func printVerdict(c Config, runs []KernelRun, table bool) {
	printFigures(c, runs)
	if table || len(runs) > 1 {
		fmt.Fprintln(c.Log.W)
		report.PrintTable(c.Log.W, Report(c, runs))
		for _, r := range runs {
			PrintWhereToLook(c.Log.Named(r.Name), r.Result, r.Err)
		}
		return
	}
	PrintSummary(c.Log, runs[0].Result, runs[0].Err)
}

// printFigures prints what the runs' benchmarks measured, a figure a line.
func printFigures(c Config, runs []KernelRun) {
	for _, r := range runs {
		if r.Result == nil {
			continue
		}
		log := c.Log
		if len(runs) > 1 {
			log = log.Named(r.Name)
		}
		for _, f := range figures(r.Result) {
			log.Line("%s", f)
		}
	}
}
