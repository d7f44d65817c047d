/*
 * hmtool: the parts of the Hostmesh test guest that busybox cannot do precisely.
 * Built with `gcc -static -O2`, runs as root inside the guest, prints one line per
 * event or per second on stdout (the serial console). Line formats are stable:
 * tests parse them (see Deploy/guest/README.md).
 *
 *   hmtool dirty --rate-mb N [--set-mb M]        dirty N MB/s in a fixed M MB working set
 *   hmtool ping  [--interval-ms I] IP            ICMP echo every I ms (default 20), report gaps
 *   hmtool icmpseen IP                           count IP's echo requests by sequence
 *                                                number: missing, late and duplicate ones
 *   hmtool tcpstat                               this guest's TCP counters once a second
 *   hmtool tcp   [--interval-ms I] IP PORT       keep ONE TCP connection to an echo
 *                                                service, check every echo, report gaps
 *   hmtool disk  [--interval-ms I] DEVICE        write record n to block n (mod the device
 *                                                size) with O_DIRECT|O_SYNC, then print it
 *   hmtool udp   [--interval-ms I] IP PORT       send datagram n (8-byte sequence number)
 *                                                every I ms (default 20)
 *   hmtool udpsink PORT                          receive them: count duplicates, late
 *                                                (reordered) and missing datagrams
 *   hmtool bulk IP PORT BYTES                    send BYTES of a position-derived pattern
 *                                                over one TCP connection, as fast as it goes
 *   hmtool bulksink PORT                         receive such transfers (one at a time),
 *                                                check every byte against the pattern
 *
 * Times come from the guest's CLOCK_MONOTONIC. A migrating guest's clock does not
 * advance while it is paused, so gaps must be measured by a peer that keeps running.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/ip_icmp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <linux/fs.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096
#define GAP_REPORT_MS 100 /* a reply gap at least this long gets its own line */
/* ping: a request unanswered this long after it was sent is lost (the switches hold a moving
 * VM's frames for at most 2 s, and the longest downtime is well below that). */
#define PING_JUDGE_US 3000000
enum { PING_OUT = 1, PING_ANSWERED = 2, PING_LOST = 3 };

static int64_t now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void sleep_until_us(int64_t t) {
    struct timespec ts = {t / 1000000, (t % 1000000) * 1000};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {}
}

static long long retrans_segs(void);

static void die(const char *what) {
    printf("HMTOOL error %s: %s\n", what, strerror(errno));
    exit(1);
}

/* "--name VALUE" option lookup; positional() skips such pairs. */
static int opt_int(int argc, char **argv, const char *name, long *out) {
    for (int i = 2; i + 1 < argc; i++)
        if (strcmp(argv[i], name) == 0) { *out = atol(argv[i + 1]); return 1; }
    return 0;
}

static int positional(int argc, char **argv, int n, const char **out) {
    int seen = 0;
    for (int i = 2; i < argc; i++) {
        if (strncmp(argv[i], "--", 2) == 0) { i++; continue; }
        if (seen < n) out[seen] = argv[i];
        seen++;
    }
    return seen == n;
}

/* ---- memcheck: detects guest writes a migration lost. A small set of pages (it fits in
 * the TLB, so TCG keeps its entries for as long as nothing flushes them) is swept without
 * pause; each sweep first checks that every page still holds the previous sweep's number,
 * then writes its own. A page found holding an older number was not carried across a
 * migration although the guest had written it: that is printed and counted. */
