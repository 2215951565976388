/* /status JSON to kubectl-style tables. See status_table.h. */
#include "status_table.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define COLUMN_GAP "   "
#define MAX_COLUMNS 16

/* ---- a table: rows of cells, drawn with each column as wide as its
 * widest cell ------------------------------------------------------------ */

typedef struct table {
    size_t n_columns;
    char **cells; /* row-major, n_rows × n_columns, each malloc'ed */
    size_t n_rows, cap_rows;
    size_t width[MAX_COLUMNS];
} table_t;

static void table_init(table_t *t, size_t n_columns)
{
    memset(t, 0, sizeof *t);
    t->n_columns = n_columns;
}

/* The next row's cells, all "" until set. Aborts on out-of-memory, as
 * kp_strbuf does: a command-line view has nothing better to do. */
static char **table_row(table_t *t)
{
    if (t->n_rows == t->cap_rows) {
        t->cap_rows = t->cap_rows ? t->cap_rows * 2 : 8;
        t->cells = realloc(t->cells, t->cap_rows * t->n_columns * sizeof *t->cells);
        if (!t->cells)
            abort();
    }
    char **row = &t->cells[t->n_rows++ * t->n_columns];
    for (size_t c = 0; c < t->n_columns; c++)
        row[c] = NULL;
    return row;
}

