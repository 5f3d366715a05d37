// SPDX-License-Identifier: GPL-2.0
/*
 * poweroff - the init of the bare boot that the edit-loop benchmark times:
 * it powers the VM off at once, so the boot's time is the kernel's and
 * QEMU's alone, the floor under every pidlab run.
 */

#include <sys/reboot.h>
#include <unistd.h>

int main(void)
{
	sync();
	reboot(RB_POWER_OFF);
	return 1;
}
