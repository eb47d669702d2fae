/* netcat.c - the relay behind `btsock listen/connect` and `btsock l2cap listen/connect`.
 *
 * One poll() loop moves data both ways on a connected btsock socket:
 *   input (stdin, or the --send file) -> peer, in chunks; for L2CAP each chunk is one message
 *     of at most the peer's MTU, so message boundaries follow read() boundaries;
 *   peer -> stdout, unchanged.
 * It ends when the peer closes (exit 0), when the input ends (the socket is closed, exit 0;
 * with -k on stdin the connection instead stays up until the peer closes), or on an error
 * (exit 1). A lost link is an error, never a close: end of file or EPIPE is checked with
 * btsock_sock_error(), and "link lost to ...: why; N bytes written were never sent" printed. At most one chunk is pending at a time, so a slow peer throttles the input. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "netcat.h"
#include "progress.h"

#define STREAM_CHUNK 8192       /* RFCOMM: bytes per write, the stack segments into frames */
#define L2CAP_DEFAULT_MTU 672   /* Core Vol 3 Part A 5.1: MTU when none was negotiated */
#define RECV_BUF 65536          /* larger than any L2CAP MTU btsock accepts (4096) */

enum relay_step {
	STEP_CONTINUE,
	STEP_PEER_CLOSED,
	STEP_INPUT_DONE,
	STEP_FAILED,
};

struct relay {
	int sock;
	bool seqpacket;           /* L2CAP: a zero-length read is an empty message, not EOF */
	int in_fd;                /* -1 = no input */
	bool in_open;             /* still reading in_fd */
	bool in_ended;            /* in_fd reached EOF */
	bool close_on_input_end;
	const char *send_path;    /* the --send file, for messages */
	unsigned char *out;       /* the pending chunk */
	size_t chunk, out_len, out_off;
	struct progress *progress;
	int exit_code;            /* when STEP_FAILED */
};

static void format_port(char *buf, size_t len, enum btsock_proto proto, unsigned port)
{
	if (proto == BTSOCK_L2CAP)
		snprintf(buf, len, "psm 0x%04x", port);
	else
		snprintf(buf, len, "channel %u", port);
}

static bool write_all(int fd, const unsigned char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return false;
		p += w;
		n -= (size_t)w;
	}
	return true;
}

static enum relay_step fail_step(struct relay *r, int code)
{
	r->exit_code = code;
	return STEP_FAILED;
}

/* The connection ended (end of file, or EPIPE on a write): a lost link is a failure, never
 * an orderly close. Returns STEP_FAILED with "link lost ..." printed, or `orderly`. */
static enum relay_step ended(struct relay *r, enum relay_step orderly)
{
	if (btsock_sock_error(r->sock) > 0) {
		tool_msg("%s", btsock_error());
		return fail_step(r, TOOL_EXIT_FAILURE);
	}
	return orderly;
}

/* Peer -> stdout. */
static enum relay_step relay_receive(struct relay *r, short revents)
{
	static unsigned char buf[RECV_BUF];
	ssize_t n = read(r->sock, buf, sizeof(buf));

	if (n < 0) {
		if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
			return STEP_CONTINUE;
		/* A kernel socket (adapter hciN) reads ECONNRESET, after the data, when the peer
		 * closed the channel: btsock_sock_error says whether it was a close or a lost link. */
		if (errno == ECONNRESET)
			return ended(r, STEP_PEER_CLOSED);
		return fail_step(r, tool_fail("receive"));
	}
	if (n == 0) {
		/* An L2CAP message may be empty; only a hang-up is the end. */
		if (r->seqpacket && !(revents & (POLLHUP | POLLERR)))
			return STEP_CONTINUE;
		return ended(r, STEP_PEER_CLOSED);
	}
	if (!write_all(STDOUT_FILENO, buf, (size_t)n)) {
		tool_msg("writing to stdout: %s", strerror(errno));
		return fail_step(r, TOOL_EXIT_FAILURE);
	}
	return STEP_CONTINUE;
}

/* Pending chunk -> peer. */
static enum relay_step relay_send(struct relay *r)
{
	ssize_t n = write(r->sock, r->out + r->out_off, r->out_len - r->out_off);

	if (n < 0) {
		if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
			return STEP_CONTINUE;
		if (errno == EPIPE && ended(r, STEP_CONTINUE) == STEP_FAILED)
			return STEP_FAILED;
		return fail_step(r, tool_fail("send"));
	}
	r->out_off += (size_t)n;
	if (r->progress)
		progress_add(r->progress, (size_t)n);
	return STEP_CONTINUE;
}

/* Input -> pending chunk. */
static enum relay_step relay_read_input(struct relay *r)
{
	ssize_t n = read(r->in_fd, r->out, r->chunk);

