/* ingest-client: the collector bench's terminals — signed lines posted in batches over keep-alive mTLS. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <curl/curl.h>

/*
 * Usage: ingest-client CA-FILE BATCH JOB...   where JOB is URL,CERT,KEY,LINES-FILE
 *
 * Every JOB is one terminal on its own thread: the lines of LINES-FILE (one signed record each, as
 * the terminal's uploader would send them) posted to URL in batches of BATCH lines, one request after
 * the other on one keep-alive TLS connection authenticated with CERT/KEY, all jobs at once. A batch
 * must be answered 200 before the next one is sent. On success prints one line:
 *   records=N seconds=WALL cpu_seconds=CPU steady_records=R steady_seconds=S
 * where WALL runs from the start of the posting to the last answer, CPU is this process's user +
 * system time over it (what the load costs the machine the collector shares), and R records were
 * answered in the S seconds during which every terminal was posting (steady_window()): the rate a
 * centre keeps under continuous load, without this run's start (handshakes) and end (terminals do not
 * finish together). Any other answer or transport error: a message on stderr, exit 1.
 *
 * It stands in for terminals that in a real fleet are other machines: its work per record is kept
 * small (no copies of the lines after loading, no parsing of answers beyond the status) so that on a
 * shared machine nearly all CPU is left to the collector being measured.
 */

#define MAX_JOBS       256
#define MAX_LINES_FILE (1u << 30)

typedef struct Job {
        const char *url, *cert, *key, *path;
        char *data; /* the file, whole */
        size_t size;
        const char **lines; /* start of each line in data */
        size_t n_lines;
        int64_t *acked_ns; /* when each batch was answered, from the start line */
        size_t n_acked;
        char error[256];
} Job;

static const char *ca_file;
static size_t batch;
static pthread_barrier_t start_line;
static int64_t start_ns;

static int64_t now_ns(clockid_t clock)
{
        struct timespec t;
        clock_gettime(clock, &t);
        return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static int load_lines(Job *j)
{
        FILE *f = fopen(j->path, "re");
        long size;

        if (!f)
                return -errno;
        if (fseek(f, 0, SEEK_END) < 0 || (size = ftell(f)) < 0 || (unsigned long)size > MAX_LINES_FILE ||
            fseek(f, 0, SEEK_SET) < 0) {
                fclose(f);
                return -EFBIG;
        }
        j->data = malloc((size_t)size + 1);
        if (!j->data || fread(j->data, 1, (size_t)size, f) != (size_t)size) {
                fclose(f);
                return -EIO;
        }
        fclose(f);
        j->size = (size_t)size;
        j->data[j->size] = 0;
        for (size_t i = 0; i < j->size; i++)
                if (j->data[i] == '\n')
                        j->n_lines++;
        if (j->n_lines == 0 || j->data[j->size - 1] != '\n')
                return -EBADMSG; /* every line ends with a newline, as the uploader sends them */
        j->lines = calloc(j->n_lines + 1, sizeof(char *));
        j->acked_ns = calloc(j->n_lines / batch + 1, sizeof(int64_t));
        if (!j->lines || !j->acked_ns)
                return -ENOMEM;
        j->lines[0] = j->data;
        for (size_t i = 0, k = 1; i < j->size; i++)
                if (j->data[i] == '\n')
                        j->lines[k++] = j->data + i + 1;
        return 0;
}

/* The answer's body is not needed: only its status is checked. */
static size_t discard(char *p, size_t size, size_t n, void *userdata)
{
        (void)p, (void)userdata;
        return size * n;
}

static void *run_job(void *userdata)
{
        Job *j = userdata;
        struct curl_slist *headers = curl_slist_append(NULL, "Content-Type: application/x-ndjson");
        CURL *c = curl_easy_init();

        headers = curl_slist_append(headers, "Expect:"); /* no 100-continue round trip before each batch */
        pthread_barrier_wait(&start_line);
        if (!c || !headers) {
                snprintf(j->error, sizeof(j->error), "out of memory");
                goto done;
        }
        curl_easy_setopt(c, CURLOPT_URL, j->url);
        curl_easy_setopt(c, CURLOPT_CAINFO, ca_file);
        curl_easy_setopt(c, CURLOPT_SSLCERT, j->cert);
        curl_easy_setopt(c, CURLOPT_SSLKEY, j->key);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
        curl_easy_setopt(c, CURLOPT_TIMEOUT, 300L);
        curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(c, CURLOPT_POST, 1L);
        for (size_t i = 0; i < j->n_lines; i += batch) {
                size_t k = i + batch < j->n_lines ? i + batch : j->n_lines;
                long status = 0;
                CURLcode e;

                curl_easy_setopt(c, CURLOPT_POSTFIELDS, j->lines[i]);
                curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(j->lines[k] - j->lines[i]));
                e = curl_easy_perform(c);
                if (e != CURLE_OK) {
                        snprintf(j->error, sizeof(j->error), "batch at line %zu: %s", i,
                                 curl_easy_strerror(e));
                        break;
                }
                curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
                if (status != 200) {
                        snprintf(j->error, sizeof(j->error), "batch at line %zu: HTTP %ld", i, status);
                        break;
                }
                j->acked_ns[j->n_acked++] = now_ns(CLOCK_MONOTONIC) - start_ns;
        }
done:
        curl_easy_cleanup(c);
        curl_slist_free_all(headers);
        return NULL;
}

