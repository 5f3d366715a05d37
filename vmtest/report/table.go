package report

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
)

// PrintTable prints the verdict table: a row per top-level check with a
// column per kernel, then what each failure expected and got with its
// hint, then the score.
func PrintTable(w io.Writer, r Report) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "CHECK\t%s\n", strings.Join(kernelNames(r), "\t"))
	for _, name := range RowNames(r) {
		cells := make([]string, len(r.Runs))
		for i, run := range r.Runs {
			cells[i] = "-"
			if c, ok := run.find(name); ok {
				cells[i] = string(c.Verdict)
			}
		}
		fmt.Fprintf(tw, "%s\t%s\n", name, strings.Join(cells, "\t"))
	}
	tw.Flush()
	if !printDetails(w, r) {
		fmt.Fprintln(w)
	}
	for _, run := range r.Runs {
		prefix := ""
		if len(r.Runs) > 1 {
			prefix = run.Kernel + ": "
		}
		fmt.Fprintf(w, "%s%s\n", prefix, run.Score())
	}
}

// Score is the run's "N passed, N failed" line over the table's rows.
func (run Run) Score() string {
	n := map[Verdict]int{}
	for _, c := range run.Checks {
		if c.TopLevel() {
			n[c.Verdict]++
		}
	}
	s := fmt.Sprintf("%d passed, %d failed", n[Pass], n[Fail])
	if n[Error] > 0 {
		s += fmt.Sprintf(", %d error%s", n[Error], plural(n[Error]))
	}
	if n[Skip] > 0 {
		s += fmt.Sprintf(", %d skipped", n[Skip])
	}
	return s
}

// printDetails explains every leaf check that did not pass, once for all
// kernels where it went the same way; it reports whether there were any.
func printDetails(w io.Writer, r Report) bool {
	type detail struct {
		check   Check
		kernels []string
	}
	var order []string
	details := map[string]*detail{}
	notRun := map[string][]string{} // kernel -> checks that never ran
	for _, run := range r.Runs {
		for _, c := range run.Checks {
			if (c.Verdict != Fail && c.Verdict != Error) || run.hasFailedSubcheck(c.Name) {
				continue
			}
			if c.Got == NotRun {
				notRun[run.Kernel] = append(notRun[run.Kernel], c.Name)
				continue
			}
			key := string(c.Verdict) + "\x00" + c.Name + "\x00" + c.Expected + "\x00" + c.Got + "\x00" + c.Hint
			if d, ok := details[key]; ok {
				d.kernels = append(d.kernels, run.Kernel)
				continue
			}
			details[key] = &detail{c, []string{run.Kernel}}
			order = append(order, key)
		}
	}
	for _, key := range order {
		d := details[key]
		fmt.Fprintf(w, "\n%s %s", d.check.Verdict, d.check.Name)
		if len(r.Runs) > 1 {
			fmt.Fprintf(w, " [%s]", strings.Join(d.kernels, ", "))
		}
		fmt.Fprintln(w)
		printField(w, "expected", d.check.Expected)
		printField(w, "got", d.check.Got)
		if d.check.Expected == "" && d.check.Got == "" {
			printField(w, "says", firstLines(d.check.Message, 6))
		}
		printField(w, "console", strings.Join(d.check.Console, "\n"))
		printField(w, "hint", d.check.Hint)
	}
	for _, run := range r.Runs {
		if names := notRun[run.Kernel]; len(names) > 0 {
			fmt.Fprintf(w, "\nERROR %d checks did not run: the run ended before them", len(names))
			if len(r.Runs) > 1 {
				fmt.Fprintf(w, " [%s]", run.Kernel)
			}
			fmt.Fprintln(w)
			printField(w, "checks", wrap(names, 90))
		}
	}
	any := len(order) > 0 || len(notRun) > 0
	if any {
		fmt.Fprintln(w)
	}
	return any
}

func printField(w io.Writer, label, value string) {
	if value == "" {
		return
	}
	lines := strings.Split(strings.TrimRight(value, "\n"), "\n")
	fmt.Fprintf(w, "    %-9s %s\n", label+":", lines[0])
	for _, l := range lines[1:] {
		fmt.Fprintf(w, "    %-9s %s\n", "", l)
	}
}

func firstLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = append(lines[:n], "…")
	}
	return strings.Join(lines, "\n")
}

func kernelNames(r Report) []string {
	names := make([]string, len(r.Runs))
	for i, run := range r.Runs {
		names[i] = run.Kernel
	}
	return names
}

// RowNames are the top-level checks of all runs, in the order they ran: a
// check only some runs have (one that ended early lacks the later tests)
// goes after the check it followed in its own run, not at the end.
func RowNames(r Report) []string {
	var names []string
	for _, run := range r.Runs {
		at := 0 // where the run's next new check goes
		for _, c := range run.Checks {
			if !c.TopLevel() {
				continue
			}
			if i := slices.Index(names, c.Name); i >= 0 {
				at = max(at, i+1)
				continue
			}
			names = slices.Insert(names, at, c.Name)
			at++
		}
	}
	return names
}

func (run Run) find(name string) (Check, bool) {
	for _, c := range run.Checks {
		if c.Name == name {
			return c, true
		}
	}
	return Check{}, false
}

func (run Run) hasFailedSubcheck(name string) bool {
	for _, c := range run.Checks {
		if (c.Verdict == Fail || c.Verdict == Error) && strings.HasPrefix(c.Name, name+"/") {
			return true
		}
	}
	return false
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// wrap joins words with ", " into lines of about width characters.
func wrap(words []string, width int) string {
	var lines []string
	line := ""
	for i, word := range words {
		if i < len(words)-1 {
			word += ","
		}
		if line != "" && len(line)+1+len(word) > width {
			lines = append(lines, line)
			line = ""
		}
		if line != "" {
			line += " "
		}
		line += word
	}
	return strings.Join(append(lines, line), "\n")
}
