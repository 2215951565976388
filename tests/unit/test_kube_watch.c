/* Tests for common/kube/json.c's watch side: line splitting whatever the
 * chunk boundaries, watch events, Status messages, EndpointSlices merged
 * across slices. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kube/internal.h"

struct lines_seen {
    char lines[8][256];
    int n;
    int stop_after;
};

static int record_line(void *ctx, const char *line, size_t len)
{
    struct lines_seen *s = ctx;
    assert_true(s->n < 8);
    assert_true(len < 256);
    memcpy(s->lines[s->n], line, len);
    s->lines[s->n][len] = '\0';
    s->n++;
    return s->stop_after && s->n == s->stop_after ? 7 : 0;
}

static void lines_split_across_every_chunk_boundary(void **state)
{
    const char *stream = "{\"a\":1}\n{\"b\":22}\r\n\n{\"c\":333}\n{\"partial\"";
    size_t total = strlen(stream);
    for (size_t cut = 0; cut <= total; cut++) {
        kp_kube_lines_t l = {0};
        struct lines_seen s = {0};
        assert_int_equal(kp_kube_lines_feed(&l, stream, cut, record_line, &s), 0);
        assert_int_equal(kp_kube_lines_feed(&l, stream + cut, total - cut, record_line, &s), 0);
        assert_int_equal(s.n, 3);
        assert_string_equal(s.lines[0], "{\"a\":1}");
        assert_string_equal(s.lines[1], "{\"b\":22}");
        assert_string_equal(s.lines[2], "{\"c\":333}");
        assert_int_equal(l.len, strlen("{\"partial\""));
        kp_kube_lines_free(&l);
    }
}

static void lines_fed_one_byte_at_a_time(void **state)
{
    const char *stream = "first line\nsecond\n";
    kp_kube_lines_t l = {0};
    struct lines_seen s = {0};
    for (size_t i = 0; stream[i]; i++)
        assert_int_equal(kp_kube_lines_feed(&l, stream + i, 1, record_line, &s), 0);
    assert_int_equal(s.n, 2);
    assert_string_equal(s.lines[0], "first line");
    assert_string_equal(s.lines[1], "second");
    assert_int_equal(l.len, 0);
    kp_kube_lines_free(&l);
}

static void lines_stop_when_the_callback_says_so(void **state)
{
    kp_kube_lines_t l = {0};
    struct lines_seen s = {.stop_after = 1};
    assert_int_equal(kp_kube_lines_feed(&l, "x\ny\n", 4, record_line, &s), 7);
    assert_int_equal(s.n, 1);
    kp_kube_lines_free(&l);
}

static void event_added_carries_object_and_rv(void **state)
{
    const char *line = "{\"type\":\"ADDED\",\"object\":{\"kind\":\"EndpointSlice\","
                       "\"metadata\":{\"name\":\"s1\",\"resourceVersion\":\"42\"}}}";
    kp_kube_event_t ev;
    assert_int_equal(kp_kube_event_parse(line, strlen(line), &ev), 0);
    assert_int_equal(ev.type, KP_KUBE_EV_ADDED);
    assert_string_equal(ev.resource_version, "42");
    assert_non_null(ev.object);
    kp_kube_event_free(&ev);
}

static void event_types_modified_deleted_bookmark(void **state)
{
    static const struct {
        const char *type;
        kp_kube_ev_type_t want;
    } cases[] = {
        {"MODIFIED", KP_KUBE_EV_MODIFIED},
        {"DELETED", KP_KUBE_EV_DELETED},
        {"BOOKMARK", KP_KUBE_EV_BOOKMARK},
    };
    for (size_t i = 0; i < 3; i++) {
        char line[256];
        snprintf(line, sizeof(line),
                 "{\"type\":\"%s\",\"object\":{\"metadata\":{\"resourceVersion\":\"7%zu\"}}}",
                 cases[i].type, i);
        kp_kube_event_t ev;
        assert_int_equal(kp_kube_event_parse(line, strlen(line), &ev), 0);
        assert_int_equal(ev.type, cases[i].want);
        char rv[8];
        snprintf(rv, sizeof(rv), "7%zu", i);
        assert_string_equal(ev.resource_version, rv);
        kp_kube_event_free(&ev);
    }
}

static void event_error_410_gives_code_and_message(void **state)
{
    const char *line = "{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"apiVersion\":\"v1\","
                       "\"metadata\":{},\"status\":\"Failure\",\"message\":\"too old resource "
                       "version: 5 (90)\",\"reason\":\"Expired\",\"code\":410}}";
    kp_kube_event_t ev;
    assert_int_equal(kp_kube_event_parse(line, strlen(line), &ev), 0);
    assert_int_equal(ev.type, KP_KUBE_EV_ERROR);
    assert_int_equal(ev.code, 410);
    assert_string_equal(ev.message, "too old resource version: 5 (90)");
    assert_string_equal(ev.resource_version, "");
    kp_kube_event_free(&ev);
}

static void event_rejects_garbage_and_unknown_types(void **state)
{
    kp_kube_event_t ev;
    const char *bad[] = {
        "not json",        "{\"type\":\"WHATEVER\",\"object\":{}}", "{\"type\":\"ADDED\"}",
        "{\"object\":{}}", "{\"type\":\"ADDED\",\"object\":[]}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(kp_kube_event_parse(bad[i], strlen(bad[i]), &ev), -1);
        assert_null(ev.root);
    }
}

static void status_message_from_status_json(void **state)
{
    const char *body = "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"status\":\"Failure\","
                       "\"message\":\"deployments.apps \\\"web\\\" is forbidden: User "
                       "\\\"scaler\\\" cannot patch resource\",\"reason\":\"Forbidden\","
                       "\"code\":403}";
    char msg[256];
    kp_kube_status_message(body, strlen(body), msg, sizeof(msg));
    assert_string_equal(msg, "deployments.apps \"web\" is forbidden: User \"scaler\" cannot "
                             "patch resource");
}

static void status_message_of_a_non_status_body_is_its_first_line(void **state)
{
    char msg[16];
    const char *body = "<html>Bad Gateway</html>\nmore";
    kp_kube_status_message(body, strlen(body), msg, sizeof(msg));
    assert_string_equal(msg, "<html>Bad Gatew"); /* truncated to fit */
    kp_kube_status_message("", 0, msg, sizeof(msg));
    assert_string_equal(msg, "");
    kp_kube_status_message(NULL, 0, msg, sizeof(msg));
    assert_string_equal(msg, "");
}

