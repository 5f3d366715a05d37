package profile

import (
	"fmt"
	"regexp"
	"strings"
)

// ParseRecord splits the text of one read into the profile's fields.
func (p *Profile) ParseRecord(text string) (map[string]string, error) {
	if strings.TrimSpace(text) == "" {
		return nil, fmt.Errorf("the record is empty")
	}
	if p.Record.Style == "regex" {
		return p.parseRegex(text)
	}
	return p.parseLines(text)
}

func (p *Profile) parseRegex(text string) (map[string]string, error) {
	re := regexp.MustCompile(p.Record.Regex) // validated when loaded
	m := re.FindStringSubmatch(text)
	if m == nil {
		return nil, fmt.Errorf("the record %q does not have the layout of profile %s: %s", text, p.Name, p.layout())
	}
	values := map[string]string{}
	for _, f := range p.Fields {
		values[f.Name] = m[re.SubexpIndex(f.Name)]
	}
	return values, nil
}

// parseLines takes "key<sep>value" lines; blank lines and keys the
// profile does not name are ignored, a field given twice is an error (a
// record printed twice, usually).
func (p *Profile) parseLines(text string) (map[string]string, error) {
	values := map[string]string{}
	for _, line := range strings.Split(text, "\n") {
		key, value, ok := p.splitLine(line)
		if !ok || !p.hasField(key) {
			continue
		}
		if _, dup := values[key]; dup {
			return nil, fmt.Errorf("the record has %q twice: %q", key, text)
		}
		values[key] = value
	}
	var missing []string
	for _, f := range p.Fields {
		if _, ok := values[f.Name]; !ok {
			missing = append(missing, f.Name)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("the record has no %s: %q", strings.Join(missing, ", "), text)
	}
	return values, nil
}

func (p *Profile) hasField(name string) bool {
	for _, f := range p.Fields {
		if f.Name == name {
			return true
		}
	}
	return false
}

func (p *Profile) splitLine(line string) (key, value string, ok bool) {
	best := -1
	for _, sep := range p.Record.Separators {
		if i := strings.Index(line, sep); i >= 0 && (best < 0 || i < best) {
			best, key, value = i, line[:i], line[i+len(sep):]
		}
	}
	if best < 0 {
		return "", "", false
	}
	key = strings.TrimSpace(key)
	// One space after the separator is layout; more is part of the value
	// only for text, which the module prints verbatim.
	return key, strings.TrimPrefix(strings.TrimRight(value, "\r"), " "), key != ""
}

// layout says what a record of the profile looks like, for someone whose
// record does not parse: its description, else its fields' names (the
// regular expression itself helps nobody writing the module).
func (p *Profile) layout() string {
	if p.Description != "" {
		return p.Description
	}
	var names []string
	for _, f := range p.Fields {
		names = append(names, f.Name)
	}
	return "the fields " + strings.Join(names, ", ")
}
