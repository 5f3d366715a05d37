package grade_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"html"
	"image"
	"image/png"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pidlab/pidlab/vmtest/grade"
	"github.com/pidlab/pidlab/vmtest/report"
)

// The class page is checked in a real browser: headless Chromium renders
// class.html, and what it rendered (each cell's verdict and colour, each
// score, each pass-rate bar's width, the pixels of a screenshot) must
// say what class.csv says.

// CheckPageInBrowser renders out's class.html in Chromium and fails t for
// everything on it that disagrees with out's class.csv.
func CheckPageInBrowser(t *testing.T, out string) {
	t.Helper()
	for _, p := range pageProblems(t, out, filepath.Join(out, grade.HTMLFile)) {
		t.Error(p)
	}
}

// TestClassPageInBrowser: a small class's page, every verdict on it,
// rendered as its CSV says; and a page whose colours were swapped is
// caught.
func TestClassPageInBrowser(t *testing.T) {
	out := t.TempDir()
	require.NoError(t, grade.WriteClass(out, smallClass()))
	CheckPageInBrowser(t, out)

	page, err := os.ReadFile(filepath.Join(out, grade.HTMLFile))
	require.NoError(t, err)
	swapped := strings.NewReplacer("#c8e6c9", "#ffcdd2", "#ffcdd2", "#c8e6c9").Replace(string(page))
	bad := filepath.Join(t.TempDir(), "swapped.html")
	require.NoError(t, os.WriteFile(bad, []byte(swapped), 0o644))
	problems := pageProblems(t, out, bad)
	assert.NotEmpty(t, problems, "PASS in FAIL's colour is caught")
	t.Logf("the swapped page's problems: %s", strings.Join(problems, "; "))
}

// smallClass has a submission of each verdict: PASS, FAIL, ERROR and
// SKIP cells, one that never reached a check, one refused.
func smallClass() grade.Class {
	run := func(outcome string, verdicts ...report.Verdict) *report.Run {
		names := []string{report.CheckBuild, report.CheckLoad, "TestRecordFields", "TestEntryMode", report.CheckClean}
		r := &report.Run{Module: "m", Kernel: "cloud", Outcome: outcome}
		for i, v := range verdicts {
			r.Checks = append(r.Checks, report.Check{Name: names[i], Verdict: v})
		}
		return r
	}
	P, F, E, S := report.Pass, report.Fail, report.Error, report.Skip
	return grade.Class{Profile: "course", Planned: []string{report.CheckBuild, report.CheckLoad, "TestRecordFields", "TestEntryMode", report.CheckClean},
		Points: map[string]float64{"TestRecordFields": 3, "TestEntryMode": 0},
		Submissions: []grade.Submission{
			{Name: "alice", Run: run("pass", P, P, P, S, P)},
			{Name: "bob", Run: run("test failed", P, P, F, S, P)},
			{Name: "carol", Run: run("kernel trouble", P, P, E, S, F)},
			{Name: "dave", Run: run("build failed", F)},
			{Name: "eve", Refusal: "submission eve refused: ../x.c: a path out of the submission's folder"},
		}}
}

// rendered is what the probe script read off the rendered page.
type rendered struct {
	Rows []struct {
		Submission string `json:"submission"`
		Score      string `json:"score"`
		Cells      []struct {
			Check, Verdict, Text, Background string
		} `json:"cells"`
	} `json:"rows"`
	Bars []struct {
		Check        string  `json:"check"`
		Width, Track float64 // the bar's rendered width, and its track's
	} `json:"bars"`
}

// probe, appended to a copy of the page, writes what the browser
// rendered into the DOM as JSON, for --dump-dom. The page itself has no
// script.
const probe = `<script>
const out = {rows: [], bars: []};
for (const tr of document.querySelectorAll("#grades tbody tr")) {
  const row = {submission: tr.dataset.submission, score: tr.querySelector("td.score").textContent, cells: []};
  for (const td of tr.querySelectorAll("td[data-verdict]")) {
    row.cells.push({Check: td.title, Verdict: td.dataset.verdict, Text: td.textContent, Background: getComputedStyle(td).backgroundColor});
  }
  out.rows.push(row);
}
for (const tr of document.querySelectorAll("#rates tr")) {
  const bar = tr.querySelector(".bar");
  out.bars.push({check: tr.dataset.check, Width: bar.querySelector("span").getBoundingClientRect().width, Track: bar.getBoundingClientRect().width});
}
const pre = document.createElement("pre");
pre.id = "pidlab-probe";
pre.textContent = JSON.stringify(out);
document.body.appendChild(pre);
</script>`

