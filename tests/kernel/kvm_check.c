/* kvm_check: runs one kernel check script in the test VM and judges its output (kernel tier).
 *
 *   kvm_check [-t SECS] RUN_IN_VM BTSOCK SCRIPT [FILE...]
 *
 * Copies the btsock binary, SCRIPT and any FILEs (executable ones stay executable: test
 * programs) into a fresh directory under /tmp, runs
 * `RUN_IN_VM -d DIR -t SECS "sh SCRIPT"` (tests/kernel-vm/run-in-vm: qemu with a Debian kernel,
 * btvirt inside), streams its output and counts the script's check lines: a line starting with
 * "ok:" (or "PASS:") is a passed check, one starting with "FAIL:" a failed one. Prints
 * "N passed, M failed" and the FAIL lines again at the end.
 *
 * Exit status: 0 when the script exited 0, printed at least one check line and no FAIL line;
 * 1 otherwise; 77 (CTest's SKIP_RETURN_CODE) with one "SKIP: ..." line when qemu cannot run
 * here (run-in-vm exits 126: qemu missing, or the kernel did not boot under it).
 *
 * The VM is pinned to one host CPU (it is CPU-heavy, and the machines are shared): CPU 1 when
 * this process may run there, else none; BTSOCK_KVM_CPU=N picks another, BTSOCK_KVM_CPU=none
 * pins nothing. The VM's whole console goes to ./SCRIPT.console.log (RIG_LOG), unless RIG_LOG
 * is set. KVM_CACHE (where run-in-vm keeps the kernel + initramfs) is passed on as it is.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#define SKIP_CODE 77
#define CANNOT_RUN_STATUS 126
#define CANNOT_RUN_PREFIX "run-in-vm: cannot run the VM here: "

static volatile pid_t child = -1;
static volatile sig_atomic_t stopped;

/* Stopped (Ctrl-C, SIGTERM): stop the VM runner's process group (run-in-vm stops qemu), then
 * main() reads to the end of its output, cleans up and dies of the same signal. */
static void forward_signal(int sig)
{
	stopped = sig;
	if (child > 0)
		kill(-child, SIGTERM);
}

static const char *base_name(const char *path)
{
	const char *slash = strrchr(path, '/');
	return slash ? slash + 1 : path;
}

static int copy_file(const char *from, const char *dir, mode_t mode)
{
	char to[PATH_MAX];
	snprintf(to, sizeof(to), "%s/%s", dir, base_name(from));
	int in = open(from, O_RDONLY | O_CLOEXEC);
	if (in < 0) {
		fprintf(stderr, "kvm_check: %s: %s\n", from, strerror(errno));
		return -1;
	}
	int out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (out < 0) {
		fprintf(stderr, "kvm_check: %s: %s\n", to, strerror(errno));
		close(in);
		return -1;
	}
	char buf[65536];
	ssize_t n;
	int rc = 0;
	while ((n = read(in, buf, sizeof(buf))) > 0) {
		if (write(out, buf, (size_t)n) != n) {
			fprintf(stderr, "kvm_check: writing %s: %s\n", to, strerror(errno));
			rc = -1;
			break;
		}
	}
	if (n < 0)
		rc = -1;
	close(in);
	if (close(out) != 0)
		rc = -1;
	return rc;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	remove(path);
	return 0;
}

/* Pins this process (and so the VM runner and qemu) to one CPU, as `taskset -c 1` would. */
static void pin_cpu(void)
{
	const char *want = getenv("BTSOCK_KVM_CPU");
	if (want && strcmp(want, "none") == 0)
		return;
	int cpu = want ? atoi(want) : 1;
	cpu_set_t allowed;
	if (sched_getaffinity(0, sizeof(allowed), &allowed) != 0 || cpu < 0 || cpu >= CPU_SETSIZE ||
	    !CPU_ISSET(cpu, &allowed) || CPU_COUNT(&allowed) < 2) {
		if (want)
			fprintf(stderr, "kvm_check: cannot pin to CPU %s, not pinning\n", want);
		return;
	}
	cpu_set_t one;
	CPU_ZERO(&one);
	CPU_SET(cpu, &one);
	if (sched_setaffinity(0, sizeof(one), &one) != 0)
		perror("kvm_check: sched_setaffinity");
}