static void rbac_rule_names_verb_resource_group_namespace(void **state)
{
    char out[256];
    kp_kube_rbac_t r = {"patch", "deployments/scale", "apps", "default"};
    kp_kube_rbac_rule(&r, out, sizeof(out));
    assert_string_equal(out, "verbs [patch] on deployments/scale in apps, namespace default");
    kp_kube_rbac_t core = {"get", "pods", "", "ns1"};
    kp_kube_rbac_rule(&core, out, sizeof(out));
    assert_string_equal(out, "verbs [get] on pods in \"\" (core), namespace ns1");
}

static kp_kube_slice_t slice_from(const char *json)
{
    cJSON *root = cJSON_Parse(json);
    assert_non_null(root);
    kp_kube_slice_t s;
    assert_int_equal(kp_kube_slice_parse(root, &s), 0);
    cJSON_Delete(root);
    return s;
}

static void slice_parse_ready_absent_counts_as_ready(void **state)
{
    kp_kube_slice_t s = slice_from(
        "{\"metadata\":{\"name\":\"web-abc\"},\"ports\":[{\"port\":8012},{\"port\":9090}],"
        "\"endpoints\":["
        "{\"addresses\":[\"10.1.0.5\",\"10.1.0.6\"],\"targetRef\":{\"kind\":\"Pod\",\"name\":"
        "\"p5\"}},"
        "{\"addresses\":[\"10.1.0.7\"],\"conditions\":{\"ready\":false}},"
        "{\"addresses\":[\"10.1.0.8\"],\"conditions\":{\"ready\":true,\"serving\":true}},"
        "{\"conditions\":{\"ready\":true}}]}");
    assert_string_equal(s.name, "web-abc");
    assert_int_equal(s.n, 3); /* the one without addresses is skipped */
    assert_string_equal(s.eps[0].ip, "10.1.0.5");
    assert_int_equal(s.eps[0].ready, 1);
    assert_string_equal(s.eps[0].pod, "p5");
    assert_int_equal(s.eps[0].port, 8012);
    assert_int_equal(s.eps[1].ready, 0);
    assert_string_equal(s.eps[1].pod, "");
    assert_int_equal(s.eps[2].ready, 1);
    kp_kube_slice_free(&s);

    kp_kube_slice_t noport = slice_from("{\"metadata\":{\"name\":\"x\"},\"endpoints\":"
                                        "[{\"addresses\":[\"10.0.0.1\"]}]}");
    assert_int_equal(noport.eps[0].port, 0);
    kp_kube_slice_free(&noport);
}