	if (n < 0) {
		if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
			return STEP_CONTINUE;
		tool_msg("reading %s: %s", r->send_path ? r->send_path : "stdin", strerror(errno));
		return fail_step(r, TOOL_EXIT_FAILURE);
	}
	if (n == 0) {
		r->in_open = false;
		r->in_ended = true;
		return STEP_CONTINUE;
	}
	r->out_len = (size_t)n;
	r->out_off = 0;
	return STEP_CONTINUE;
}

static enum relay_step relay_run(struct relay *r)
{
	for (;;) {
		struct pollfd p[2] = { { .fd = r->sock, .events = POLLIN }, { .fd = -1 } };
		bool pending = r->out_off < r->out_len;
		enum relay_step step = STEP_CONTINUE;

		if (pending) {
			p[0].events |= POLLOUT;
		} else if (r->in_open) {
			p[1].fd = r->in_fd;
			p[1].events = POLLIN;
		} else if (r->in_ended && r->close_on_input_end) {
			return STEP_INPUT_DONE;
		}
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			tool_msg("poll: %s", strerror(errno));
			return fail_step(r, TOOL_EXIT_FAILURE);
		}
		if (p[0].revents & (POLLIN | POLLHUP | POLLERR))
			step = relay_receive(r, p[0].revents);
		if (step == STEP_CONTINUE && pending && (p[0].revents & POLLOUT))
			step = relay_send(r);
		if (step == STEP_CONTINUE && (p[1].revents & (POLLIN | POLLHUP | POLLERR)))
			step = relay_read_input(r);
		if (step != STEP_CONTINUE)
			return step;
	}
}

/* Opens the --send file; *size is its size if it is a regular file, else 0. */
static int open_send_file(const char *path, uint64_t *size)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0) {
		tool_msg("cannot open '%s': %s", path, strerror(errno));
		return -1;
	}
	*size = (fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) ? (uint64_t)st.st_size : 0;
	return fd;
}

/* The chunk size for sending: the peer's MTU for L2CAP. */
static size_t send_chunk(int sock, enum btsock_proto proto)
{
	unsigned in = 0, out = 0;

	if (proto != BTSOCK_L2CAP)
		return STREAM_CHUNK;
	if (btsock_get_mtu(sock, &in, &out) < 0 || out == 0)
		return L2CAP_DEFAULT_MTU;
	return out;
}

/* Runs one connection and closes it. *stdin_eof carries stdin's state across -k
 * connections. */
static int serve(int sock, const struct session *s, bool *stdin_eof)
{
	struct progress progress;
	struct relay r = {
		.sock = sock,
		.seqpacket = s->proto == BTSOCK_L2CAP,
		.in_fd = -1,
		.close_on_input_end = s->send_path || !s->keep,
		.send_path = s->send_path,
		.chunk = send_chunk(sock, s->proto),
	};
	enum relay_step step;
	uint64_t size = 0;

	if (s->send_path) {
		r.in_fd = open_send_file(s->send_path, &size);
		if (r.in_fd < 0) {
			btsock_close(sock);
			return TOOL_EXIT_FAILURE;
		}
		progress_start(&progress, !s->quiet && isatty(STDERR_FILENO), size);
		r.progress = &progress;
	} else if (!s->no_stdin && !*stdin_eof) {
		r.in_fd = STDIN_FILENO;
	}
	r.in_open = r.in_fd >= 0;
	r.out = malloc(r.chunk);
	if (!r.out) {
		tool_msg("out of memory");
		btsock_close(sock);
		return TOOL_EXIT_FAILURE;
	}

	step = relay_run(&r);
	if (r.in_fd == STDIN_FILENO && r.in_ended)
		*stdin_eof = true;
	if (step == STEP_PEER_CLOSED && s->send_path && !r.in_ended) {
		tool_msg("the peer closed the connection before all of '%s' was sent",
			 s->send_path);
		r.exit_code = TOOL_EXIT_FAILURE;
		step = STEP_FAILED;
	}
	/* The link may have been lost after the input ended, before the channel closed. */
	if (step == STEP_INPUT_DONE && ended(&r, step) == STEP_FAILED)
		step = STEP_FAILED;
	/* btsock_close() returns once queued data went out and the channel is down. */
	if (btsock_close(sock) < 0 && step == STEP_INPUT_DONE) {
		r.exit_code = tool_fail("close");
		step = STEP_FAILED;
	}
	if (r.progress)
		progress_finish(r.progress, !s->quiet && step != STEP_FAILED, "sent");
	if (s->send_path)
		close(r.in_fd);
	free(r.out);
	return step == STEP_FAILED ? r.exit_code : TOOL_EXIT_OK;
}

/* Fails early on an unreadable --send file: a bad argument. */
static bool check_send_file(const struct session *s)
{
	uint64_t size;
	int fd;

	if (!s->send_path)
		return true;
	fd = open_send_file(s->send_path, &size);
	if (fd < 0)
		return false;
	close(fd);
	return true;
}

