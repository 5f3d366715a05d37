//go:build pidlab_guest

package guest

import (
	"encoding/binary"
	"fmt"
	"os"
	"testing"
	"time"
	"unsafe"

	"github.com/stretchr/testify/require"

	"github.com/pidlab/pidlab/userspace/guestapi"
	"github.com/pidlab/pidlab/userspace/guesttest"
)

// benchRounds is how many times the benchmark measures each way, in
// turn: a drift of the machine falls on both, and the medians leave out a
// round it upset.
const benchRounds = 9

// BenchmarkV2PVsPagemap is what a virtual-to-physical lookup costs
// through TASKPEEK_V2P and through a read of /proc/self/pagemap (the
// kernel's own way, which the tests trust), for the same present page,
// in alternating rounds; it records the medians and their ratio. An op is
// one lookup.
func BenchmarkV2PVsPagemap(b *testing.B) {
	guesttest.Mark(b)
	fd := device(b)
	pm, err := os.Open("/proc/self/pagemap")
	require.NoError(b, err)
	defer pm.Close()
	page := make([]byte, pageSize)
	page[0] = 1
	addr := sliceAddr(page)
	var entry [8]byte

	perRound := max(b.N/(2*benchRounds), 1)
	var byV2P, byPagemap []float64
	b.StopTimer()
	for range benchRounds {
		b.StartTimer()
		start := time.Now()
		for range perRound {
			req := v2pRequest{VAddr: addr}
			if err := ioctl(fd, ioctlV2P, unsafe.Pointer(&req)); err != nil || req.Flags&v2pPresent == 0 {
				require.FailNow(b, "TASKPEEK_V2P of a touched page", "%v, flags %#x", err, req.Flags)
			}
		}
		byV2P = append(byV2P, float64(time.Since(start).Nanoseconds())/float64(perRound))
		start = time.Now()
		for range perRound {
			if _, err := pm.ReadAt(entry[:], int64(addr/pageSize*8)); err != nil || binary.LittleEndian.Uint64(entry[:])>>63 == 0 {
				require.FailNow(b, "a read of /proc/self/pagemap for a touched page", "%v, entry %x", err, entry)
			}
		}
		byPagemap = append(byPagemap, float64(time.Since(start).Nanoseconds())/float64(perRound))
		b.StopTimer()
	}
	v2pNs, pagemapNs := guesttest.Median(byV2P), guesttest.Median(byPagemap)
	about := fmt.Sprintf("median of %d rounds of %d, one way then the other", benchRounds, perRound)
	guesttest.Figure(b, guestapi.Figure{Name: "TASKPEEK_V2P lookup", Value: v2pNs, Unit: "ns", About: about})
	guesttest.Figure(b, guestapi.Figure{Name: "/proc/self/pagemap read", Value: pagemapNs, Unit: "ns", About: about})
	guesttest.Figure(b, guestapi.Figure{Name: "v2p/pagemap", Value: v2pNs / pagemapNs, Unit: "×", About: "below 1: the ioctl is the cheaper lookup"})
	b.ReportMetric(v2pNs/pagemapNs, "v2p/pagemap")
}
