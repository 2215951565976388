#include "process_metrics.h"

#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "prometheus.h"

typedef struct {
    double cpu_seconds;
    double start_time_seconds; /* since the epoch */
    double virtual_bytes;
    double resident_bytes;
} proc_stat_t;

static double boot_time_seconds(void)
{
    FILE *f = fopen("/proc/stat", "r");
    if (!f)
        return -1;
    char line[256];
    double btime = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "btime %lf", &btime) == 1)
            break;
    fclose(f);
    return btime;
}

/* /proc/self/stat: the command name (field 2) may hold spaces and
 * parentheses, so fields are counted from its last ')'. */
static int read_proc_stat(proc_stat_t *out)
{
    FILE *f = fopen("/proc/self/stat", "r");
    if (!f)
        return -1;
    char buf[1024];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')');
    if (!p)
        return -1;
    unsigned long utime, stime, vsize;
    unsigned long long starttime;
    long rss_pages;
    /* Fields 3.. : state ppid pgrp session tty_nr tpgid flags minflt
     * cminflt majflt cmajflt utime stime cutime cstime priority nice
     * num_threads itrealvalue starttime vsize rss */
    if (sscanf(p + 1,
               " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu %*d %*d %*d %*d %*d %*d "
               "%llu %lu %ld",
               &utime, &stime, &starttime, &vsize, &rss_pages) != 5)
        return -1;
    long ticks = sysconf(_SC_CLK_TCK);
    long page = sysconf(_SC_PAGESIZE);
    double btime = boot_time_seconds();
    if (ticks <= 0 || page <= 0 || btime < 0)
        return -1;
    out->cpu_seconds = (double)(utime + stime) / (double)ticks;
    out->start_time_seconds = btime + (double)starttime / (double)ticks;
    out->virtual_bytes = (double)vsize;
    out->resident_bytes = (double)rss_pages * (double)page;
    return 0;
}

static int count_open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1; /* the directory stream's own descriptor */
}

static void metric(kp_strbuf_t *out, const char *name, const char *type, const char *help,
                   double value)
{
    kp_strbuf_printf(out, "# HELP %s %s\n# TYPE %s %s\n%s ", name, help, name, type, name);
    kp_prom_value(out, value);
    kp_strbuf_puts(out, "\n");
}

void kp_process_render_metrics(kp_strbuf_t *out)
{
    proc_stat_t st;
    if (read_proc_stat(&st) == 0) {
        metric(out, "process_cpu_seconds_total", "counter",
               "Total user and system CPU time spent in seconds.", st.cpu_seconds);
        metric(out, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.",
               st.resident_bytes);
        metric(out, "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.",
               st.virtual_bytes);
        metric(out, "process_start_time_seconds", "gauge",
               "Start time of the process since unix epoch in seconds.", st.start_time_seconds);
    }
    int fds = count_open_fds();
    if (fds >= 0)
        metric(out, "process_open_fds", "gauge", "Number of open file descriptors.", fds);
    struct rlimit lim;
    if (getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur != RLIM_INFINITY)
        metric(out, "process_max_fds", "gauge", "Maximum number of open file descriptors.",
               (double)lim.rlim_cur);
}
