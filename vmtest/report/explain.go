package report

import "strings"

// Explain pulls the expected and actual values and the hint out of what a
// failed check printed: pidlab's checks print "want:", "got:" and "hint:"
// lines, testify prints "expected:" and "actual  :"; the first of each
// counts.
func Explain(output string) (expected, got, hint string) {
	for _, line := range strings.Split(output, "\n") {
		t := strings.TrimSpace(line)
		t = strings.TrimSpace(strings.TrimPrefix(t, "Error:"))
		switch key, value, ok := cutKey(t); {
		case !ok:
		case (key == "want" || key == "expected") && expected == "":
			expected = value
		case (key == "got" || key == "actual") && got == "":
			got = value
		case key == "hint" && hint == "":
			hint = value
		}
	}
	return expected, got, hint
}

// cutKey splits "key: value" and "key  : value".
func cutKey(line string) (key, value string, ok bool) {
	key, value, ok = strings.Cut(line, ":")
	if !ok {
		return "", "", false
	}
	key = strings.TrimSpace(key)
	if strings.ContainsAny(key, " \t") {
		return "", "", false
	}
	return key, strings.TrimSpace(value), true
}