// pageProblems renders page (out's class.html, or a copy of it) and
// returns how it disagrees with out's class.csv: nothing when it agrees.
func pageProblems(t *testing.T, out, page string) []string {
	t.Helper()
	chromium := findChromium(t)
	rows := readCSV(t, filepath.Join(out, grade.CSVFile))
	colours := verdictColours(t)
	got := renderWithProbe(t, chromium, page)
	var problems []string
	problems = append(problems, tableProblems(rows, got, colours)...)
	problems = append(problems, barProblems(rows, got)...)
	problems = append(problems, screenshotProblems(t, chromium, page, rows, colours)...)
	return problems
}

// tableProblems: the rendered table has the CSV's submissions, scores
// and verdicts, each cell in its verdict's colour.
func tableProblems(rows [][]string, got rendered, colours map[string]string) []string {
	var problems []string
	if len(got.Rows) != len(rows)-1 {
		return []string{fmt.Sprintf("the page shows %d submissions, the CSV %d", len(got.Rows), len(rows)-1)}
	}
	for i, r := range got.Rows {
		want := rows[i+1]
		if r.Submission != want[0] || r.Score != want[1] {
			problems = append(problems, fmt.Sprintf("row %d: the page shows %s scoring %s, the CSV %s scoring %s", i+1, r.Submission, r.Score, want[0], want[1]))
		}
		if len(r.Cells) != len(want)-3 {
			problems = append(problems, fmt.Sprintf("%s: %d cells on the page, %d checks in the CSV", r.Submission, len(r.Cells), len(want)-3))
			continue
		}
		for j, c := range r.Cells {
			verdict := want[3+j]
			if c.Verdict != verdict || c.Check != rows[0][3+j] {
				problems = append(problems, fmt.Sprintf("%s, %s: the page says %q for %s, the CSV %q", r.Submission, rows[0][3+j], c.Verdict, c.Check, verdict))
			}
			if c.Background != colours[verdict] {
				problems = append(problems, fmt.Sprintf("%s, %s: %s rendered in %s, not its colour %s", r.Submission, c.Check, verdict, c.Background, colours[verdict]))
			}
		}
	}
	return problems
}

// barProblems: each check's pass-rate bar is as long as the share of the
// CSV's submissions that passed it.
func barProblems(rows [][]string, got rendered) []string {
	var problems []string
	if len(got.Bars) != len(rows[0])-3 {
		return []string{fmt.Sprintf("%d pass-rate bars for %d checks", len(got.Bars), len(rows[0])-3)}
	}
	for j, bar := range got.Bars {
		passed := 0
		for _, row := range rows[1:] {
			if row[3+j] == string(report.Pass) {
				passed++
			}
		}
		want := bar.Track * float64(passed*100/(len(rows)-1)) / 100 // the page rounds the percentage down
		if bar.Check != rows[0][3+j] || math.Abs(bar.Width-want) > 1 {
			problems = append(problems, fmt.Sprintf("pass rate of %s: a bar of %.0f px of %.0f, want %.0f (%d of %d passed)", bar.Check, bar.Width, bar.Track, want, passed, len(rows)-1))
		}
	}
	return problems
}