/*
 * The window in which every terminal was loading the collector: from the moment the last of them had
 * its first answer (TLS handshakes done, every pipeline full) to the moment the first of them was done
 * (after it, fewer terminals than asked for). Its length in seconds, and in ret_records the records
 * answered within it; 0 when there is no such window (too few batches).
 */
static double steady_window(const Job *jobs, size_t n, size_t *ret_records)
{
        int64_t from = 0, to = INT64_MAX;
        size_t records = 0;

        for (size_t i = 0; i < n; i++) {
                if (jobs[i].n_acked < 2) {
                        *ret_records = 0;
                        return 0;
                }
                if (jobs[i].acked_ns[0] > from)
                        from = jobs[i].acked_ns[0];
                if (jobs[i].acked_ns[jobs[i].n_acked - 1] < to)
                        to = jobs[i].acked_ns[jobs[i].n_acked - 1];
        }
        for (size_t i = 0; i < n; i++)
                for (size_t b = 0; b < jobs[i].n_acked; b++)
                        if (jobs[i].acked_ns[b] > from && jobs[i].acked_ns[b] <= to) {
                                size_t first = b * batch;
                                records += first + batch < jobs[i].n_lines ? batch : jobs[i].n_lines - first;
                        }
        *ret_records = to > from ? records : 0;
        return to > from ? (double)(to - from) * 1e-9 : 0;
}

static double cpu_seconds(void)
{
        struct rusage u;
        getrusage(RUSAGE_SELF, &u);
        return (double)(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
               (double)(u.ru_utime.tv_usec + u.ru_stime.tv_usec) * 1e-6;
}

int main(int argc, char **argv)
{
        static Job jobs[MAX_JOBS];
        pthread_t threads[MAX_JOBS];
        size_t n = 0, records = 0;
        int64_t t0;
        double cpu0;
        int ret = 0;

        if (argc < 4 || argc - 3 > MAX_JOBS) {
                fprintf(stderr,
                        "usage: ingest-client CA-FILE BATCH URL,CERT,KEY,LINES-FILE... (at most %d)\n",
                        MAX_JOBS);
                return 2;
        }
        ca_file = argv[1];
        batch = strtoull(argv[2], NULL, 10);
        if (batch == 0) {
                fprintf(stderr, "ingest-client: BATCH must be a positive number of lines\n");
                return 2;
        }
        for (int a = 3; a < argc; a++, n++) {
                Job *j = &jobs[n];
                char *s = argv[a];
                int r;

                j->url = strsep(&s, ",");
                j->cert = strsep(&s, ",");
                j->key = strsep(&s, ",");
                j->path = s;
                if (!j->cert || !j->key || !j->path) {
                        fprintf(stderr, "ingest-client: job '%s' is not URL,CERT,KEY,LINES-FILE\n", argv[a]);
                        return 2;
                }
                if ((r = load_lines(j)) < 0) {
                        fprintf(stderr, "ingest-client: %s: %s\n", j->path, strerror(-r));
                        return 1;
                }
                records += j->n_lines;
        }
        cpu0 = cpu_seconds(); /* the posting only, not the loading */
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK ||
            pthread_barrier_init(&start_line, NULL, (unsigned)n + 1) != 0) {
                fprintf(stderr, "ingest-client: cannot initialise\n");
                return 1;
        }
        for (size_t i = 0; i < n; i++)
                if (pthread_create(&threads[i], NULL, run_job, &jobs[i]) != 0) {
                        fprintf(stderr, "ingest-client: cannot start thread %zu\n", i);
                        return 1;
                }
        t0 = start_ns = now_ns(CLOCK_MONOTONIC);
        pthread_barrier_wait(&start_line);
        for (size_t i = 0; i < n; i++)
                pthread_join(threads[i], NULL);
        double wall = (double)(now_ns(CLOCK_MONOTONIC) - t0) * 1e-9;
        for (size_t i = 0; i < n; i++)
                if (jobs[i].error[0]) {
                        fprintf(stderr, "ingest-client: %s: %s\n", jobs[i].url, jobs[i].error);
                        ret = 1;
                }
        if (ret == 0) {
                size_t steady_records;
                double steady = steady_window(jobs, n, &steady_records);
                printf("records=%zu seconds=%.3f cpu_seconds=%.3f steady_records=%zu steady_seconds=%.3f\n",
                       records, wall, cpu_seconds() - cpu0, steady_records, steady);
        }
        for (size_t i = 0; i < n; i++) {
                free(jobs[i].data);
                free(jobs[i].lines);
                free(jobs[i].acked_ns);
        }
        curl_global_cleanup();
        return ret;
}
