/* service_info.h - btsock_find_services() results as every backend builds them (internal):
 * the facts PyBluez's find_service() returns, read from SDP records (Core Vol 3 Part B 5). */
#ifndef BTSOCK_API_SERVICE_INFO_H
#define BTSOCK_API_SERVICE_INFO_H

#include <stdbool.h>
#include <stddef.h>

#include "btsock.h"
#include "sdp/sdp_record.h"

/* A growing array; one spare entry at its end stays zeroed (host ""), which is how
 * btsock_free_services() finds the end. */
typedef struct {
	struct btsock_service_info *v;
	size_t n, cap;
	bool nomem; /* an entry could not be added: the caller fails with ENOMEM */
} svc_results;

/* Appends the records found on host ("01:23:45:67:89:AB") whose service name is name (NULL:
 * every record). */
void svc_results_add(svc_results *r, const char *host, const char *name, sdp_record *const *recs, size_t n);

#endif
