package grade

import (
	_ "embed"
	"fmt"
	"html/template"
	"io"
	"strings"

	"github.com/pidlab/pidlab/vmtest/report"
)

//go:embed class.html.tmpl
var classTemplate string

// page is what the class page shows, worked out before the template.
type page struct {
	Profile     string
	Checks      []pageCheck
	Rows        []pageRow
	MaxScore    string
	MeanScore   string
	Submissions int
}

type pageCheck struct {
	Name     string
	Worth    string
	Passed   int
	Of       int
	Percent  int // of the submissions that passed it
	ColumnID string
}

type pageRow struct {
	Name     string
	Score    string
	Cells    []pageCell
	Reason   string // its outcome in a few words (Outcome)
	Problems []pageProblem
	Console  []string
}

type pageCell struct {
	Verdict string // PASS, FAIL, ERROR, SKIP, REFUSED, or "" (not run)
	Check   string
}

type pageProblem struct {
	Check, Verdict, Expected, Got, Hint, Message string
	Console                                      []string
}

// WriteHTML writes the class page: one self-contained file (no script,
// no external asset) that opens from disk. A table of submissions by
// checks, coloured by verdict; each check's pass rate as a bar; each
// submission's problems with what was expected, what came, the hint and
// the console.
func WriteHTML(w io.Writer, c Class) error {
	t, err := template.New("class").Parse(classTemplate)
	if err != nil {
		return err
	}
	return t.Execute(w, pageOf(c))
}

func pageOf(c Class) page {
	checks := c.Checks()
	p := page{Profile: c.Profile, MaxScore: number(c.MaxScore()), Submissions: len(c.Submissions)}
	var total float64
	for i, name := range checks {
		pc := pageCheck{Name: name, Worth: number(c.Worth(name)), Of: len(c.Submissions), ColumnID: fmt.Sprintf("c%d", i)}
		for _, s := range c.Submissions {
			if Verdict(s, name) == string(report.Pass) {
				pc.Passed++
			}
		}
		if pc.Of > 0 {
			pc.Percent = pc.Passed * 100 / pc.Of
		}
		p.Checks = append(p.Checks, pc)
	}
	for _, s := range c.Submissions {
		score := c.Score(s)
		total += score
		row := pageRow{Name: s.Name, Score: number(score), Reason: Outcome(s)}
		for _, name := range checks {
			row.Cells = append(row.Cells, pageCell{Verdict: Verdict(s, name), Check: name})
		}
		if s.Run != nil {
			row.Console = s.Run.ConsoleExcerpt
			for _, ch := range s.Run.Checks {
				if ch.Verdict == report.Pass || ch.Verdict == report.Skip {
					continue
				}
				row.Problems = append(row.Problems, pageProblem{Check: ch.Name, Verdict: string(ch.Verdict),
					Expected: ch.Expected, Got: ch.Got, Hint: ch.Hint, Message: strings.TrimSpace(ch.Message), Console: ch.Console})
			}
		}
		p.Rows = append(p.Rows, row)
	}
	if len(c.Submissions) > 0 {
		p.MeanScore = fmt.Sprintf("%.2f", total/float64(len(c.Submissions)))
	}
	return p
}
