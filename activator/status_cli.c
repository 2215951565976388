/* `activator status`: one GET /status over a plain socket, drawn as
 * tables; -w redraws it every interval. See status_cli.h. */
#include "status_cli.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/strbuf.h"
#include "status_table.h"

#define DEFAULT_ADMIN "127.0.0.1:9095"
#define FETCH_TIMEOUT_MS 5000
#define MAX_ANSWER_BYTES (16u << 20)

static const char usage[] =
    "usage: activator status [--admin HOST:PORT] [-w] [--interval SECONDS]\n"
    "\n"
    "Prints a running activator's services, revisions and pods as tables, from\n"
    "its admin port's /status: pods desired and ready, requests held and in\n"
    "flight, the autoscaler's stable and panic concurrency, target and mode, the\n"
    "last scale and why, the last failure.\n"
    "\n"
    "  --admin HOST:PORT    the activator's --admin address (env KP_ACTIVATOR_ADMIN;\n"
    "                       default " DEFAULT_ADMIN "); :PORT means 127.0.0.1:PORT\n"
    "  -w, --watch          redraw every interval until interrupted\n"
    "  --interval SECONDS   between redraws with -w (default 1)\n"
    "  -h, --help           this text\n"
    "\n"
    "Exit status: 0; 1 when the activator cannot be reached or answers something\n"
    "else (with -w: only if the first fetch fails); 2 for bad usage.\n";

typedef struct status_opts {
    const char *admin;
    char host[256];
    char port[16];
    int watch;
    double interval_s;
} status_opts_t;

/* HOST:PORT, :PORT, [IPv6]:PORT, with an optional http:// and trailing /. */
static int parse_admin(status_opts_t *o)
{
    const char *s = o->admin;
    if (strncmp(s, "http://", 7) == 0)
        s += 7;
    size_t len = strlen(s);
    if (len > 0 && s[len - 1] == '/')
        len--;
    const char *colon = NULL;
    for (size_t i = len; i-- > 0;)
        if (s[i] == ':') {
            colon = s + i;
            break;
        }
    const char *host = s, *host_end = colon;
    if (colon && s[0] == '[' && colon > s && colon[-1] == ']') {
        host++;
        host_end--;
    }
    size_t port_len = colon ? (size_t)(s + len - colon - 1) : 0;
    char *end = NULL;
    char port[16] = "";
    if (port_len > 0 && port_len < sizeof port)
        memcpy(port, colon + 1, port_len);
    long p = port[0] ? strtol(port, &end, 10) : 0;
    size_t host_len = colon ? (size_t)(host_end - host) : 0;
    if (!colon || !end || *end || p < 1 || p > 65535 || host_len >= sizeof o->host) {
        fprintf(stderr,
                "activator status: --admin \"%s\": expected HOST:PORT with a port in 1..65535 "
                "(e.g. " DEFAULT_ADMIN " or :9095)\n",
                o->admin);
        return -1;
    }
    if (host_len == 0)
        snprintf(o->host, sizeof o->host, "127.0.0.1");
    else
        snprintf(o->host, sizeof o->host, "%.*s", (int)host_len, host);
    snprintf(o->port, sizeof o->port, "%ld", p);
    return 0;
}

