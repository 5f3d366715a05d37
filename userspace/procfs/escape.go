package procfs

import (
	"fmt"
	"strconv"
	"strings"
)

// UnescapeOctal undoes the kernel's \ooo escapes (seq_escape(), %pE), with
// which modules print a comm that may hold a newline or a backslash.
func UnescapeOctal(s string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			b.WriteByte(s[i])
			continue
		}
		if i+4 > len(s) {
			return "", fmt.Errorf("%q: a backslash without three octal digits", s)
		}
		n, err := strconv.ParseUint(s[i+1:i+4], 8, 8)
		if err != nil {
			return "", fmt.Errorf("%q: \\%s is not an octal escape", s, s[i+1:i+4])
		}
		b.WriteByte(byte(n))
		i += 3
	}
	return b.String(), nil
}
