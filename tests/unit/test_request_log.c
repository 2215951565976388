/* Tests for queue-proxy/request_log.c: Knative's request-log templates
 * (Go text/template subset) compile at start and render Go's output. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>
#include <cmocka.h>

#include "queue-proxy/request_log.h"
#include "queue-proxy/request_log_types.h"

#define H(n, v)                                                                                    \
    {                                                                                              \
        n, sizeof(n) - 1, v, sizeof(v) - 1                                                         \
    }

static const kp_reqlog_revision_t rev = {
    .name = "hello-00001",
    .namespace_ = "default",
    .service = "hello",
    .configuration = "hello-cfg",
    .pod_name = "hello-00001-deployment-abc",
    .pod_ip = "10.0.0.7",
};

static const kp_reqlog_header_t std_headers[] = {
    H("Host", "hello.default.example.com"),
    H("User-Agent", "curl/8.0"),
    H("Referer", "http://ref/"),
    H("x-b3-traceid", "80f198ee56343ba864fe8b2a57d3eff7"),
};

static kp_reqlog_entry_t std_entry(void)
{
    static const char uri[] = "/path?q=1";
    return (kp_reqlog_entry_t){
        .method = "GET",
        .uri = uri,
        .uri_len = sizeof uri - 1,
        .proto = "HTTP/1.1",
        .remote_addr = "10.0.0.1:43210",
        .headers = std_headers,
        .n_headers = sizeof std_headers / sizeof std_headers[0],
        .content_length = 0,
        .status = 200,
        .response_size = 12,
        .latency_s = 0.001234,
    };
}

/* Renders tmpl for e; the returned string is the test's to free. */
static char *render(const char *tmpl, const kp_reqlog_entry_t *e)
{
    kp_reqlog_t *t = NULL;
    char err[512] = "";
    int rc = kp_reqlog_compile(tmpl, &t, err, sizeof err);
    if (rc != 0)
        fail_msg("compile failed: %s", err);
    kp_strbuf_t sb;
    kp_strbuf_init(&sb);
    kp_reqlog_render(t, e, &rev, &sb);
    kp_reqlog_free(t);
    return kp_strbuf_detach(&sb, NULL);
}

static void expect_render(const char *tmpl, const char *want)
{
    kp_reqlog_entry_t e = std_entry();
    char *got = render(tmpl, &e);
    assert_string_equal(got, want);
    free(got);
}

static void expect_compile_error(const char *tmpl, const char *needle)
{
    kp_reqlog_t *t = NULL;
    char err[512] = "";
    assert_int_equal(kp_reqlog_compile(tmpl, &t, err, sizeof err), -1);
    assert_null(t);
    if (!strstr(err, needle))
        fail_msg("error \"%s\" does not mention \"%s\"", err, needle);
}

static void renders_every_documented_field(void **state)
{
    expect_render("{{.Request.Method}} {{.Request.RequestURI}} {{.Request.URL}} "
                  "{{.Request.Host}} {{.Request.ContentLength}} {{.Request.UserAgent}} "
                  "{{.Request.RemoteAddr}} {{.Request.Referer}} {{.Request.Proto}}",
                  "GET /path?q=1 /path?q=1 hello.default.example.com 0 curl/8.0 "
                  "10.0.0.1:43210 http://ref/ HTTP/1.1\n");
    expect_render("{{.Response.Code}} {{.Response.Size}} {{.Response.Latency}}",
                  "200 12 0.001234\n");
    expect_render("{{.Revision.Name}} {{.Revision.Namespace}} {{.Revision.Service}} "
                  "{{.Revision.Configuration}} {{.Revision.PodName}} {{.Revision.PodIP}}",
                  "hello-00001 default hello hello-cfg hello-00001-deployment-abc 10.0.0.7\n");
    expect_render("{{.Request.URL.Path}}|{{.Request.URL.RawQuery}}|{{.Request.ProtoMajor}}."
                  "{{.Request.ProtoMinor}}",
                  "/path|q=1|1.1\n");
}

