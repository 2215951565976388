/* libcurl, loaded the first time it is needed. Linked, it would bring its
 * whole dependency tree (GnuTLS, OpenSSL, Kerberos, LDAP...) into every
 * activator at start, and GnuTLS initialises itself in a constructor:
 * about 6 MiB of resident memory in a process that otherwise needs 2, for
 * a library only the kubernetes backend uses. So nothing links libcurl:
 * these definitions stand in for its functions and forward to the real
 * ones, found with dlopen on the first curl_global_init. */
#define CURL_DISABLE_TYPECHECK /* these are definitions, not calls */
#include <curl/curl.h>
#include <dlfcn.h>
#include <stdarg.h>
#include <stdio.h>

#define LIBCURL "libcurl.so.4"

static struct {
    void *lib;
    CURLcode (*global_init)(long);
    void (*global_cleanup)(void);
    CURL *(*easy_init)(void);
    CURLcode (*easy_setopt)(CURL *, CURLoption, ...);
    CURLcode (*easy_getinfo)(CURL *, CURLINFO, ...);
    void (*easy_cleanup)(CURL *);
    const char *(*easy_strerror)(CURLcode);
    CURLM *(*multi_init)(void);
    CURLMcode (*multi_setopt)(CURLM *, CURLMoption, ...);
    CURLMcode (*multi_add_handle)(CURLM *, CURL *);
    CURLMcode (*multi_remove_handle)(CURLM *, CURL *);
    CURLMcode (*multi_assign)(CURLM *, curl_socket_t, void *);
    CURLMcode (*multi_socket_action)(CURLM *, curl_socket_t, int, int *);
    CURLMsg *(*multi_info_read)(CURLM *, int *);
    CURLMcode (*multi_cleanup)(CURLM *);
    struct curl_slist *(*slist_append)(struct curl_slist *, const char *);
    void (*slist_free_all)(struct curl_slist *);
} lc;

static int load(void)
{
    void *lib = dlopen(LIBCURL, RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        fprintf(stderr, "cannot load %s (Debian: apt-get install libcurl4): %s\n", LIBCURL,
                dlerror());
        return -1;
    }
    struct {
        const char *name;
        void **slot;
    } syms[] = {
#define SYM(field, name) {name, (void **)&lc.field}
        SYM(global_init, "curl_global_init"),
        SYM(global_cleanup, "curl_global_cleanup"),
        SYM(easy_init, "curl_easy_init"),
        SYM(easy_setopt, "curl_easy_setopt"),
        SYM(easy_getinfo, "curl_easy_getinfo"),
        SYM(easy_cleanup, "curl_easy_cleanup"),
        SYM(easy_strerror, "curl_easy_strerror"),
        SYM(multi_init, "curl_multi_init"),
        SYM(multi_setopt, "curl_multi_setopt"),
        SYM(multi_add_handle, "curl_multi_add_handle"),
        SYM(multi_remove_handle, "curl_multi_remove_handle"),
        SYM(multi_assign, "curl_multi_assign"),
        SYM(multi_socket_action, "curl_multi_socket_action"),
        SYM(multi_info_read, "curl_multi_info_read"),
        SYM(multi_cleanup, "curl_multi_cleanup"),
        SYM(slist_append, "curl_slist_append"),
        SYM(slist_free_all, "curl_slist_free_all"),
#undef SYM
    };
    for (size_t i = 0; i < sizeof syms / sizeof syms[0]; i++) {
        *syms[i].slot = dlsym(lib, syms[i].name);
        if (!*syms[i].slot) {
            fprintf(stderr, "%s has no %s: %s\n", LIBCURL, syms[i].name, dlerror());
            return -1; /* the library stays loaded: curl cannot be unloaded safely */
        }
    }
    lc.lib = lib;
    return 0;
}

CURLcode curl_global_init(long flags)
{
    if (!lc.lib && load() != 0)
        return CURLE_FAILED_INIT;
    return lc.global_init(flags);
}

void curl_global_cleanup(void)
{
    if (lc.lib)
        lc.global_cleanup();
}

/* Every other function is only reached after curl_global_init succeeded. */

CURL *curl_easy_init(void)
{
    return lc.easy_init();
}

/* The option number says the type of its argument (curl.h's CURLOPTTYPE_*
 * ranges): read it as that type and pass it on. */
#define FORWARD_OPTION(fn, handle, option, ap)                                                  \
    ((option) < CURLOPTTYPE_OBJECTPOINT     ? fn(handle, option, va_arg(ap, long))              \
     : (option) < CURLOPTTYPE_FUNCTIONPOINT ? fn(handle, option, va_arg(ap, void *))            \
     : (option) < CURLOPTTYPE_OFF_T         ? fn(handle, option, va_arg(ap, void (*)(void)))    \
     : (option) < CURLOPTTYPE_BLOB          ? fn(handle, option, va_arg(ap, curl_off_t))        \
                                            : fn(handle, option, va_arg(ap, void *)))

CURLcode curl_easy_setopt(CURL *handle, CURLoption option, ...)
{
    va_list ap;
    va_start(ap, option);
    CURLcode rc = FORWARD_OPTION(lc.easy_setopt, handle, option, ap);
    va_end(ap);
    return rc;
}

CURLMcode curl_multi_setopt(CURLM *multi, CURLMoption option, ...)
{
    va_list ap;
    va_start(ap, option);
    CURLMcode rc = FORWARD_OPTION(lc.multi_setopt, multi, option, ap);
    va_end(ap);
    return rc;
}

CURLcode curl_easy_getinfo(CURL *handle, CURLINFO info, ...)
{
    va_list ap;
    va_start(ap, info);
    void *out = va_arg(ap, void *); /* always where to write the answer */
    va_end(ap);
    return lc.easy_getinfo(handle, info, out);
}

void curl_easy_cleanup(CURL *handle)
{
    lc.easy_cleanup(handle);
}

const char *curl_easy_strerror(CURLcode code)
{
    return lc.lib ? lc.easy_strerror(code) : "libcurl not loaded";
}

CURLM *curl_multi_init(void)
{
    return lc.multi_init();
}

CURLMcode curl_multi_add_handle(CURLM *multi, CURL *handle)
{
    return lc.multi_add_handle(multi, handle);
}

CURLMcode curl_multi_remove_handle(CURLM *multi, CURL *handle)
{
    return lc.multi_remove_handle(multi, handle);
}

CURLMcode curl_multi_assign(CURLM *multi, curl_socket_t sockfd, void *sockp)
{
    return lc.multi_assign(multi, sockfd, sockp);
}

CURLMcode curl_multi_socket_action(CURLM *multi, curl_socket_t s, int ev_bitmask,
                                   int *running_handles)
{
    return lc.multi_socket_action(multi, s, ev_bitmask, running_handles);
}

CURLMsg *curl_multi_info_read(CURLM *multi, int *msgs_in_queue)
{
    return lc.multi_info_read(multi, msgs_in_queue);
}

CURLMcode curl_multi_cleanup(CURLM *multi)
{
    return lc.multi_cleanup(multi);
}

struct curl_slist *curl_slist_append(struct curl_slist *list, const char *string)
{
    return lc.slist_append(list, string);
}

void curl_slist_free_all(struct curl_slist *list)
{
    if (lc.lib)
        lc.slist_free_all(list);
}
