package vmtest

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"

	"github.com/pidlab/pidlab/vmtest/kernel"
	"github.com/pidlab/pidlab/vmtest/report"
	"github.com/pidlab/pidlab/vmtest/verdict"
)

// Environment for the kernel matrix and the reports, documented in the README.
const (
	EnvKernels = "PIDLAB_KERNELS" // comma-separated kernel names: one run on each
	EnvReport  = "PIDLAB_REPORT"  // write the JSON report here
	EnvJUnit   = "PIDLAB_JUNIT"   // write JUnit XML here
)

// KernelRun is one module's run on one kernel.
type KernelRun struct {
	Module    string // the module folder's name
	ModuleDir string
	Name      string // the kernel's, as selected: cloud, rt, …
	// Prepared is where the host's time went before the boot (the
	// kernel's and every module's of the boot, so the same in each run
	// of one kernel).
	Prepared []Span
	Result   *Result
	Err      error
}

// KernelsFromEnv returns the kernels to run on: PIDLAB_KERNELS's list, or
// the one kernel of c (PIDLAB_KERNEL) when it is not set.
func KernelsFromEnv(c Config) ([]string, error) {
	v := os.Getenv(EnvKernels)
	if v == "" {
		return []string{kernelName(c.Kernel)}, nil
	}
	return parseKernels(v)
}

// parseKernels reads a PIDLAB_KERNELS list: kernel names, each once.
func parseKernels(v string) ([]string, error) {
	var names []string
	seen := map[string]bool{}
	for _, n := range strings.Split(v, ",") {
		n = strings.TrimSpace(n)
		if n == "" {
			continue
		}
		if _, err := kernel.ParseSelection(n, ""); err != nil {
			return nil, verdict.SetupError(EnvKernels+"=cloud,generic,rt",
				"%s=%q: %q is not a kernel name (%s; a bzImage goes in %s)", EnvKernels, v, n, kernel.Names(), kernel.EnvKernel)
		}
		if seen[n] {
			return nil, verdict.SetupError(EnvKernels+"=cloud,generic,rt", "%s=%q names %s twice", EnvKernels, v, n)
		}
		seen[n] = true
		names = append(names, n)
	}
	if len(names) == 0 {
		return nil, verdict.SetupError(EnvKernels+"=cloud,generic,rt", "%s=%q names no kernel", EnvKernels, v)
	}
	return names, nil
}

// RunKernels tests the modules of dirs on each kernel: it prepares the
// kernels one after the other (downloads and builds say what they do, in
// order), each with its modules built and one initramfs, then boots one VM
// per kernel, which tests every module in turn, in parallel, up to one
// per CPU. The runs are module by module, each on every kernel.
func RunKernels(ctx context.Context, c Config, dirs, names []string) []KernelRun {
	runs := make([][]KernelRun, len(names)) // by kernel, then module
	prepared := make([]*Prepared, len(names))
	configs := make([]Config, len(names))
	for i, name := range names {
		configs[i] = c
		configs[i].Kernel = kernelSelection(c.Kernel, name)
		if len(names) > 1 {
			configs[i].Log = c.Log.Named(name)
		}
		runs[i] = make([]KernelRun, len(dirs))
		for j, dir := range dirs {
			runs[i][j] = KernelRun{Module: filepath.Base(dir), ModuleDir: dir, Name: name}
		}
		var err error
		if ctx.Err() != nil {
			err = verdict.Interruption("waiting to prepare this kernel")
		} else {
			prepared[i], err = Prepare(ctx, configs[i], dirs)
		}
		for j := range dirs {
			if prepared[i] != nil {
				runs[i][j].Prepared = prepared[i].Took
			}
			switch {
			case err != nil:
				runs[i][j].Err = err
			case prepared[i].Modules[j].Err != nil:
				runs[i][j].Err = prepared[i].Modules[j].Err
			}
		}
	}
	sem := make(chan struct{}, runtime.NumCPU())
	var wg sync.WaitGroup
	for i := range names {
		if prepared[i] == nil || len(prepared[i].Booted()) == 0 {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			bootKernel(ctx, configs[i], prepared[i], runs[i])
		}()
	}
	wg.Wait()
	var all []KernelRun
	for j := range dirs {
		for i := range names {
			all = append(all, runs[i][j])
		}
	}
	return all
}