static int cmd_memcheck(int argc, char **argv) {
    long pages = 64;
    opt_int(argc, argv, "--pages", &pages);
    if (pages <= 0) {
        fprintf(stderr, "usage: hmtool memcheck [--pages N]\n");
        return 2;
    }
    volatile uint64_t *mem = mmap(NULL, (size_t)pages * PAGE, PROT_READ | PROT_WRITE,
                                  MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (mem == MAP_FAILED) die("mmap");
    uint64_t sweep = 0, lost = 0;
    int64_t last_report = now_us();
    printf("MEMCHECK start pages=%ld\n", pages);
    fflush(stdout);
    for (;;) {
        sweep++;
        for (long p = 0; p < pages; p++) {
            volatile uint64_t *word = mem + (size_t)p * (PAGE / 8);
            uint64_t held = *word;
            if (sweep > 1 && held != sweep - 1) {
                lost++;
                printf("MEMCHECK LOST page=%ld holds=%llu expected=%llu\n", p,
                       (unsigned long long)held, (unsigned long long)(sweep - 1));
                fflush(stdout);
            }
            *word = sweep;
        }
        if ((sweep & 0xfff) == 0) {
            int64_t now = now_us();
            if (now - last_report >= 1000000) {
                printf("MEMCHECK sweep=%llu lost=%llu\n", (unsigned long long)sweep,
                       (unsigned long long)lost);
                fflush(stdout);
                last_report = now;
            }
        }
    }
}

/* ---- dirty: fixed working set, whole pages rewritten with fresh non-zero data, so
 * neither zero-page detection nor xbzrle can shortcut the transfer. */
static int cmd_dirty(int argc, char **argv) {
    long rate_mb = -1, set_mb = 64;
    opt_int(argc, argv, "--rate-mb", &rate_mb);
    opt_int(argc, argv, "--set-mb", &set_mb);
    if (rate_mb < 0 || set_mb <= 0) {
        fprintf(stderr, "usage: hmtool dirty --rate-mb N [--set-mb M]\n");
        return 2;
    }
    size_t pages = (size_t)set_mb * (1 << 20) / PAGE;
    uint64_t *mem = mmap(NULL, pages * PAGE, PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (mem == MAP_FAILED) die("mmap");
    uint64_t x = 0x9e3779b97f4a7c15ULL ^ (uint64_t)now_us(); /* xorshift64 state, never 0 */
    size_t next = 0, total = 0;
    /* The whole set starts non-zero so it all has to be migrated at least once. */
    for (size_t i = 0; i < pages * PAGE / 8; i++) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        mem[i] = x;
    }
    printf("DIRTY start rate_mb=%ld set_mb=%ld\n", rate_mb, set_mb);
    fflush(stdout);
    const int64_t tick = 10000; /* 10 ms slices keep the rate smooth */
    int64_t start = now_us(), t = start, last_report = start;
    size_t done_at_report = 0;
    for (;;) {
        t += tick;
        sleep_until_us(t);
        int64_t now = now_us();
        /* Pages owed since start; lag is capped so a stall is not followed by a burst. */
        size_t want = (size_t)((double)(now - start) * rate_mb * (1 << 20) / 1e6 / PAGE);
        size_t cap = (size_t)rate_mb * (1 << 20) / PAGE / 10;
        if (want > total + cap) { total = want - cap; }
        while (total < want) {
            uint64_t *p = mem + next * (PAGE / 8);
            for (int i = 0; i < PAGE / 8; i++) {
                x ^= x << 13; x ^= x >> 7; x ^= x << 17;
                p[i] = x;
            }
            next = (next + 1) % pages;
            total++;
        }
        if (now - last_report >= 1000000) {
            double mb = (double)(total - done_at_report) * PAGE / (1 << 20);
            double secs = (double)(now - last_report) / 1e6;
            printf("DIRTY mb_s=%.1f set_mb=%ld total_mb=%zu\n", mb / secs, set_mb,
                   total * PAGE >> 20);
            fflush(stdout);
            done_at_report = total;
            last_report = now;
        }
    }
}

/* ---- ping: raw ICMP echo, one request every interval, a summary line per second. */
static uint16_t csum(const void *data, size_t len) {
    const uint16_t *w = data;
    uint32_t s = 0;
    for (; len > 1; len -= 2) s += *w++;
    if (len) s += *(const uint8_t *)w;
    s = (s >> 16) + (s & 0xffff);
    s += s >> 16;
    return (uint16_t)~s;
}

static int cmd_ping(int argc, char **argv) {
    long interval_ms = 20, samples = 0;
    const char *ip;
    opt_int(argc, argv, "--interval-ms", &interval_ms);
    /* --samples 1: also print each second's round trips, "PINGRTT <us> <us> ...", so a host
     * can take percentiles over any window (a per-second mean hides the tail). */
    opt_int(argc, argv, "--samples", &samples);
    char rtts[4096] = "";
    size_t rtts_len = 0;
    if (!positional(argc, argv, 1, &ip) || interval_ms <= 0) {
        fprintf(stderr, "usage: hmtool ping [--interval-ms I] [--samples 1] IP\n");
        return 2;
    }
    struct sockaddr_in dst = {.sin_family = AF_INET};
    if (inet_pton(AF_INET, ip, &dst.sin_addr) != 1) { errno = EINVAL; die("address"); }
    int fd = socket(AF_INET, SOCK_RAW, IPPROTO_ICMP);
    if (fd < 0) die("socket");
    uint16_t id = (uint16_t)getpid();
    uint64_t sent = 0, recvd = 0, rtt_sum = 0, rtt_n = 0;
    /* Per request (by its 16-bit sequence number): judged PING_JUDGE_US after it was sent, a
     * request still unanswered then is lost ("unanswered", and a PINGLOST line); a reply after
     * that counts as late, a second reply to one request as dup. Unlike lost= (sent - recv at
     * the instant of the summary), requests still in flight never count. */
    static int64_t sent_at[65536];
    static uint8_t state[65536]; /* PING_OUT, PING_ANSWERED, PING_LOST */
    uint64_t judged = 0, unanswered = 0, late = 0, dup = 0;
    /* wgap: the largest gap that ended since the previous summary line (a benchmark takes the
     * gaps of a window, not maxgap's whole life, which includes the guest's own start). */
    /* wsendgap: the largest interval between two of our own requests since the previous summary
     * (20 ms when this guest runs as it should; more when it did not get the CPU). */
    int64_t last_reply = 0, maxgap = 0, wgap = 0, last_send = 0, wsendgap = 0, start = now_us();
    int64_t next_send = start, report = start + 1000000;
    for (;;) {
        int64_t now = now_us();
        if (now >= next_send) {
            struct { struct icmphdr h; int64_t t; } pkt = {0};
            pkt.h.type = ICMP_ECHO;
            pkt.h.un.echo.id = htons(id);
            pkt.h.un.echo.sequence = htons((uint16_t)sent);
            pkt.t = now;
            pkt.h.checksum = csum(&pkt, sizeof pkt);
            /* Errors (no route yet, ARP failure) just count as a lost request. */
            sendto(fd, &pkt, sizeof pkt, 0, (struct sockaddr *)&dst, sizeof dst);
            sent_at[(uint16_t)sent] = now;
            if (last_send && now - last_send > wsendgap) wsendgap = now - last_send;
            last_send = now;
            state[(uint16_t)sent] = PING_OUT;
            sent++;
            next_send += interval_ms * 1000;
            if (next_send < now) next_send = now + interval_ms * 1000;
        }
        if (now >= report) {
            for (; judged < sent && now - sent_at[(uint16_t)judged] >= PING_JUDGE_US; judged++) {
                uint16_t s = (uint16_t)judged;
                if (state[s] != PING_OUT) continue;
                state[s] = PING_LOST;
                unanswered++;
                printf("PINGLOST %s seq=%u index=%llu\n", ip, s, (unsigned long long)judged);
            }
            printf("PING %s sent=%llu recv=%llu lost=%llu rtt_us=%llu maxgap_ms=%lld "
                   "judged=%llu unanswered=%llu late=%llu dup=%llu wgap_ms=%lld wsendgap_ms=%lld\n", ip,
                   (unsigned long long)sent, (unsigned long long)recvd,
                   (unsigned long long)(sent - recvd),
                   (unsigned long long)(rtt_n ? rtt_sum / rtt_n : 0), (long long)maxgap / 1000,
                   (unsigned long long)judged, (unsigned long long)unanswered,
                   (unsigned long long)late, (unsigned long long)dup, (long long)wgap / 1000,
                   (long long)wsendgap / 1000);
            wgap = 0;
            wsendgap = 0;
            if (samples) {
                printf("PINGRTT%s\n", rtts);
                rtts_len = 0;
                rtts[0] = 0;
            }
            fflush(stdout);
            rtt_sum = rtt_n = 0;
            report += 1000000;
        }
        int64_t wake = next_send < report ? next_send : report;
        int ms = (int)((wake - now_us() + 999) / 1000);
        struct pollfd pfd = {fd, POLLIN, 0};
        if (poll(&pfd, 1, ms < 0 ? 0 : ms) <= 0) continue;
        unsigned char buf[1500];
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n < (ssize_t)sizeof(struct iphdr)) continue;
        struct iphdr *iph = (struct iphdr *)buf;
        size_t hl = iph->ihl * 4;
        if ((size_t)n < hl + sizeof(struct icmphdr) + 8) continue;
        struct icmphdr *h = (struct icmphdr *)(buf + hl);
        if (h->type != ICMP_ECHOREPLY || ntohs(h->un.echo.id) != id ||
            iph->saddr != dst.sin_addr.s_addr)
            continue;
        int64_t t, r = now_us();
        memcpy(&t, buf + hl + sizeof *h, sizeof t);
        uint16_t rs = ntohs(h->un.echo.sequence);
        if (state[rs] == PING_ANSWERED) { dup++; continue; }
        if (state[rs] == PING_LOST) late++;
        state[rs] = PING_ANSWERED;
        recvd++;
        rtt_sum += (uint64_t)(r - t);
        rtt_n++;
        if (samples && rtts_len + 24 < sizeof rtts)
            rtts_len += (size_t)snprintf(rtts + rtts_len, sizeof rtts - rtts_len, " %lld", (long long)(r - t));
        if (last_reply) {
            int64_t gap = r - last_reply;
            if (gap > maxgap) maxgap = gap;
            if (gap > wgap) wgap = gap;
            if (gap >= GAP_REPORT_MS * 1000) {
                printf("PINGGAP %s gap_ms=%lld seq=%u\n", ip, (long long)gap / 1000,
                       ntohs(h->un.echo.sequence));
                fflush(stdout);
            }
        }
        last_reply = r;
    }
}

