package targets

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/pidlab/pidlab/userspace/profile"
	"github.com/pidlab/pidlab/vmtest"
	"github.com/pidlab/pidlab/vmtest/grade"
	"github.com/pidlab/pidlab/vmtest/progress"
	"github.com/pidlab/pidlab/vmtest/report"
	"github.com/pidlab/pidlab/vmtest/submission"
	"github.com/pidlab/pidlab/vmtest/verdict"
)

// Grade validates every submission in dir (a folder, .zip or .tar.gz
// each) with the profile, in VMs of their own, several at once, and
// writes the class's grades into the output folder (PIDLAB_GRADE_OUT).
// Every submission getting a verdict is a success, whatever the verdicts;
// a setup problem is exit 5.
func Grade(ctx context.Context, o Options, dir string) error {
	ctx, c, err := start(ctx, o)
	if err != nil {
		return fail(err)
	}
	g, err := newGrading(ctx, c, dir)
	if err != nil {
		return fail(verdict.Interrupting(ctx, err, "preparing the grade"))
	}
	defer os.RemoveAll(g.Work)
	c.Log.Step("grading %s", g.plan())
	removed, err := grade.Prune(g.Out, g.names())
	if err != nil {
		return fail(verdict.SetupError(vmtest.EnvGradeOut+"="+vmtest.DefaultGradeOut, "cleaning the output folder: %v", err))
	}
	if len(removed) > 0 {
		c.Log.Info("removed from %s, no longer in this grade: %s", g.Out, strings.Join(removed, ", "))
	}
	subs, err := g.Grade(ctx, g.entries, g.refused)
	if err != nil {
		return fail(verdict.Interrupting(ctx, err, "grading"))
	}
	class := grade.Class{Profile: c.Profile.Name, Planned: g.planned, Points: g.points, Submissions: subs}
	if err := grade.WriteClass(g.Out, class); err != nil {
		return fail(verdict.SetupError(vmtest.EnvGradeOut+"="+vmtest.DefaultGradeOut, "writing the class's files: %v", err))
	}
	printClass(o.Out, class)
	printOutputs(c.Log, g.Out)
	vmtest.PruneCache(c)
	return nil
}

// grading is a grade about to start: the grader, what it grades, the
// checks it scores.
type grading struct {
	grade.Grader
	dir     string
	kernel  string
	entries []submission.Entry
	refused []*submission.Refusal
	shard   grade.Shard
	planned []string
	points  map[string]float64
}

// newGrading reads the class in dir (its share of it with PIDLAB_SHARD)
// and prepares what every validation shares: the kernel, the guest's
// test binaries, the checks' names, which the profile's points must use.
func newGrading(ctx context.Context, c vmtest.Config, dir string) (*grading, error) {
	g := &grading{dir: dir}
	kernels, err := vmtest.KernelsFromEnv(c)
	if err != nil {
		return nil, err
	}
	if len(kernels) > 1 {
		return nil, verdict.SetupError(vmtest.EnvKernels+"=", "%s=%s: a grade validates on one kernel (PIDLAB_KERNEL); a kernel matrix is validate's", vmtest.EnvKernels, strings.Join(kernels, ","))
	}
	g.kernel = kernels[0]
	if err := g.readClass(c, dir); err != nil {
		return nil, err
	}
	if _, err := vmtest.ProvisionKernel(ctx, c); err != nil {
		return nil, err
	}
	if g.planned, err = vmtest.PlannedChecks(ctx, c); err != nil {
		return nil, err
	}
	if g.points, err = classPoints(c.Profile, g.planned); err != nil {
		return nil, err
	}
	if err := g.configure(c); err != nil {
		return nil, err
	}
	return g, nil
}

// readClass lists the submissions of dir, this shard's.
func (g *grading) readClass(c vmtest.Config, dir string) error {
	entries, refused, err := submission.List(dir)
	if err != nil {
		return verdict.SetupError("go tool mage grade path/to/submissions", "%v", err)
	}
	if g.shard, err = grade.ParseShard(os.Getenv(vmtest.EnvShard)); err != nil {
		return err // CheckEnv said so first
	}
	for _, e := range entries {
		if g.shard.Has(e.Name) {
			g.entries = append(g.entries, e)
		}
	}
	for _, r := range refused {
		if g.shard.Has(r.Submission) {
			g.refused = append(g.refused, r)
		}
	}
	if len(entries)+len(refused) == 0 {
		return verdict.SetupError("go tool mage grade path/to/submissions", "%s holds no submission: a folder, .zip or .tar.gz each", dir)
	}
	return nil
}

