/* kdbus.c - advertising through bluetoothd: org.bluez.ProfileManager1.RegisterProfile on the
 * system bus (sd-bus from libsystemd), so that a kernel-backend server is found by SDP without
 * `bluetoothd --compat` (which PyBluez's advertise_service needs for /run/sdp).
 *
 * What BlueZ 5.66 does with it (src/profile.c): every registration is an "external profile"
 * keyed by its UUID (a UUID can be registered once) and probed on every adapter bluetoothd
 * manages; with the "ServiceRecord" option the record is our XML as it is, and bluetoothd
 * listens on a channel or PSM itself only if the "Channel"/"PSM" options are given or the UUID
 * is one of its defaults (e.g. Serial Port 0x1101 brings channel 3). So each advertisement is
 * registered under a random UUID of its own, with our record, Role "server" (no client side,
 * so no device probing and no AutoConnect) and neither Channel nor PSM: the application keeps
 * its own listening socket and bluetoothd only serves the record. The record is withdrawn by
 * UnregisterProfile, and by bluetoothd itself when this process's bus connection closes.
 *
 * Known difference from the user-space backend: bluetoothd publishes the record on all its
 * adapters, not only on the one the socket is bound to. The Profile1 object bluetoothd
 * expects is exported (Release, NewConnection, RequestDisconnection); NewConnection never
 * comes since bluetoothd does not listen for us, and is refused if it does. The bus is used
 * under one mutex from the calling thread; nothing runs in the background, so a Release from
 * bluetoothd is answered at the next advertise or stop call. */
#include "kernel.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "api/api_error.h"

#ifdef BTSOCK_HAVE_SDBUS
#include <systemd/sd-bus.h>

static pthread_mutex_t bus_mu = PTHREAD_MUTEX_INITIALIZER;
static sd_bus *bus;
static unsigned next_id;

typedef struct profile {
	struct profile *next;
	char path[128];
	sd_bus_slot *slot;
} profile;
static profile *profiles;

static int m_release(sd_bus_message *m, void *userdata, sd_bus_error *e) { return sd_bus_reply_method_return(m, ""); }

static int m_new_connection(sd_bus_message *m, void *userdata, sd_bus_error *e)
{
	return sd_bus_reply_method_errorf(m, "org.bluez.Error.Rejected",
					  "btsock accepts connections on its own socket");
}

static int m_request_disconnection(sd_bus_message *m, void *userdata, sd_bus_error *e)
{
	return sd_bus_reply_method_return(m, "");
}

static const sd_bus_vtable profile_vtable[] = {
	SD_BUS_VTABLE_START(0),
	SD_BUS_METHOD("Release", "", "", m_release, SD_BUS_VTABLE_UNPRIVILEGED),
	SD_BUS_METHOD("NewConnection", "oha{sv}", "", m_new_connection, SD_BUS_VTABLE_UNPRIVILEGED),
	SD_BUS_METHOD("RequestDisconnection", "o", "", m_request_disconnection, SD_BUS_VTABLE_UNPRIVILEGED),
	SD_BUS_VTABLE_END,
};

/* Answers what came in meanwhile (bus_mu held). */
static void drain(void)
{
	for (int i = 0; i < 64 && bus && sd_bus_process(bus, NULL) > 0; i++)
		;
}

static int bus_locked(const char *call)
{
	if (bus)
		return 0;
	int rc = sd_bus_open_system(&bus);
	if (rc < 0) {
		bus = NULL;
		return api_fail(-rc, "%s: cannot reach the system D-Bus, where bluetoothd publishes service records: %s",
				call, strerror(-rc));
	}
	return 0;
}

