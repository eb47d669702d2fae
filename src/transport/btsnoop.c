/* btsnoop.c - HCI capture files in the btsnoop format (version 1, datalink 1002 = "HCI UART
 * (H4)": each record holds the whole H4 packet, indicator byte included), which `btmon -r`
 * and Wireshark read.
 *
 * Layout (all fields big-endian), per the btsnoop format description (RFC 1761 snoop
 * derivative, as documented by Frontline and read by BlueZ monitor/): a 16-byte file header
 *   "btsnoop\0", u32 version = 1, u32 datalink = 1002
 * then one record per packet:
 *   u32 original length, u32 included length, u32 flags, u32 cumulative drops,
 *   i64 timestamp in microseconds since 0000-01-01 00:00 (the unix epoch is 0x00dcddb30f2f8000)
 * followed by the packet. flags bit 0: 1 = received (controller -> host); bit 1: 1 = command
 * or event, 0 = data.
 *
 * Threads: one bt_snoop may be shared by several stacks (threads); a mutex keeps each record
 * whole. Records reach the file at most BT_SNOOP_FLUSH_MS after they were written (on the next
 * write or bt_snoop_tick), not one fflush per packet: a packet's write happens on a stack's
 * loop under its lock, where a write(2) per packet cost throughput and could stall. So a
 * capture read while the program runs, or after a crash, lacks at most the last moment.
 * After a write error the capture stops rather than leave a torn record followed by garbage. */
#include "transport/btsnoop.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/bytes.h"
#include "hci/hci.h"

#define SNOOP_VERSION 1
#define SNOOP_DATALINK_H4 1002
#define SNOOP_FLAG_RECEIVED 0x01
#define SNOOP_FLAG_CMD_EVT 0x02
#define SNOOP_EPOCH_DELTA_US 0x00dcddb30f2f8000ULL
#define SNOOP_HDR_LEN 16
#define SNOOP_REC_HDR_LEN 24

struct bt_snoop {
	FILE *f;
	pthread_mutex_t lock;
	bool failed; /* a write failed: stop recording */
	bool dirty;  /* records written since the last flush */
	uint64_t dirty_since_ms; /* CLOCK_MONOTONIC: when the oldest unflushed record was written */
};

static uint64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* s->lock held. */
static void snoop_flush_locked(bt_snoop *s)
{
	if (s->dirty && !s->failed && fflush(s->f) != 0)
		s->failed = true;
	s->dirty = false;
}

static uint64_t snoop_now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000ULL + (uint64_t)ts.tv_nsec / 1000ULL + SNOOP_EPOCH_DELTA_US;
}

static bool snoop_put(bt_snoop *s, const void *p, size_t len)
{
	return fwrite(p, 1, len, s->f) == len;
}

bt_snoop *bt_snoop_open(const char *path, char *err, size_t errlen)
{
	bt_snoop *s = calloc(1, sizeof *s);
	if (!s) {
		if (err && errlen)
			snprintf(err, errlen, "%s: btsnoop: %s", path, strerror(ENOMEM));
		return NULL;
	}
	s->f = fopen(path, "wbe");
	if (!s->f) {
		if (err && errlen)
			snprintf(err, errlen, "%s: open btsnoop capture: %s", path, strerror(errno));
		free(s);
		return NULL;
	}
	uint8_t hdr[SNOOP_HDR_LEN];
	memcpy(hdr, "btsnoop\0", 8);
	put_be32(hdr + 8, SNOOP_VERSION);
	put_be32(hdr + 12, SNOOP_DATALINK_H4);
	if (!snoop_put(s, hdr, sizeof hdr) || fflush(s->f) != 0) {
		if (err && errlen)
			snprintf(err, errlen, "%s: write btsnoop header: %s", path, strerror(errno));
		fclose(s->f);
		free(s);
		return NULL;
	}
	pthread_mutex_init(&s->lock, NULL);
	return s;
}

static uint32_t snoop_flags(const uint8_t *pkt, bool received)
{
	uint32_t flags = received ? SNOOP_FLAG_RECEIVED : 0;
	if (pkt[0] == H4_CMD || pkt[0] == H4_EVT)
		flags |= SNOOP_FLAG_CMD_EVT;
	return flags;
}

void bt_snoop_write(bt_snoop *s, const uint8_t *pkt, size_t len, bool received)
{
	if (!s || !pkt || len == 0 || len > UINT32_MAX)
		return;
	uint8_t rec[SNOOP_REC_HDR_LEN];
	put_be32(rec, (uint32_t)len);      /* original length */
	put_be32(rec + 4, (uint32_t)len);  /* included length */
	put_be32(rec + 8, snoop_flags(pkt, received));
	put_be32(rec + 12, 0);             /* cumulative drops */
	uint64_t ts = snoop_now_us();
	put_be32(rec + 16, (uint32_t)(ts >> 32));
	put_be32(rec + 20, (uint32_t)ts);
	uint64_t now = mono_ms();
	pthread_mutex_lock(&s->lock);
	if (!s->failed && (!snoop_put(s, rec, sizeof rec) || !snoop_put(s, pkt, len)))
		s->failed = true;
	if (!s->dirty) {
		s->dirty = true;
		s->dirty_since_ms = now;
	} else if (now - s->dirty_since_ms >= BT_SNOOP_FLUSH_MS) {
		snoop_flush_locked(s);
	}
	pthread_mutex_unlock(&s->lock);
}

void bt_snoop_tick(bt_snoop *s, uint64_t now_ms)
{
	if (!s)
		return;
	pthread_mutex_lock(&s->lock);
	if (s->dirty && now_ms >= s->dirty_since_ms + BT_SNOOP_FLUSH_MS)
		snoop_flush_locked(s);
	pthread_mutex_unlock(&s->lock);
}

void bt_snoop_flush(bt_snoop *s)
{
	if (!s)
		return;
	pthread_mutex_lock(&s->lock);
	snoop_flush_locked(s);
	pthread_mutex_unlock(&s->lock);
}

void bt_snoop_close(bt_snoop *s)
{
	if (!s)
		return;
	fclose(s->f); /* flushes */
	pthread_mutex_destroy(&s->lock);
	free(s);
}
