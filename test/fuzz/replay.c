/* replay.c - runs a fuzz target once over every file of the directories
 * given (its seed corpus and the crashers kept as regression inputs),
 * built with the ordinary compiler and sanitizers: `make test` replays
 * them without clang or libFuzzer. Prints "N passed, 0 failed"; a finding
 * aborts, as it would under libFuzzer. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

static int
replay_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf;
	long len;

	if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (len = ftell(f)) < 0 ||
	    fseek(f, 0, SEEK_SET) != 0) {
		fprintf(stderr, "replay: cannot read %s\n", path);
		if (f != NULL)
			fclose(f);
		return -1;
	}
	/* Exactly its size, so ASan sees a read past the input. */
	buf = malloc(len > 0 ? (size_t)len : 1);
	if (buf == NULL || fread(buf, 1, (size_t)len, f) != (size_t)len) {
		fprintf(stderr, "replay: cannot read %s\n", path);
		free(buf);
		fclose(f);
		return -1;
	}
	fclose(f);
	LLVMFuzzerTestOneInput(buf, (size_t)len);
	free(buf);
	return 0;
}

/* Without arguments: the target's seeds and kept crashers (FUZZ_NAME). */
static const char *const replay_default[] = {
	"test/fuzz/corpus/" FUZZ_NAME,
	"test/fuzz/regress/" FUZZ_NAME,
};

int
main(int argc, char **argv)
{
	const char *const *dirs = (const char *const *)argv + 1;
	int ndirs = argc - 1, passed = 0, failed = 0;

	if (ndirs == 0) {
		dirs = replay_default;
		ndirs = 2;
	}
	for (int i = 0; i < ndirs; i++) {
		DIR *d = opendir(dirs[i]);
		struct dirent *e;

		if (d == NULL)
			continue; /* no regression inputs yet */
		while ((e = readdir(d)) != NULL) {
			char path[4096];
			struct stat st;

			snprintf(path, sizeof(path), "%s/%s", dirs[i],
			    e->d_name);
			if (e->d_name[0] == '.' || stat(path, &st) != 0 ||
			    !S_ISREG(st.st_mode))
				continue;
			if (replay_file(path) == 0)
				passed++;
			else
				failed++;
		}
		closedir(d);
	}
	printf("%d passed, %d failed\n", passed, failed);
	return failed != 0;
}