static void cell_set(table_t *t, char **row, size_t column, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void cell_set(table_t *t, char **row, size_t column, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    free(row[column]);
    row[column] = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (!row[column])
        abort();
    va_start(ap, fmt);
    vsnprintf(row[column], (size_t)n + 1, fmt, ap);
    va_end(ap);
    if ((size_t)n > t->width[column])
        t->width[column] = (size_t)n;
}

static void table_draw(table_t *t, kp_strbuf_t *out)
{
    for (size_t r = 0; r < t->n_rows; r++) {
        char **row = &t->cells[r * t->n_columns];
        for (size_t c = 0; c < t->n_columns; c++) {
            const char *cell = row[c] ? row[c] : "";
            if (c + 1 == t->n_columns) { /* the last column is not padded */
                kp_strbuf_puts(out, cell);
                break;
            }
            kp_strbuf_printf(out, "%-*s" COLUMN_GAP, (int)t->width[c], cell);
        }
        while (out->len > 0 && out->data[out->len - 1] == ' ')
            out->len--;
        kp_strbuf_puts(out, "\n");
    }
}

static void table_free(table_t *t)
{
    for (size_t i = 0; i < t->n_rows * t->n_columns; i++)
        free(t->cells[i]);
    free(t->cells);
}

/* ---- reading the document ---------------------------------------------- */

static const char *str_of(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static double num_of(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

static const char *dash(const char *s)
{
    return s && *s ? s : "-";
}

void act_status_format_age(double s, char *buf, size_t len)
{
    if (!(s >= 0)) {
        snprintf(buf, len, "-");
        return;
    }
    long long secs = (long long)s, mins = secs / 60, hours = mins / 60;
    /* k8s.io/apimachinery's duration.HumanDuration, as kubectl prints ages. */
    if (secs < 120)
        snprintf(buf, len, "%llds", secs);
    else if (mins < 10)
        snprintf(buf, len, "%lldm%llds", mins, secs % 60);
    else if (hours < 3)
        snprintf(buf, len, "%lldm", mins);
    else if (hours < 8)
        snprintf(buf, len, "%lldh%lldm", hours, mins % 60);
    else if (hours < 48)
        snprintf(buf, len, "%lldh", hours);
    else
        snprintf(buf, len, "%lldd", hours / 24);
}

/* Concurrency with one decimal, "3" rather than "3.0". */
static void concurrency(double v, char *buf, size_t len)
{
    if (isnan(v)) {
        snprintf(buf, len, "-");
        return;
    }
    snprintf(buf, len, "%.1f", v);
    size_t n = strlen(buf);
    if (n > 2 && strcmp(buf + n - 2, ".0") == 0)
        buf[n - 2] = '\0';
}

static int count_of(const cJSON *obj, const char *key)
{
    double v = num_of(obj, key);
    return isnan(v) ? 0 : (int)v;
}

/* ---- the three tables -------------------------------------------------- */

enum { SVC_NAME, SVC_NAMESPACE, SVC_URL, SVC_TRAFFIC, SVC_COLUMNS };

static void services_table(const cJSON *services, kp_strbuf_t *out)
{
    table_t t;
    table_init(&t, SVC_COLUMNS);
    char **h = table_row(&t);
    cell_set(&t, h, SVC_NAME, "SERVICE");
    cell_set(&t, h, SVC_NAMESPACE, "NAMESPACE");
    cell_set(&t, h, SVC_URL, "URL");
    cell_set(&t, h, SVC_TRAFFIC, "TRAFFIC");
    const cJSON *svc;
    cJSON_ArrayForEach(svc, services)
    {
        char **row = table_row(&t);
        cell_set(&t, row, SVC_NAME, "%s", dash(str_of(svc, "name")));
        cell_set(&t, row, SVC_NAMESPACE, "%s", dash(str_of(svc, "namespace")));
        cell_set(&t, row, SVC_URL, "%s", dash(str_of(svc, "url")));
        kp_strbuf_t traffic;
        kp_strbuf_init(&traffic);
        const cJSON *tt;
        cJSON_ArrayForEach(tt, cJSON_GetObjectItemCaseSensitive(svc, "traffic"))
        {
            const char *tag = str_of(tt, "tag");
            kp_strbuf_printf(&traffic, "%s%s%s%s=%d%%", traffic.len ? " " : "", tag ? tag : "",
                             tag ? ":" : "", dash(str_of(tt, "revision_name")),
                             count_of(tt, "percent"));
        }
        cell_set(&t, row, SVC_TRAFFIC, "%s", traffic.len ? traffic.data : "-");
        kp_strbuf_free(&traffic);
    }
    table_draw(&t, out);
    table_free(&t);
}

enum {
    REV_NAME,
    REV_SERVICE,
    REV_DESIRED,
    REV_READY,
    REV_HELD,
    REV_IN_FLIGHT,
    REV_STABLE,
    REV_PANIC,
    REV_TARGET,
    REV_MODE,
    REV_LAST_SCALE,
    REV_REASON,
    REV_FAILURE,
    REV_COLUMNS
};

static void revision_row(table_t *t, const char *service, const cJSON *rev)
{
    char **row = table_row(t);
    char buf[64], age[32];
    cell_set(t, row, REV_NAME, "%s", dash(str_of(rev, "name")));
    cell_set(t, row, REV_SERVICE, "%s", dash(service));
    cell_set(t, row, REV_DESIRED, "%d", count_of(rev, "desired_pods"));
    cell_set(t, row, REV_READY, "%d", count_of(rev, "ready_pods"));
    cell_set(t, row, REV_HELD, "%d", count_of(rev, "held"));
    cell_set(t, row, REV_IN_FLIGHT, "%d", count_of(rev, "in_flight"));
    const cJSON *as = cJSON_GetObjectItemCaseSensitive(rev, "autoscaler");
    concurrency(num_of(as, "stable_concurrency"), buf, sizeof buf);
    cell_set(t, row, REV_STABLE, "%s", buf);
    concurrency(num_of(as, "panic_concurrency"), buf, sizeof buf);
    cell_set(t, row, REV_PANIC, "%s", buf);
    concurrency(num_of(as, "target_concurrency_per_pod"), buf, sizeof buf);
    cell_set(t, row, REV_TARGET, "%s", buf);
    const cJSON *panic = cJSON_GetObjectItemCaseSensitive(as, "panic_mode");
    cell_set(t, row, REV_MODE, "%s", cJSON_IsTrue(panic) ? "panic" : as ? "stable" : "-");
    const cJSON *scale = cJSON_GetObjectItemCaseSensitive(rev, "last_scale");
    if (cJSON_IsObject(scale)) {
        act_status_format_age(num_of(scale, "age_seconds"), age, sizeof age);
        cell_set(t, row, REV_LAST_SCALE, "%d->%d %s ago", count_of(scale, "from"),
                 count_of(scale, "to"), age);
        cell_set(t, row, REV_REASON, "%s", dash(str_of(scale, "reason")));
    } else {
        cell_set(t, row, REV_LAST_SCALE, "-");
        cell_set(t, row, REV_REASON, "-");
    }
    const cJSON *failure = cJSON_GetObjectItemCaseSensitive(rev, "last_failure");
    if (cJSON_IsObject(failure)) {
        act_status_format_age(num_of(failure, "age_seconds"), age, sizeof age);
        cell_set(t, row, REV_FAILURE, "%s (%s ago)", dash(str_of(failure, "reason")), age);
    } else {
        cell_set(t, row, REV_FAILURE, "-");
    }
}

static void revisions_table(const cJSON *services, kp_strbuf_t *out)
{
    static const char *const headers[REV_COLUMNS] = {
        "REVISION", "SERVICE", "DESIRED", "READY",      "HELD",   "IN-FLIGHT", "STABLE",
        "PANIC",    "TARGET",  "MODE",    "LAST SCALE", "REASON", "FAILURE"};
    table_t t;
    table_init(&t, REV_COLUMNS);
    char **h = table_row(&t);
    for (size_t c = 0; c < REV_COLUMNS; c++)
        cell_set(&t, h, c, "%s", headers[c]);
    const cJSON *svc, *rev;
    cJSON_ArrayForEach(svc, services)
    {
        cJSON_ArrayForEach(rev, cJSON_GetObjectItemCaseSensitive(svc, "revisions"))
        {
            if (cJSON_IsObject(rev))
                revision_row(&t, str_of(svc, "name"), rev);
        }
    }
    table_draw(&t, out);
    table_free(&t);
}

enum { POD_NAME, POD_REVISION, POD_STATUS, POD_IN_FLIGHT, POD_AGE, POD_COLUMNS };

/* 0 when no revision has a pod: kubectl's "No resources found" instead. */
static int pods_table(const cJSON *services, kp_strbuf_t *out)
{
    table_t t;
    table_init(&t, POD_COLUMNS);
    char **h = table_row(&t);
    cell_set(&t, h, POD_NAME, "POD");
    cell_set(&t, h, POD_REVISION, "REVISION");
    cell_set(&t, h, POD_STATUS, "STATUS");
    cell_set(&t, h, POD_IN_FLIGHT, "IN-FLIGHT");
    cell_set(&t, h, POD_AGE, "AGE");
    const cJSON *svc, *rev, *pod;
    cJSON_ArrayForEach(svc, services)
    {
        cJSON_ArrayForEach(rev, cJSON_GetObjectItemCaseSensitive(svc, "revisions"))
        {
            cJSON_ArrayForEach(pod, cJSON_GetObjectItemCaseSensitive(rev, "pods"))
            {
                char age[32];
                char **row = table_row(&t);
                cell_set(&t, row, POD_NAME, "%s", dash(str_of(pod, "id")));
                cell_set(&t, row, POD_REVISION, "%s", dash(str_of(rev, "name")));
                const char *status =
                    cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(pod, "removed")) ? "Terminating"
                    : cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(pod, "ready")) ? "Ready"
                                                                                   : "NotReady";
                cell_set(&t, row, POD_STATUS, "%s", status);
                cell_set(&t, row, POD_IN_FLIGHT, "%d", count_of(pod, "in_flight"));
                act_status_format_age(num_of(pod, "age_seconds"), age, sizeof age);
                cell_set(&t, row, POD_AGE, "%s", age);
            }
        }
    }
    int any = t.n_rows > 1;
    if (any)
        table_draw(&t, out);
    table_free(&t);
    return any;
}

int act_status_table_render(const char *json, size_t len, kp_strbuf_t *out, char *err,
                            size_t err_len)
{
    cJSON *doc = cJSON_ParseWithLength(json, len);
    const cJSON *services = doc ? cJSON_GetObjectItemCaseSensitive(doc, "services") : NULL;
    if (!cJSON_IsArray(services)) {
        snprintf(err, err_len, "%s",
                 doc ? "not an activator's /status: no \"services\" list"
                     : "not an activator's /status: not JSON");
        cJSON_Delete(doc);
        return -1;
    }
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(doc, "draining")))
        kp_strbuf_puts(out, "The activator is shutting down: it finishes what it accepted.\n\n");
    if (cJSON_GetArraySize(services) == 0) {
        kp_strbuf_puts(out, "No services configured.\n");
        cJSON_Delete(doc);
        return 0;
    }
    services_table(services, out);
    kp_strbuf_puts(out, "\n");
    revisions_table(services, out);
    kp_strbuf_puts(out, "\n");
    if (!pods_table(services, out))
        kp_strbuf_puts(out, "No pods.\n");
    cJSON_Delete(doc);
    return 0;
}
