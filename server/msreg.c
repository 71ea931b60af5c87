/*
 * msreg.c — the operator CLI. Talks to the database directly (owner URL for
 * migrations, application URL otherwise); never needs a running msregd.
 *
 *   msreg [--config FILE] migrate
 *   msreg [--config FILE] client create --role ROLE --name NAME [--org ORG]
 *   msreg [--config FILE] client revoke ID
 *   msreg keygen --name ORIGIN --out FILE
 *   msreg [--config FILE] audit verify (--url URL --key KEY [--vkey VKEY] | --db)
 *   msreg audit receipt verify FILE --vkey KEY [--leaf FILE]
 *   msreg audit monitor --url URL --state FILE [--rules FILE] [--once] ...
 *   msreg witness --config FILE | msreg witness keygen --name NAME --out FILE
 *   msreg import|search|lookup --url URL ...   (HTTP client commands, cli_client.c)
 *   msreg COMMAND --help
 *
 * Output contracts (API.md "Operations contract"): `client create` prints the
 * new API key alone on one line of stdout; `keygen` writes the signer key
 * with mode 0600 and prints the verifier key. Diagnostics go to stderr.
 */
#include <getopt.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "msreg/auth.h"
#include "msreg/cli.h"
#include "msreg/config.h"
#include "msreg/db.h"
#include "msreg/log.h"
#include "msreg/migrate.h"
#include "msreg/witness.h"

struct command {
	const char *name;
	int (*run)(const struct msr_config *cfg, int argc, char **argv);
	const char *help;
};

static int
cmd_migrate(const struct msr_config *cfg, int argc, char **argv)
{
	char err[512];
	PGconn *pg;
	int n;

	(void)argv;
	if (argc != 1) {
		fprintf(stderr, "usage: msreg migrate\n");
		return 2;
	}
	pg = msr_db_connect(cfg->db_owner_url, err, sizeof(err));
	if (pg == NULL) {
		fprintf(stderr, "msreg: cannot connect to the database: %s\n", err);
		return 1;
	}
	n = msr_migrate(pg, err, sizeof(err));
	PQfinish(pg);
	if (n < 0) {
		fprintf(stderr, "msreg: migration failed: %s\n", err);
		return 1;
	}
	fprintf(stderr, "msreg: %d migration(s) applied; schema up to date\n", n);
	return 0;
}

static int
client_create(const struct msr_config *cfg, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "role", required_argument, NULL, 'r' },
		{ "name", required_argument, NULL, 'n' },
		{ "org", required_argument, NULL, 'o' },
		{ NULL, 0, NULL, 0 },
	};
	const char *role_s = NULL, *name = NULL, *org = NULL;
	char key[MSR_KEY_TEXT_LEN + 1], err[512];
	struct msr_db_pool *pool = NULL;
	struct msr_db_conn *c = NULL;
	uint8_t secret[32];
	enum msr_role role;
	int64_t id;
	int ch, ret = 1;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case 'r': role_s = optarg; break;
		case 'n': name = optarg; break;
		case 'o': org = optarg; break;
		default: return 2;
		}
	}
	role = msr_role_parse(role_s);
	if (name == NULL || role == MSR_ROLE_NONE || optind != argc) {
		fprintf(stderr, "usage: msreg client create --role "
		    "manufacturer|dealer|investigator|auditor|admin --name NAME [--org ORG]\n");
		return 2;
	}
	if ((role == MSR_ROLE_MANUFACTURER || role == MSR_ROLE_DEALER ||
	    role == MSR_ROLE_INVESTIGATOR) && org == NULL) {
		fprintf(stderr, "msreg: role %s requires --org\n", role_s);
		return 2;
	}
	pool = msr_db_pool_new(cfg->db_url, 1, 5000, 0);
	if (pool == NULL || (c = msr_db_acquire(pool)) == NULL) {
		fprintf(stderr, "msreg: cannot connect to the database\n");
		goto done;
	}
	if (msr_auth_load_secret(c, secret) != 0) {
		fprintf(stderr, "msreg: no key secret in the database; run `msreg migrate` first\n");
		goto done;
	}
	if (msr_auth_create_client(c, secret, name, role, org, key, &id, err, sizeof(err)) != 0) {
		fprintf(stderr, "msreg: cannot create client: %s\n", err);
		goto done;
	}
	printf("%s\n", key);
	fflush(stdout);
	fprintf(stderr, "msreg: created client %lld (%s, role %s); the key is shown only once\n",
	    (long long)id, name, role_s);
	sodium_memzero(key, sizeof(key));
	ret = 0;
done:
	sodium_memzero(secret, sizeof(secret));
	msr_db_release(c);
	msr_db_pool_free(pool);
	return ret;
}

static int
client_revoke(const struct msr_config *cfg, int argc, char **argv)
{
	const char *values[1];
	char err[512];
	PGresult *res;
	PGconn *pg;
	int ret = 1;

	if (argc != 2) {
		fprintf(stderr, "usage: msreg client revoke ID\n");
		return 2;
	}
	values[0] = argv[1];
	pg = msr_db_connect(cfg->db_url, err, sizeof(err));
	if (pg == NULL) {
		fprintf(stderr, "msreg: cannot connect to the database: %s\n", err);
		return 1;
	}
	res = PQexecParams(pg, "UPDATE api_clients SET revoked_at = coalesce(revoked_at, now())"
	    " WHERE id = $1::bigint RETURNING id", 1, NULL, values, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		fprintf(stderr, "msreg: %s", PQresultErrorMessage(res));
	else if (PQntuples(res) == 0)
		fprintf(stderr, "msreg: no client %s\n", argv[1]);
	else
		ret = 0;
	PQclear(res);
	PQfinish(pg);
	return ret;
}

static int
cmd_client(const struct msr_config *cfg, int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "create") == 0)
		return client_create(cfg, argc - 1, argv + 1);
	if (argc >= 2 && strcmp(argv[1], "revoke") == 0)
		return client_revoke(cfg, argc - 1, argv + 1);
	fprintf(stderr, "usage: msreg client create|revoke ...\n");
	return 2;
}

