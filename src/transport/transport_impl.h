/* transport_impl.h - internal to src/transport: one opener per adapter kind, and the helpers
 * that write the one-sentence error every failure gives ("SPEC: STEP: strerror (hint)").
 *
 * Each opener gets the text after "KIND:" and parses it strictly before touching the system,
 * so a malformed adapter string never creates a socket or opens a device. */
#ifndef BTSOCK_TRANSPORT_IMPL_H
#define BTSOCK_TRANSPORT_IMPL_H

#include <stddef.h>
#include <stdint.h>

/* Where an opener reports: the adapter string as given and the caller's message buffer
 * (err may be NULL or errlen 0). */
typedef struct {
	const char *spec;
	char *err;
	size_t errlen;
} tp_ctx;

/* "SPEC: STEP: strerror(e)" plus " (hint)" when hint is not NULL. Returns -e. */
int tp_fail(const tp_ctx *c, const char *step, int e, const char *hint);
/* "SPEC: parse: <formatted detail>". Returns -e (normally EINVAL). */
int tp_fail_parse(const tp_ctx *c, int e, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Sets O_NONBLOCK on fd; on failure reports step "fcntl" and returns -errno. */
int tp_set_nonblock(const tp_ctx *c, int fd);

/* Each returns 0 with *fd open (non-blocking, close-on-exec), or -errno with the message. */
int tp_open_unix(const tp_ctx *c, const char *arg, int *fd);
int tp_open_tcp(const tp_ctx *c, const char *arg, int *fd);
int tp_open_serial(const tp_ctx *c, const char *arg, int *fd);
int tp_open_userchan(const tp_ctx *c, const char *arg, int *fd);

/* Parses "hciN" (N decimal, 0..65534, no sign, no leading zeros beyond "0"). -1 if malformed. */
int tp_parse_hci_index(const char *s);

#endif