// classPoints are what the planned checks are worth: the profile's
// points, 0 for a check the profile leaves out (its test skips), 1 for
// the rest. Points for a check the grade does not have are refused: a
// typo would otherwise count 1 in silence.
func classPoints(prof *profile.Profile, planned []string) (map[string]float64, error) {
	points := maps.Clone(prof.Points)
	if points == nil {
		points = map[string]float64{}
	}
	var unknown []string
	for name := range points {
		if !slices.Contains(planned, name) || prof.LeavesOut(name) {
			unknown = append(unknown, strconv.Quote(name))
		}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		return nil, verdict.SetupError("name checks of the profile's verdict table in [points]", "profile %s: [points] names %s, not a check this profile grades (its checks: %s)",
			prof.Name, strings.Join(unknown, ", "), strings.Join(graded(prof, planned), ", "))
	}
	for _, name := range planned {
		if prof.LeavesOut(name) {
			points[name] = 0
		}
	}
	return points, nil
}

// graded are the planned checks the profile does not leave out.
func graded(prof *profile.Profile, planned []string) []string {
	var names []string
	for _, name := range planned {
		if !prof.LeavesOut(name) {
			names = append(names, name)
		}
	}
	return names
}

// configure sets the grader: where it writes, how many VMs at once, what
// a grade depends on besides a submission, and how it validates one.
func (g *grading) configure(c vmtest.Config) error {
	var err error
	if g.Out, err = filepath.Abs(cmp.Or(os.Getenv(vmtest.EnvGradeOut), vmtest.DefaultGradeOut)); err != nil {
		return err
	}
	if g.Work, err = os.MkdirTemp("", "pidlab-grade-"); err != nil {
		return verdict.SetupError("TMPDIR=/tmp", "a folder to unpack submissions in: %v", err)
	}
	vms, _ := vmtest.GradeVMs(os.Getenv(vmtest.EnvGradeVMs)) // CheckEnv said if it is bad
	g.Parallel = cmp.Or(vms, vmsAtOnce(runtime.NumCPU(), memAvailableMiB()))
	g.Limits = submission.DefaultLimits
	profJSON, err := c.Profile.JSON()
	if err != nil {
		return err
	}
	g.Settings = fmt.Sprintf("profile %s\nkernel %s %s\nrun %q\ntimeouts %v %v\nchecks %q", profJSON, g.kernel, c.Kernel.Image, c.TestRun, c.Timeout, c.TestTimeout, g.planned)
	g.Validate = func(ctx context.Context, name, dir string) (report.Run, error) {
		return validateSubmission(ctx, c, g.kernel, name, dir)
	}
	g.Progress = func(p grade.Progress) { c.Log.Info("%s", p) }
	return nil
}

// names are the names of the submissions this grade grades.
func (g *grading) names() []string {
	var names []string
	for _, e := range g.entries {
		names = append(names, e.Name)
	}
	for _, r := range g.refused {
		names = append(names, r.Submission)
	}
	return names
}