/* `msreg audit monitor` (cli_monitor.c); every other audit command as before. */
static int
cmd_audit(const struct msr_config *cfg, int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "monitor") == 0)
		return msr_cli_monitor(cfg, argc - 1, argv + 1);
	return msr_cli_audit(cfg, argc, argv);
}

static const struct command commands[] = {
	{ "migrate", cmd_migrate, "apply database migrations" },
	{ "client", cmd_client, "create or revoke API clients" },
	{ "keygen", msr_cli_keygen, "generate the audit log signer key" },
	{ "audit", cmd_audit, "verify the audit log or a receipt; monitor a log" },
	{ "witness", msr_cli_witness, "run a C2SP tlog-witness (or keygen for one)" },
	{ "import", msr_cli_import, "register a production file (CSV) through the API" },
	{ "search", msr_cli_search, "search partial readings (investigators)" },
	{ "lookup", msr_cli_lookup, "look up one code (investigators)" },
};

/* `msreg COMMAND --help` for the commands whose parser does not answer it. */
static const struct {
	const char *name, *text;
} command_help[] = {
	{ "migrate", "usage: msreg [--config FILE] migrate\n"
	  "Applies the database migrations (as [database] owner_url, else url).\n" },
	{ "client", "usage: msreg [--config FILE] client create --role ROLE --name NAME"
	  " [--org ORG]\n       msreg [--config FILE] client revoke ID\n"
	  "ROLE: manufacturer|dealer|investigator|auditor|admin (--org required for the"
	  " first three).\ncreate prints the new API key alone on one line of stdout.\n" },
	{ "keygen", "usage: msreg keygen --name ORIGIN --out FILE\n"
	  "Writes the audit signer key to FILE (mode 0600), prints the verifier key.\n" },
	{ "audit", "usage: msreg [--config FILE] audit verify (--url URL --key KEY"
	  " [--vkey VKEY]... | --db [--vkey VKEY]...)\n"
	  "       msreg audit receipt verify FILE --vkey KEY... [--leaf FILE]\n"
	  "  several --vkey: a signature by any of them will do (key rotation)\n"
	  "       msreg audit monitor --url URL --state FILE [--key-file FILE] [--vkey VKEY]\n"
	  "           [--rules FILE] [--require-witness VKEY]... [--once] [--interval SEC]\n" },
	{ "witness", "usage: msreg witness --config FILE\n"
	  "       msreg witness keygen --name NAME --out FILE\n"
	  "Serves POST /add-checkpoint (c2sp.org/tlog-witness) with cosignature/v1"
	  " cosignatures.\n" },
};

static int
want_help(int argc, char **argv)
{
	for (int k = 1; k < argc; k++)
		if (strcmp(argv[k], "--help") == 0 || strcmp(argv[k], "-h") == 0)
			return 1;
	return 0;
}

static void
usage(void)
{
	fprintf(stderr, "usage: msreg [--config FILE] COMMAND ...\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(stderr, "  %-8s %s\n", commands[i].name, commands[i].help);
	exit(2);
}

int
main(int argc, char **argv)
{
	struct msr_config cfg;
	char err[1024];
	int i = 1, ret;

	msr_config_defaults(&cfg);
	if (sodium_init() < 0)
		msr_fatal("libsodium failed to initialise");
	if (i + 1 < argc && strcmp(argv[i], "--config") == 0) {
		if (msr_config_load(&cfg, argv[i + 1], err, sizeof(err)) != 0) {
			fprintf(stderr, "%s\n", err);
			return 1;
		}
		i += 2;
	} else if (i < argc && strncmp(argv[i], "--config=", 9) == 0) {
		if (msr_config_load(&cfg, argv[i] + 9, err, sizeof(err)) != 0) {
			fprintf(stderr, "%s\n", err);
			return 1;
		}
		i++;
	}
	if (cfg.db_owner_url == NULL)
		cfg.db_owner_url = strdup(cfg.db_url);
	msr_log_set_level((enum msr_log_level)cfg.log_level);
	if (i >= argc)
		usage();
	if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "help") == 0) {
		printf("usage: msreg [--config FILE] COMMAND ...   (msreg COMMAND --help)\n");
		for (size_t k = 0; k < sizeof(commands) / sizeof(commands[0]); k++)
			printf("  %-8s %s\n", commands[k].name, commands[k].help);
		msr_config_free(&cfg);
		return 0;
	}
	for (size_t k = 0; want_help(argc - i, argv + i) &&
	    k < sizeof(command_help) / sizeof(command_help[0]); k++)
		if (strcmp(argv[i], command_help[k].name) == 0) {
			fputs(command_help[k].text, stdout);
			msr_config_free(&cfg);
			return 0;
		}
	for (size_t k = 0; k < sizeof(commands) / sizeof(commands[0]); k++) {
		if (strcmp(argv[i], commands[k].name) == 0) {
			ret = commands[k].run(&cfg, argc - i, argv + i);
			msr_config_free(&cfg);
			return ret;
		}
	}
	usage();
}
