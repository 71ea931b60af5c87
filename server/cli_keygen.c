/*
 * cli_keygen.c — `msreg keygen --name ORIGIN --out FILE`.
 *
 * Generates an Ed25519 signer key for the audit log and writes it in the
 * signed-note text form PRIVATE+KEY+<name>+<keyid>+<base64(0x01||seed)> to
 * FILE, created with mode 0600 and never overwritten (O_EXCL), then prints the
 * verifier key <name>+<keyid>+<base64(0x01||pubkey)> on stdout.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "msreg/cli.h"
#include "msreg/note.h"

int
msr_cli_keygen(const struct msr_config *cfg, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "name", required_argument, NULL, 'n' },
		{ "out", required_argument, NULL, 'o' },
		{ NULL, 0, NULL, 0 },
	};
	struct msr_note_signer s;
	char key[MSR_NOTE_KEY_TEXT_MAX], vkey[MSR_NOTE_KEY_TEXT_MAX];
	const char *name = NULL, *out = NULL;
	int ch, fd = -1, ret = 1;
	size_t len;

	(void)cfg;
	memset(&s, 0, sizeof(s));
	optind = 1;
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case 'n': name = optarg; break;
		case 'o': out = optarg; break;
		default: return 2;
		}
	}
	if (name == NULL || out == NULL || optind != argc) {
		fprintf(stderr, "usage: msreg keygen --name ORIGIN --out FILE\n");
		return 2;
	}
	if (!msr_note_valid_name(name, strlen(name))) {
		fprintf(stderr, "msreg: invalid key name \"%s\" (no spaces or '+')\n", name);
		return 2;
	}
	if (msr_note_signer_generate(&s, name) != 0 ||
	    msr_note_signer_format(&s, key, sizeof(key)) != 0 ||
	    msr_note_verifier_format(&s.v, vkey, sizeof(vkey)) != 0) {
		fprintf(stderr, "msreg: key generation failed\n");
		goto done;
	}
	fd = open(out, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		fprintf(stderr, "msreg: cannot create %s: %s%s\n", out, strerror(errno),
		    errno == EEXIST ? " (refusing to overwrite a signer key)" : "");
		goto done;
	}
	len = strlen(key);
	key[len] = '\n';
	if (write(fd, key, len + 1) != (ssize_t)(len + 1) || fsync(fd) != 0) {
		fprintf(stderr, "msreg: cannot write %s: %s\n", out, strerror(errno));
		unlink(out);
		goto done;
	}
	printf("%s\n", vkey);
	ret = 0;
done:
	if (fd >= 0)
		close(fd);
	sodium_memzero(key, sizeof(key));
	msr_note_signer_wipe(&s);
	return ret;
}
