/* A growable byte buffer for building responses, log lines and metrics text.
 * Not for the per-request hot path when a fixed buffer serves. */
#ifndef KP_STRBUF_H
#define KP_STRBUF_H

#include <stddef.h>

typedef struct kp_strbuf {
    char *data; /* always NUL-terminated when len > 0 or after any append */
    size_t len;
    size_t cap;
} kp_strbuf_t;

void kp_strbuf_init(kp_strbuf_t *sb);
void kp_strbuf_free(kp_strbuf_t *sb);
void kp_strbuf_reset(kp_strbuf_t *sb);
/* Appends; aborts the process on out-of-memory (nothing sensible to do). */
void kp_strbuf_append(kp_strbuf_t *sb, const char *data, size_t len);
void kp_strbuf_puts(kp_strbuf_t *sb, const char *s);
void kp_strbuf_printf(kp_strbuf_t *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends s as the inside of a JSON string (quotes not included). */
void kp_strbuf_json_escape(kp_strbuf_t *sb, const char *s, size_t len);
/* Appends v as a JSON number, the shortest decimal that reads back as v
 * ("3", "0.25", "1e+20"); NaN and infinities, which JSON cannot spell, as
 * null. */
void kp_strbuf_json_number(kp_strbuf_t *sb, double v);
/* Appends a finite v as the shortest decimal that reads back as v (%g
 * style: "3", "0.25", "1e+20"). */
void kp_strbuf_shortest_double(kp_strbuf_t *sb, double v);
/* Hands the buffer to the caller (free() it); sb is left empty. */
char *kp_strbuf_detach(kp_strbuf_t *sb, size_t *len);

#endif
