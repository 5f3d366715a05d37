package guest

import (
	"os"

	"github.com/pidlab/pidlab/userspace/guestapi"
)

// MarkTest writes the name of the test about to run to the kernel log. A
// panic flushes the console but not the results port, so the last test
// events may never leave the guest; the mark on the console comes right
// before the crash's report and names the test that caused it.
func MarkTest(name string) {
	f, err := os.OpenFile("/dev/kmsg", os.O_WRONLY, 0)
	if err != nil {
		return // a mark only sharpens a crash's hint
	}
	defer f.Close()
	f.WriteString("<6>" + guestapi.TestMarkPrefix + name + "\n") // KERN_INFO; the guest prints every level
}
