/*
 * handlers_ui.c — the web console's static files, served at /ui/ from the
 * copies compiled into the binary (deploy/embed.sh, "ui/<served name>").
 *
 *   GET /ui          308 to /ui/
 *   GET /ui/         index.html                      Cache-Control: no-cache
 *   GET /ui/{name}   app.<H>.js, style.<H>.css, ...  Cache-Control: immutable, 1 year
 *
 * The console is plain HTML, CSS and ES modules; it talks to the API with the
 * key in the Authorization header only (server/ui/api.js). These routes are
 * public, unaudited and not part of the API (check_routes.c leaves them out of
 * the OpenAPI comparison): they serve the same bytes to everyone.
 *
 * Invariants
 *   1. Only embedded names are served: the name is one path segment (the
 *      router's {} never holds '/'), looked up verbatim in the embedded table;
 *      anything else is 404 not_found. No file system access.
 *   2. Every reply of these routes, errors included, carries the console's
 *      security headers: a Content-Security-Policy of default-src 'self' (no
 *      inline script or style, no framing, no plugins), X-Frame-Options DENY,
 *      Referrer-Policy no-referrer, X-Content-Type-Options nosniff (http.c).
 *   3. Versioned assets are cacheable for a year: their name changes with any
 *      change of any console file (deploy/embed.sh). index.html is revalidated
 *      on every load, so a new release is picked up at once.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "msreg/embedded.h"
#include "msreg/handlers.h"

#define UI_CSP \
	"default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'; object-src 'none'"

#define UI_SECURITY \
	"Content-Security-Policy", UI_CSP, \
	"X-Frame-Options", "DENY", \
	"Referrer-Policy", "no-referrer", \
	"Cross-Origin-Opener-Policy", "same-origin"

static const char *const hdr_index[] = { UI_SECURITY, "Cache-Control", "no-cache", NULL };
static const char *const hdr_asset[] = { UI_SECURITY,
	"Cache-Control", "public, max-age=31536000, immutable", NULL };
static const char *const hdr_error[] = { UI_SECURITY, NULL };

static const struct {
	const char *ext;
	const char *ctype;
} ui_types[] = {
	{ ".html", "text/html; charset=utf-8" },
	{ ".js", "text/javascript; charset=utf-8" },
	{ ".css", "text/css; charset=utf-8" },
	{ ".svg", "image/svg+xml" },
	{ ".json", "application/json" },
	{ ".txt", "text/plain; charset=utf-8" },
};

static const char *
content_type(const char *name)
{
	const char *dot = strrchr(name, '.');

	for (size_t i = 0; dot != NULL && i < sizeof(ui_types) / sizeof(ui_types[0]); i++)
		if (strcmp(dot, ui_types[i].ext) == 0)
			return ui_types[i].ctype;
	return NULL;
}

/* Reply with embedded file ui/<name>, or 404. */
static void
serve(struct msr_req *r, const char *name, const char *const *headers)
{
	char path[256];
	const char *text = NULL, *ctype = content_type(name);
	char *copy;
	int n = snprintf(path, sizeof(path), "ui/%s", name);

	if (n > 0 && (size_t)n < sizeof(path))
		text = msr_embedded_get(path);
	if (text == NULL || ctype == NULL) {
		msr_reply_static_headers(r, hdr_error);
		msr_reply_error(r, 404, "not_found", NULL, "no such console file: %s", r->path);
		return;
	}
	copy = strdup(text);
	if (copy == NULL) {
		msr_reply_unavailable(r, "out of memory");
		return;
	}
	msr_reply_static_headers(r, headers);
	msr_reply_text(r, 200, ctype, copy);
}

void
msr_h_ui_redirect(struct msr_req *r)
{
	msr_reply_static_headers(r, hdr_error);
	msr_reply_header(r, "Location", "/ui/");
	msr_reply_text(r, 308, "text/plain; charset=utf-8", strdup("/ui/\n"));
}

void
msr_h_ui_index(struct msr_req *r)
{
	serve(r, "index.html", hdr_index);
}

void
msr_h_ui_asset(struct msr_req *r)
{
	const char *name = r->capture[0];

	serve(r, name, strcmp(name, "index.html") == 0 ? hdr_index : hdr_asset);
}
