// SPDX-License-Identifier: GPL-2.0
/*
 * hello: the smallest module pidlab tests as a folder of its own. It makes
 * /proc/pidlab_hello, which reads "hello\n"; its guest suite (guest/)
 * checks that and nothing else.
 */
#include <linux/module.h>
#include <linux/proc_fs.h>
#include <linux/seq_file.h>

static struct proc_dir_entry *hello_entry;

static int hello_show(struct seq_file *m, void *v)
{
	seq_puts(m, "hello\n");
	return 0;
}

static int __init hello_init(void)
{
	hello_entry = proc_create_single("pidlab_hello", 0444, NULL, hello_show);
	if (!hello_entry)
		return -ENOMEM;
	return 0;
}

static void __exit hello_exit(void)
{
	proc_remove(hello_entry);
}

module_init(hello_init);
module_exit(hello_exit);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("pidlab's smallest test module: /proc/pidlab_hello");