static void default_template_matches_knative_and_renders_json(void **state)
{
    /* config/core/configmaps/observability.yaml, logging.request-log-template */
    assert_string_equal(
        KP_REQLOG_DEFAULT_TEMPLATE,
        "{\"httpRequest\": {\"requestMethod\": \"{{.Request.Method}}\", \"requestUrl\": \"{{js "
        ".Request.RequestURI}}\", \"requestSize\": \"{{.Request.ContentLength}}\", \"status\": "
        "{{.Response.Code}}, \"responseSize\": \"{{.Response.Size}}\", \"userAgent\": \"{{js "
        ".Request.UserAgent}}\", \"remoteIp\": \"{{js .Request.RemoteAddr}}\", \"serverIp\": "
        "\"{{.Revision.PodIP}}\", \"referer\": \"{{js .Request.Referer}}\", \"latency\": "
        "\"{{.Response.Latency}}s\", \"protocol\": \"{{.Request.Proto}}\"}, \"traceId\": "
        "\"{{index .Request.Header \"X-B3-Traceid\"}}\"}");

    /* Hostile user agent, URI and referer: the js escaping keeps it JSON. */
    static const kp_reqlog_header_t hs[] = {
        H("User-Agent", "evil\"\\'<a>&=\n\t\x01 caf\xc3\xa9 \xe2\x80\xa8 \xff"),
        H("Referer", "it's"),
        H("X-B3-TraceId", "abc"),
    };
    static const char uri[] = "/a\"b?c=<d>";
    kp_reqlog_entry_t e = std_entry();
    e.headers = hs;
    e.n_headers = 3;
    e.uri = uri;
    e.uri_len = sizeof uri - 1;
    e.content_length = -1;
    e.status = 503;
    e.latency_s = 2.5e-05;

    char *line = render("", &e); /* empty template = Knative's default */
    size_t n = strlen(line);
    assert_true(n > 0 && line[n - 1] == '\n');
    assert_null(memchr(line, '\n', n - 1));
    cJSON *j = cJSON_Parse(line);
    if (!j)
        fail_msg("not JSON: %s", line);
    cJSON *req = cJSON_GetObjectItem(j, "httpRequest");
    assert_string_equal(cJSON_GetObjectItem(req, "requestMethod")->valuestring, "GET");
    assert_string_equal(cJSON_GetObjectItem(req, "requestUrl")->valuestring, "/a\"b?c=<d>");
    assert_string_equal(cJSON_GetObjectItem(req, "requestSize")->valuestring, "-1");
    assert_int_equal(cJSON_GetObjectItem(req, "status")->valueint, 503);
    assert_string_equal(cJSON_GetObjectItem(req, "userAgent")->valuestring,
                        "evil\"\\'<a>&=\n\t\x01 caf\xc3\xa9 \xe2\x80\xa8 \xef\xbf\xbd");
    assert_string_equal(cJSON_GetObjectItem(req, "referer")->valuestring, "it's");
    assert_string_equal(cJSON_GetObjectItem(req, "remoteIp")->valuestring, "10.0.0.1:43210");
    assert_string_equal(cJSON_GetObjectItem(req, "latency")->valuestring, "2.5e-05s");
    assert_string_equal(cJSON_GetObjectItem(req, "protocol")->valuestring, "HTTP/1.1");
    /* index on a Go http.Header yields a []string, printed as [v]. */
    assert_string_equal(cJSON_GetObjectItem(j, "traceId")->valuestring, "[abc]");
    cJSON_Delete(j);
    free(line);
}

static void js_escapes_like_go(void **state)
{
    static const kp_reqlog_header_t hs[] = {
        H("User-Agent", "a\"b\\c<d>e&f=g\x1f h\xc2\xa0i"),
    };
    kp_reqlog_entry_t e = std_entry();
    e.headers = hs;
    e.n_headers = 1;
    char *got = render("{{js .Request.UserAgent}}", &e);
    assert_string_equal(got, "a\\\"b\\\\c\\u003Cd\\u003Ee\\u0026f\\u003Dg\\u001F h\\u00A0i\n");
    free(got);
    /* Pipelines and nesting escape once per js. */
    got = render("{{.Request.UserAgent | js | js}}", &e);
    assert_string_equal(got, "a\\\\\\\"b\\\\\\\\c\\\\u003Cd\\\\u003Ee\\\\u0026f\\\\u003Dg\\\\u001F "
                             "h\\\\u00A0i\n");
    free(got);
}

static void index_header_lookup(void **state)
{
    static const kp_reqlog_header_t hs[] = {
        H("X-Multi", "one"),
        H("x-multi", "two, three"),
    };
    kp_reqlog_entry_t e = std_entry();
    e.headers = hs;
    e.n_headers = 2;
    char *got = render("{{index .Request.Header \"X-Multi\"}}|{{index .Request.Header "
                       "\"x-missing\"}}|{{index .Request.Header \"X-MULTI\" 1}}|{{index "
                       ".Request.Header `X-Multi` 5}}|{{.Request.Header.Get \"x-multi\"}}|{{js "
                       "(index .Request.Header \"X-Multi\")}}|{{\"X-Multi\" | index "
                       ".Request.Header}}",
                       &e);
    assert_string_equal(got, "[one two, three]|[]|two, three||one|[one two, three]|[one two, "
                             "three]\n");
    free(got);
}

