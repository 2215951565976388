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
    /* %.17g always round-trips but prints 0.1 as 0.10000000000000001;
     * the first precision that reads back exactly keeps the text short. */
    char buf[32];
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, v);
        if (strtod(buf, NULL) == v)
            break;
    }
    kp_strbuf_puts(out, buf);
}
