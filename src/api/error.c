/* error.c - btsock_error(): the sentence of this thread's last failing call; and the timeout
 * settings of an application fd, which every backend applies the same way. */
#include "api_error.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/time.h>

#include "btsock.h"

static _Thread_local char err_buf[API_ERRLEN];
static _Thread_local int err_no;
static _Thread_local bool err_touched;

int api_fail(int err, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err_buf, sizeof err_buf, fmt, ap);
	va_end(ap);
	err_no = err;
	err_touched = true;
	errno = err;
	return -1;
}

void api_clear_error(void)
{
	err_buf[0] = 0;
	err_no = 0;
	err_touched = true;
}

const char *btsock_error(void) { return err_buf; }

void api_error_mark(void) { err_touched = false; }

void api_error_capture(api_error_state *out)
{
	out->touched = err_touched;
	out->err = err_no;
	memcpy(out->msg, err_buf, sizeof out->msg);
}

void api_error_restore(const api_error_state *st)
{
	if (!st->touched)
		return;
	memcpy(err_buf, st->msg, sizeof err_buf);
	err_no = st->err;
	err_touched = true;
	if (st->err)
		errno = st->err;
}

void api_fd_timeout(int fd, int timeout_ms)
{
	int fl = fcntl(fd, F_GETFL);
	fcntl(fd, F_SETFL, timeout_ms == 0 ? fl | O_NONBLOCK : fl & ~O_NONBLOCK);
	struct timeval tv = { 0, 0 };
	if (timeout_ms > 0) {
		tv.tv_sec = timeout_ms / 1000;
		tv.tv_usec = (timeout_ms % 1000) * 1000;
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}