int kn_dbus_register(const char *xml, char *path, size_t cap, const char *call)
{
	profile *p = calloc(1, sizeof *p);
	if (!p)
		return api_fail(ENOMEM, "%s: out of memory", call);
	uint8_t r[16];
	if (getrandom(r, sizeof r, 0) != sizeof r) {
		for (size_t i = 0; i < sizeof r; i++)
			r[i] = (uint8_t)(rand() ^ (getpid() >> (i % 8)));
	}
	r[6] = (uint8_t)((r[6] & 0x0f) | 0x40); /* version 4 */
	r[8] = (uint8_t)((r[8] & 0x3f) | 0x80);
	char uuid[40];
	snprintf(uuid, sizeof uuid, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", r[0], r[1],
		 r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10], r[11], r[12], r[13], r[14], r[15]);

	pthread_mutex_lock(&bus_mu);
	int rc = bus_locked(call);
	if (rc == 0) {
		snprintf(p->path, sizeof p->path, "/org/btsock/profile/p%ld_%u", (long)getpid(), next_id++);
		int e = sd_bus_add_object_vtable(bus, &p->slot, p->path, "org.bluez.Profile1", profile_vtable, NULL);
		if (e < 0)
			rc = api_fail(-e, "%s: cannot export the D-Bus profile object: %s", call, strerror(-e));
	}
	if (rc == 0) {
		sd_bus_error err = SD_BUS_ERROR_NULL;
		sd_bus_message *reply = NULL;
		int e = sd_bus_call_method(bus, "org.bluez", "/org/bluez", "org.bluez.ProfileManager1", "RegisterProfile", &err,
					   &reply, "osa{sv}", p->path, uuid, 4, "ServiceRecord", "s", xml, "Role", "s",
					   "server", "AutoConnect", "b", 0, "Name", "s", "btsock service");
		if (e < 0) {
			if (sd_bus_error_has_name(&err, "org.freedesktop.DBus.Error.ServiceUnknown") ||
			    sd_bus_error_has_name(&err, "org.freedesktop.DBus.Error.NameHasNoOwner"))
				rc = api_fail(EHOSTUNREACH, "%s: bluetoothd is not running (the kernel backend publishes "
							    "records through its D-Bus ProfileManager1)",
					      call);
			else
				rc = api_fail(-e, "%s: bluetoothd refused the record (RegisterProfile): %s", call,
					      err.message ? err.message : strerror(-e));
		}
		sd_bus_message_unref(reply);
		sd_bus_error_free(&err);
	}
	if (rc == 0) {
		p->next = profiles;
		profiles = p;
		snprintf(path, cap, "%s", p->path);
	} else {
		sd_bus_slot_unref(p->slot);
		free(p);
	}
	drain();
	pthread_mutex_unlock(&bus_mu);
	return rc;
}

int kn_dbus_unregister(const char *path)
{
	pthread_mutex_lock(&bus_mu);
	profile *p = NULL;
	for (profile **pp = &profiles; *pp; pp = &(*pp)->next)
		if (strcmp((*pp)->path, path) == 0) {
			p = *pp;
			*pp = p->next;
			break;
		}
	int rc = 0;
	if (p && bus) {
		sd_bus_error err = SD_BUS_ERROR_NULL;
		rc = sd_bus_call_method(bus, "org.bluez", "/org/bluez", "org.bluez.ProfileManager1", "UnregisterProfile",
					&err, NULL, "o", p->path);
		sd_bus_error_free(&err);
		drain();
	}
	if (p) {
		sd_bus_slot_unref(p->slot);
		free(p);
	}
	pthread_mutex_unlock(&bus_mu);
	return rc < 0 ? -1 : 0;
}

/* ---- discovery through bluetoothd: org.bluez.Adapter1.StartDiscovery, then the devices of
 * org.freedesktop.DBus.ObjectManager.GetManagedObjects under the adapter. */

typedef struct {
	char addr[BTSOCK_ADDRSTRLEN];
	char name[BTSOCK_NAMESTRLEN];
	unsigned cls;
	bool has_rssi;
	int rssi;
} seen;

/* The Device1 objects under /org/bluez/hciN/ (bus_mu held): how many, at most max in out; -1 on
 * a bus error. */
