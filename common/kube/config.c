/* Where the Kubernetes API is and how to authenticate to it: the in-cluster
 * service-account configuration (the same files and variables as client-go's
 * rest.InClusterConfig). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

#define SA_DIR "/var/run/secrets/kubernetes.io/serviceaccount"

static char *read_small_file(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    char buf[4096];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
        n--;
    buf[n] = '\0';
    return strdup(buf);
}

static char *join(const char *dir, const char *file)
{
    size_t n = strlen(dir) + strlen(file) + 2;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/%s", dir, file);
    return p;
}

int kp_kube_config_in_cluster(kp_kube_config_t *cfg, char *err, size_t err_len)
{
    memset(cfg, 0, sizeof(*cfg));
    const char *host = getenv("KUBERNETES_SERVICE_HOST");
    const char *port = getenv("KUBERNETES_SERVICE_PORT");
    const char *dir = getenv("KP_KUBE_SA_DIR");
    if (!dir || !dir[0])
        dir = SA_DIR;
    if (!host || !host[0] || !port || !port[0]) {
        snprintf(err, err_len,
                 "KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must be set "
                 "(not running in a Kubernetes pod?)");
        return -1;
    }
    size_t n = strlen(host) + strlen(port) + 16;
    cfg->api_url = malloc(n);
    cfg->token_file = join(dir, "token");
    cfg->ca_file = join(dir, "ca.crt");
    char *ns_file = join(dir, "namespace");
    if (!cfg->api_url || !cfg->token_file || !cfg->ca_file || !ns_file) {
        snprintf(err, err_len, "out of memory");
        goto fail;
    }
    /* An IPv6 service host needs brackets in a URL. */
    if (strchr(host, ':'))
        snprintf(cfg->api_url, n, "https://[%s]:%s", host, port);
    else
        snprintf(cfg->api_url, n, "https://%s:%s", host, port);
    if (access(cfg->token_file, R_OK) != 0) {
        snprintf(err, err_len,
                 "%s: cannot read the service-account token (is "
                 "automountServiceAccountToken off?)",
                 cfg->token_file);
        goto fail;
    }
    if (access(cfg->ca_file, R_OK) != 0) {
        snprintf(err, err_len, "%s: cannot read the cluster CA", cfg->ca_file);
        goto fail;
    }
    cfg->namespace_ = read_small_file(ns_file);
    if (!cfg->namespace_ || !cfg->namespace_[0]) {
        snprintf(err, err_len, "%s: cannot read the pod's namespace", ns_file);
        goto fail;
    }
    free(ns_file);
    return 0;
fail:
    free(ns_file);
    kp_kube_config_free(cfg);
    return -1;
}

void kp_kube_config_free(kp_kube_config_t *cfg)
{
    free(cfg->api_url);
    free(cfg->token_file);
    free(cfg->ca_file);
    free(cfg->namespace_);
    memset(cfg, 0, sizeof(*cfg));
}