// kernelSelection is the selection of the matrix's kernel name, given
// the run's own (sel, from PIDLAB_KERNEL): sel itself when it is that
// kernel (it may be a custom image with its KDIR), else that kernel with
// sel's patches (CheckEnv lets patches through only when every kernel of
// the run is built from source).
func kernelSelection(sel kernel.Selection, name string) kernel.Selection {
	if name == kernelName(sel) {
		return sel
	}
	other, _ := kernel.ParseSelection(name, "")
	other.Patches = sel.Patches
	return other
}

// bootKernel boots a prepared kernel and sets the runs of its modules
// that built: their Result, and the verdict as their Err.
func bootKernel(ctx context.Context, c Config, p *Prepared, runs []KernelRun) {
	var results []*Result
	var err error
	if ctx.Err() != nil {
		err = verdict.Interruption("waiting to boot")
	} else {
		results, err = Boot(ctx, c, p)
	}
	booted := 0 // results are those of p.Booted(), in order
	for j, m := range p.Modules {
		if m.Err != nil {
			continue
		}
		runs[j].Err = err
		if booted < len(results) {
			runs[j].Result = results[booted]
			if results[booted].Err != nil { // not assigned when nil: a nil *verdict.Error is no nil error
				runs[j].Err = results[booted].Err
			}
		}
		booted++
	}
}

// Report gathers the runs of modules on kernels into one report.
func Report(c Config, runs []KernelRun) report.Report {
	r := report.Report{Schema: report.Schema, Profile: c.profileName()}
	for _, kr := range runs {
		run := RunReport(kr.Name, kr.Result, kr.Err)
		run.Module, run.ModuleDir = kr.Module, kr.ModuleDir
		run.Prepared = reportSpans(kr.Prepared)
		for i := range run.Checks {
			run.Checks[i].Module = run.Module
		}
		r.Runs = append(r.Runs, run)
	}
	return Combine(r)
}

// Combine is one report of the runs of several (a go tool mage test of
// every module), its exit code the most severe of theirs.
func Combine(reports ...report.Report) report.Report {
	all := report.Report{Schema: report.Schema}
	var codes []verdict.Code
	for _, r := range reports {
		all.Profile = r.Profile
		all.Runs = append(all.Runs, r.Runs...)
		for _, run := range r.Runs {
			codes = append(codes, verdict.Code(run.ExitCode))
		}
	}
	all.ExitCode = int(Worst(codes...))
	return all
}

// Worst is a matrix's exit code: the most severe of its runs', an
// interruption first (the matrix did not finish, whatever the runs that
// did found), then a setup problem, a build failure, kernel trouble, a
// timeout, a failed check.
func Worst(codes ...verdict.Code) verdict.Code {
	worst := verdict.Pass
	for _, c := range codes {
		if severity(c) > severity(worst) {
			worst = c
		}
	}
	return worst
}

func severity(c verdict.Code) int {
	for i, s := range []verdict.Code{verdict.Pass, verdict.TestFailed, verdict.Timeout, verdict.KernelTrouble, verdict.BuildFailed, verdict.Setup, verdict.Interrupted} {
		if c == s {
			return i
		}
	}
	return 0
}

// kernelName is how reports name a selected kernel.
func kernelName(s kernel.Selection) string {
	if s.Image != "" {
		return s.Image
	}
	return s.Flavour
}

// WriteReports writes the JSON report and JUnit XML where PIDLAB_REPORT and
// PIDLAB_JUNIT say, if they do.
func WriteReports(c Config, r report.Report) error {
	if path := os.Getenv(EnvReport); path != "" {
		if err := writeFile(path, r, report.WriteJSON); err != nil {
			return verdict.SetupError(EnvReport+"=pidlab-report.json", "%s: %v", EnvReport, err)
		}
		c.Log.Info("JSON report: %s", path)
	}
	if path := os.Getenv(EnvJUnit); path != "" {
		if err := writeFile(path, r, report.WriteJUnit); err != nil {
			return verdict.SetupError(EnvJUnit+"=pidlab-junit.xml", "%s: %v", EnvJUnit, err)
		}
		c.Log.Info("JUnit XML: %s", path)
	}
	return nil
}

// writeFile makes path's folder, which CheckEnv let be missing, and writes.
func writeFile(path string, r report.Report, write func(string, report.Report) error) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return write(path, r)
}