static int managed_devices(int dev, seen *out, int max)
{
	sd_bus_error err = SD_BUS_ERROR_NULL;
	sd_bus_message *m = NULL;
	int n = 0;
	char prefix[32];
	snprintf(prefix, sizeof prefix, "/org/bluez/hci%d/", dev);
	if (sd_bus_call_method(bus, "org.bluez", "/", "org.freedesktop.DBus.ObjectManager", "GetManagedObjects", &err, &m,
			       "") < 0) {
		sd_bus_error_free(&err);
		return -1;
	}
	sd_bus_error_free(&err);
	if (sd_bus_message_enter_container(m, 'a', "{oa{sa{sv}}}") <= 0)
		goto out;
	while (sd_bus_message_enter_container(m, 'e', "oa{sa{sv}}") > 0) {
		const char *path = NULL;
		seen d;
		memset(&d, 0, sizeof d);
		bool is_dev = false;
		sd_bus_message_read(m, "o", &path);
		sd_bus_message_enter_container(m, 'a', "{sa{sv}}");
		while (sd_bus_message_enter_container(m, 'e', "sa{sv}") > 0) {
			const char *iface = NULL;
			sd_bus_message_read(m, "s", &iface);
			if (iface && strcmp(iface, "org.bluez.Device1") == 0) {
				is_dev = true;
				sd_bus_message_enter_container(m, 'a', "{sv}");
				while (sd_bus_message_enter_container(m, 'e', "sv") > 0) {
					const char *key = NULL, *str = NULL;
					sd_bus_message_read(m, "s", &key);
					if (key && strcmp(key, "Address") == 0 && sd_bus_message_read(m, "v", "s", &str) > 0)
						snprintf(d.addr, sizeof d.addr, "%s", str);
					else if (key && strcmp(key, "Name") == 0 && sd_bus_message_read(m, "v", "s", &str) > 0)
						snprintf(d.name, sizeof d.name, "%s", str);
					else if (key && strcmp(key, "Class") == 0) {
						uint32_t c = 0;
						if (sd_bus_message_read(m, "v", "u", &c) > 0)
							d.cls = c;
					} else if (key && strcmp(key, "RSSI") == 0) {
						int16_t r = 0;
						if (sd_bus_message_read(m, "v", "n", &r) > 0) {
							d.has_rssi = true;
							d.rssi = r;
						}
					} else
						sd_bus_message_skip(m, "v");
					sd_bus_message_exit_container(m);
				}
				sd_bus_message_exit_container(m);
			} else {
				sd_bus_message_skip(m, "a{sv}");
			}
			sd_bus_message_exit_container(m);
		}
		sd_bus_message_exit_container(m);
		sd_bus_message_exit_container(m);
		if (is_dev && path && strncmp(path, prefix, strlen(prefix)) == 0 && d.addr[0]) {
			if (n < max)
				out[n] = d;
			n++;
		}
	}
out:
	sd_bus_message_unref(m);
	return n;
}

static int adapter_call(int dev, const char *method, sd_bus_error *err)
{
	char path[32];
	snprintf(path, sizeof path, "/org/bluez/hci%d", dev);
	return sd_bus_call_method(bus, "org.bluez", path, "org.bluez.Adapter1", method, err, NULL, "");
}

int kn_dbus_discover(int dev, int duration_ms, struct btsock_device *out, size_t max, const char *call)
{
	enum { MAXSEEN = 256 };
	seen *before = calloc(MAXSEEN, sizeof *before), *after = calloc(MAXSEEN, sizeof *after);
	if (!before || !after) {
		free(before);
		free(after);
		return api_fail(ENOMEM, "%s: out of memory", call);
	}
	pthread_mutex_lock(&bus_mu);
	int rc = bus_locked(call);
	int nb = 0, na = 0;
	if (rc == 0 && (nb = managed_devices(dev, before, MAXSEEN)) < 0)
		rc = api_fail(ENOTSUP, "%s: bluetoothd is not running: the kernel backend discovers devices through "
				       "its D-Bus API when it runs",
			      call);
	if (rc == 0) {
		char path[32];
		snprintf(path, sizeof path, "/org/bluez/hci%d", dev);
		sd_bus_error err = SD_BUS_ERROR_NULL;
		/* BR/EDR only, as btsock_discover's inquiry (an error here is not fatal) */
		sd_bus_call_method(bus, "org.bluez", path, "org.bluez.Adapter1", "SetDiscoveryFilter", &err, NULL, "a{sv}", 1,
				   "Transport", "s", "bredr");
		sd_bus_error_free(&err);
		int e = adapter_call(dev, "StartDiscovery", &err);
		if (e < 0 && !sd_bus_error_has_name(&err, "org.bluez.Error.InProgress"))
			rc = api_fail(-e, "%s: bluetoothd refused to discover on hci%d (StartDiscovery): %s", call, dev,
				      err.message ? err.message : strerror(-e));
		sd_bus_error_free(&err);
	}
	if (rc == 0) {
		/* let the bus run while the inquiry does (signals are read and dropped) */
		struct timespec t0;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		for (;;) {
			struct timespec t;
			clock_gettime(CLOCK_MONOTONIC, &t);
			long ms = (t.tv_sec - t0.tv_sec) * 1000L + (t.tv_nsec - t0.tv_nsec) / 1000000;
			if (ms >= duration_ms)
				break;
			drain();
			sd_bus_wait(bus, (uint64_t)(duration_ms - ms) * 1000u);
		}
		drain();
		na = managed_devices(dev, after, MAXSEEN);
		sd_bus_error err = SD_BUS_ERROR_NULL;
		adapter_call(dev, "StopDiscovery", &err);
		sd_bus_error_free(&err);
		drain();
	}
	pthread_mutex_unlock(&bus_mu);
	size_t n = 0;
	for (int i = 0; rc == 0 && i < na && i < MAXSEEN; i++) {
		/* seen in this discovery: an RSSI (bluetoothd sets it from inquiry results), or new */
		bool known = false;
		for (int k = 0; k < nb && k < MAXSEEN && !known; k++)
			known = strcmp(before[k].addr, after[i].addr) == 0;
		if (known && !after[i].has_rssi)
			continue;
		if (n < max && out) {
			memset(&out[n], 0, sizeof out[n]);
			snprintf(out[n].addr, sizeof out[n].addr, "%s", after[i].addr);
			snprintf(out[n].name, sizeof out[n].name, "%s", after[i].name);
			out[n].device_class = after[i].cls;
			out[n].has_rssi = after[i].has_rssi;
			out[n].rssi = after[i].rssi;
			n++;
		}
	}
	free(before);
	free(after);
	if (rc < 0)
		return -1;
	api_clear_error();
	return (int)n;
}