// plan says what the grade will do.
func (g *grading) plan() string {
	n := len(g.entries) + len(g.refused)
	s := fmt.Sprintf("%d submission", n)
	if n != 1 {
		s += "s"
	}
	s += " of " + g.dir
	if g.shard.N > 1 {
		s += fmt.Sprintf(" (shard %d/%d)", g.shard.K, g.shard.N)
	}
	return fmt.Sprintf("%s on %s, %d VM%s at once, into %s", s, g.kernel, g.Parallel, plural(g.Parallel), g.Out)
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// validateSubmission validates the module in dir, quietly (with -v, every
// line under the submission's name): its run on the kernel. A setup
// problem or an interruption is an error, which stops the grade; what the
// module does is the run's verdict.
func validateSubmission(ctx context.Context, c vmtest.Config, kernelName, name, dir string) (report.Run, error) {
	c.ModuleDir = dir
	c.QuietTests = true
	c.ProfileManifest = true
	if c.Log.Verbose {
		c.Log = c.Log.Named(name)
	} else {
		c.Log = &progress.Log{W: io.Discard} // the progress line and the class's files say it all
	}
	rep, runs := vmtest.RunModule(ctx, c, []string{kernelName}, true)
	if len(rep.Runs) != 1 {
		return report.Run{}, fmt.Errorf("validating %s gave %d runs, not one", name, len(rep.Runs))
	}
	run := rep.Runs[0]
	if code := verdict.CodeOf(runs[0].Err); code == verdict.Setup || code == verdict.Interrupted {
		return run, runs[0].Err
	}
	return run, nil
}

// vmMiB is what one VM takes of the host's memory: its 1 GiB and QEMU's
// own.
const vmMiB = 1024 + 256

// vmsAtOnce is how many VMs a grade runs at once: one per CPU (each is
// mostly one busy vCPU under TCG), as many as the free memory holds.
func vmsAtOnce(cpus, freeMiB int) int {
	n := cpus
	if freeMiB > 0 {
		n = min(n, freeMiB/vmMiB)
	}
	return max(n, 1)
}

// memAvailableMiB is the host's MemAvailable, 0 if unknown.
func memAvailableMiB() int {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "MemAvailable:"); ok {
			kb, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return kb / 1024
		}
	}
	return 0
}

// printClass prints a line per submission: its score and outcome.
func printClass(w io.Writer, c grade.Class) {
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SUBMISSION\tSCORE\tOUTCOME")
	maxScore := c.MaxScore()
	for _, s := range c.Submissions {
		fmt.Fprintf(tw, "%s\t%s/%s\t%s\n", s.Name, strconv.FormatFloat(c.Score(s), 'f', -1, 64), strconv.FormatFloat(maxScore, 'f', -1, 64), grade.Outcome(s))
	}
	tw.Flush()
	fmt.Fprintln(w)
}

// printOutputs says where the class's files are.
func printOutputs(log *progress.Log, out string) {
	log.Step("class report: %s", filepath.Join(out, grade.HTMLFile))
	log.Info("%s, %s; per submission: %s/<name>/{%s, %s, console.log}", grade.CSVFile, grade.JUnitFile, grade.SubmissionsDir, grade.ReportFile, grade.ResultsFile)
}

// GradeMerge merges the output folders of a class's shards (outs: folders
// or patterns, separated by commas or spaces) into one class report in
// PIDLAB_GRADE_OUT.
func GradeMerge(ctx context.Context, o Options, outs string) error {
	_, c, err := start(ctx, o)
	if err != nil {
		return fail(err)
	}
	folders, err := shardFolders(outs)
	if err != nil {
		return fail(verdict.SetupError("go tool mage grade:merge 'shard-*'", "%v", err))
	}
	out, err := filepath.Abs(cmp.Or(os.Getenv(vmtest.EnvGradeOut), vmtest.DefaultGradeOut))
	if err != nil {
		return fail(err)
	}
	if slices.Contains(folders, out) {
		return fail(verdict.SetupError(vmtest.EnvGradeOut+"=merged", "%s is one of the shards: merge into another folder (%s)", out, vmtest.EnvGradeOut))
	}
	class, err := grade.Merge(out, folders...)
	if err != nil {
		return fail(verdict.SetupError("go tool mage grade:merge 'shard-*'", "%v", err))
	}
	c.Log.Step("merged %d shards: %d submissions", len(folders), len(class.Submissions))
	printClass(o.Out, class)
	printOutputs(c.Log, out)
	return nil
}

// shardFolders expands outs: folders or glob patterns, separated by commas
// or spaces (mage passes one argument), absolute, each once.
func shardFolders(outs string) ([]string, error) {
	var folders []string
	for _, f := range strings.FieldsFunc(outs, func(r rune) bool { return r == ',' || r == ' ' }) {
		matches, err := filepath.Glob(f)
		if err != nil {
			return nil, fmt.Errorf("%q: %v", f, err)
		}
		if len(matches) == 0 {
			return nil, fmt.Errorf("%s: no such shard output folder", f)
		}
		for _, m := range matches {
			abs, err := filepath.Abs(m)
			if err != nil {
				return nil, err
			}
			if !slices.Contains(folders, abs) {
				folders = append(folders, abs)
			}
		}
	}
	if len(folders) == 0 {
		return nil, errors.New("no shard output folder given")
	}
	return folders, nil
}
