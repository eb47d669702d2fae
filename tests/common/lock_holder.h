/* lock_holder.h - for tests of the keystore's file lock (src/runtime/keystore.c): a child process
 * that holds PATH.lock (flock, as the keystore takes it) until told to let go. Header-only:
 * both the unit and the integration tests use it. Needs <cmocka.h> included first. */
#ifndef BTSOCK_TEST_LOCK_HOLDER_H
#define BTSOCK_TEST_LOCK_HOLDER_H

#include <fcntl.h>
#include <stdio.h>
#include <sys/file.h>
#include <sys/types.h>
#include <unistd.h>

/* Returns the child's pid once it holds the lock; writing a byte to *release (or closing it)
 * makes it let go and exit 0. */
static inline pid_t lock_holder(const char *path, int *release)
{
	int ready[2], go[2];
	assert_int_equal(pipe(ready), 0);
	assert_int_equal(pipe(go), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char lock[160];
		snprintf(lock, sizeof lock, "%s.lock", path);
		int fd = open(lock, O_RDWR | O_CREAT, 0600);
		if (fd < 0 || flock(fd, LOCK_EX) < 0)
			_exit(1);
		char b = 1;
		if (write(ready[1], &b, 1) != 1 || read(go[0], &b, 1) < 0)
			_exit(1);
		_exit(0);
	}
	close(ready[1]);
	close(go[0]);
	char b;
	assert_int_equal(read(ready[0], &b, 1), 1);
	close(ready[0]);
	*release = go[1];
	return pid;
}

#endif