/* ---- icmpseen: the answering side's view of a peer's pings. A raw ICMP socket gets a copy of
 * every echo request the kernel answers; per request sequence number (the current pinger's id;
 * a new id or a restart from a low number starts over) it counts requests, duplicates and the
 * numbers never seen between the first and the highest, so a ping the pinger lost can be told
 * apart: its request never arrived here (missing) or its reply was lost on the way back.
 * Times are this guest's own: a pause of this guest (its migration) does not look like one. */
static int cmd_icmpseen(int argc, char **argv) {
    const char *ip;
    if (!positional(argc, argv, 1, &ip)) {
        fprintf(stderr, "usage: hmtool icmpseen IP\n");
        return 2;
    }
    struct in_addr from;
    if (inet_pton(AF_INET, ip, &from) != 1) { errno = EINVAL; die("address"); }
    int fd = socket(AF_INET, SOCK_RAW, IPPROTO_ICMP);
    if (fd < 0) die("socket");
    static uint8_t seen[65536];
    int have = 0;
    uint16_t id = 0;
    uint64_t first = 0, high = 0, judged = 0, requests = 0, dup = 0, missing = 0, late = 0, epoch = 0;
    int64_t report = now_us() + 1000000, last_at = 0;
    for (;;) {
        int64_t now = now_us();
        if (now >= report) {
            if (have) {
                printf("ICMPSEEN %s epoch=%llu id=%u requests=%llu first=%llu high=%llu missing=%llu late=%llu dup=%llu\n",
                       ip, (unsigned long long)epoch, id, (unsigned long long)requests,
                       (unsigned long long)first, (unsigned long long)high,
                       (unsigned long long)missing, (unsigned long long)late, (unsigned long long)dup);
                fflush(stdout);
            }
            report += 1000000;
        }
        struct pollfd pfd = {fd, POLLIN, 0};
        int ms = (int)((report - now_us() + 999) / 1000);
        if (poll(&pfd, 1, ms < 0 ? 0 : ms) <= 0) continue;
        unsigned char buf[1500];
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n < (ssize_t)sizeof(struct iphdr)) continue;
        struct iphdr *iph = (struct iphdr *)buf;
        size_t hl = iph->ihl * 4;
        if ((size_t)n < hl + sizeof(struct icmphdr)) continue;
        struct icmphdr *h = (struct icmphdr *)(buf + hl);
        if (h->type != ICMP_ECHO || iph->saddr != from.s_addr) continue;
        uint16_t rid = ntohs(h->un.echo.id), rs = ntohs(h->un.echo.sequence);
        /* Unwrap the 16-bit number around the highest seen. */
        uint64_t seq = high + (uint64_t)(int64_t)(int16_t)(uint16_t)(rs - (uint16_t)high);
        /* A new pinger: another id, or the numbers start again after a pause (a new VM's
         * pinger may get the same pid). */
        int64_t at = now_us();
        int restarted = seq < high && at - last_at > 1500000;
        last_at = at;
        if (!have || rid != id || restarted || seq + 1000 < high || seq > high + 30000) {
            memset(seen, 0, sizeof seen);
            have = 1;
            id = rid;
            epoch++;
            first = high = judged = rs;
            requests = dup = missing = late = 0;
            seq = rs;
        }
        requests++;
        if (seen[(uint16_t)seq]) { dup++; continue; }
        seen[(uint16_t)seq] = 1;
        if (seq < judged) late++;
        if (seq > high) high = seq;
        /* A number 150 below the highest (3 s at 20 ms) that never came is missing. */
        for (; judged + 150 < high; judged++) {
            if (seen[(uint16_t)judged]) { seen[(uint16_t)judged] = 0; continue; }
            missing++;
            printf("ICMPMISS %s seq=%llu\n", ip, (unsigned long long)judged);
        }
    }
}