/* A revision's private Service has several ports (Knative's
 * MakePrivateService): the serving ones are found by name, wherever they
 * stand in the list. */
static void slice_ports_are_found_by_name(void **state)
{
    kp_kube_slice_t s = slice_from("{\"metadata\":{\"name\":\"r-private-x\"},\"ports\":["
                                   "{\"name\":\"http-autometric\",\"port\":9090},"
                                   "{\"name\":\"http-queueadm\",\"port\":8022},"
                                   "{\"name\":\"http2\",\"port\":8013},"
                                   "{\"name\":\"http\",\"port\":8012}],"
                                   "\"endpoints\":[{\"addresses\":[\"10.1.0.5\"]}]}");
    assert_int_equal(s.eps[0].port, 8012);
    assert_int_equal(s.eps[0].h2c_port, 8013);
    kp_kube_slice_free(&s);
    kp_kube_slice_t h2c = slice_from("{\"metadata\":{\"name\":\"r-private-y\"},\"ports\":["
                                     "{\"name\":\"http-autometric\",\"port\":9090},"
                                     "{\"name\":\"http2\",\"port\":8013}],"
                                     "\"endpoints\":[{\"addresses\":[\"10.1.0.6\"]}]}");
    assert_int_equal(h2c.eps[0].h2c_port, 8013);
    assert_int_equal(h2c.eps[0].port, 9090); /* no "http": the first, as before */
    kp_kube_slice_free(&h2c);
}

