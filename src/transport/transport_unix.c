/* transport_unix.c - "unix:PATH": an AF_UNIX stream socket carrying H4, the way BlueZ's
 * `btvirt -s` serves its emulated controllers (/tmp/bt-server-bredr). */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "transport/transport_impl.h"

static const char *unix_hint(int e)
{
	switch (e) {
	case ENOENT:
	case ECONNREFUSED:
		return "is `btvirt -s` running?";
	case EACCES:
		return "no permission on the socket file";
	default:
		return NULL;
	}
}

/* Connects while the fd is still blocking (a local connect completes at once or fails), then
 * switches it to non-blocking. */
static int unix_connect(const tp_ctx *c, const struct sockaddr_un *sa, int *fd)
{
	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return tp_fail(c, "socket", errno, NULL);
	int r;
	do
		r = connect(s, (const struct sockaddr *)sa, sizeof *sa);
	while (r < 0 && errno == EINTR);
	if (r < 0) {
		int e = errno;
		close(s);
		return tp_fail(c, "connect", e, unix_hint(e));
	}
	r = tp_set_nonblock(c, s);
	if (r < 0) {
		close(s);
		return r;
	}
	*fd = s;
	return 0;
}

static int open_unix_fd(const tp_ctx *c, const char *arg, int *fd)
{
	struct sockaddr_un sa;
	memset(&sa, 0, sizeof sa);
	sa.sun_family = AF_UNIX;
	size_t n = strlen(arg);
	if (n == 0)
		return tp_fail_parse(c, EINVAL, "missing socket path; expected unix:PATH (e.g. unix:/tmp/bt-server-bredr)");
	if (n >= sizeof sa.sun_path)
		return tp_fail_parse(c, ENAMETOOLONG, "socket path longer than %zu characters",
				     sizeof sa.sun_path - 1);
	memcpy(sa.sun_path, arg, n);
	return unix_connect(c, &sa, fd);
}

static int unix_open(bt_transport *t, const tp_ctx *c, const char *arg)
{
	int fd = -1;
	int r = open_unix_fd(c, arg, &fd);
	return r < 0 ? r : tp_fd_attach(t, c, fd, TP_FD_SOCKET);
}

const bt_transport_ops tp_unix_ops = TP_FD_OPS(unix_open);
