package vmtest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/pidlab/pidlab/vmtest/kernel"
	"github.com/pidlab/pidlab/vmtest/qemu"
)

func TestModuleLimitScalesWithKernelAndAccel(t *testing.T) {
	cloud, debug := &kernel.Kernel{Name: "cloud"}, &kernel.Kernel{Name: kernel.DebugName}
	assert.Equal(t, 30*time.Second, moduleLimit(cloud, qemu.KVM), "a stock kernel under KVM")
	assert.Equal(t, time.Minute, moduleLimit(cloud, qemu.TCG), "TCG is slower")
	assert.Equal(t, 5*time.Minute, moduleLimit(debug, qemu.TCG), "the debug kernel is slower still")
	assert.Greater(t, moduleLimit(cloud, qemu.KVM), 20*time.Second, "above the soft lockup threshold, so the kernel's report names a spinning init")
}
