package vmtest

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pidlab/pidlab/userspace/guestapi"
	"github.com/pidlab/pidlab/userspace/profile"
	"github.com/pidlab/pidlab/vmtest/grade"
	"github.com/pidlab/pidlab/vmtest/kernel"
	"github.com/pidlab/pidlab/vmtest/profiles"
	"github.com/pidlab/pidlab/vmtest/qemu"
	"github.com/pidlab/pidlab/vmtest/verdict"
)

// EnvE2EDebug turns on vmtest's end-to-end runs on the debug kernel, whose
// first build takes about 10 minutes (CI sets it; see the README). Only go
// test reads it, but it is a setting all the same.
const EnvE2EDebug = "PIDLAB_E2E_DEBUG"

// Environment of go tool mage grade (and validate's Gradescope results),
// documented in the README.
const (
	EnvGradeOut   = "PIDLAB_GRADE_OUT"  // the grade's output folder; default DefaultGradeOut
	EnvShard      = "PIDLAB_SHARD"      // k/n: grade the k-th of n shares of the class
	EnvGradeVMs   = "PIDLAB_GRADE_VMS"  // VMs at once; default from the CPUs and the free memory
	EnvGradescope = "PIDLAB_GRADESCOPE" // validate writes Gradescope's results.json here too
)

// DefaultGradeOut is the grade's output folder, in the working directory.
const DefaultGradeOut = "pidlab-grade"

// GradeVMs reads PIDLAB_GRADE_VMS: 0 when unset (the default).
func GradeVMs(v string) (int, error) { return count(v, 0, 64, "VMs") }

// setting is one PIDLAB_* variable: what it takes and how a value is
// checked, so that a bad one stops a run before any download or build.
type setting struct {
	Name  string
	Takes string
	Fix   string             // a good setting, for the error
	Check func(string) error // nil: any value; not called for an empty one
	// CheckInRepo checks a value that names something in pidlab's
	// repository (a built-in profile), at repo.
	CheckInRepo func(v, repo string) error
	Guest       bool // set by pidlab inside the guest; nothing on the host
}

// settings are the variables the README's Environment table documents,
// plus the test-only and guest-side ones.
var settings = []setting{
	{Name: kernel.EnvKernel, Takes: kernel.Names() + ", or a bzImage path", Fix: kernel.EnvKernel + "=cloud"}, // with PIDLAB_KDIR: kernel.SelectionFromEnv
	{Name: kernel.EnvKDIR, Takes: "the build tree of PIDLAB_KERNEL's bzImage"},
	{Name: kernel.EnvPatches, Takes: "patch files separated by ':', for a kernel built from source"}, // kernel.SelectionFromEnv, then checkPatchedKernels
	{Name: qemu.EnvAccel, Takes: "kvm or tcg", Fix: qemu.EnvAccel + "=tcg   (or unset: KVM is used when it works)", Check: checkAccel},
	{Name: EnvTimeout, Takes: "a duration > 0, like 15m or 900 (seconds)", Fix: EnvTimeout + "=15m", Check: checkDuration},
	{Name: EnvTestTimeout, Takes: "a duration > 0, like 2m or 120 (seconds)", Fix: EnvTestTimeout + "=2m", Check: checkDuration},
	{Name: EnvRun, Takes: "a -test.run pattern", Fix: EnvRun + "='TestRead/state'", Check: checkRunPattern},
	{Name: EnvBench, Takes: "a -test.bench pattern (go tool mage bench)", Fix: EnvBench + "=ForkExitWait", Check: checkRunPattern},
	{Name: EnvLoopRounds, Takes: "1 to 20 (go tool mage editLoop)", Fix: EnvLoopRounds + "=3", Check: func(v string) error { _, err := LoopRounds(v); return err }},
	{Name: EnvProfile, Takes: "reference, osc10e, or a profile file", Fix: EnvProfile + "=reference", CheckInRepo: func(v, repo string) error { _, err := profiles.Load(repo, v); return err }},
	{Name: EnvModules, Takes: "module folder names, like procpid"},
	{Name: EnvKernels, Takes: "kernel names, like cloud,generic,rt", Fix: EnvKernels + "=cloud,generic,rt", Check: func(v string) error { _, err := parseKernels(v); return err }},
	{Name: EnvReport, Takes: "a file to write the JSON report to", Fix: EnvReport + "=pidlab-report.json", Check: checkOutputPath},
	{Name: EnvJUnit, Takes: "a file to write JUnit XML to", Fix: EnvJUnit + "=pidlab-junit.xml", Check: checkOutputPath},
	{Name: EnvE2EDebug, Takes: "1: go test also judges the fixtures on the debug kernel"},
	{Name: EnvGradeOut, Takes: "the folder go tool mage grade writes to", Fix: EnvGradeOut + "=pidlab-grade", Check: func(v string) error { return checkOutputPath(filepath.Join(v, "class.csv")) }},
	{Name: EnvShard, Takes: "k/n: the k-th of n shares of the class (go tool mage grade)", Fix: EnvShard + "=1/3", Check: func(v string) error { _, err := grade.ParseShard(v); return err }},
	{Name: EnvGradeVMs, Takes: "1 to 64: VMs at once (go tool mage grade)", Fix: EnvGradeVMs + "=2", Check: func(v string) error { _, err := GradeVMs(v); return err }},
	{Name: EnvGradescope, Takes: "a file to write Gradescope's results.json to (go tool mage validate)", Fix: EnvGradescope + "=/autograder/results/results.json", Check: checkOutputPath},
	{Name: "PIDLAB_GUEST", Guest: true},
	{Name: "PIDLAB_TARGET", Guest: true},
	{Name: "PIDLAB_MODULE", Guest: true},
	{Name: "PIDLAB_MODULE_NAME", Guest: true},
	{Name: profile.EnvGuestJSON, Guest: true},
	{Name: guestapi.EnvProcCreated, Guest: true},
}

