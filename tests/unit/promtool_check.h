/* Runs `promtool check metrics` on Prometheus text for the unit tests, so
 * that what we serve is checked by Prometheus' own parser and linter.
 * Header-only (static functions): each test binary is its own program. */
#ifndef KP_TEST_PROMTOOL_CHECK_H
#define KP_TEST_PROMTOOL_CHECK_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/strbuf.h"

/* promtool (Debian 12: 2.42) `check metrics` reads stdin, writes nothing to
 * stdout and exits with:
 *   0  parsed, no lint problem;
 *   1  parse failure: one stderr line "error while linting: <parser error>"
 *      (linting needs a parse, so no lint lines come with it);
 *   3  parsed, lint problems: one stderr line per problem,
 *      "<metric family> <problem text>", sorted.
 * Not our exit code conventions: these are promtool's own. */
#define PROMTOOL_OK 0
#define PROMTOOL_PARSE_ERROR 1
#define PROMTOOL_LINT_PROBLEMS 3

/* Writes text to a temp file, runs `promtool check metrics < file`
 * ($PROMTOOL overrides the binary) and returns its exit code, with its
 * stdout and stderr in *output. -1 if it could not be run at all; 127 is
 * the shell's "promtool not found". */
static int promtool_check_metrics(const char *text, size_t len, kp_strbuf_t *output)
{
    const char *tmpdir = getenv("TMPDIR");
    char path[512];
    snprintf(path, sizeof path, "%s/kp-promtool-XXXXXX", tmpdir && *tmpdir ? tmpdir : "/tmp");
    int fd = mkstemp(path);
    if (fd < 0)
        return -1;
    size_t off = 0;
    while (off < len) {
        ssize_t n = write(fd, text + off, len - off);
        if (n <= 0) {
            close(fd);
            unlink(path);
            return -1;
        }
        off += (size_t)n;
    }
    close(fd);

    const char *promtool = getenv("PROMTOOL");
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "'%s' check metrics < '%s' 2>&1",
             promtool && *promtool ? promtool : "promtool", path);
    FILE *p = popen(cmd, "r");
    if (!p) {
        unlink(path);
        return -1;
    }
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, p)) > 0)
        kp_strbuf_append(output, buf, n);
    int status = pclose(p);
    unlink(path);
    if (status < 0 || !WIFEXITED(status))
        return -1;
    return WEXITSTATUS(status);
}

/* 1 when every line of promtool's output is exactly one of `allowed` (each
 * a whole "<metric> <problem>" line); otherwise 0. */
static int promtool_only_allowed(const kp_strbuf_t *output, const char *const *allowed,
                                 size_t nallowed)
{
    const char *line = output->data ? output->data : "";
    while (*line) {
        const char *end = strchr(line, '\n');
        size_t n = end ? (size_t)(end - line) : strlen(line);
        int ok = n == 0;
        for (size_t i = 0; i < nallowed && !ok; i++)
            ok = strlen(allowed[i]) == n && memcmp(allowed[i], line, n) == 0;
        if (!ok)
            return 0;
        line += n + (end ? 1 : 0);
    }
    return 1;
}

/* The verdict the tests want from an exit code and output: parsed, and no
 * lint problem beyond `allowed`. */
static int promtool_verdict(int rc, const kp_strbuf_t *output, const char *const *allowed,
                            size_t nallowed)
{
    if (rc == PROMTOOL_OK)
        return output->len == 0;
    if (rc == PROMTOOL_LINT_PROBLEMS)
        return output->len > 0 && promtool_only_allowed(output, allowed, nallowed);
    return 0;
}

/* Runs promtool on text and gives promtool_verdict; prints promtool's output
 * when the verdict is no, so the failure says what promtool disliked. */
static int promtool_accepts(const kp_strbuf_t *text, const char *const *allowed, size_t nallowed)
{
    kp_strbuf_t output;
    kp_strbuf_init(&output);
    int rc = promtool_check_metrics(text->data ? text->data : "", text->len, &output);
    int ok = promtool_verdict(rc, &output, allowed, nallowed);
    if (!ok)
        fprintf(stderr, "promtool check metrics: exit %d%s\n%s", rc,
                rc == 127 ? " (promtool not installed? it is in Debian's prometheus package)" : "",
                output.data ? output.data : "");
    kp_strbuf_free(&output);
    return ok;
}

#endif