int kn_dbus_set_alias(int dev, const char *name, const char *call)
{
	char path[32];
	snprintf(path, sizeof path, "/org/bluez/hci%d", dev);
	pthread_mutex_lock(&bus_mu);
	int rc = bus_locked(call);
	if (rc == 0) {
		sd_bus_error err = SD_BUS_ERROR_NULL;
		int e = sd_bus_set_property(bus, "org.bluez", path, "org.bluez.Adapter1", "Alias", &err, "s", name);
		if (e < 0) {
			if (sd_bus_error_has_name(&err, "org.freedesktop.DBus.Error.ServiceUnknown") ||
			    sd_bus_error_has_name(&err, "org.freedesktop.DBus.Error.NameHasNoOwner"))
				rc = api_fail(ENOTSUP, "%s: bluetoothd is not running: the kernel backend sets the name "
						       "through its D-Bus API (Adapter1.Alias)",
					      call);
			else
				rc = api_fail(-e, "%s: bluetoothd refused the name (Adapter1.Alias): %s", call,
					      err.message ? err.message : strerror(-e));
		}
		sd_bus_error_free(&err);
		drain();
	}
	pthread_mutex_unlock(&bus_mu);
	return rc;
}

void kn_dbus_shutdown(void)
{
	pthread_mutex_lock(&bus_mu);
	while (profiles) {
		profile *p = profiles;
		profiles = p->next;
		sd_bus_slot_unref(p->slot);
		free(p);
	}
	if (bus)
		sd_bus_flush_close_unref(bus); /* bluetoothd drops our profiles when we leave the bus */
	bus = NULL;
	pthread_mutex_unlock(&bus_mu);
}

#else /* built without libsystemd */

int kn_dbus_register(const char *xml, char *path, size_t cap, const char *call)
{
	return api_fail(ENOTSUP, "%s: this btsock was built without sd-bus (libsystemd-dev), which the kernel backend "
				 "needs to publish records through bluetoothd",
			call);
}

int kn_dbus_unregister(const char *path) { return 0; }
void kn_dbus_shutdown(void) {}

int kn_dbus_set_alias(int dev, const char *name, const char *call)
{
	return api_fail(ENOTSUP, "%s: this btsock was built without sd-bus (libsystemd-dev)", call);
}

int kn_dbus_discover(int dev, int duration_ms, struct btsock_device *out, size_t max, const char *call)
{
	return api_fail(ENOTSUP, "%s: this btsock was built without sd-bus (libsystemd-dev), through which the kernel "
				 "backend discovers devices (bluetoothd)",
			call);
}

#endif
