/* The config file over time. See config_watch.h. */
#include "config_watch.h"

#include <signal.h>
#include <stdlib.h>

#include "base/log.h"
#include "revisions.h"

#define CONFIG_POLL_MS 1000

static void reload(act_t *act)
{
    kp_activator_config_t *cfg = calloc(1, sizeof *cfg);
    char err[1024];
    if (!cfg)
        return;
    if (kp_activator_config_load_file(act->config_path, cfg, err, sizeof err) != 0) {
        kp_log_kv(KP_LOG_ERROR, "config reload rejected; the running config stays", "error", err,
                  NULL);
        free(cfg);
        return;
    }
    if ((act->apply_file_config ? act->apply_file_config(act->apply_file_config_ctx, cfg)
                                : act_revisions_apply(act, cfg)) != 0)
        kp_log(KP_LOG_ERROR, "config reload failed: out of memory; the running config stays");
}

static void on_config_changed(uv_fs_poll_t *h, int status, const uv_stat_t *prev,
                              const uv_stat_t *curr)
{
    act_t *act = h->data;
    if (status < 0) {
        kp_log_kv(KP_LOG_WARN, "config file unreadable; the running config stays", "file",
                  act->config_path, "error", uv_strerror(status), NULL);
        return;
    }
    reload(act);
}

static void on_sighup(uv_signal_t *s, int signum)
{
    reload(s->data);
}

void act_config_watch_start(act_t *act, const char *path)
{
    act->config_path = path;
    uv_fs_poll_init(act->loop, &act->config_poll);
    act->config_poll.data = act;
    uv_fs_poll_start(&act->config_poll, on_config_changed, path, CONFIG_POLL_MS);
    uv_signal_init(act->loop, &act->sighup);
    act->sighup.data = act;
    uv_signal_start(&act->sighup, on_sighup, SIGHUP);
}

void act_config_watch_stop(act_t *act)
{
    if (!act->config_path)
        return;
    uv_close((uv_handle_t *)&act->config_poll, NULL);
    uv_close((uv_handle_t *)&act->sighup, NULL);
}
