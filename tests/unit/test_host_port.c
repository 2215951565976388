/* Unit tests for common/http/host_port.c: the address forms Go's
 * net.Listen takes are accepted, host names resolve (localhost through
 * /etc/hosts), and each malformed form gets a message saying what is
 * wrong and what is accepted. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "http/host_port.h"

static void expect_ok(const char *text, const char *ip, int port)
{
    kp_host_port_t hp;
    char why[512] = "";
    if (kp_host_port_parse(text, &hp, why, sizeof why) != 0)
        fail_msg("\"%s\": %s", text, why);
    if (strcmp(hp.ip, ip) != 0 || hp.port != port)
        fail_msg("\"%s\" -> %s port %d, want %s port %d", text, hp.ip, hp.port, ip, port);
}

static void expect_error(const char *text, const char *want)
{
    kp_host_port_t hp;
    char why[512] = "";
    assert_int_equal(kp_host_port_parse(text, &hp, why, sizeof why), -1);
    if (!strstr(why, want))
        fail_msg("\"%s\": error \"%s\" does not contain \"%s\"", text, why, want);
    if (!strstr(why, KP_HOST_PORT_FORMS))
        fail_msg("\"%s\": error \"%s\" does not list the accepted forms", text, why);
}

static void numeric_addresses(void **state)
{
    expect_ok("127.0.0.1:8080", "127.0.0.1", 8080);
    expect_ok("0.0.0.0:1", "0.0.0.0", 1);
    expect_ok("10.1.2.3:65535", "10.1.2.3", 65535);
    expect_ok("[::1]:18080", "::1", 18080);
    expect_ok("[::]:80", "::", 80);
    expect_ok("[fe80::1:2]:9095", "fe80::1:2", 9095);
}

static void empty_host_is_every_interface(void **state)
{
    expect_ok(":8080", "0.0.0.0", 8080);
}

static void host_names_resolve_ipv4_first(void **state)
{
    /* /etc/hosts has 127.0.0.1 for localhost; ::1 may come first in
     * getaddrinfo's answer, but a name gives its IPv4 address when it has
     * one, as Go's Listen does. */
    expect_ok("localhost:18080", "127.0.0.1", 18080);
    expect_ok("LocalHost:1", "127.0.0.1", 1);
}

static void malformed_ones_say_what_is_accepted(void **state)
{
    expect_error("8080", "no port");
    expect_error("127.0.0.1", "no port");
    expect_error("", "no port");
    expect_error("127.0.0.1:", "port \"\" is not a number from 1 to 65535");
    expect_error(":0", "port \"0\" is not a number from 1 to 65535");
    expect_error(":65536", "port \"65536\" is not a number");
    expect_error(":80a", "port \"80a\" is not a number");
    expect_error(":+80", "port \"+80\" is not a number");
    expect_error("localhost:http", "port \"http\" is not a number");
    expect_error("::1:8080", "too many colons: an IPv6 address goes in brackets");
    expect_error("[::1:8080", "no \"]\" after the IPv6 address");
    expect_error("[::1]", "no \":PORT\" after \"]\"");
    expect_error("[::1]8080", "no \":PORT\" after \"]\"");
    expect_error("[127.0.0.1]:80", "\"127.0.0.1\" in brackets is not an IPv6 address");
    expect_error("10.1:80", "\"10.1\" is not an IPv4 address");
    expect_error("256.0.0.1:80", "\"256.0.0.1\" is not an IPv4 address");
    expect_error("no-such-host.invalid:80", "cannot resolve host \"no-such-host.invalid\"");
}

static void an_overlong_host_is_refused_without_overflow(void **state)
{
    char text[600];
    memset(text, 'a', 500);
    memcpy(text + 500, ":80", 4);
    expect_error(text, "host longer than 253 characters");
    text[0] = '[';
    memcpy(text + 499, "]:80", 5);
    expect_error(text, "in brackets is not an IPv6 address");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(numeric_addresses),
        cmocka_unit_test(empty_host_is_every_interface),
        cmocka_unit_test(host_names_resolve_ipv4_first),
        cmocka_unit_test(malformed_ones_say_what_is_accepted),
        cmocka_unit_test(an_overlong_host_is_refused_without_overflow),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
