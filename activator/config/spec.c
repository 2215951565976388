/* A revision spec on its own: a deep copy outlives the configuration it
 * came from (a revision lives on after a reload replaced or removed it),
 * and the one way every spec's strings are freed. */
#include <stdlib.h>
#include <string.h>

#include "config.h"

void kp_kv_free(kp_kv_t *kv, size_t n)
{
    if (!kv)
        return;
    for (size_t i = 0; i < n; i++) {
        free(kv[i].key);
        free(kv[i].value);
    }
    free(kv);
}

void kp_revision_spec_free(kp_revision_spec_t *spec)
{
    free(spec->name);
    free(spec->namespace_);
    free(spec->service);
    free(spec->failure);
    kp_kv_free(spec->annotations, spec->n_annotations);
    kp_kv_free(spec->env, spec->n_env);
    for (size_t k = 0; k < spec->n_command; k++)
        free(spec->command[k]);
    free(spec->command);
    memset(spec, 0, sizeof *spec);
}

static int copy_str(char **out, const char *s)
{
    *out = NULL;
    return s && !(*out = strdup(s)) ? -1 : 0;
}

static int copy_kv(kp_kv_t **out, const kp_kv_t *kv, size_t n)
{
    *out = NULL;
    if (n == 0)
        return 0;
    if (!(*out = calloc(n, sizeof **out)))
        return -1;
    for (size_t i = 0; i < n; i++)
        if (copy_str(&(*out)[i].key, kv[i].key) != 0 ||
            copy_str(&(*out)[i].value, kv[i].value) != 0)
            return -1;
    return 0;
}

int kp_revision_spec_copy(kp_revision_spec_t *dst, const kp_revision_spec_t *src)
{
    *dst = *src;
    dst->runtime = NULL;
    /* Every owned pointer is replaced before anything can fail, so a
     * failed copy frees only what it made. */
    dst->name = dst->namespace_ = dst->service = dst->failure = NULL;
    dst->annotations = dst->env = NULL;
    dst->command = NULL;
    dst->n_annotations = dst->n_env = dst->n_command = 0;
    if (copy_str(&dst->name, src->name) != 0 || copy_str(&dst->namespace_, src->namespace_) != 0 ||
        copy_str(&dst->service, src->service) != 0 || copy_str(&dst->failure, src->failure) != 0)
        goto fail;
    dst->n_annotations = src->n_annotations;
    if (copy_kv(&dst->annotations, src->annotations, src->n_annotations) != 0)
        goto fail;
    dst->n_env = src->n_env;
    if (copy_kv(&dst->env, src->env, src->n_env) != 0)
        goto fail;
    if (src->n_command > 0) {
        if (!(dst->command = calloc(src->n_command, sizeof *dst->command)))
            goto fail;
        dst->n_command = src->n_command;
        for (size_t i = 0; i < src->n_command; i++)
            if (copy_str(&dst->command[i], src->command[i]) != 0)
                goto fail;
    }
    return 0;
fail:
    kp_revision_spec_free(dst);
    return -1;
}
