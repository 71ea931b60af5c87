#include "msreg/witness.h"
#include <stdio.h>
int
msr_cli_monitor(const struct msr_config *cfg, int argc, char **argv)
{
	(void)cfg; (void)argc; (void)argv;
	fprintf(stderr, "not yet\n");
	return 2;
}