/* Creates the socket with the requested MTU; -1 with the exit code in *rc. */
static int make_socket(const struct session *s, int *rc)
{
	int fd = btsock_socket(s->proto);

	if (fd < 0) {
		*rc = tool_fail("socket");
		return -1;
	}
	if (s->mtu && btsock_set_mtu(fd, s->mtu) < 0) {
		*rc = tool_fail("set MTU");
		btsock_close(fd);
		return -1;
	}
	if (s->security && btsock_set_security(fd, (enum btsock_security)(s->security - 1)) < 0) {
		*rc = tool_fail("set security");
		btsock_close(fd);
		return -1;
	}
	return fd;
}

/* connect --uuid: the port of the first record on the peer with that UUID and our protocol. */
static int find_port(const struct session *s, unsigned *port)
{
	struct btsock_service_info *found;
	int n = btsock_find_services(s->peer, s->uuid, NULL, &found);

	if (n < 0)
		return tool_fail("service search");
	for (int k = 0; k < n; k++) {
		if (found[k].has_port && found[k].protocol == s->proto) {
			*port = found[k].port;
			if (!s->quiet)
				fprintf(stderr, "found \"%s\" on %s %s %u\n", found[k].name, s->peer,
					s->proto == BTSOCK_RFCOMM ? "channel" : "psm", *port);
			btsock_free_services(found);
			return TOOL_EXIT_OK;
		}
	}
	btsock_free_services(found);
	tool_msg("%s has no %s service with UUID %s", s->peer, s->proto == BTSOCK_RFCOMM ? "RFCOMM" : "L2CAP",
		 s->uuid);
	return TOOL_EXIT_FAILURE;
}

int session_connect(const struct tool_ctx *ctx, const struct session *s)
{
	bool stdin_eof = false;
	char port[32];
	unsigned port_num = s->port;
	int fd, rc;

	if (!check_send_file(s))
		return TOOL_EXIT_USAGE;
	rc = tool_open_adapter(ctx, NULL);
	if (rc != TOOL_EXIT_OK)
		return rc;
	if (s->uuid && (rc = find_port(s, &port_num)) != TOOL_EXIT_OK)
		return rc;
	fd = make_socket(s, &rc);
	if (fd < 0)
		return rc;
	if (btsock_connect(fd, s->peer, port_num) < 0) {
		rc = tool_fail("connect");
		btsock_close(fd);
		return rc;
	}
	if (!s->quiet) {
		format_port(port, sizeof(port), s->proto, port_num);
		fprintf(stderr, "connected to %s %s\n", s->peer, port);
	}
	return serve(fd, s, &stdin_eof);
}

/* Publishes the SDP record of --advertise: the --uuid as ServiceID and first class, and for
 * RFCOMM the Serial Port class and profile (version 1.2), as PyBluez examples do. */
static int advertise(int fd, const struct session *s)
{
	const char *classes[2];
	size_t n = 0;
	struct btsock_profile spp = { BTSOCK_SERIAL_PORT_PROFILE, 0x0102 };
	struct btsock_service svc = { .name = s->advertise, .service_id = s->uuid, .provider = "btsock" };

	if (s->uuid)
		classes[n++] = s->uuid;
	if (s->proto == BTSOCK_RFCOMM) {
		classes[n++] = BTSOCK_SERIAL_PORT_CLASS;
		svc.profiles = &spp;
		svc.n_profiles = 1;
	}
	svc.service_classes = classes;
	svc.n_service_classes = n;
	return btsock_advertise_service(fd, &svc);
}

/* Binds and listens; prints "listening on ADDR psm 0x1001". -1 with *rc on failure. */
static int make_listener(const struct session *s, int *rc)
{
	char addr[BTSOCK_ADDRSTRLEN], port[32];
	unsigned bound = s->port;
	int fd = make_socket(s, rc);

	if (fd < 0)
		return -1;
	if (btsock_bind(fd, "", s->port) < 0 || btsock_listen(fd, s->keep ? 4 : 1) < 0 ||
	    btsock_getsockname(fd, addr, &bound) < 0) {
		*rc = tool_fail("listen");
		btsock_close(fd);
		return -1;
	}
	format_port(port, sizeof(port), s->proto, bound);
	if (s->advertise && advertise(fd, s) < 0) {
		*rc = tool_fail("advertise");
		btsock_close(fd);
		return -1;
	}
	fprintf(stderr, "listening on %s %s\n", addr, port);
	if (s->advertise && !s->quiet)
		fprintf(stderr, "advertising \"%s\"%s%s\n", s->advertise, s->uuid ? " with UUID " : "",
			s->uuid ? s->uuid : "");
	return fd;
}

