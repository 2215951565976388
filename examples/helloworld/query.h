/* The request target of a test request: its path, and the query
 * parameters that shape the answer (sleep, status, bytes, hang, drip). */
#ifndef HW_QUERY_H
#define HW_QUERY_H

#include <stddef.h>
#include <stdint.h>

#define HW_MAX_SLEEP_MS 86400000ULL /* a day */
#define HW_MAX_BYTES (1ULL << 50)   /* a pebibyte */
#define HW_MAX_DRIP 10000000ULL     /* 10^7 bytes take 28 hours */

typedef struct hw_query {
    uint64_t sleep_ms; /* wait before answering */
    int status;        /* 200 unless status= */
    int hang;          /* never answer */
    int has_bytes;
    uint64_t bytes; /* body of this many 'x' */
    int has_drip;
    uint64_t drip; /* body of this many 'x', one every 10 ms */
} hw_query_t;

/* Splits a request target (origin form "/p?q" or absolute form
 * "http://h/p?q") into path and query (without '?'; empty when none). */
void hw_target_split(const char *url, size_t len, const char **path, size_t *path_len,
                     const char **query, size_t *query_len);

/* Parses name=value pairs separated by '&'; unknown names are ignored (so
 * cache-busting parameters do no harm); for repeated names the last wins.
 * Returns 0, or -1 with a message for the client in err. */
int hw_query_parse(const char *q, size_t len, hw_query_t *out, char *err, size_t errlen);

/* Whether a parameter asks for something other than an immediate answer. */
int hw_query_is_plain(const hw_query_t *q);

#endif
