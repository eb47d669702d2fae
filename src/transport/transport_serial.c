/* transport_serial.c - "serial:DEVICE[@BAUD]": H4 over a UART (or a pty in tests). The line
 * is raw 8N1 with RTS/CTS flow control, as the H4 UART transport requires (Core spec Vol 4
 * Part A 1: 8 data bits, no parity, 1 stop bit, RTS/CTS), at BAUD (default 115200). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "transport/transport_impl.h"

#define SERIAL_DEFAULT_BAUD 115200

typedef struct {
	long baud;
	speed_t code;
} baud_entry;

/* The rates termios has constants for, 9600 up to 4000000. */
static const baud_entry baud_table[] = {
	{ 9600, B9600 },     { 19200, B19200 },   { 38400, B38400 },   { 57600, B57600 },
	{ 115200, B115200 }, { 230400, B230400 },
#ifdef B460800
	{ 460800, B460800 },
#endif
#ifdef B500000
	{ 500000, B500000 },
#endif
#ifdef B576000
	{ 576000, B576000 },
#endif
#ifdef B921600
	{ 921600, B921600 },
#endif
#ifdef B1000000
	{ 1000000, B1000000 },
#endif
#ifdef B1152000
	{ 1152000, B1152000 },
#endif
#ifdef B1500000
	{ 1500000, B1500000 },
#endif
#ifdef B2000000
	{ 2000000, B2000000 },
#endif
#ifdef B2500000
	{ 2500000, B2500000 },
#endif
#ifdef B3000000
	{ 3000000, B3000000 },
#endif
#ifdef B3500000
	{ 3500000, B3500000 },
#endif
#ifdef B4000000
	{ 4000000, B4000000 },
#endif
};
#define BAUD_COUNT (sizeof baud_table / sizeof baud_table[0])

/* "9600, 19200, ..." into buf. */
static const char *baud_list(char *buf, size_t cap)
{
	size_t off = 0;
	buf[0] = '\0';
	for (size_t i = 0; i < BAUD_COUNT && off < cap; i++) {
		int n = snprintf(buf + off, cap - off, "%s%ld", i ? ", " : "", baud_table[i].baud);
		if (n < 0)
			break;
		off += (size_t)n;
	}
	return buf;
}

static const baud_entry *find_baud(const char *s)
{
	if (!*s || strlen(s) > 7)
		return NULL;
	long v = 0;
	for (const char *p = s; *p; p++) {
		if (*p < '0' || *p > '9')
			return NULL;
		v = v * 10 + (*p - '0');
	}
	for (size_t i = 0; i < BAUD_COUNT; i++)
		if (baud_table[i].baud == v)
			return &baud_table[i];
	return NULL;
}

/* DEVICE[@BAUD]: the last '@' starts the rate. */
static int parse_serial(const tp_ctx *c, const char *arg, char *dev, size_t devcap, const baud_entry **baud)
{
	static const baud_entry deflt = { SERIAL_DEFAULT_BAUD, B115200 };
	const char *at = strrchr(arg, '@');
	size_t n = at ? (size_t)(at - arg) : strlen(arg);
	if (n == 0)
		return tp_fail_parse(c, EINVAL, "missing device; expected serial:DEVICE[@BAUD] (e.g. serial:/dev/ttyUSB0@115200)");
	if (n >= devcap)
		return tp_fail_parse(c, ENAMETOOLONG, "device path too long");
	memcpy(dev, arg, n);
	dev[n] = '\0';
	*baud = at ? find_baud(at + 1) : &deflt;
	if (!*baud) {
		char list[256];
		return tp_fail_parse(c, EINVAL, "unsupported baud rate '%s'; supported: %s", at + 1,
				     baud_list(list, sizeof list));
	}
	return 0;
}

/* Raw 8N1, RTS/CTS, receiver on, modem lines ignored, reads never wait (the fd is polled). */
static int configure(const tp_ctx *c, int fd, const baud_entry *baud)
{
	struct termios tio;
	if (tcgetattr(fd, &tio) < 0) {
		int e = errno;
		return tp_fail(c, "tcgetattr", e, e == ENOTTY ? "not a serial device" : NULL);
	}
	cfmakeraw(&tio);
	tio.c_cflag &= ~(tcflag_t)(CSIZE | PARENB | CSTOPB);
	tio.c_cflag |= CS8 | CREAD | CLOCAL | CRTSCTS;
	tio.c_cc[VMIN] = 0;
	tio.c_cc[VTIME] = 0;
	if (cfsetispeed(&tio, baud->code) < 0 || cfsetospeed(&tio, baud->code) < 0)
		return tp_fail(c, "cfsetspeed", errno, NULL);
	if (tcsetattr(fd, TCSANOW, &tio) < 0)
		return tp_fail(c, "tcsetattr", errno, NULL);
	/* tcsetattr succeeds if any part applied: check the rate stuck. */
	struct termios now;
	if (tcgetattr(fd, &now) < 0)
		return tp_fail(c, "tcgetattr", errno, NULL);
	if (cfgetospeed(&now) != baud->code)
		return tp_fail(c, "tcsetattr", EINVAL, "the device does not support this baud rate");
	/* Drop whatever a previous user left in either direction. */
	if (tcflush(fd, TCIOFLUSH) < 0)
		return tp_fail(c, "tcflush", errno, NULL);
	return 0;
}

static const char *open_hint(int e)
{
	switch (e) {
	case ENOENT:
		return "is the adapter plugged in?";
	case EACCES:
		return "no permission: add yourself to the dialout group";
	case EBUSY:
		return "another program has the port open";
	default:
		return NULL;
	}
}

static int open_serial_fd(const tp_ctx *c, const char *arg, int *fd)
{
	char dev[128];
	const baud_entry *baud;
	int r = parse_serial(c, arg, dev, sizeof dev, &baud);
	if (r < 0)
		return r;
	int s;
	do
		s = open(dev, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
	while (s < 0 && errno == EINTR);
	if (s < 0) {
		int e = errno;
		return tp_fail(c, "open", e, open_hint(e));
	}
	r = configure(c, s, baud);
	if (r < 0) {
		close(s);
		return r;
	}
	*fd = s;
	return 0;
}

static int serial_open(bt_transport *t, const tp_ctx *c, const char *arg)
{
	int fd = -1;
	int r = open_serial_fd(c, arg, &fd);
	return r < 0 ? r : tp_fd_attach(t, c, fd, TP_FD_EIO_EOF);
}

const bt_transport_ops tp_serial_ops = TP_FD_OPS(serial_open);
