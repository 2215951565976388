/* helloworld: the sample app behind the queue-proxy in tests, benchmarks
 * and the demo. main() reads the configuration, optionally waits (a slow
 * cold start), listens, and on SIGTERM/SIGINT closes everything and lets
 * the loop run dry, so the process exits 0 with nothing leaked. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "base/log.h"
#include "kp_version.h"

static void on_server_closed(kp_http_server_t *s)
{
    (void)s;
}

static void app_stop(hw_app_t *app)
{
    if (app->stopping)
        return;
    app->stopping = 1;
    kp_log(KP_LOG_INFO, "exiting");
    /* Closing aborts every connection, which ends every request state. */
    if (app->listening)
        kp_http_server_close(&app->server, on_server_closed);
    uv_close((uv_handle_t *)&app->startup_timer, NULL);
    /* The signal handlers stay installed until the process ends (closing
     * them would restore the default action, and a second SIGTERM, as a
     * supervisor may send, would kill us with status 143); unref'd, they
     * no longer keep the loop running. */
    uv_unref((uv_handle_t *)&app->sigterm);
    uv_unref((uv_handle_t *)&app->sigint);
}

static void on_signal(uv_signal_t *s, int signum)
{
    (void)signum;
    app_stop(s->data);
}

static int app_listen(hw_app_t *app)
{
    int err = kp_http_server_init(&app->server, app->loop, app->cfg.host, app->cfg.port, NULL,
                                  hw_on_request, app);
    if (err) {
        kp_log(KP_LOG_ERROR, "cannot listen on HOST=%s PORT=%d: %s (HOST must be an IP address)",
               app->cfg.host, app->cfg.port, uv_strerror(err));
        return -1;
    }
    app->listening = 1;
    kp_log(KP_LOG_INFO, "listening on %s:%d, greeting %s", app->cfg.host, app->cfg.port,
           app->cfg.target);
    return 0;
}

static void on_startup_delay(uv_timer_t *t)
{
    hw_app_t *app = t->data;
    if (app_listen(app) != 0) {
        app_stop(app);
        app->exit_code = 1;
    }
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(hw_usage, stdout);
            return 0;
        }
        if (strcmp(argv[i], "--version") == 0) {
            printf("helloworld %s\n", KP_VERSION);
            return 0;
        }
        fprintf(stderr,
                "helloworld: unknown argument \"%s\" (it is configured by environment "
                "variables; see --help)\n",
                argv[i]);
        return 2;
    }
    static hw_app_t app; /* large (buffers); lives for the whole process */
    char err[256];
    if (hw_config_load(&app.cfg, err, sizeof err) != 0) {
        fprintf(stderr, "helloworld: %s\n", err);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN); /* a client gone mid-write is an error code, not a death */
    kp_log_init("helloworld", KP_LOG_INFO);

    app.hello_len = strlen("Hello !\n") + strlen(app.cfg.target);
    app.hello = malloc(app.hello_len + 1);
    if (!app.hello)
        return 1;
    snprintf(app.hello, app.hello_len + 1, "Hello %s!\n", app.cfg.target);
    memset(app.fill, 'x', sizeof app.fill);

    app.loop = uv_default_loop();
    uv_signal_init(app.loop, &app.sigterm);
    uv_signal_init(app.loop, &app.sigint);
    uv_timer_init(app.loop, &app.startup_timer);
    app.sigterm.data = app.sigint.data = app.startup_timer.data = &app;
    uv_signal_start(&app.sigterm, on_signal, SIGTERM);
    uv_signal_start(&app.sigint, on_signal, SIGINT);
    if (app.cfg.startup_delay_ms > 0) {
        kp_log(KP_LOG_INFO, "waiting STARTUP_DELAY_MS=%llu before listening",
               (unsigned long long)app.cfg.startup_delay_ms);
        uv_timer_start(&app.startup_timer, on_startup_delay, app.cfg.startup_delay_ms, 0);
    } else if (app_listen(&app) != 0) {
        app_stop(&app);
        app.exit_code = 1;
    }

    uv_run(app.loop, UV_RUN_DEFAULT);
    /* Closing the handles restores the default action; a late signal must
     * not turn a clean exit into a death, so it stays pending, blocked. */
    sigset_t late;
    sigemptyset(&late);
    sigaddset(&late, SIGTERM);
    sigaddset(&late, SIGINT);
    sigprocmask(SIG_BLOCK, &late, NULL);
    uv_close((uv_handle_t *)&app.sigterm, NULL);
    uv_close((uv_handle_t *)&app.sigint, NULL);
    uv_run(app.loop, UV_RUN_DEFAULT);
    uv_loop_close(app.loop);
    hw_handlers_free(&app);
    free(app.hello);
    return app.exit_code;
}
