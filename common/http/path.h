/* Request paths as Go's net/http ServeMux sees them, so that a route answers
 * every spelling of its path that Knative's Go servers answer: "//x",
 * "/./x", "/a/../x" and "/%78" all name "/x" (a kubelet before 1.26 sends
 * a preStop hook's path as "//wait-for-drain"). */
#ifndef KP_HTTP_PATH_H
#define KP_HTTP_PATH_H

#include <stddef.h>

/* The path of a request target, without its query: the target itself in
 * origin-form ("/p?q"), what follows the authority in absolute-form
 * ("http://h:1/p?q"; "" when nothing does). NULL for any other form ("*",
 * "h:1"), which names no path. */
const char *kp_http_target_path(const char *target, size_t len, size_t *path_len);

/* Decodes every %XX of a path, as Go's url.PathUnescape does ('+' stays).
 * out must hold len bytes. Returns the decoded length, or -1 when a '%' is
 * not followed by two hex digits (Go's server refuses such a request). */
long kp_http_path_unescape(const char *path, size_t len, char *out);

/* Go's cleanPath (net/http): the path rooted at "/", repeated slashes and
 * "." segments dropped, each ".." removing the segment before it (never
 * going above the root), a trailing slash kept; "" is "/". out must hold
 * len + 1 bytes; returns the cleaned length. */
size_t kp_http_path_clean(const char *path, size_t len, char *out);

/* Whether a request target names route, a literal path such as
 * "/wait-for-drain", the way Go 1.21's ServeMux (which Knative's
 * queue-proxy runs) matches a pattern without a trailing slash: the path
 * unescaped, then cleaned, then compared case-sensitively. The mux itself
 * answers an unclean spelling with a 301 to the clean one, which Go
 * clients (the kubelet) follow; we serve it at once. */
int kp_http_target_is(const char *target, size_t len, const char *route);

#endif
