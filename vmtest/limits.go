package vmtest

import (
	"time"

	"github.com/pidlab/pidlab/vmtest/kernel"
	"github.com/pidlab/pidlab/vmtest/qemu"
)

// moduleStepLimit is how long loading or unloading the module may take on
// a stock kernel under KVM, where a module's init and exit functions take
// milliseconds; what takes longer hangs. It stays above the kernel's soft
// lockup threshold (20 s) so that an init function that spins is named by
// the kernel's own report, which says where it spins.
const moduleStepLimit = 30 * time.Second

// tcgSlowdown is how many times slower a guest runs under TCG than under
// KVM for loading a module and starting a test binary (boot to the runner
// takes about 3 s under TCG against about 1 s).
const tcgSlowdown = 2

// moduleLimit is the limit of loading or unloading the module on kernel k
// emulated with accel: moduleStepLimit scaled by both one's slowdown.
func moduleLimit(k *kernel.Kernel, accel qemu.Accel) time.Duration {
	f := k.Slowdown()
	if accel == qemu.TCG {
		f *= tcgSlowdown
	}
	return time.Duration(float64(moduleStepLimit) * f)
}
