package kbuild

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pidlab/pidlab/vmtest/verdict"
)

// driftModules are small modules written against an older kernel API, each
// with the hint its build failure must carry.
var driftModules = map[string]struct {
	source string
	hint   string
}{
	"task-state": {`#include <linux/module.h>
#include <linux/sched.h>
static int __init m_init(void) { pr_info("%ld\n", (long)current->state); return 0; }
module_init(m_init);
MODULE_LICENSE("GPL");
`, "renamed __state in Linux 5.14"},
	"file-operations": {`#include <linux/module.h>
#include <linux/fs.h>
#include <linux/proc_fs.h>
static const struct file_operations fops = { .owner = THIS_MODULE };
static int __init m_init(void) { return proc_create("x", 0444, NULL, &fops) ? 0 : -ENOMEM; }
module_init(m_init);
MODULE_LICENSE("GPL");
`, "takes a struct proc_ops since Linux 5.6"},
	// The proc_ops hint's follower: .owner kept from file_operations.
	"proc-ops-owner": {`#include <linux/module.h>
#include <linux/proc_fs.h>
static ssize_t r(struct file *f, char __user *b, size_t n, loff_t *o) { return 0; }
static const struct proc_ops pops = { .owner = THIS_MODULE, .proc_read = r };
static int __init m_init(void) { return proc_create("x", 0444, NULL, &pops) ? 0 : -ENOMEM; }
module_init(m_init);
MODULE_LICENSE("GPL");
`, "struct proc_ops has no .owner: delete .owner = THIS_MODULE"},
	"proc-ops-old-names": {`#include <linux/module.h>
#include <linux/proc_fs.h>
static ssize_t r(struct file *f, char __user *b, size_t n, loff_t *o) { return 0; }
static const struct proc_ops pops = { .read = r };
static int __init m_init(void) { return proc_create("x", 0444, NULL, &pops) ? 0 : -ENOMEM; }
module_init(m_init);
MODULE_LICENSE("GPL");
`, "struct proc_ops calls .read .proc_read"},
	"unexported": {`#include <linux/module.h>
#include <linux/sched.h>
extern int task_prio(const struct task_struct *p);
static int __init m_init(void) { return task_prio(current) > 200; }
module_init(m_init);
MODULE_LICENSE("GPL");
`, "task_prio is not exported to modules: compute it as p->prio - MAX_RT_PRIO"},
	"no-license": {`#include <linux/module.h>
static int __init m_init(void) { return 0; }
module_init(m_init);
`, `add MODULE_LICENSE("GPL")`},
}

func TestDriftHintsOnRealBuilds(t *testing.T) {
	k, _ := debianKernel(t)
	for name, m := range driftModules {
		t.Run(name, func(t *testing.T) {
			src := t.TempDir()
			require.NoError(t, os.WriteFile(filepath.Join(src, "Kbuild"), []byte("obj-m := drift.o\n"), 0o644))
			require.NoError(t, os.WriteFile(filepath.Join(src, "drift.c"), []byte(m.source), 0o644))
			_, err := Build(t.Context(), k, src, t.TempDir(), nil)
			require.Error(t, err)
			assert.Equal(t, verdict.BuildFailed, verdict.CodeOf(err))
			assert.ErrorContains(t, err, "hint: ")
			assert.ErrorContains(t, err, m.hint)
		})
	}
}

func TestHintsFromRecordedOutput(t *testing.T) {
	out := `/src/pid.c:40:44: error: 'struct task_struct' has no member named 'state'; did you mean '__state'?
/src/pid.c:40:44: error: 'struct task_struct' has no member named 'state'; did you mean '__state'?
ERROR: modpost: "thread_group_cputime_adjusted" [/src/pid.ko] undefined!
ERROR: modpost: "some_private_helper" [/src/pid.ko] undefined!
`
	hs := Hints(out)
	require.Len(t, hs, 3, "each hint once: %q", hs)
	assert.Contains(t, hs[0], "some_private_helper is not exported")
	assert.Contains(t, hs[1], "task->state was renamed __state")
	assert.Contains(t, hs[2], "sum task_cputime_adjusted()")
	assert.Empty(t, Hints("error: expected ';' before '}' token"), "no hint for an ordinary syntax error")
}

func TestFailedKeepsTheCompilersWordsAndHints(t *testing.T) {
	out := "  CC [M]  /src/pid.o\n/src/pid.c:40:44: error: 'struct task_struct' has no member named 'state'; did you mean '__state'?\nmake[1]: *** Error 1"
	v := Failed(errors.New("exit status 2"), out)
	assert.Equal(t, verdict.BuildFailed, v.Code)
	require.NotNil(t, v.Build)
	assert.Equal(t, out, v.Build.Output)
	assert.Equal(t, "/src/pid.c:40:44: error: 'struct task_struct' has no member named 'state'; did you mean '__state'?", v.Build.FirstError)
	require.Len(t, v.Hints, 1)
	assert.Contains(t, v.Hints[0], "task->state was renamed __state")
	assert.Equal(t, "the module did not build (exit status 2):\n"+out+"\nhint: "+v.Hints[0], v.Error(), "a hint a line, after the output")

	plain := Failed(errors.New("exit status 2"), "make: *** No rule to make target 'modules'.  Stop.")
	assert.Empty(t, plain.Hints, "nothing known")
	assert.Equal(t, "make: *** No rule to make target 'modules'.  Stop.", plain.Build.FirstError, "no error line: the first line")
}
