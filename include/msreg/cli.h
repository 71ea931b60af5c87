/*
 * cli.h — msreg subcommands implemented outside msreg.c. Each takes the
 * loaded config and argv starting at the command name; returns the exit status.
 */
#ifndef MSREG_CLI_H
#define MSREG_CLI_H

struct msr_config;

/* msreg keygen --name ORIGIN --out FILE (cli_keygen.c) */
int msr_cli_keygen(const struct msr_config *cfg, int argc, char **argv);
/* msreg audit verify ... | msreg audit receipt verify ... (cli_audit.c) */
int msr_cli_audit(const struct msr_config *cfg, int argc, char **argv);

/* msreg import|search|lookup --url URL ... (cli_client.c; HTTP, libcurl) */
int msr_cli_import(const struct msr_config *cfg, int argc, char **argv);
int msr_cli_search(const struct msr_config *cfg, int argc, char **argv);
int msr_cli_lookup(const struct msr_config *cfg, int argc, char **argv);

#endif