static int parse_args(int argc, char **argv, status_opts_t *o)
{
    const char *env = getenv("KP_ACTIVATOR_ADMIN");
    o->admin = env && *env ? env : DEFAULT_ADMIN;
    o->watch = 0;
    o->interval_s = 1;
    static const struct option longopts[] = {
        {"admin", required_argument, NULL, 'a'},
        {"watch", no_argument, NULL, 'w'},
        {"interval", required_argument, NULL, 'i'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    optind = 1;
    opterr = 0; /* said below, under our name */
    int c;
    char *end;
    while ((c = getopt_long(argc, argv, "hw", longopts, NULL)) != -1) {
        switch (c) {
        case 'a':
            o->admin = optarg;
            break;
        case 'w':
            o->watch = 1;
            break;
        case 'i':
            o->interval_s = strtod(optarg, &end);
            if (!*optarg || *end || !(o->interval_s >= 0.1 && o->interval_s <= 3600)) {
                fprintf(stderr,
                        "activator status: --interval \"%s\": expected seconds from 0.1 to 3600\n",
                        optarg);
                return -1;
            }
            break;
        case 'h':
            fputs(usage, stdout);
            exit(0);
        default:
            fprintf(stderr, "activator status: %s \"%s\" (see activator status --help)\n",
                    optopt && strchr("ai", optopt) ? "missing value for" : "unknown option",
                    argv[optind - 1]);
            return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "activator status: unexpected argument \"%s\" (see --help)\n",
                argv[optind]);
        return -1;
    }
    return parse_admin(o);
}

/* ---- one GET ------------------------------------------------------------ */

static int ms_left(uint64_t deadline_ns)
{
    uint64_t now = kp_now_ns();
    return now >= deadline_ns ? 0 : (int)((deadline_ns - now) / 1000000u) + 1;
}

/* Waits until fd is ready for `events`: 0, or -ETIMEDOUT. */
static int wait_fd(int fd, short events, uint64_t deadline_ns)
{
    struct pollfd p = {.fd = fd, .events = events};
    for (;;) {
        int left = ms_left(deadline_ns);
        if (left == 0)
            return -ETIMEDOUT;
        int n = poll(&p, 1, left);
        if (n > 0)
            return 0;
        if (n < 0 && errno != EINTR)
            return -errno;
    }
}

/* A connected socket (non-blocking), or -errno of the last attempt. */
static int connect_to(const struct addrinfo *ai, uint64_t deadline_ns)
{
    int rc = -ECONNREFUSED;
    for (; ai; ai = ai->ai_next) {
        int fd =
            socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            rc = -errno;
            continue;
        }
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
            return fd;
        rc = errno == EINPROGRESS ? wait_fd(fd, POLLOUT, deadline_ns) : -errno;
        if (rc == 0) {
            int soerr = 0;
            socklen_t sl = sizeof soerr;
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
            if (soerr == 0)
                return fd;
            rc = -soerr;
        }
        close(fd);
    }
    return rc;
}

static int send_all(int fd, const char *data, size_t len, uint64_t deadline_ns)
{
    while (len > 0) {
        ssize_t n = send(fd, data, len, MSG_NOSIGNAL);
        if (n > 0) {
            data += n;
            len -= (size_t)n;
            continue;
        }
        if (n < 0 && errno != EAGAIN && errno != EINTR)
            return -errno;
        int rc = wait_fd(fd, POLLOUT, deadline_ns);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* Reads the whole answer (the request asked the server to close). */
static int read_all(int fd, kp_strbuf_t *answer, uint64_t deadline_ns)
{
    char buf[16384];
    for (;;) {
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n > 0) {
            kp_strbuf_append(answer, buf, (size_t)n);
            if (answer->len > MAX_ANSWER_BYTES)
                return -EMSGSIZE;
            continue;
        }
        if (n == 0)
            return 0;
        if (errno != EAGAIN && errno != EINTR)
            return -errno;
        int rc = wait_fd(fd, POLLIN, deadline_ns);
        if (rc != 0)
            return rc;
    }
}

/* GET /status: 0 with its body in *body, or -1 with err saying what
 * happened, to which address, and what to do. */
static int fetch_status(const status_opts_t *o, kp_strbuf_t *body, char *err, size_t err_len)
{
    uint64_t deadline = kp_now_ns() + (uint64_t)FETCH_TIMEOUT_MS * 1000000u;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai = NULL;
    int gai = getaddrinfo(o->host, o->port, &hints, &ai);
    if (gai != 0) {
        snprintf(err, err_len, "--admin \"%s\": cannot resolve \"%s\": %s", o->admin, o->host,
                 gai_strerror(gai));
        return -1;
    }
    int fd = connect_to(ai, deadline);
    freeaddrinfo(ai);
    if (fd < 0) {
        snprintf(err, err_len,
                 "cannot reach the activator's admin port at %s:%s: %s (is the activator "
                 "running? --admin or KP_ACTIVATOR_ADMIN names another address)",
                 o->host, o->port, fd == -ETIMEDOUT ? "no answer within 5 s" : strerror(-fd));
        return -1;
    }
    char req[512];
    int n = snprintf(req, sizeof req,
                     "GET /status HTTP/1.1\r\nHost: %s:%s\r\nUser-Agent: activator-status\r\n"
                     "Accept: application/json\r\nConnection: close\r\n\r\n",
                     o->host, o->port);
    kp_strbuf_t answer;
    kp_strbuf_init(&answer);
    int rc = send_all(fd, req, (size_t)n, deadline);
    if (rc == 0)
        rc = read_all(fd, &answer, deadline);
    close(fd);
    if (rc != 0) {
        snprintf(err, err_len, "%s:%s: reading /status: %s", o->host, o->port,
                 rc == -ETIMEDOUT ? "no complete answer within 5 s" : strerror(-rc));
        kp_strbuf_free(&answer);
        return -1;
    }
    int status = 0;
    const char *head_end = answer.data ? strstr(answer.data, "\r\n\r\n") : NULL;
    if (!head_end || sscanf(answer.data, "HTTP/1.%*d %d", &status) != 1 || status != 200) {
        const char *line_end = answer.data ? strstr(answer.data, "\r\n") : NULL;
        snprintf(err, err_len,
                 "%s:%s answered GET /status with \"%.*s\": is this an activator's admin port "
                 "(its --admin)?",
                 o->host, o->port, line_end ? (int)(line_end - answer.data) : 0,
                 line_end ? answer.data : "");
        kp_strbuf_free(&answer);
        return -1;
    }
    const char *start = head_end + 4;
    kp_strbuf_append(body, start, answer.len - (size_t)(start - answer.data));
    kp_strbuf_free(&answer);
    return 0;
}

/* ---- the view ----------------------------------------------------------- */

/* The tables for one fetch, or the error in their place. */
static int draw(const status_opts_t *o, kp_strbuf_t *out)
{
    kp_strbuf_t body;
    kp_strbuf_init(&body);
    char err[768];
    int rc = fetch_status(o, &body, err, sizeof err);
    if (rc != 0) {
        kp_strbuf_printf(out, "activator status: %s\n", err);
    } else if (act_status_table_render(body.data ? body.data : "", body.len, out, err,
                                       sizeof err) != 0) {
        kp_strbuf_printf(out, "activator status: %s:%s: %s\n", o->host, o->port, err);
        rc = -1;
    }
    kp_strbuf_free(&body);
    return rc;
}

static void sleep_seconds(double s)
{
    struct timespec ts = {.tv_sec = (time_t)s, .tv_nsec = (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

int act_status_cli_main(int argc, char **argv)
{
    status_opts_t o;
    if (parse_args(argc, argv, &o) != 0)
        return 2;
    kp_strbuf_t out;
    kp_strbuf_init(&out);
    if (!o.watch) {
        int rc = draw(&o, &out);
        fputs(out.data ? out.data : "", rc == 0 ? stdout : stderr);
        kp_strbuf_free(&out);
        return rc == 0 ? 0 : 1;
    }
    /* On a terminal the view is redrawn in place, as watch(1) does; into a
     * pipe or a file each refresh follows the last. */
    int tty = isatty(STDOUT_FILENO);
    for (int first = 1;; first = 0) {
        kp_strbuf_reset(&out);
        int rc = draw(&o, &out);
        if (rc != 0 && first) {
            fputs(out.data, stderr);
            kp_strbuf_free(&out);
            return 1;
        }
        char stamp[32];
        time_t now = time(NULL);
        struct tm tm;
        localtime_r(&now, &tm);
        strftime(stamp, sizeof stamp, "%Y-%m-%d %H:%M:%S", &tm);
        printf("%sEvery %gs: activator status --admin %s:%s   %s\n\n%s%s",
               tty ? "\033[H\033[2J" : "", o.interval_s, o.host, o.port, stamp,
               out.data ? out.data : "", tty ? "" : "\n");
        fflush(stdout);
        sleep_seconds(o.interval_s);
    }
}
