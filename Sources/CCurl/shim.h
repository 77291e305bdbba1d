// libcurl for Swift: curl_easy_setopt, curl_easy_getinfo and curl_multi_setopt are variadic,
// which Swift cannot call, so each argument type gets a typed inline wrapper here.
#ifndef SENSGATE_CCURL_SHIM_H
#define SENSGATE_CCURL_SHIM_H
#include <curl/curl.h>

typedef size_t (*sg_data_callback)(char *buffer, size_t size, size_t nitems, void *userdata);
typedef int (*sg_seek_callback)(void *userdata, curl_off_t offset, int origin);
typedef int (*sg_prereq_callback)(void *clientp, char *conn_primary_ip, char *conn_local_ip, int conn_primary_port, int conn_local_port);

static inline CURLcode sg_easy_setopt_long(CURL *handle, CURLoption option, long value) {
    return curl_easy_setopt(handle, option, value);
}
static inline CURLcode sg_easy_setopt_off(CURL *handle, CURLoption option, curl_off_t value) {
    return curl_easy_setopt(handle, option, value);
}
static inline CURLcode sg_easy_setopt_string(CURL *handle, CURLoption option, const char *value) {
    return curl_easy_setopt(handle, option, value);
}
static inline CURLcode sg_easy_setopt_pointer(CURL *handle, CURLoption option, void *value) {
    return curl_easy_setopt(handle, option, value);
}
static inline CURLcode sg_easy_setopt_slist(CURL *handle, CURLoption option, struct curl_slist *value) {
    return curl_easy_setopt(handle, option, value);
}
static inline CURLcode sg_easy_setopt_callback(CURL *handle, CURLoption option, sg_data_callback value) {
    return curl_easy_setopt(handle, option, value);
}
static inline CURLcode sg_easy_setopt_seek(CURL *handle, CURLoption option, sg_seek_callback value) {
    return curl_easy_setopt(handle, option, value);
}
static inline CURLcode sg_easy_setopt_prereq(CURL *handle, sg_prereq_callback value) {
    return curl_easy_setopt(handle, CURLOPT_PREREQFUNCTION, value);
}
static inline CURLcode sg_easy_getinfo_long(CURL *handle, CURLINFO info, long *value) {
    return curl_easy_getinfo(handle, info, value);
}
static inline CURLcode sg_easy_getinfo_string(CURL *handle, CURLINFO info, char **value) {
    return curl_easy_getinfo(handle, info, value);
}
static inline CURLcode sg_easy_getinfo_off(CURL *handle, CURLINFO info, curl_off_t *value) {
    return curl_easy_getinfo(handle, info, value);
}
static inline CURLcode sg_easy_getinfo_pointer(CURL *handle, CURLINFO info, void **value) {
    return curl_easy_getinfo(handle, info, value);
}
static inline CURLMcode sg_multi_setopt_long(CURLM *handle, CURLMoption option, long value) {
    return curl_multi_setopt(handle, option, value);
}
/// The result field of a CURLMSG_DONE message (a union member in C).
static inline CURLcode sg_msg_result(const CURLMsg *message) {
    return message->data.result;
}
#endif
