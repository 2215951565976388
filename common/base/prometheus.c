/* Prometheus text exposition format: the escaping and number spelling that
 * every /metrics page of the project shares. See prometheus.h. */
#include "prometheus.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

void kp_prom_label_value(kp_strbuf_t *out, const char *s)
{
    if (!s)
        return;
    const char *run = s;
    for (; *s; s++) {
        const char *esc;
        switch (*s) {
        case '\\':
            esc = "\\\\";
            break;
        case '"':
            esc = "\\\"";
            break;
        case '\n':
            esc = "\\n";
            break;
        default:
            continue;
        }
        kp_strbuf_append(out, run, (size_t)(s - run));
        kp_strbuf_append(out, esc, 2);
        run = s + 1;
    }
    kp_strbuf_append(out, run, (size_t)(s - run));
}

void kp_prom_value(kp_strbuf_t *out, double v)
{
    if (isnan(v)) {
        kp_strbuf_puts(out, "NaN");
        return;
    }
    if (isinf(v)) {
        kp_strbuf_puts(out, v > 0 ? "+Inf" : "-Inf");
        return;
    }
    kp_strbuf_shortest_double(out, v);
}

/* NAME SUFFIX {labels} with the brace left open when le follows. */
static void sample_start(kp_strbuf_t *out, const char *name, const char *suffix, const char *labels,
                         int le_follows)
{
    kp_strbuf_puts(out, name);
    kp_strbuf_puts(out, suffix);
    if (!*labels && !le_follows)
        return;
    kp_strbuf_puts(out, "{");
    kp_strbuf_puts(out, labels);
    kp_strbuf_puts(out, le_follows ? (*labels ? ",le=\"" : "le=\"") : "}");
}

void kp_prom_histogram(kp_strbuf_t *out, const char *name, const char *labels,
                       const kp_histogram_t *h)
{
    uint64_t cumulative = 0;
    for (size_t b = 0; b <= h->n_bounds; b++) {
        cumulative += h->counts[b];
        sample_start(out, name, "_bucket", labels, 1);
        if (b < h->n_bounds)
            kp_prom_value(out, h->bounds[b]);
        else
            kp_strbuf_puts(out, "+Inf");
        kp_strbuf_printf(out, "\"} %llu\n", (unsigned long long)cumulative);
    }
    sample_start(out, name, "_sum", labels, 0);
    kp_strbuf_puts(out, " ");
    kp_prom_value(out, h->sum);
    kp_strbuf_puts(out, "\n");
    sample_start(out, name, "_count", labels, 0);
    kp_strbuf_printf(out, " %llu\n", (unsigned long long)h->count);
}