// screenshotProblems: a screenshot of the page has pixels in the colour
// of each verdict the CSV has, and none in the colour of one it lacks.
func screenshotProblems(t *testing.T, chromium, page string, rows [][]string, colours map[string]string) []string {
	shot := filepath.Join(t.TempDir(), "class.png")
	runChromium(t, chromium, "--screenshot="+shot, "--window-size=1400,1000", "file://"+page)
	if keep := os.Getenv("PIDLAB_KEEP_SCREENSHOT"); keep != "" {
		b, err := os.ReadFile(shot)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(keep, b, 0o644))
	}
	t.Logf("screenshot of %s: %s (PIDLAB_KEEP_SCREENSHOT=path keeps it)", page, shot)
	f, err := os.Open(shot)
	require.NoError(t, err)
	defer f.Close()
	img, err := png.Decode(f)
	require.NoError(t, err)
	pixels := colourCounts(img)
	present := map[string]bool{}
	for _, row := range rows[1:] {
		for _, v := range row[3:] {
			present[v] = true
		}
	}
	var problems []string
	for verdict, colour := range colours {
		if n := pixels[colour]; present[verdict] != (n > 0) {
			problems = append(problems, fmt.Sprintf("the screenshot has %d pixels of %s's colour %s; the CSV has %s: %v", n, verdictName(verdict), colour, verdictName(verdict), present[verdict]))
		}
	}
	return problems
}

func verdictName(v string) string {
	if v == "" {
		return "a check never reached"
	}
	return v
}

// colourCounts counts the image's pixels by colour, as CSS writes it.
func colourCounts(img image.Image) map[string]int {
	counts := map[string]int{}
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			counts[fmt.Sprintf("rgb(%d, %d, %d)", r>>8, g>>8, bl>>8)]++
		}
	}
	return counts
}

// verdictColours are the verdicts' background colours as the page's CSS
// gives them (td.v-PASS { background: #c8e6c9; … }), as a browser
// reports a computed colour: rgb(200, 230, 201).
func verdictColours(t *testing.T) map[string]string {
	tmpl, err := os.ReadFile("class.html.tmpl")
	require.NoError(t, err)
	colours := map[string]string{}
	for _, m := range regexp.MustCompile(`td\.v-(\w*) \{ background: #([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2});`).FindAllStringSubmatch(string(tmpl), -1) {
		var rgb [3]int64
		for i := range rgb {
			rgb[i], _ = strconv.ParseInt(m[2+i], 16, 0)
		}
		colours[m[1]] = fmt.Sprintf("rgb(%d, %d, %d)", rgb[0], rgb[1], rgb[2])
	}
	require.Len(t, colours, 6, "PASS, FAIL, ERROR, SKIP, REFUSED and never reached each have a colour")
	return colours
}

// renderWithProbe renders a copy of page with the probe appended and
// returns what the probe read.
func renderWithProbe(t *testing.T, chromium, page string) rendered {
	b, err := os.ReadFile(page)
	require.NoError(t, err)
	probed := filepath.Join(t.TempDir(), "probed.html")
	require.NoError(t, os.WriteFile(probed, bytes.Replace(b, []byte("</body>"), []byte(probe+"</body>"), 1), 0o644))
	dom := runChromium(t, chromium, "--dump-dom", "file://"+probed)
	_, rest, ok := strings.Cut(dom, `<pre id="pidlab-probe">`)
	blob, _, ok2 := strings.Cut(rest, "</pre>")
	require.True(t, ok && ok2, "the probe ran: its output is in the DOM:\n%s", dom)
	var got rendered
	require.NoError(t, json.Unmarshal([]byte(html.UnescapeString(blob)), &got))
	return got
}

// runChromium runs headless Chromium with a profile and a home of its
// own (nothing of the user's touched) and returns its standard output.
func runChromium(t *testing.T, chromium string, args ...string) string {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	home := t.TempDir()
	args = append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--user-data-dir=" + filepath.Join(home, "profile")}, args...)
	cmd := exec.CommandContext(ctx, chromium, args...)
	cmd.Env = append(os.Environ(), "HOME="+home)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	require.NoError(t, cmd.Run(), "%s: %s", strings.Join(cmd.Args, " "), stderr.String())
	return stdout.String()
}

// findChromium finds Debian's chromium; without it the test skips, but
// not in CI, which installs it (.ci/run).
func findChromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if path, err := exec.LookPath(name); err == nil {
			return path
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("no chromium: CI installs Debian's chromium package (.ci/run)")
	}
	t.Skip("no chromium: apt-get install chromium to check the class page in a real browser")
	return ""
}