/* ---- tcp: one long-lived connection to an echo service, stop-and-wait: send a
 * numbered line, wait for exactly that line back. conn= stays 1 if it survives. */
static int tcp_connect(struct sockaddr_in *dst) {
    for (;;) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0) die("socket");
        if (connect(fd, (struct sockaddr *)dst, sizeof *dst) == 0) return fd;
        close(fd);
        usleep(200000);
    }
}

static int cmd_tcp(int argc, char **argv) {
    long interval_ms = 20;
    const char *a[2];
    opt_int(argc, argv, "--interval-ms", &interval_ms);
    if (!positional(argc, argv, 2, a) || interval_ms <= 0) {
        fprintf(stderr, "usage: hmtool tcp [--interval-ms I] IP PORT\n");
        return 2;
    }
    struct sockaddr_in dst = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(a[1]))};
    if (inet_pton(AF_INET, a[0], &dst.sin_addr) != 1) { errno = EINVAL; die("address"); }
    uint64_t conns = 0, ok = 0, seq = 0;
    /* maxgap: longest time between two answers (includes the interval slept between them);
     * maxwait: longest one request waited for its answer, send to last byte back. wgap and
     * wwait: the same since the previous summary line (a benchmark takes one event's figures
     * from the lines printed after it began). */
    int64_t maxgap = 0, maxwait = 0, wgap = 0, wwait = 0;
    long long retrans0 = retrans_segs();
    for (;;) {
        int fd = tcp_connect(&dst);
        conns++;
        printf("TCP %s:%s connected conn=%llu\n", a[0], a[1], (unsigned long long)conns);
        fflush(stdout);
        int64_t last_ok = now_us(), report = last_ok + 1000000;
        const char *err = NULL;
        while (!err) {
            char line[32], back[32];
            int len = snprintf(line, sizeof line, "hm %020llu\n", (unsigned long long)seq++);
            int64_t sent_at = now_us();
            if (send(fd, line, len, MSG_NOSIGNAL) != len) { err = "send"; break; }
            int got = 0;
            while (got < len && !err) {
                struct pollfd pfd = {fd, POLLIN, 0};
                /* Wake up each second to keep the summary line flowing during a stall. */
                if (poll(&pfd, 1, 1000) == 0) {
                    printf("TCP %s:%s conn=%llu ok=%llu waiting_ms=%lld\n", a[0], a[1],
                           (unsigned long long)conns, (unsigned long long)ok,
                           (long long)(now_us() - last_ok) / 1000);
                    fflush(stdout);
                    continue;
                }
                ssize_t n = recv(fd, back + got, len - got, 0);
                if (n <= 0) err = n == 0 ? "eof" : strerror(errno);
                else got += n;
            }
            if (err) break;
            if (memcmp(line, back, len) != 0) { err = "mismatch"; break; }
            ok++;
            int64_t r = now_us(), gap = r - last_ok;
            if (gap > maxgap) maxgap = gap;
            if (gap > wgap) wgap = gap;
            if (r - sent_at > maxwait) maxwait = r - sent_at;
            if (r - sent_at > wwait) wwait = r - sent_at;
            if (gap >= GAP_REPORT_MS * 1000) {
                printf("TCPGAP %s:%s gap_ms=%lld\n", a[0], a[1], (long long)gap / 1000);
                fflush(stdout);
            }
            last_ok = r;
            if (r >= report) {
                printf("TCP %s:%s conn=%llu ok=%llu maxgap_ms=%lld retrans=%lld maxwait_ms=%lld wgap_ms=%lld wwait_ms=%lld\n", a[0], a[1],
                       (unsigned long long)conns, (unsigned long long)ok,
                       (long long)maxgap / 1000, retrans_segs() - retrans0, (long long)maxwait / 1000,
                       (long long)wgap / 1000, (long long)wwait / 1000);
                fflush(stdout);
                wgap = wwait = 0;
                report += 1000000;
            }
            sleep_until_us(r + interval_ms * 1000);
        }
        printf("TCP %s:%s error %s conn=%llu ok=%llu\n", a[0], a[1], err,
               (unsigned long long)conns, (unsigned long long)ok);
        fflush(stdout);
        close(fd);
    }
}

