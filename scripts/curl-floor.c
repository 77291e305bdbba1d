// The floor of libcurl's own cost, for scripts/bench.sh: one thread, one multi handle, N transfers kept in flight
// against the benchmark's upstream, easy handles reused — no server side, no signing, no Swift. It prints
// "requests/s CPU-microseconds-per-request", so sensgate's passthrough can be read against what libcurl alone costs.
//   cc -O2 curl-floor.c -o curl-floor -lcurl && ./curl-floor URL IN_FLIGHT SECONDS
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>

static size_t discard(char *data, size_t size, size_t count, void *context) {
    (void)data; (void)context;
    return size * count;
}

static double seconds(struct timeval t) { return (double)t.tv_sec + (double)t.tv_usec / 1e6; }

int main(int argc, char **argv) {
    if (argc != 4) { fprintf(stderr, "usage: curl-floor URL IN_FLIGHT SECONDS\n"); return 2; }
    const char *url = argv[1];
    int inFlight = atoi(argv[2]);
    double duration = atof(argv[3]);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    CURLM *multi = curl_multi_init();
    curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, 256L);
    // The three headers sensgate adds, so requests are the same size.
    struct curl_slist *headers = NULL;
    headers = curl_slist_append(headers, "x-ncp-apigw-timestamp: 1700000000000");
    headers = curl_slist_append(headers, "x-ncp-iam-access-key: BENCHACCESSKEY");
    headers = curl_slist_append(headers, "x-ncp-apigw-signature-v2: AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=");
    for (int i = 0; i < inFlight; i++) {
        CURL *easy = curl_easy_init();
        curl_easy_setopt(easy, CURLOPT_URL, url);
        curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, discard);
        curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(easy, CURLOPT_TCP_NODELAY, 1L);
        curl_easy_setopt(easy, CURLOPT_HTTPHEADER, headers);
        curl_multi_add_handle(multi, easy);
    }
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    long done = 0, failed = 0;
    double elapsed = 0;
    int running = 0;
    while (elapsed < duration) {
        curl_multi_perform(multi, &running);
        CURLMsg *message;
        int left;
        while ((message = curl_multi_info_read(multi, &left))) {
            if (message->msg != CURLMSG_DONE) continue;
            if (message->data.result == CURLE_OK) done++; else failed++;
            curl_multi_remove_handle(multi, message->easy_handle);
            curl_multi_add_handle(multi, message->easy_handle);  // same options: the next request
        }
        clock_gettime(CLOCK_MONOTONIC, &now);
        elapsed = (double)(now.tv_sec - start.tv_sec) + (double)(now.tv_nsec - start.tv_nsec) / 1e9;
        curl_multi_poll(multi, NULL, 0, 100, NULL);
    }
    struct rusage usage;
    getrusage(RUSAGE_SELF, &usage);
    if (done == 0 || failed > 0) { fprintf(stderr, "curl-floor: %ld done, %ld failed\n", done, failed); return 1; }
    printf("%.0f %.1f\n", (double)done / elapsed, (seconds(usage.ru_utime) + seconds(usage.ru_stime)) * 1e6 / (double)done);
    return 0;
}
