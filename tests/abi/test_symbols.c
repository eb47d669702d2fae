/* test_symbols.c - symbol hygiene: libbtsock.so and libbtsock.a define no global symbol but
 * the public API's btsock_*. BlueZ's libbluetooth defines hci_*, sdp_*, ... with signatures of
 * its own; a program that links both must get each library's own functions.
 *
 * Reads the ELF files directly (System V ABI, <elf.h>): .dynsym of the shared library, .symtab
 * of each object in the static archive (ar format: "!<arch>\n", then 60-byte member headers).
 * Usage: test_symbols [LIBBTSOCK.so LIBBTSOCK.a] (default: the build's own libraries). */
#include <elf.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

static const char *so_path, *a_path;

typedef struct {
	int stray;      /* defined globals not named btsock_* */
	int public_api; /* btsock_* defined */
	char first_stray[128];
	bool has_socket, has_error, has_hci_disconnect, has_sdp_record_free;
} symbols;

static bool defined_global(const Elf64_Sym *s)
{
	int bind = ELF64_ST_BIND(s->st_info);
	return (bind == STB_GLOBAL || bind == STB_WEAK) && s->st_shndx != SHN_UNDEF &&
	       s->st_shndx != SHN_ABS; /* SHN_ABS: the version node BTSOCK_0 */
}

static void note_symbol(symbols *out, const char *name)
{
	if (strncmp(name, "btsock_", 7) == 0) {
		out->public_api++;
	} else {
		if (!out->stray)
			snprintf(out->first_stray, sizeof out->first_stray, "%s", name);
		out->stray++;
	}
	out->has_socket |= strcmp(name, "btsock_socket") == 0;
	out->has_error |= strcmp(name, "btsock_error") == 0;
	out->has_hci_disconnect |= strcmp(name, "hci_disconnect") == 0;
	out->has_sdp_record_free |= strcmp(name, "sdp_record_free") == 0;
}

/* Walks the symbol table of type `want` (SHT_DYNSYM or SHT_SYMTAB) of one ELF64 image. */
static void scan_elf(const uint8_t *img, size_t len, uint32_t want, symbols *out)
{
	assert_true(len >= sizeof(Elf64_Ehdr));
	const Elf64_Ehdr *eh = (const Elf64_Ehdr *)img;
	assert_memory_equal(eh->e_ident, ELFMAG, SELFMAG);
	assert_int_equal(eh->e_ident[EI_CLASS], ELFCLASS64);
	assert_true(eh->e_shoff + (uint64_t)eh->e_shnum * sizeof(Elf64_Shdr) <= len);
	const Elf64_Shdr *sh = (const Elf64_Shdr *)(img + eh->e_shoff);
	int tables = 0;
	for (unsigned i = 0; i < eh->e_shnum; i++) {
		if (sh[i].sh_type != want)
			continue;
		tables++;
		assert_true(sh[i].sh_link < eh->e_shnum);
		const Elf64_Shdr *strs = &sh[sh[i].sh_link];
		assert_true(sh[i].sh_offset + sh[i].sh_size <= len);
		assert_true(strs->sh_offset + strs->sh_size <= len);
		const Elf64_Sym *syms = (const Elf64_Sym *)(img + sh[i].sh_offset);
		size_t n = sh[i].sh_size / sizeof(Elf64_Sym);
		for (size_t k = 0; k < n; k++) {
			if (!defined_global(&syms[k]))
				continue;
			assert_true(syms[k].st_name < strs->sh_size);
			note_symbol(out, (const char *)img + strs->sh_offset + syms[k].st_name);
		}
	}
	assert_int_equal(tables, 1);
}

static uint8_t *map_file(const char *path, size_t *len)
{
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		fail_msg("cannot open %s", path);
	struct stat st;
	assert_int_equal(fstat(fd, &st), 0);
	*len = (size_t)st.st_size;
	void *p = mmap(NULL, *len, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	assert_true(p != MAP_FAILED);
	return p;
}

static void test_shared_library_exports_only_api(void **state)
{
	size_t len;
	uint8_t *img = map_file(so_path, &len);
	symbols s = { 0 };
	scan_elf(img, len, SHT_DYNSYM, &s);
	munmap(img, len);
	if (s.stray)
		fail_msg("%s exports %d non-API symbols, e.g. %s", so_path, s.stray, s.first_stray);
	assert_true(s.has_socket && s.has_error);
	assert_false(s.has_hci_disconnect || s.has_sdp_record_free);
	assert_true(s.public_api >= 20);
}

static void test_static_library_defines_only_api(void **state)
{
	size_t len;
	uint8_t *img = map_file(a_path, &len);
	assert_true(len >= 8 && memcmp(img, "!<arch>\n", 8) == 0);
	symbols s = { 0 };
	int objects = 0;
	size_t off = 8;
	while (off + 60 <= len) {
		const char *hdr = (const char *)img + off;
		char size_field[11];
		memcpy(size_field, hdr + 48, 10);
		size_field[10] = '\0';
		size_t size = strtoul(size_field, NULL, 10);
		size_t data = off + 60;
		assert_true(size <= len - data);
		if (size >= SELFMAG && memcmp(img + data, ELFMAG, SELFMAG) == 0) {
			/* Members are only 2-byte aligned: copy to read the headers as structs. */
			uint8_t *obj = malloc(size);
			assert_non_null(obj);
			memcpy(obj, img + data, size);
			scan_elf(obj, size, SHT_SYMTAB, &s);
			free(obj);
			objects++;
		}
		off = data + size + (size & 1); /* members are 2-byte aligned */
	}
	munmap(img, len);
	assert_true(objects >= 1);
	if (s.stray)
		fail_msg("%s defines %d non-API globals, e.g. %s", a_path, s.stray, s.first_stray);
	assert_true(s.has_socket && s.has_error);
}

int main(int argc, char **argv)
{
	if (argc != 1 && argc != 3) {
		fprintf(stderr, "usage: %s [LIBBTSOCK.so LIBBTSOCK.a]\n", argv[0]);
		return 2;
	}
	so_path = argc == 3 ? argv[1] : BTSOCK_SO;
	a_path = argc == 3 ? argv[2] : BTSOCK_A;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_shared_library_exports_only_api),
		cmocka_unit_test(test_static_library_defines_only_api),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