/* ---- disk: a write-ahead log on a raw block device. Block n % blocks holds record n:
 * "HMDISK <boot> <n>\n" padded with a byte pattern derived from n. A record is printed
 * ("DISK <boot> <n> <write latency µs>")
 * only after the device acknowledged it (O_DIRECT|O_SYNC), so the host can check that
 * every printed record is on the image, intact, after any migration or failure. */
static int cmd_disk(int argc, char **argv) {
    long interval_ms = 20;
    opt_int(argc, argv, "--interval-ms", &interval_ms);
    const char *device = NULL;
    if (!positional(argc, argv, 1, &device) || interval_ms <= 0) {
        fprintf(stderr, "usage: hmtool disk [--interval-ms I] DEVICE\n");
        return 2;
    }
    int fd = open(device, O_RDWR | O_DIRECT | O_SYNC);
    if (fd < 0) die("open disk");
    uint64_t bytes = 0;
    if (ioctl(fd, BLKGETSIZE64, &bytes) != 0 || bytes < PAGE) die("disk size");
    uint64_t blocks = bytes / PAGE;
    char boot[40] = "?";
    FILE *f = fopen("/proc/sys/kernel/random/boot_id", "r");
    if (f) { if (fscanf(f, "%8s", boot) != 1) strcpy(boot, "?"); fclose(f); }
    unsigned char *buf;
    if (posix_memalign((void **)&buf, PAGE, PAGE) != 0) die("posix_memalign");
    printf("DISK start blocks=%llu\n", (unsigned long long)blocks);
    int64_t t = now_us();
    for (uint64_t n = 1;; n++) {
        for (int i = 0; i < PAGE; i++) buf[i] = (unsigned char)((n * 131 + (uint64_t)i * 7) & 0xff);
        char header[64];
        int len = snprintf(header, sizeof header, "HMDISK %s %llu\n", boot, (unsigned long long)n);
        memcpy(buf, header, (size_t)len); /* no NUL: the pattern continues right after the text */
        int64_t w0 = now_us();
        if (pwrite(fd, buf, PAGE, (off_t)((n % blocks) * PAGE)) != PAGE) die("disk write");
        /* The write's latency (µs) rides along: `bench storage` reads the guest's p99 from it. */
        printf("DISK %s %llu %lld\n", boot, (unsigned long long)n, (long long)(now_us() - w0));
        t += interval_ms * 1000;
        sleep_until_us(t);
    }
}