static void latency_formats_as_go_float(void **state)
{
    static const struct {
        double v;
        const char *want;
    } cases[] = {
        {0, "0"},           {0.5, "0.5"},
        {1, "1"},           {2.25, "2.25"},
        {0.0001, "0.0001"}, {0.00001234, "1.234e-05"},
        {123456, "123456"}, {1234567, "1.234567e+06"},
        {1e21, "1e+21"},    {0.1 + 0.2, "0.30000000000000004"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char buf[64];
        rl_fmt_float(cases[i].v, buf, sizeof buf);
        assert_string_equal(buf, cases[i].want);
    }
}

static void trim_markers_comments_and_literals(void **state)
{
    expect_render("a  {{- .Request.Method -}}  b", "aGETb\n");
    expect_render("x {{/* a comment */}}y{{- /* trimmed */ -}} z", "x yz\n");
    expect_render("{{\"q\\\"\\u00e9\\n\"}}", "q\"\xc3\xa9\n\n");
    expect_render("{{`raw \\n`}}", "raw \\n\n");
    expect_render("{{js \"}}\"}}", "}}\n");
    expect_render("no actions", "no actions\n");
    /* Knative appends the newline before parsing: a final -}} eats it and
     * we still end the line. */
    expect_render("{{.Request.Method -}}", "GET\n");
}

static void traceid_prefers_traceparent(void **state)
{
    static const kp_reqlog_header_t hs[] = {
        H("X-B3-TraceId", "b3b3"),
        H("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
    };
    kp_reqlog_entry_t e = std_entry();
    e.headers = hs;
    e.n_headers = 2;
    char *got = render("{{.TraceID}}", &e);
    assert_string_equal(got, "4bf92f3577b34da6a3ce929d0e0e4736\n");
    free(got);
    e.n_headers = 1;
    got = render("{{.TraceID}}", &e);
    assert_string_equal(got, "b3b3\n");
    free(got);
}

static void unknown_fields_and_actions_are_refused(void **state)
{
    expect_compile_error("{{.Request.Foo}}", "unknown field .Request.Foo");
    expect_compile_error("x {{.Request.Foo}}", "{{.Request.Foo}}");
    expect_compile_error("{{if .Request.Method}}x{{end}}", "unsupported action \"if\"");
    expect_compile_error("{{printf \"%s\" .Request.Method}}", "unknown function \"printf\"");
    expect_compile_error("{{$x := 1}}", "unsupported syntax");
    expect_compile_error("{{.Request.Method", "unclosed action");
    expect_compile_error("{{\"abc}}", "unterminated quoted string");
    expect_compile_error("{{.Request.Header}}", "use index");
    expect_compile_error("{{index .Request.Method \"x\"}}", "index supports only");
    expect_compile_error("{{js}}", "js takes exactly one argument");
    expect_compile_error("{{.Request.Method .Request.Host}}", "is not a function");
    expect_compile_error("{{.}}", "{{.}}");
    expect_compile_error("{{}}", "missing value");
    expect_compile_error("{{/* open", "unclosed comment");
}

static void render_appends_to_buffer(void **state)
{
    kp_reqlog_t *t = NULL;
    char err[256];
    assert_int_equal(kp_reqlog_compile("{{.Response.Code}}", &t, err, sizeof err), 0);
    kp_strbuf_t sb;
    kp_strbuf_init(&sb);
    kp_reqlog_entry_t e = std_entry();
    kp_reqlog_render(t, &e, &rev, &sb);
    e.status = 404;
    kp_reqlog_render(t, &e, NULL, &sb);
    assert_string_equal(sb.data, "200\n404\n");
    kp_strbuf_free(&sb);
    kp_reqlog_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(renders_every_documented_field),
        cmocka_unit_test(default_template_matches_knative_and_renders_json),
        cmocka_unit_test(js_escapes_like_go),
        cmocka_unit_test(index_header_lookup),
        cmocka_unit_test(latency_formats_as_go_float),
        cmocka_unit_test(trim_markers_comments_and_literals),
        cmocka_unit_test(traceid_prefers_traceparent),
        cmocka_unit_test(unknown_fields_and_actions_are_refused),
        cmocka_unit_test(render_appends_to_buffer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