int session_listen(const struct tool_ctx *ctx, const struct session *s)
{
	bool stdin_eof = false;
	int listener, rc;

	if (!check_send_file(s))
		return TOOL_EXIT_USAGE;
	rc = tool_open_adapter(ctx, NULL);
	if (rc != TOOL_EXIT_OK)
		return rc;
	listener = make_listener(s, &rc);
	if (listener < 0)
		return rc;
	do {
		char peer[BTSOCK_ADDRSTRLEN];
		int c = btsock_accept(listener, peer, NULL);

		if (c < 0) {
			if (errno == EINTR)
				continue;
			rc = tool_fail("accept");
			break;
		}
		/* One connection only: stop listening so further attempts are refused. */
		if (!s->keep) {
			btsock_close(listener);
			listener = -1;
		}
		if (!s->quiet)
			fprintf(stderr, "connection from %s\n", peer);
		rc = serve(c, s, &stdin_eof);
	} while (s->keep);
	if (listener >= 0)
		btsock_close(listener);
	return rc;
}

enum { OPT_KEEP, OPT_NO_STDIN, OPT_QUIET, OPT_SEND, OPT_MTU, OPT_ADVERTISE, OPT_UUID, OPT_SECURITY };

static const struct tool_opt session_opts[] = {
	[OPT_KEEP] = { 'k', "keep", false },
	[OPT_NO_STDIN] = { 'd', "no-stdin", false },
	[OPT_QUIET] = { 'q', "quiet", false },
	[OPT_SEND] = { 0, "send", true },
	[OPT_MTU] = { 'm', "mtu", true },
	[OPT_ADVERTISE] = { 0, "advertise", true },
	[OPT_UUID] = { 'u', "uuid", true },
	[OPT_SECURITY] = { 0, "security", true },
};

/* --security low|medium|high|fips: enum btsock_security + 1, or 0 if not a level. */
static int parse_security(const char *w)
{
	static const char *const levels[] = { "low", "medium", "high", "fips" };
	for (int k = 0; k < 4; k++)
		if (strcmp(w, levels[k]) == 0)
			return k + 1;
	return 0;
}

/* Applies one option; false on a usage error (message printed). */
static bool session_option(struct tool_args *a, struct session *s, int opt)
{
	unsigned long mtu;

	switch (opt) {
	case OPT_KEEP:
		if (!s->listening)
			return tool_usage_error(a->cmd, "-k is only for listen"), false;
		s->keep = true;
		return true;
	case OPT_NO_STDIN:
		s->no_stdin = true;
		return true;
	case OPT_QUIET:
		s->quiet = true;
		return true;
	case OPT_SEND:
		s->send_path = a->arg;
		return true;
	case OPT_ADVERTISE:
		if (!s->listening)
			return tool_usage_error(a->cmd, "--advertise is only for listen"), false;
		s->advertise = a->arg;
		return true;
	case OPT_UUID:
		if (!tool_check_uuid(a->arg))
			return false;
		s->uuid = a->arg;
		return true;
	case OPT_SECURITY:
		s->security = parse_security(a->arg);
		if (!s->security)
			return tool_usage_error(a->cmd, "--security takes low, medium, high or fips, not '%s'",
						a->arg), false;
		return true;
	default: /* OPT_MTU */
		if (s->proto != BTSOCK_L2CAP)
			return tool_usage_error(a->cmd, "--mtu is only for l2cap"), false;
		/* Core Vol 3 Part A 5.1: the minimum MTU on ACL-U is 48; btsock takes up to 4096. */
		if (!tool_parse_uint(a->arg, "MTU", 48, 4096, &mtu))
			return false;
		s->mtu = (unsigned)mtu;
		return true;
	}
}

int session_parse_args(struct tool_args *a, struct session *s, const struct tool_cmd *help,
		       const char **pos, int max_pos, int *npos)
{
	int r;

	*npos = 0;
	while ((r = tool_next_arg(a, session_opts, (int)(sizeof(session_opts) /
							 sizeof(session_opts[0])))) != TOOL_ARG_END) {
		if (r == TOOL_ARG_HELP) {
			tool_print_help(stdout, help);
			return TOOL_EXIT_OK;
		}
		if (r == TOOL_ARG_ERROR)
			return TOOL_EXIT_USAGE;
		if (r != TOOL_ARG_POSITIONAL) {
			if (!session_option(a, s, r))
				return TOOL_EXIT_USAGE;
			continue;
		}
		if (*npos == max_pos)
			return tool_usage_error(a->cmd, "unexpected argument '%s'", a->arg);
		pos[(*npos)++] = a->arg;
	}
	if (s->send_path && s->no_stdin)
		return tool_usage_error(a->cmd, "--send and -d do not go together");
	if (s->listening && s->uuid && !s->advertise)
		return tool_usage_error(a->cmd, "--uuid needs --advertise NAME");
	return -1;
}