/* ---- udp / udpsink: a sequence-numbered datagram stream. The sink remembers, for each
 * slot seq % WINDOW, the last sequence number seen there, so a datagram delivered twice
 * (e.g. once by a migration's straggler forwarding and once directly) counts as dup. */
#define UDP_WINDOW 65536

static int cmd_udp(int argc, char **argv) {
    long interval_ms = 20;
    const char *a[2];
    opt_int(argc, argv, "--interval-ms", &interval_ms);
    if (!positional(argc, argv, 2, a) || interval_ms <= 0) {
        fprintf(stderr, "usage: hmtool udp [--interval-ms I] IP PORT\n");
        return 2;
    }
    struct sockaddr_in dst = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(a[1]))};
    if (inet_pton(AF_INET, a[0], &dst.sin_addr) != 1) { errno = EINVAL; die("address"); }
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (fd < 0) die("socket");
    uint64_t seq = 0, failed = 0;
    int64_t t = now_us(), report = t + 1000000;
    for (;;) {
        uint64_t wire = __builtin_bswap64(++seq);
        /* Before ARP resolves, or while the peer is unreachable, sendto may fail: count it. */
        if (sendto(fd, &wire, sizeof wire, 0, (struct sockaddr *)&dst, sizeof dst) != sizeof wire) failed++;
        if (now_us() >= report) {
            printf("UDPTX %s:%s sent=%llu failed=%llu\n", a[0], a[1], (unsigned long long)seq, (unsigned long long)failed);
            report += 1000000;
        }
        t += interval_ms * 1000;
        sleep_until_us(t);
    }
}

static int cmd_udpsink(int argc, char **argv) {
    const char *a[1];
    if (!positional(argc, argv, 1, a)) {
        fprintf(stderr, "usage: hmtool udpsink PORT\n");
        return 2;
    }
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (fd < 0) die("socket");
    struct sockaddr_in local = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(a[0])), .sin_addr = {INADDR_ANY}};
    if (bind(fd, (struct sockaddr *)&local, sizeof local) != 0) die("bind");
    static uint64_t seen[UDP_WINDOW];
    uint64_t rx = 0, dup = 0, late = 0, unique = 0, high = 0, first = 0;
    int64_t report = now_us() + 1000000;
    printf("UDPSINK %s listening\n", a[0]);
    for (;;) {
        struct pollfd pfd = {fd, POLLIN, 0};
        int64_t wait = (report - now_us()) / 1000;
        if (poll(&pfd, 1, wait < 0 ? 0 : (int)wait) > 0) {
            uint64_t wire;
            if (recv(fd, &wire, sizeof wire, 0) == sizeof wire) {
                uint64_t s = __builtin_bswap64(wire);
                rx++;
                if (s != 0 && seen[s % UDP_WINDOW] == s) dup++;
                else {
                    seen[s % UDP_WINDOW] = s;
                    unique++;
                    if (!first) first = s;
                    if (s < high) late++;
                    if (s > high) high = s;
                }
            }
        }
        if (now_us() >= report) {
            /* missing: sequence numbers between the first and the highest never received. */
            uint64_t missing = first ? high - first + 1 - unique : 0;
            printf("UDPSINK %s rx=%llu dup=%llu late=%llu missing=%llu high=%llu\n", a[0], (unsigned long long)rx,
                   (unsigned long long)dup, (unsigned long long)late, (unsigned long long)missing, (unsigned long long)high);
            report += 1000000;
        }
    }
}

