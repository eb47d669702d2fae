/* progress.c - the progress bar and throughput line of `btsock listen/connect --send`. The
 * bar is drawn on stderr with carriage returns only (no terminal escape codes). */
#include <stdio.h>
#include <time.h>

#include "progress.h"

#define BAR_WIDTH 24
#define LINE_WIDTH 78

double progress_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void progress_format_size(char *buf, size_t len, double bytes)
{
	static const char *const units[] = { "KiB", "MiB", "GiB", "TiB" };
	int u = -1;

	if (bytes < 1024) {
		snprintf(buf, len, "%.0f B", bytes);
		return;
	}
	while (bytes >= 1024 && u < 3) {
		bytes /= 1024;
		u++;
	}
	snprintf(buf, len, "%.1f %s", bytes, units[u]);
}

/* Rate with two decimals above 1 KiB/s: "4.33 MiB/s". */
static void format_rate(char *buf, size_t len, double bytes, double secs)
{
	static const char *const units[] = { "KiB", "MiB", "GiB", "TiB" };
	double rate = secs > 0 ? bytes / secs : 0;
	int u = -1;

	if (rate < 1024) {
		snprintf(buf, len, "%.0f B/s", rate);
		return;
	}
	while (rate >= 1024 && u < 3) {
		rate /= 1024;
		u++;
	}
	snprintf(buf, len, "%.2f %s/s", rate, units[u]);
}

void progress_start(struct progress *p, bool bar, uint64_t total)
{
	p->bar = bar;
	p->drawn = false;
	p->total = total;
	p->done = 0;
	p->start = progress_now();
	p->last_draw = 0;
}

static void draw(struct progress *p, double now)
{
	char done[32], total[32], rate[32], bar[BAR_WIDTH + 1];
	int n;

	progress_format_size(done, sizeof(done), (double)p->done);
	format_rate(rate, sizeof(rate), (double)p->done, now - p->start);
	if (p->total) {
		double frac = (double)p->done / (double)p->total;
		int fill;

		if (frac > 1)
			frac = 1;
		fill = (int)(frac * BAR_WIDTH);
		for (int k = 0; k < BAR_WIDTH; k++)
			bar[k] = k < fill ? '#' : '.';
		bar[BAR_WIDTH] = '\0';
		progress_format_size(total, sizeof(total), (double)p->total);
		n = fprintf(stderr, "\r[%s] %s / %s %3d%%  %s", bar, done, total,
			    (int)(frac * 100), rate);
	} else {
		n = fprintf(stderr, "\r%s  %s", done, rate);
	}
	/* Pad over what a longer previous line left behind. */
	if (n > 0 && n < LINE_WIDTH)
		fprintf(stderr, "%*s", LINE_WIDTH - n, "");
	fflush(stderr);
	p->drawn = true;
	p->last_draw = now;
}

void progress_add(struct progress *p, size_t n)
{
	double now;

	p->done += n;
	if (!p->bar)
		return;
	now = progress_now();
	if (now - p->last_draw >= 0.1)
		draw(p, now);
}

void progress_finish(struct progress *p, bool summary, const char *verb)
{
	double secs = progress_now() - p->start;
	char size[32], rate[32];

	if (p->drawn) {
		fprintf(stderr, "\r%*s\r", LINE_WIDTH, "");
		p->drawn = false;
	}
	if (!summary)
		return;
	progress_format_size(size, sizeof(size), (double)p->done);
	format_rate(rate, sizeof(rate), (double)p->done, secs);
	fprintf(stderr, "%s %s in %.2f s, %s\n", verb, size, secs, rate);
}