static void merge_across_slices_with_replace_and_delete(void **state)
{
    kp_kube_slices_t set = {0};
    kp_kube_slice_t a = slice_from("{\"metadata\":{\"name\":\"a\"},\"ports\":[{\"port\":80}],"
                                   "\"endpoints\":[{\"addresses\":[\"10.0.0.2\"]},"
                                   "{\"addresses\":[\"10.0.0.1\"]}]}");
    kp_kube_slice_t b = slice_from("{\"metadata\":{\"name\":\"b\"},\"ports\":[{\"port\":80}],"
                                   "\"endpoints\":[{\"addresses\":[\"10.0.0.3\"],"
                                   "\"conditions\":{\"ready\":false}},"
                                   "{\"addresses\":[\"10.0.0.2\"],"
                                   "\"conditions\":{\"ready\":false},"
                                   "\"targetRef\":{\"name\":\"p2\"}}]}");
    kp_kube_slices_apply(&set, KP_KUBE_EV_ADDED, &a);
    kp_kube_slices_apply(&set, KP_KUBE_EV_ADDED, &b);
    assert_null(a.eps);

    kp_kube_endpoint_t *eps;
    size_t n;
    assert_int_equal(kp_kube_slices_merge(&set, &eps, &n), 0);
    assert_int_equal(n, 3); /* 10.0.0.2 is in both: once, ready from a */
    assert_string_equal(eps[0].ip, "10.0.0.1");
    assert_string_equal(eps[1].ip, "10.0.0.2");
    assert_int_equal(eps[1].ready, 1);
    assert_string_equal(eps[1].pod, "p2");
    assert_string_equal(eps[2].ip, "10.0.0.3");
    assert_int_equal(eps[2].ready, 0);
    free(eps);

    /* MODIFIED replaces a's endpoints wholesale. */
    kp_kube_slice_t a2 = slice_from("{\"metadata\":{\"name\":\"a\"},\"ports\":[{\"port\":80}],"
                                    "\"endpoints\":[{\"addresses\":[\"10.0.0.9\"]}]}");
    kp_kube_slices_apply(&set, KP_KUBE_EV_MODIFIED, &a2);
    assert_int_equal(kp_kube_slices_merge(&set, &eps, &n), 0);
    assert_int_equal(n, 3);
    assert_string_equal(eps[0].ip, "10.0.0.2");
    assert_int_equal(eps[0].ready, 0);
    assert_string_equal(eps[2].ip, "10.0.0.9");
    free(eps);

    /* DELETED needs only the name. */
    kp_kube_slice_t bdel = slice_from("{\"metadata\":{\"name\":\"b\"}}");
    kp_kube_slices_apply(&set, KP_KUBE_EV_DELETED, &bdel);
    assert_int_equal(kp_kube_slices_merge(&set, &eps, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(eps[0].ip, "10.0.0.9");
    free(eps);

    kp_kube_slice_t adel = slice_from("{\"metadata\":{\"name\":\"a\"}}");
    kp_kube_slices_apply(&set, KP_KUBE_EV_DELETED, &adel);
    assert_int_equal(kp_kube_slices_merge(&set, &eps, &n), 0);
    assert_int_equal(n, 0);
    assert_null(eps);
    kp_kube_slices_clear(&set);
}

/* Found by tests/fuzz/fuzz_kube_watch (regressions/kube_watch/): a slice
 * with no endpoints (eps NULL) beside one with endpoints made the merge
 * memcpy from NULL, undefined behaviour that UBSan stops on. */
static void merge_with_an_empty_slice(void **state)
{
    kp_kube_slices_t set = {0};
    kp_kube_slice_t empty = slice_from("{\"metadata\":{\"name\":\"empty\"},\"endpoints\":[]}");
    kp_kube_slice_t full = slice_from("{\"metadata\":{\"name\":\"full\"},\"ports\":[{\"port\":80}],"
                                      "\"endpoints\":[{\"addresses\":[\"10.0.0.1\"]}]}");
    assert_int_equal(empty.n, 0);
    kp_kube_slices_apply(&set, KP_KUBE_EV_ADDED, &empty);
    kp_kube_slices_apply(&set, KP_KUBE_EV_ADDED, &full);
    kp_kube_endpoint_t *eps;
    size_t n;
    assert_int_equal(kp_kube_slices_merge(&set, &eps, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(eps[0].ip, "10.0.0.1");
    free(eps);
    kp_kube_slices_clear(&set);
}

static void list_replaces_the_set_and_gives_its_rv(void **state)
{
    kp_kube_slices_t set = {0};
    kp_kube_slice_t old = slice_from("{\"metadata\":{\"name\":\"gone\"},"
                                     "\"endpoints\":[{\"addresses\":[\"10.9.9.9\"]}]}");
    kp_kube_slices_apply(&set, KP_KUBE_EV_ADDED, &old);
    const char *body = "{\"kind\":\"EndpointSliceList\",\"metadata\":{\"resourceVersion\":\"555\"},"
                       "\"items\":[{\"metadata\":{\"name\":\"s1\"},\"ports\":[{\"port\":8012}],"
                       "\"endpoints\":[{\"addresses\":[\"10.0.0.4\"]}]}]}";
    char rv[64];
    assert_int_equal(kp_kube_slices_from_list(&set, body, strlen(body), rv, sizeof(rv)), 0);
    assert_string_equal(rv, "555");
    assert_int_equal(set.n, 1);
    assert_string_equal(set.items[0].name, "s1");
    assert_int_equal(set.items[0].eps[0].port, 8012);

    const char *empty = "{\"kind\":\"EndpointSliceList\",\"metadata\":{\"resourceVersion\":\"6\"},"
                        "\"items\":null}";
    assert_int_equal(kp_kube_slices_from_list(&set, empty, strlen(empty), rv, sizeof(rv)), 0);
    assert_int_equal(set.n, 0);
    assert_int_equal(kp_kube_slices_from_list(&set, "{}", 2, rv, sizeof(rv)), -1);
    kp_kube_slices_clear(&set);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(lines_split_across_every_chunk_boundary),
        cmocka_unit_test(lines_fed_one_byte_at_a_time),
        cmocka_unit_test(lines_stop_when_the_callback_says_so),
        cmocka_unit_test(event_added_carries_object_and_rv),
        cmocka_unit_test(event_types_modified_deleted_bookmark),
        cmocka_unit_test(event_error_410_gives_code_and_message),
        cmocka_unit_test(event_rejects_garbage_and_unknown_types),
        cmocka_unit_test(status_message_from_status_json),
        cmocka_unit_test(status_message_of_a_non_status_body_is_its_first_line),
        cmocka_unit_test(rbac_rule_names_verb_resource_group_namespace),
        cmocka_unit_test(slice_parse_ready_absent_counts_as_ready),
        cmocka_unit_test(slice_ports_are_found_by_name),
        cmocka_unit_test(merge_across_slices_with_replace_and_delete),
        cmocka_unit_test(merge_with_an_empty_slice),
        cmocka_unit_test(list_replaces_the_set_and_gives_its_rv),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