/* ---- bulk / bulksink: a bulk TCP transfer whose every byte is checkable. Byte i of a
 * transfer is bulk_byte(i): a shifted, dropped or duplicated segment shows as a mismatch.
 * Both ends print their TCP retransmissions (RetransSegs of /proc/net/snmp) at the end. */
static unsigned char bulk_byte(uint64_t i) {
    return (unsigned char)((i * 131 + (i >> 8) * 7 + (i >> 16) * 13 + (i >> 24) * 17) & 0xff);
}

/* TCP RetransSegs from /proc/net/snmp: the "Tcp:" header line names the fields, the next
 * "Tcp:" line holds their values. -1 if it cannot be read. */
/* One counter of /proc/net/snmp or /proc/net/netstat: the value under NAME in the line pair
 * whose header starts with SECTION ("Tcp:", "TcpExt:"); -1 if absent. */
static long long snmp_value(const char *path, const char *section, const char *name) {
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    static char names[8192], values[8192];
    long long result = -1;
    size_t len = strlen(section);
    while (fgets(names, sizeof names, f)) {
        if (strncmp(names, section, len) != 0) continue;
        if (!fgets(values, sizeof values, f)) break;
        char *ns = NULL, *vs = NULL;
        char *n = strtok_r(names, " \n", &ns), *v = strtok_r(values, " \n", &vs);
        while (n && v) {
            if (strcmp(n, name) == 0) { result = atoll(v); break; }
            n = strtok_r(NULL, " \n", &ns);
            v = strtok_r(NULL, " \n", &vs);
        }
        break;
    }
    fclose(f);
    return result;
}

static long long retrans_segs(void) { return snmp_value("/proc/net/snmp", "Tcp:", "RetransSegs"); }

/* ---- tcpstat: this guest's TCP counters once a second, so a benchmark can tell which side of
 * a connection lost or delayed a segment (a duplicate the receiver saw, a spurious timeout). */
static int cmd_tcpstat(void) {
    for (;;) {
        printf("TCPSTAT in=%lld out=%lld retrans=%lld timeouts=%lld spurious_rto=%lld dsack_sent=%lld "
               "dsack_recv=%lld delayed_ack_lost=%lld\n",
               snmp_value("/proc/net/snmp", "Tcp:", "InSegs"), snmp_value("/proc/net/snmp", "Tcp:", "OutSegs"),
               retrans_segs(), snmp_value("/proc/net/netstat", "TcpExt:", "TCPTimeouts"),
               snmp_value("/proc/net/netstat", "TcpExt:", "TCPSpuriousRTOs"),
               snmp_value("/proc/net/netstat", "TcpExt:", "TCPDSACKOldSent"),
               snmp_value("/proc/net/netstat", "TcpExt:", "TCPDSACKRecv"),
               snmp_value("/proc/net/netstat", "TcpExt:", "DelayedACKLost"));
        fflush(stdout);
        sleep(1);
    }
    return 0;
}