// CheckEnv checks every PIDLAB_* variable of the environment, for pidlab's
// repository at repo, and returns a setup error for the first bad value,
// and a warning for each variable pidlab does not know (a typo) or sets
// only in the guest.
func CheckEnv(repo string) (warnings []string, err error) {
	env := map[string]string{}
	for _, kv := range os.Environ() {
		if k, v, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(k, "PIDLAB_") {
			env[k] = v
		}
	}
	known := map[string]setting{}
	for _, s := range settings {
		known[s.Name] = s
	}
	var unknown []string
	for k := range env {
		s, ok := known[k]
		switch {
		case !ok:
			unknown = append(unknown, k)
		case s.Guest:
			warnings = append(warnings, fmt.Sprintf("%s is set by pidlab inside the guest; on the host it does nothing", k))
		}
	}
	sort.Strings(unknown)
	sort.Strings(warnings)
	if len(unknown) > 0 {
		warnings = append(warnings, fmt.Sprintf("%s: not a pidlab setting (a typo?), ignored; pidlab reads %s",
			strings.Join(unknown, ", "), strings.Join(hostSettings(), ", ")))
	}
	if env[kernel.EnvKDIR] != "" && !strings.ContainsRune(env[kernel.EnvKernel], '/') {
		warnings = append(warnings, fmt.Sprintf("%s is set, but %s is not a bzImage path: %s is ignored", kernel.EnvKDIR, kernel.EnvKernel, kernel.EnvKDIR))
	}
	if _, err := kernel.SelectionFromEnv(); err != nil {
		return warnings, err
	}
	for _, s := range settings {
		v := env[s.Name]
		if v == "" {
			continue
		}
		if s.Check != nil {
			err = s.Check(v)
		} else if s.CheckInRepo != nil {
			err = s.CheckInRepo(v, repo)
		}
		if err != nil {
			return warnings, settingError(s, v, err)
		}
	}
	return warnings, checkPatchedKernels(env)
}

// checkPatchedKernels refuses PIDLAB_KERNEL_PATCHES unless every kernel of
// the run (PIDLAB_KERNELS's, else PIDLAB_KERNEL's) is built from source: a
// kernel left unpatched in a run that asks for patches would give a
// verdict that looks like the patches'. env's values are checked already.
func checkPatchedKernels(env map[string]string) error {
	if env[kernel.EnvPatches] == "" {
		return nil
	}
	setting, names := kernel.EnvKernel, []string{env[kernel.EnvKernel]}
	if env[EnvKernels] != "" {
		setting = EnvKernels
		names, _ = parseKernels(env[EnvKernels])
	}
	var unbuilt []string
	for _, n := range names {
		sel, _ := kernel.ParseSelection(n, env[kernel.EnvKDIR])
		if !sel.IsBuilt() {
			unbuilt = append(unbuilt, kernelName(sel))
		}
	}
	if len(unbuilt) > 0 {
		return kernel.NotPatchable(setting, unbuilt)
	}
	return nil
}

// hostSettings names the variables a person sets on the host.
func hostSettings() []string {
	var names []string
	for _, s := range settings {
		if !s.Guest {
			names = append(names, s.Name)
		}
	}
	return names
}

func settingError(s setting, v string, err error) error {
	var ve *verdict.Error
	if errors.As(err, &ve) {
		return err // it says what to do already
	}
	if strings.HasPrefix(err.Error(), s.Name+"=") {
		return verdict.SetupError(s.Fix, "%v", err) // it names the setting already
	}
	return verdict.SetupError(s.Fix, "%s=%q: %v (it takes %s)", s.Name, v, err, s.Takes)
}

// parseDuration reads a timeout: a Go duration or whole seconds, above 0.
func parseDuration(v string) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	if secs, aerr := strconv.Atoi(v); aerr == nil {
		d, err = time.Duration(secs)*time.Second, nil
	}
	if err != nil {
		return 0, errors.New("not a duration")
	}
	if d <= 0 {
		return 0, errors.New("a timeout must be above 0")
	}
	return d, nil
}

// LoopRounds reads PIDLAB_LOOP_ROUNDS's value: how many rounds editLoop
// measures, 3 when empty.
func LoopRounds(v string) (int, error) { return count(v, 3, 20, "rounds") }

// count reads a setting that counts things, from 1 to most: def when
// empty.
func count(v string, def, most int, things string) (int, error) {
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > most {
		return 0, fmt.Errorf("%q is not a number of %s from 1 to %d", v, things, most)
	}
	return n, nil
}

func checkDuration(v string) error {
	_, err := parseDuration(v)
	return err
}

func checkAccel(v string) error {
	_, _, err := qemu.ChooseAccel(v)
	return err
}

// checkRunPattern compiles each slash-separated part, as go test does.
func checkRunPattern(v string) error {
	for _, part := range strings.Split(v, "/") {
		if _, err := regexp.Compile(part); err != nil {
			return err
		}
	}
	return nil
}

// checkOutputPath wants a file path whose folder exists or can be made:
// the report is written after the run, when it is too late to say so.
func checkOutputPath(path string) error {
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		return errors.New("is a folder")
	}
	dir := filepath.Dir(path)
	for {
		fi, err := os.Stat(dir)
		if err == nil {
			if !fi.IsDir() {
				return fmt.Errorf("%s is a file, not a folder", dir)
			}
			if err := unix.Access(dir, unix.W_OK); err != nil {
				return fmt.Errorf("cannot write in %s: %w", dir, err)
			}
			return nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return err
		}
		dir = parent
	}
}
