package report

import (
	"encoding/xml"
	"fmt"
	"os"
	"strings"
)

// JUnit XML, as Jenkins, GitLab and GitHub test reporters read it: a
// testsuite per kernel, a testcase per check (subtests included).
type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Errors   int          `xml:"errors,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name       string          `xml:"name,attr"`
	Tests      int             `xml:"tests,attr"`
	Failures   int             `xml:"failures,attr"`
	Errors     int             `xml:"errors,attr"`
	Skipped    int             `xml:"skipped,attr"`
	Time       string          `xml:"time,attr"`
	Properties []junitProperty `xml:"properties>property"`
	Cases      []junitCase     `xml:"testcase"`
	SystemOut  string          `xml:"system-out,omitempty"`
}

type junitProperty struct {
	Name  string `xml:"name,attr"`
	Value string `xml:"value,attr"`
}

type junitCase struct {
	ClassName string        `xml:"classname,attr"`
	Name      string        `xml:"name,attr"`
	Time      string        `xml:"time,attr"`
	Failure   *junitProblem `xml:"failure,omitempty"`
	Error     *junitProblem `xml:"error,omitempty"`
	Skipped   *junitProblem `xml:"skipped,omitempty"`
}

type junitProblem struct {
	Message string `xml:"message,attr"`
	Text    string `xml:",chardata"`
}

// WriteJUnit writes r to path as JUnit XML.
func WriteJUnit(path string, r Report) error {
	b, err := xml.MarshalIndent(junit(r), "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append([]byte(xml.Header), append(b, '\n')...), 0o644)
}

func junit(r Report) junitSuites {
	all := junitSuites{Name: "pidlab " + r.Profile}
	for _, run := range r.Runs {
		s := junitSuite{
			Name: fmt.Sprintf("pidlab/%s/%s", run.Module, run.Kernel),
			Time: seconds(run.VMSeconds),
			Properties: []junitProperty{
				{"module", run.ModuleDir}, {"profile", r.Profile}, {"kernel", run.Kernel},
				{"release", run.Release}, {"exit_code", fmt.Sprint(run.ExitCode)}, {"outcome", run.Outcome},
			},
		}
		if run.ExitCode != 0 {
			s.SystemOut = strings.TrimSpace(run.Reason + "\n\n" + strings.Join(run.ConsoleExcerpt, "\n"))
		}
		for _, c := range run.Checks {
			s.Cases = append(s.Cases, junitTestCase(run.Module+"."+run.Kernel, c))
			s.Tests++
			switch c.Verdict {
			case Fail:
				s.Failures++
			case Error:
				s.Errors++
			case Skip:
				s.Skipped++
			}
		}
		all.Tests += s.Tests
		all.Failures += s.Failures
		all.Errors += s.Errors
		all.Suites = append(all.Suites, s)
	}
	return all
}

func junitTestCase(class string, c Check) junitCase {
	tc := junitCase{ClassName: class, Name: c.Name, Time: seconds(c.Seconds)}
	problem := &junitProblem{Message: c.Got, Text: problemText(c)}
	if problem.Message == "" {
		problem.Message = firstLines(c.Message, 1)
	}
	switch c.Verdict {
	case Fail:
		tc.Failure = problem
	case Error:
		tc.Error = problem
	case Skip:
		tc.Skipped = &junitProblem{Message: firstLines(c.Message, 1)}
	}
	return tc
}

func problemText(c Check) string {
	var b strings.Builder
	for _, f := range [][2]string{{"expected", c.Expected}, {"got", c.Got}, {"hint", c.Hint}} {
		if f[1] != "" {
			fmt.Fprintf(&b, "%s: %s\n", f[0], f[1])
		}
	}
	if c.Message != "" {
		b.WriteString("\n" + c.Message)
	}
	return b.String()
}

func seconds(s float64) string { return fmt.Sprintf("%.3f", s) }