static int cmd_bulk(int argc, char **argv) {
    const char *a[3];
    if (!positional(argc, argv, 3, a)) {
        fprintf(stderr, "usage: hmtool bulk IP PORT BYTES\n");
        return 2;
    }
    struct sockaddr_in dst = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(a[1]))};
    if (inet_pton(AF_INET, a[0], &dst.sin_addr) != 1) { errno = EINVAL; die("address"); }
    uint64_t total = strtoull(a[2], NULL, 10), sent = 0;
    int fd = tcp_connect(&dst);
    long long retrans0 = retrans_segs();
    int64_t start = now_us(), report = start + 1000000;
    printf("BULKTX %s:%s connected bytes=%llu\n", a[0], a[1], (unsigned long long)total);
    static unsigned char buf[65536];
    while (sent < total) {
        size_t len = total - sent < sizeof buf ? (size_t)(total - sent) : sizeof buf;
        for (size_t i = 0; i < len; i++) buf[i] = bulk_byte(sent + i);
        size_t off = 0;
        while (off < len) {
            ssize_t n = send(fd, buf + off, len - off, MSG_NOSIGNAL);
            if (n <= 0) die("bulk send");
            off += (size_t)n;
        }
        sent += len;
        if (now_us() >= report) {
            printf("BULKTX %s:%s sent=%llu\n", a[0], a[1], (unsigned long long)sent);
            report += 1000000;
        }
    }
    shutdown(fd, SHUT_WR);
    char tail[16];
    while (read(fd, tail, sizeof tail) > 0) {}  /* the sink closes once it has read it all */
    close(fd);
    printf("BULKTX %s:%s done bytes=%llu ms=%lld retrans=%lld\n", a[0], a[1], (unsigned long long)sent,
           (long long)(now_us() - start) / 1000, retrans_segs() - retrans0);
    return 0;
}

static int cmd_bulksink(int argc, char **argv) {
    const char *a[1];
    if (!positional(argc, argv, 1, a)) {
        fprintf(stderr, "usage: hmtool bulksink PORT\n");
        return 2;
    }
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    if (lfd < 0) die("socket");
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in local = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(a[0])), .sin_addr = {INADDR_ANY}};
    if (bind(lfd, (struct sockaddr *)&local, sizeof local) != 0) die("bind");
    if (listen(lfd, 4) != 0) die("listen");
    printf("BULKRX %s listening\n", a[0]);
    static unsigned char buf[65536];
    for (;;) {
        int fd = accept(lfd, NULL, NULL);
        if (fd < 0) continue;
        long long retrans0 = retrans_segs();
        uint64_t got = 0, bad = 0, first_bad = 0;
        int64_t start = now_us(), report = start + 1000000;
        for (;;) {
            struct pollfd pfd = {fd, POLLIN, 0};
            if (poll(&pfd, 1, 1000) == 0) {
                printf("BULKRX %s waiting received=%llu\n", a[0], (unsigned long long)got);
                continue;
            }
            ssize_t n = recv(fd, buf, sizeof buf, 0);
            if (n <= 0) break;
            for (ssize_t i = 0; i < n; i++)
                if (buf[i] != bulk_byte(got + (uint64_t)i)) {
                    if (!bad) first_bad = got + (uint64_t)i;
                    bad++;
                }
            got += (uint64_t)n;
            if (now_us() >= report) {
                printf("BULKRX %s received=%llu\n", a[0], (unsigned long long)got);
                report += 1000000;
            }
        }
        close(fd);
        printf("BULKRX %s done bytes=%llu bad=%llu first_bad=%llu ms=%lld retrans=%lld\n", a[0], (unsigned long long)got,
               (unsigned long long)bad, (unsigned long long)first_bad, (long long)(now_us() - start) / 1000,
               retrans_segs() - retrans0);
    }
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc >= 2 && strcmp(argv[1], "dirty") == 0) return cmd_dirty(argc, argv);
    if (argc >= 2 && strcmp(argv[1], "memcheck") == 0) return cmd_memcheck(argc, argv);
    if (argc >= 2 && strcmp(argv[1], "ping") == 0) return cmd_ping(argc, argv);
    if (argc >= 2 && strcmp(argv[1], "icmpseen") == 0) return cmd_icmpseen(argc, argv);
    if (argc >= 2 && strcmp(argv[1], "tcpstat") == 0) return cmd_tcpstat();
    if (argc >= 2 && strcmp(argv[1], "tcp") == 0) return cmd_tcp(argc, argv);
    if (argc >= 2 && strcmp(argv[1], "disk") == 0) return cmd_disk(argc, argv);
    if (argc >= 2 && strcmp(argv[1], "udp") == 0) return cmd_udp(argc, argv);
    if (argc >= 2 && strcmp(argv[1], "udpsink") == 0) return cmd_udpsink(argc, argv);
    if (argc >= 2 && strcmp(argv[1], "bulk") == 0) return cmd_bulk(argc, argv);
    if (argc >= 2 && strcmp(argv[1], "bulksink") == 0) return cmd_bulksink(argc, argv);
    fprintf(stderr, "usage: hmtool dirty|memcheck|ping|tcp|disk|udp|udpsink|bulk|bulksink ...  (see source)\n");
    return 2;
}
