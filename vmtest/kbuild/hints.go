package kbuild

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// A hint names the likely cause of a build error that is a known kernel
// API drift, and what to write instead.
type hint struct {
	re   *regexp.Regexp
	text func(m []string) string
}

// unexported suggests, for symbols a /proc/pid module reaches for that are
// not exported to modules, what to use instead.
var unexported = map[string]string{
	"thread_group_cputime_adjusted": "sum task_cputime_adjusted() over the threads (for_each_thread under rcu_read_lock)",
	"task_prio":                     "compute it as p->prio - MAX_RT_PRIO",
	"nsec_to_clock_t":               "divide: div_u64(ns, NSEC_PER_SEC / USER_HZ)",
	"find_task_by_vpid":             "use pid_task(find_vpid(nr), PIDTYPE_PID) under rcu_read_lock(), or get_pid_task(find_get_pid(nr), PIDTYPE_PID)",
	"find_task_by_pid_ns":           "use pid_task(find_pid_ns(nr, ns), PIDTYPE_PID) under rcu_read_lock()",
	"ptrace_may_access":             "it is not available to modules; check capabilities with capable() instead",
}

// procOpsNames are struct proc_ops's names for file_operations members.
var procOpsNames = map[string]string{
	"open": ".proc_open", "read": ".proc_read", "write": ".proc_write", "llseek": ".proc_lseek",
	"release": ".proc_release", "poll": ".proc_poll", "unlocked_ioctl": ".proc_ioctl", "mmap": ".proc_mmap",
	"read_iter": ".proc_read_iter",
}

var hints = []hint{
	{regexp.MustCompile(`expected 'const struct proc_ops \*' but argument is of type '(const )?struct file_operations \*'`),
		func([]string) string {
			return "proc_create() takes a struct proc_ops since Linux 5.6, not a struct file_operations: " +
				"rename .open/.read/.write/.llseek/.release to .proc_open/.proc_read/.proc_write/.proc_lseek/.proc_release " +
				"and delete .owner = THIS_MODULE, which proc_ops does not have " +
				"(keep file_operations under #if LINUX_VERSION_CODE < KERNEL_VERSION(5, 6, 0) for older kernels)"
		}},
	// A file_operations turned into a proc_ops by its type alone keeps
	// its old member names.
	{regexp.MustCompile(`'(?:const )?struct proc_ops' has no member named '([a-z_]+)'`),
		func(m []string) string {
			if m[1] == "owner" {
				return "struct proc_ops has no .owner: delete .owner = THIS_MODULE (procfs keeps the module's handlers " +
					"from running once remove_proc_entry() has returned, so the entry needs no module reference)"
			}
			if renamed, ok := procOpsNames[m[1]]; ok {
				return fmt.Sprintf("struct proc_ops calls .%s %s", m[1], renamed)
			}
			return "struct proc_ops (Linux 5.6) has .proc_open, .proc_read, .proc_write, .proc_lseek, .proc_release, " +
				".proc_poll, .proc_ioctl and .proc_mmap"
		}},
	{regexp.MustCompile(`'struct task_struct' has no member named 'state'`),
		func([]string) string {
			return "task->state was renamed __state in Linux 5.14: read it with READ_ONCE(task->__state), " +
				"or get the /proc letter with task_state_to_char(task)"
		}},
	{regexp.MustCompile(`modpost: "([a-z_0-9]+)" \[[^\]]*\] undefined!`),
		func(m []string) string {
			instead, ok := unexported[m[1]]
			if !ok {
				return fmt.Sprintf("%s is not exported to modules by this kernel (or its header is missing)", m[1])
			}
			return fmt.Sprintf("%s is not exported to modules: %s", m[1], instead)
		}},
	{regexp.MustCompile(`missing MODULE_LICENSE\(\)`),
		func([]string) string {
			return `add MODULE_LICENSE("GPL"): without it the module cannot use GPL-only symbols, and modpost refuses it`
		}},
}

// Hints returns the hints that apply to a build's output, each once, in a
// stable order.
func Hints(output string) []string {
	seen := map[string]bool{}
	var out []string
	for _, h := range hints {
		for _, m := range h.re.FindAllStringSubmatch(output, -1) {
			if t := h.text(m); !seen[t] {
				seen[t] = true
				out = append(out, t)
			}
		}
	}
	sort.Strings(out)
	return out
}

// firstError is the first line of a build's output that reports an error
// (gcc's "error:", modpost's "ERROR:"), else its first line.
func firstError(output string) string {
	lines := strings.Split(output, "\n")
	for _, l := range lines {
		if t := strings.TrimSpace(l); strings.Contains(t, "error:") || strings.Contains(t, "ERROR:") {
			return t
		}
	}
	return strings.TrimSpace(lines[0])
}
