/*
 * fuzz_config.c — libFuzzer target for the INI configuration parser
 * (server/config.c over libinih): arbitrary file contents must load or fail
 * with a "file:line: message" error, never crash, and a loaded config must
 * satisfy the documented ranges.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "msreg/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char path[64];
	struct msr_config cfg;
	char err[1024];
	FILE *f;

	if (path[0] == '\0')
		snprintf(path, sizeof(path), "/tmp/msreg-fuzz-config-%d.ini", (int)getpid());
	f = fopen(path, "wb");
	if (f == NULL)
		return 0;
	fwrite(data, 1, size, f);
	fclose(f);
	msr_config_defaults(&cfg);
	if (msr_config_load(&cfg, path, err, sizeof(err)) == 0) {
		if (cfg.http_port < 0 || cfg.http_port > 65535 || cfg.http_threads < 1 ||
		    cfg.db_pool_size < 1 || cfg.http_body_limit < 1024 ||
		    cfg.db_owner_url == NULL || cfg.audit_origin[0] == '\0')
			abort();
	} else if (strncmp(err, path, strlen(path)) != 0) {
		abort();     /* every error names the file */
	}
	msr_config_free(&cfg);
	return 0;
}