static bool starts_with(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

static void usage(void)
{
	fprintf(stderr, "usage: kvm_check [-t SECS] RUN_IN_VM BTSOCK SCRIPT [FILE...]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	const char *timeout = "600";
	int opt;
	while ((opt = getopt(argc, argv, "t:")) != -1) {
		if (opt == 't')
			timeout = optarg;
		else
			usage();
	}
	if (argc - optind < 3)
		usage();
	const char *run_in_vm = argv[optind], *btsock = argv[optind + 1], *script = argv[optind + 2];
	const char *name = base_name(script);

	char dir[] = "/tmp/btsock-kvm.XXXXXX";
	if (!mkdtemp(dir)) {
		perror("kvm_check: mkdtemp");
		return 1;
	}
	int setup = copy_file(btsock, dir, 0755) | copy_file(script, dir, 0644);
	for (int i = optind + 3; i < argc; i++) { /* programs stay executable */
		struct stat st;
		bool exec = stat(argv[i], &st) == 0 && (st.st_mode & S_IXUSR);
		setup |= copy_file(argv[i], dir, exec ? 0755 : 0644);
	}
	if (setup != 0) {
		nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
		return 1;
	}

	char log[PATH_MAX], cwd[PATH_MAX / 2];
	if (!getenv("RIG_LOG") && getcwd(cwd, sizeof(cwd))) {
		snprintf(log, sizeof(log), "%s/%s.console.log", cwd, name);
		setenv("RIG_LOG", log, 1);
	}
	char command[PATH_MAX];
	snprintf(command, sizeof(command), "sh %s", name);

	pin_cpu();
	int out[2];
	if (pipe(out) != 0) {
		perror("kvm_check: pipe");
		return 1;
	}
	fflush(stdout);
	child = fork();
	if (child < 0) {
		perror("kvm_check: fork");
		return 1;
	}
	if (child == 0) {
		setpgid(0, 0);
		dup2(out[1], STDOUT_FILENO);
		dup2(out[1], STDERR_FILENO);
		close(out[0]);
		close(out[1]);
		execl(run_in_vm, run_in_vm, "-d", dir, "-t", timeout, command, (char *)NULL);
		fprintf(stderr, "kvm_check: exec %s: %s\n", run_in_vm, strerror(errno));
		_exit(127);
	}
	setpgid(child, child);
	struct sigaction sa = {.sa_handler = forward_signal, .sa_flags = SA_RESTART};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	close(out[1]);

	FILE *in = fdopen(out[0], "r");
	char *line = NULL, *cannot_run = NULL, *fails = NULL;
	size_t cap = 0, fails_len = 0;
	ssize_t len;
	int passed = 0, failed = 0;
	bool counting = true;
	while ((len = getline(&line, &cap, in)) > 0) {
		if (starts_with(line, CANNOT_RUN_PREFIX)) {
			free(cannot_run);
			cannot_run = strdup(line + strlen(CANNOT_RUN_PREFIX));
			continue; /* said once, in the SKIP line */
		}
		fputs(line, stdout);
		if (line[len - 1] != '\n')
			putchar('\n');
		fflush(stdout);
		if (starts_with(line, "run-in-vm: no exit status"))
			counting = false; /* what follows is the console's tail again */
		if (!counting)
			continue;
		if (starts_with(line, "ok:") || starts_with(line, "PASS:")) {
			passed++;
		} else if (starts_with(line, "FAIL:")) {
			failed++;
			char *grown = realloc(fails, fails_len + (size_t)len + 2);
			if (grown) {
				fails = grown;
				memcpy(fails + fails_len, line, (size_t)len);
				fails_len += (size_t)len;
				if (line[len - 1] != '\n')
					fails[fails_len++] = '\n';
				fails[fails_len] = '\0';
			}
		}
	}
	fclose(in);
	free(line);

	int status;
	while (waitpid(child, &status, 0) < 0 && errno == EINTR)
		;
	child = -1;
	nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
	if (stopped) {
		signal(stopped, SIG_DFL);
		raise(stopped);
	}
	int rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);

	if (rc == CANNOT_RUN_STATUS && cannot_run) {
		cannot_run[strcspn(cannot_run, "\n")] = '\0';
		printf("SKIP: kernel tier: qemu cannot run the kernel VM here: %s\n", cannot_run);
		free(cannot_run);
		free(fails);
		return SKIP_CODE;
	}
	free(cannot_run);

	printf("== %s: %d passed, %d failed, exit status %d (console: %s)\n", name, passed, failed, rc,
	       getenv("RIG_LOG") ? getenv("RIG_LOG") : "see run-in-vm");
	if (fails)
		fputs(fails, stdout);
	free(fails);
	if (passed == 0 && failed == 0)
		printf("FAIL: %s printed no check line (ok:/FAIL:)\n", name);
	return rc == 0 && failed == 0 && passed > 0 ? 0 : 1;
}
