/* The app's configuration: environment variables only, as in Knative's
 * helloworld-go sample, plus the knobs tests need. */
#include <stdio.h>
#include <string.h>

#include "app.h"
#include "base/env.h"

const char hw_usage[] =
    "usage: helloworld [--help | --version]\n"
    "\n"
    "Sample app for the queue-proxy's tests, benchmarks and demo. Environment:\n"
    "  PORT              port to listen on, 1..65535 (default 8080)\n"
    "  HOST              IPv4 or IPv6 address to listen on (default 0.0.0.0)\n"
    "  TARGET            who to greet (default World; empty means World)\n"
    "  STARTUP_DELAY_MS  wait this long before listening, to model a slow cold\n"
    "                    start, 0..3600000 (default 0)\n"
    "\n"
    "Requests (any method; any path not listed below behaves like /):\n"
    "  GET /             200 \"Hello $TARGET!\\n\"\n"
    "  query parameters, on every path but /stats, /stats/reset and /ws:\n"
    "    sleep=MS        wait MS ms first (0..86400000)\n"
    "    status=N        answer with status N (200..599)\n"
    "    bytes=N         a body of N 'x' bytes, with Content-Length\n"
    "    drip=N          a body of N 'x' bytes with Content-Length, one byte\n"
    "                    every 10 ms (the first at once)\n"
    "    hang=1          never answer (until the client goes away)\n"
    "    sleep comes first, then hang, drip, bytes, in that order of precedence\n"
    "  a request with a body (Content-Length or chunked) is read to the end,\n"
    "    counting bytes, and answered \"received N bytes\\n\" (unless drip/bytes)\n"
    "  GET /headers      the request's header lines, \"Name: value\\n\" each\n"
    "  GET /stats        {\"in_flight\":N,\"max_in_flight\":M,\"requests\":R}\n"
    "  POST /stats/reset requests to 0, max_in_flight to in_flight (0 when idle)\n"
    "  GET /ws           WebSocket (RFC 6455) echo: frames come back unmasked\n"
    "                    with the same opcode; ping gets pong; close is echoed\n"
    "                    and the connection ends\n"
    "  A request is in flight from its head's arrival until its response is\n"
    "  complete or it is aborted (a WebSocket: until it closes); /stats and\n"
    "  /stats/reset are not counted.\n"
    "\n"
    "SIGTERM or SIGINT: close every connection at once and exit 0 (draining is\n"
    "the queue-proxy's job).\n";

int hw_config_load(hw_config_t *cfg, char *err, size_t errlen)
{
    long long delay;
    memset(cfg, 0, sizeof *cfg);
    if (kp_env_port(NULL, "PORT", 0, 8080, &cfg->port, err, errlen) != 0 ||
        kp_env_string(NULL, "HOST", KP_ENV_NONEMPTY, "0.0.0.0", &cfg->host, err, errlen) != 0 ||
        kp_env_string(NULL, "TARGET", 0, "World", &cfg->target, err, errlen) != 0 ||
        kp_env_int(NULL, "STARTUP_DELAY_MS", 0, 0, 0, 3600000, &delay, err, errlen) != 0)
        return -1;
    if (cfg->target[0] == '\0')
        cfg->target = "World";
    cfg->startup_delay_ms = (uint64_t)delay;
    return 0;
}
