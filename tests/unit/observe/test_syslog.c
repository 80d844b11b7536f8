#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/common.h"
#include "base/utf8.h"
#include "observe/syslog.h"

/* Guards against a hang only: every wait ends as soon as what it waits for happens. */
#define GUARD_MS 20000

/* ---- RFC 5424 parsing, written from the ABNF, to read back what the sender wrote ---- */

typedef struct {
    int pri;
    char ts[64], host[300], app[64], procid[160], msgid[48];
    char sd[SL_SYSLOG_SD_MAX + 1];
    char msg[SL_SYSLOG_MAX_LEN + 1];
    int has_msg;
} parsed_t;

/* Copies the space-terminated header field at *p into out. */
static int header_field(const char **p, const char *end, char *out, size_t max)
{
    size_t n = 0;
    while (*p < end && **p != ' ') {
        unsigned char c = (unsigned char)**p;
        if (c < 33 || c > 126 || n >= max) return -1;
        out[n++] = (char)c;
        (*p)++;
    }
    if (n == 0 || *p >= end) return -1;
    out[n] = '\0';
    (*p)++;
    return 0;
}

/* Length of the structured data at p: NILVALUE or SD-ELEMENTs, with quoted, escaped values. */
static long sd_length(const char *p, const char *end)
{
    if (p < end && *p == '-') return 1;
    const char *s = p;
    while (p < end && *p == '[') {
        int quoted = 0;
        for (p++;; p++) {
            if (p >= end) return -1;
            if (quoted && *p == '\\' && p + 1 < end) {
                p++;
                continue;
            }
            if (*p == '"') quoted = !quoted;
            if (!quoted && *p == ']') break;
        }
        p++;
    }
    return p > s ? (long)(p - s) : -1;
}

static int parse_msg(const char *text, size_t len, parsed_t *out)
{
    const char *p = text, *end = text + len;
    memset(out, 0, sizeof(*out));
    int used = 0;
    if (sscanf(p, "<%d>1 %n", &out->pri, &used) != 1 || used == 0) return -1;
    p += used;
    if (header_field(&p, end, out->ts, sizeof(out->ts) - 1) || header_field(&p, end, out->host, 299) ||
        header_field(&p, end, out->app, 63) || header_field(&p, end, out->procid, 159) ||
        header_field(&p, end, out->msgid, 47))
        return -1;
    long sd = sd_length(p, end);
    if (sd < 0 || sd > SL_SYSLOG_SD_MAX) return -1;
    memcpy(out->sd, p, (size_t)sd);
    p += sd;
    if (p == end) return 0;
    if (*p != ' ') return -1;
    p++;
    out->has_msg = 1;
    memcpy(out->msg, p, (size_t)(end - p));
    return 0;
}

/* Value of PARAM name in element id of sd, unescaped; NULL when absent. */
static const char *sd_get(const char *sd, const char *id, const char *name, char *out, size_t max)
{
    char head[64];
    snprintf(head, sizeof(head), "[%s ", id);
    const char *p = strstr(sd, head);
    if (!p) return NULL;
    p += strlen(head);
    while (*p && *p != ']') {
        const char *eq = strchr(p, '=');
        if (!eq || eq[1] != '"') return NULL;
        int match = (size_t)(eq - p) == strlen(name) && memcmp(p, name, strlen(name)) == 0;
        size_t n = 0;
        for (p = eq + 2; *p != '"'; p++) {
            if (*p == '\\' && (p[1] == '"' || p[1] == '\\' || p[1] == ']')) p++;
            if (n + 1 < max) out[n++] = *p;
        }
        out[n] = '\0';
        if (match) return out;
        p++;
        if (*p == ' ') p++;
    }
    return NULL;
}

static void must_parse(const char *text, size_t len, parsed_t *out)
{
    if (parse_msg(text, len, out) != 0) fail_msg("not RFC 5424: %.*s", (int)len, text);
}

/* ---- Listeners ---- */

static int wait_readable(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int r;
    do {
        r = poll(&p, 1, GUARD_MS);
    } while (r < 0 && errno == EINTR);
    return r > 0;
}

static int bound_socket(int family, int type, uint16_t port, uint16_t *out_port)
{
    int fd = socket(family, type | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_storage ss = {0};
    socklen_t len;
    if (family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        a->sin6_addr = in6addr_loopback;
        a->sin6_port = htons(port);
        len = sizeof(*a);
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        a->sin_port = htons(port);
        len = sizeof(*a);
    }
    assert_int_equal(bind(fd, (struct sockaddr *)&ss, len), 0);
    len = sizeof(ss);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&ss, &len), 0);
    *out_port =
        ntohs(family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port : ((struct sockaddr_in *)&ss)->sin_port);
    if (type == SOCK_STREAM) assert_int_equal(listen(fd, 16), 0);
    return fd;
}

/* A loopback TCP port with nothing listening on it (a listener's, closed). */
static uint16_t free_port(void)
{
    uint16_t port;
    close(bound_socket(AF_INET, SOCK_STREAM, 0, &port));
    return port;
}

/* Reads one datagram; returns its length. */
static size_t udp_recv(int fd, char *buf, size_t max)
{
    assert_true(wait_readable(fd));
    ssize_t n = recv(fd, buf, max, 0);
    assert_true(n > 0);
    return (size_t)n;
}

/* A TCP collector reading octet-counted frames (RFC 6587), across reconnections. */
typedef struct {
    int lfd;
    int cfd;
    int accepts;
    sl_buf_t in;
} collector_t;

static void collector_start(collector_t *c, uint16_t port, uint16_t *out_port)
{
    memset(c, 0, sizeof(*c));
    c->cfd = -1;
    c->lfd = bound_socket(AF_INET, SOCK_STREAM, port, out_port);
}

static void collector_drop_conn(collector_t *c)
{
    if (c->cfd >= 0) close(c->cfd);
    c->cfd = -1;
    c->in.len = 0;
}

static void collector_stop(collector_t *c)
{
    collector_drop_conn(c);
    if (c->lfd >= 0) close(c->lfd);
    c->lfd = -1;
    sl_buf_free(&c->in);
}

/* Takes one whole frame from the input; returns its message length, or -1 when incomplete.
 * Fails on anything that is not "NONZERO-DIGIT *DIGIT SP MSG". */
static long take_frame(collector_t *c, char *out, size_t max)
{
    size_t i = 0, n = 0;
    while (i < c->in.len && c->in.data[i] >= '0' && c->in.data[i] <= '9') {
        if (i == 0 && c->in.data[i] == '0') fail_msg("MSG-LEN starts with 0");
        n = n * 10 + (size_t)(c->in.data[i++] - '0');
    }
    if (i == c->in.len) return -1;
    if (i == 0 || c->in.data[i] != ' ') fail_msg("bad frame: %.*s", (int)SL_MIN(c->in.len, 40), c->in.data);
    if (c->in.len < i + 1 + n) return -1;
    assert_true(n <= max);
    memcpy(out, c->in.data + i + 1, n);
    memmove(c->in.data, c->in.data + i + 1 + n, c->in.len - i - 1 - n);
    c->in.len -= i + 1 + n;
    return (long)n;
}

/* Next frame, accepting a new connection when the sender reconnects. Returns its length, or
 * -1 when the connection ended cleanly with nothing more (EOF after whole frames). */
static long collector_next(collector_t *c, char *out, size_t max, int eof_ok)
{
    for (;;) {
        long n = take_frame(c, out, max);
        if (n >= 0) return n;
        if (c->cfd < 0) {
            assert_true(wait_readable(c->lfd));
            c->cfd = accept(c->lfd, NULL, NULL);
            assert_true(c->cfd >= 0);
            c->accepts++;
            continue;
        }
        assert_true(wait_readable(c->cfd));
        char chunk[8192];
        ssize_t r = recv(c->cfd, chunk, sizeof(chunk), 0);
        if (r > 0) {
            sl_buf_append(&c->in, chunk, (size_t)r);
            continue;
        }
        if (eof_ok) {
            assert_int_equal(c->in.len, 0);
            return -1;
        }
        /* The sender closed: a partial frame there is discarded (RFC 6587 section 3.4.1). */
        collector_drop_conn(c);
    }
}

static void wait_counter(uint64_t (*get)(const sl_syslog_t *), const sl_syslog_t *s, uint64_t want)
{
    for (int i = 0; i < GUARD_MS && get(s) < want; i++)
        usleep(1000);
    assert_int_equal(get(s), want);
}

static sl_syslog_cfg_t cfg_for(uint16_t port, sl_syslog_transport_t tr)
{
    sl_syslog_cfg_t c = {
        .host = "127.0.0.1",
        .port = port,
        .transport = tr,
        .facility = SL_SYSLOG_LOCAL0,
        .app_name = "sluice",
        .hostname = "gw1",
        .batch_size = 1,
        .flush_interval_ms = 60000,
    };
    return c;
}

/* ---- Formatting ---- */

static void test_format_fields(void **state)
{
    (void)state;
    sl_syslog_sd_t sd;
    sl_syslog_sd_init(&sd);
    sl_syslog_sd_begin(&sd, "session@32473");
    sl_syslog_sd_param(&sd, "route", "mysql-route");
    sl_syslog_sd_paramf(&sd, "bytes_in", "%d", 12);
    sl_syslog_msg_t m = {
        .facility = SL_SYSLOG_LOCAL0,
        .severity = SL_SYSLOG_INFO,
        .time_unix_ms = 1795330800123ull,
        .hostname = "gw.example",
        .app_name = "sluice",
        .procid = "4242",
        .msgid = "session",
        .sd = sl_syslog_sd_str(&sd),
        .msg = "session closed",
    };
    sl_buf_t b = SL_BUF_INIT;
    size_t n = sl_syslog_format(&b, &m);
    assert_int_equal(n, b.len);
    assert_string_equal(sl_buf_cstr(&b), "<134>1 2026-11-22T07:00:00.123Z gw.example sluice 4242 session "
                                         "[session@32473 route=\"mysql-route\" bytes_in=\"12\"] session closed");
    /* Appends after what out already holds and returns only its own length. */
    size_t before = b.len;
    m.msg = NULL;
    n = sl_syslog_format(&b, &m);
    assert_int_equal(n, b.len - before);
    assert_true(strncmp(b.data + before, "<134>1 ", 7) == 0);
    assert_int_equal(b.data[b.len - 1], ']');
    sl_buf_free(&b);
}

static void test_format_nilvalue(void **state)
{
    (void)state;
    sl_syslog_msg_t m = {0};
    sl_buf_t b = SL_BUF_INIT;
    sl_syslog_format(&b, &m);
    assert_string_equal(sl_buf_cstr(&b), "<0>1 - - - - - -");

    sl_syslog_msg_t e = {
        .facility = 1, .severity = 3, .hostname = "", .app_name = "", .procid = "", .msgid = "", .sd = "", .msg = ""};
    b.len = 0;
    sl_syslog_format(&b, &e);
    assert_string_equal(sl_buf_cstr(&b), "<11>1 - - - - - -");

    /* Structured data that is not an element, or too long to be from the builder: none. */
    char big[SL_SYSLOG_SD_MAX + 2];
    memset(big, 'x', sizeof(big) - 1);
    big[0] = '[';
    big[sizeof(big) - 1] = '\0';
    e.sd = big;
    b.len = 0;
    sl_syslog_format(&b, &e);
    assert_string_equal(sl_buf_cstr(&b), "<11>1 - - - - - -");
    e.sd = "junk";
    b.len = 0;
    sl_syslog_format(&b, &e);
    assert_string_equal(sl_buf_cstr(&b), "<11>1 - - - - - -");
    sl_buf_free(&b);
}

static void test_format_pri(void **state)
{
    (void)state;
    static const struct {
        int facility, severity;
        const char *want;
    } cases[] = {
        {0, 0, "<0>"},    {0, 7, "<7>"},     {1, 5, "<13>"}, {16, 6, "<134>"},
        {23, 7, "<191>"}, {99, -1, "<184>"}, {-5, 9, "<7>"},
    };
    sl_buf_t b = SL_BUF_INIT;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        sl_syslog_msg_t m = {.facility = cases[i].facility, .severity = cases[i].severity};
        b.len = 0;
        sl_syslog_format(&b, &m);
        assert_true(strncmp(b.data, cases[i].want, strlen(cases[i].want)) == 0);
        assert_int_equal(b.data[strlen(cases[i].want)], '1');
    }
    sl_buf_free(&b);

    assert_int_equal(sl_syslog_facility("kern"), 0);
    assert_int_equal(sl_syslog_facility("daemon"), 3);
    assert_int_equal(sl_syslog_facility("authpriv"), 10);
    assert_int_equal(sl_syslog_facility("local0"), 16);
    assert_int_equal(sl_syslog_facility("local7"), 23);
    assert_int_equal(sl_syslog_facility("local8"), -1);
    assert_int_equal(sl_syslog_facility(""), -1);
    assert_int_equal(sl_syslog_facility(NULL), -1);
}

static void test_timestamp(void **state)
{
    (void)state;
    sl_buf_t b = SL_BUF_INIT;
    static const struct {
        uint64_t ms;
        const char *want;
    } cases[] = {
        {1, "<0>1 1970-01-01T00:00:00.001Z -"},
        {951782400999ull, "<0>1 2000-02-29T00:00:00.999Z -"},
        {1795330800123ull, "<0>1 2026-11-22T07:00:00.123Z -"},
        {253402300800000ull, "<0>1 - -"}, /* year 10000: no four-digit year, so the NILVALUE */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        sl_syslog_msg_t m = {.time_unix_ms = cases[i].ms};
        b.len = 0;
        sl_syslog_format(&b, &m);
        assert_true(strncmp(b.data, cases[i].want, strlen(cases[i].want)) == 0);
    }
    sl_buf_free(&b);
}

static void test_sd_escaping(void **state)
{
    (void)state;
    sl_syslog_sd_t sd;
    sl_syslog_sd_init(&sd);
    assert_string_equal(sl_syslog_sd_str(&sd), "");
    sl_syslog_sd_param(&sd, "orphan", "x"); /* no element yet */
    assert_string_equal(sl_syslog_sd_str(&sd), "");

    sl_syslog_sd_begin(&sd, "a b=c]d\"e\x01");
    sl_syslog_sd_param(&sd, "q", "say \"hi\"");
    sl_syslog_sd_param(&sd, "bs", "C:\\dir\\");
    sl_syslog_sd_param(&sd, "br", "[x]");
    sl_syslog_sd_param(&sd, "utf8", "caf\xc3\xa9");
    sl_syslog_sd_param(&sd, "bad",
                       "a\xff"
                       "b\xc0\xaf");
    sl_syslog_sd_param(&sd, "empty", "");
    sl_syslog_sd_param(&sd, "null", NULL);
    sl_syslog_sd_param(&sd, "", "no name");
    sl_syslog_sd_param(&sd, "n=a me", "v");
    sl_syslog_sd_begin(&sd, "");
    sl_syslog_sd_param(&sd, "lost", "with the empty element");
    sl_syslog_sd_begin(&sd, "second@32473");
    sl_syslog_sd_param(&sd, "k", "v");
    assert_string_equal(sl_syslog_sd_str(&sd), "[a_b_c_d_e_ q=\"say \\\"hi\\\"\" bs=\"C:\\\\dir\\\\\" br=\"[x\\]\" "
                                               "utf8=\"caf\xc3\xa9\" bad=\"a\xef\xbf\xbd"
                                               "b\xef\xbf\xbd\xef\xbf\xbd\" "
                                               "empty=\"\" null=\"\" n_a_me=\"v\"][second@32473 k=\"v\"]");

    /* Read back through a parser: escapes undone. */
    sl_syslog_msg_t m = {.sd = sl_syslog_sd_str(&sd), .msg = "m"};
    sl_buf_t b = SL_BUF_INIT;
    sl_syslog_format(&b, &m);
    parsed_t p;
    must_parse(b.data, b.len, &p);
    char v[128];
    assert_string_equal(sd_get(p.sd, "a_b_c_d_e_", "q", v, sizeof(v)), "say \"hi\"");
    assert_string_equal(sd_get(p.sd, "a_b_c_d_e_", "bs", v, sizeof(v)), "C:\\dir\\");
    assert_string_equal(sd_get(p.sd, "a_b_c_d_e_", "br", v, sizeof(v)), "[x]");
    assert_string_equal(sd_get(p.sd, "second@32473", "k", v, sizeof(v)), "v");
    assert_string_equal(p.msg, "m");
    sl_buf_free(&b);
}

static void test_truncation(void **state)
{
    (void)state;
    char host[301], app[61], procid[201], msgid[41], id[41], name[41];
    memset(host, 'h', 300);
    host[300] = '\0';
    memset(app, 'a', 60);
    app[60] = '\0';
    memset(procid, 'p', 200);
    procid[200] = '\0';
    memset(msgid, 'm', 40);
    msgid[40] = '\0';
    memset(id, 'i', 40);
    id[40] = '\0';
    memset(name, 'n', 40);
    name[40] = '\0';

    sl_syslog_sd_t sd;
    sl_syslog_sd_init(&sd);
    sl_syslog_sd_begin(&sd, id);
    sl_syslog_sd_param(&sd, name, "v");
    char *msg = malloc(5001);
    memset(msg, 'x', 5000);
    msg[5000] = '\0';
    sl_syslog_msg_t m = {.facility = 16,
                         .severity = 6,
                         .time_unix_ms = 1795330800123ull,
                         .hostname = host,
                         .app_name = app,
                         .procid = procid,
                         .msgid = msgid,
                         .sd = sl_syslog_sd_str(&sd),
                         .msg = msg};
    sl_buf_t b = SL_BUF_INIT;
    assert_int_equal(sl_syslog_format(&b, &m), SL_SYSLOG_MAX_LEN);
    parsed_t p;
    must_parse(b.data, b.len, &p);
    assert_int_equal(strlen(p.host), 255);
    assert_int_equal(strlen(p.app), 48);
    assert_int_equal(strlen(p.procid), 128);
    assert_int_equal(strlen(p.msgid), 32);
    char want_sd[80];
    snprintf(want_sd, sizeof(want_sd), "[%.32s %.32s=\"v\"]", id, name);
    assert_string_equal(p.sd, want_sd);
    assert_int_equal(strspn(p.msg, "x"), strlen(p.msg));

    /* Header fields keep printable US-ASCII only. */
    m.hostname = "gw 1\x7f";
    m.app_name = "app\xc3\xa9";
    m.msg = NULL;
    m.sd = NULL;
    b.len = 0;
    sl_syslog_format(&b, &m);
    must_parse(b.data, b.len, &p);
    assert_string_equal(p.host, "gw_1_");
    assert_string_equal(p.app, "app__");

    /* UTF-8 text gets a BOM and is cut on a character boundary. */
    size_t count = 3000;
    char *utf = malloc(count * 2 + 1);
    for (size_t i = 0; i < count; i++)
        memcpy(utf + 2 * i, "\xc3\xa9", 2);
    utf[count * 2] = '\0';
    m.msg = utf;
    m.hostname = "gw";
    m.app_name = "sluice";
    b.len = 0;
    size_t n = sl_syslog_format(&b, &m);
    assert_true(n <= SL_SYSLOG_MAX_LEN && n >= SL_SYSLOG_MAX_LEN - 1);
    must_parse(b.data, b.len, &p);
    assert_memory_equal(p.msg, "\xef\xbb\xbf", 3);
    size_t ml = strlen(p.msg);
    for (size_t i = 3; i < ml;) {
        size_t l = sl_utf8_seq_len((const unsigned char *)p.msg + i, ml - i);
        assert_int_equal(l, 2);
        i += l;
    }

    /* ASCII, and bytes that are not UTF-8, go without a BOM; a BOM already there stays alone. */
    m.msg = "plain";
    b.len = 0;
    sl_syslog_format(&b, &m);
    must_parse(b.data, b.len, &p);
    assert_string_equal(p.msg, "plain");
    m.msg = "bin\xff\xfe";
    b.len = 0;
    sl_syslog_format(&b, &m);
    must_parse(b.data, b.len, &p);
    assert_string_equal(p.msg, "bin\xff\xfe");
    m.msg = "\xef\xbb\xbf"
            "caf\xc3\xa9";
    b.len = 0;
    sl_syslog_format(&b, &m);
    must_parse(b.data, b.len, &p);
    assert_string_equal(p.msg, "\xef\xbb\xbf"
                               "caf\xc3\xa9");
    free(utf);
    free(msg);
    sl_buf_free(&b);
}

static void test_sd_bound(void **state)
{
    (void)state;
    sl_syslog_sd_t sd;
    sl_syslog_sd_init(&sd);
    sl_syslog_sd_begin(&sd, "big@32473");
    char value[101];
    memset(value, 'v', 100);
    value[100] = '\0';
    int added = 0;
    for (int i = 0; i < 20; i++) {
        size_t before = sd.len;
        char name[16];
        snprintf(name, sizeof(name), "p%d", i);
        sl_syslog_sd_param(&sd, name, value);
        if (sd.len > before) added++;
        assert_true(sd.len <= SL_SYSLOG_SD_MAX);
        assert_int_equal(strlen(sl_syslog_sd_str(&sd)), sd.len);
        assert_int_equal(sl_syslog_sd_str(&sd)[sd.len - 1], ']');
    }
    /* [big@32473] and 9 * ` pN="v..."`: 11 + 9 * 106 = 965 bytes; a tenth would pass 1024. */
    assert_int_equal(added, 9);
    assert_int_equal(sd.len, 965);
    /* Smaller parameters still fit, up to exactly the bound. */
    char fill[35];
    memset(fill, 'f', 34);
    fill[34] = '\0';
    sl_syslog_sd_param(&sd, "s", fill);
    assert_int_equal(sd.len, 1004);
    /* 15 bytes of value would fit, but its quote escaped makes 16: left out whole. */
    memset(fill, 't', 15);
    fill[14] = '"';
    fill[15] = '\0';
    sl_syslog_sd_param(&sd, "t", fill);
    assert_int_equal(sd.len, 1004);
    assert_int_equal(sl_syslog_sd_str(&sd)[sd.len - 1], ']');
    assert_int_equal(sl_syslog_sd_str(&sd)[sd.len], '\0');
    fill[14] = 't';
    sl_syslog_sd_param(&sd, "t", fill);
    assert_int_equal(sd.len, SL_SYSLOG_SD_MAX);
    size_t before = sd.len;
    /* An element that does not fit is left out with its parameters. */
    sl_syslog_sd_begin(&sd, "e");
    sl_syslog_sd_param(&sd, "x", "y");
    assert_int_equal(sd.len, before);

    sl_syslog_msg_t m = {.sd = sl_syslog_sd_str(&sd), .msg = "m"};
    sl_buf_t b = SL_BUF_INIT;
    sl_syslog_format(&b, &m);
    parsed_t p;
    must_parse(b.data, b.len, &p);
    assert_string_equal(p.sd, sl_syslog_sd_str(&sd));
    char v[128];
    assert_string_equal(sd_get(p.sd, "big@32473", "p8", v, sizeof(v)), value);
    assert_null(sd_get(p.sd, "big@32473", "p9", v, sizeof(v)));
    sl_buf_free(&b);
}

/* ---- Sending ---- */

static void test_open_invalid(void **state)
{
    (void)state;
    sl_syslog_cfg_t c = cfg_for(514, SL_SYSLOG_UDP);
    c.host = NULL;
    assert_null(sl_syslog_open(&c));
    c.host = "";
    assert_null(sl_syslog_open(&c));
    c = cfg_for(0, SL_SYSLOG_UDP);
    assert_null(sl_syslog_open(&c));
    c = cfg_for(514, SL_SYSLOG_UDP);
    c.facility = 24;
    assert_null(sl_syslog_open(&c));
    c.facility = -1;
    assert_null(sl_syslog_open(&c));
    c = cfg_for(514, (sl_syslog_transport_t)7);
    assert_null(sl_syslog_open(&c));
    /* A name resolves (from /etc/hosts). */
    c = cfg_for(514, SL_SYSLOG_UDP);
    c.host = "localhost";
    sl_syslog_t *s = sl_syslog_open(&c);
    assert_non_null(s);
    sl_syslog_close(s);
    sl_syslog_shutdown();
}

static void check_session_message(const char *text, size_t len, const char *want_msg)
{
    parsed_t p;
    must_parse(text, len, &p);
    assert_int_equal(p.pri, 16 * 8 + SL_SYSLOG_INFO);
    /* YYYY-MM-DDTHH:MM:SS.mmmZ */
    assert_int_equal(strlen(p.ts), 24);
    assert_int_equal(p.ts[10], 'T');
    assert_int_equal(p.ts[19], '.');
    assert_int_equal(p.ts[23], 'Z');
    assert_string_equal(p.host, "gw1");
    assert_string_equal(p.app, "sluice");
    char pid[24];
    snprintf(pid, sizeof(pid), "%ld", (long)getpid());
    assert_string_equal(p.procid, pid);
    assert_string_equal(p.msgid, "session");
    char v[64];
    assert_string_equal(sd_get(p.sd, "session@32473", "route", v, sizeof(v)), "r\"1]");
    assert_string_equal(sd_get(p.sd, "session@32473", "bytes_out", v, sizeof(v)), "4096");
    assert_string_equal(p.msg, want_msg);
}

static void send_session(sl_syslog_t *s, const char *msg)
{
    sl_syslog_sd_t sd;
    sl_syslog_sd_init(&sd);
    sl_syslog_sd_begin(&sd, "session@32473");
    sl_syslog_sd_param(&sd, "route", "r\"1]");
    sl_syslog_sd_paramf(&sd, "bytes_out", "%d", 4096);
    sl_syslog_send(s, SL_SYSLOG_INFO, "session", sl_syslog_sd_str(&sd), msg);
}

static void udp_roundtrip(int family, const char *host)
{
    uint16_t port;
    int fd = bound_socket(family, SOCK_DGRAM, 0, &port);
    sl_syslog_cfg_t c = cfg_for(port, SL_SYSLOG_UDP);
    c.host = host;
    sl_syslog_t *s = sl_syslog_open(&c);
    assert_non_null(s);
    char buf[4096];
    for (int i = 0; i < 3; i++) {
        char msg[32];
        snprintf(msg, sizeof(msg), "udp %d", i);
        send_session(s, msg);
        size_t n = udp_recv(fd, buf, sizeof(buf));
        check_session_message(buf, n, msg);
    }
    sl_syslog_send(s, SL_SYSLOG_INFO, NULL, NULL, NULL);
    size_t n = udp_recv(fd, buf, sizeof(buf));
    parsed_t p;
    must_parse(buf, n, &p);
    assert_string_equal(p.msgid, "-");
    assert_string_equal(p.sd, "-");
    assert_false(p.has_msg);
    wait_counter(sl_syslog_sent, s, 4);
    assert_int_equal(sl_syslog_dropped(s), 0);
    sl_syslog_close(s);
    sl_syslog_shutdown();
    close(fd);
}

static void test_udp(void **state)
{
    (void)state;
    udp_roundtrip(AF_INET, "127.0.0.1");
}

static void test_udp_ipv6(void **state)
{
    (void)state;
    udp_roundtrip(AF_INET6, "::1");
}

static void test_tcp_octet_counting(void **state)
{
    (void)state;
    collector_t col;
    uint16_t port;
    collector_start(&col, 0, &port);
    sl_syslog_cfg_t c = cfg_for(port, SL_SYSLOG_TCP);
    c.batch_size = 4;
    sl_syslog_t *s = sl_syslog_open(&c);
    assert_non_null(s);
    /* Newlines inside a message do not split it: the frame length does. */
    static const char *const msgs[] = {"one", "two\nlines", "three", "four\r\n", "5", "6", "7", "8"};
    for (size_t i = 0; i < 8; i++)
        send_session(s, msgs[i]);
    char buf[4096];
    for (size_t i = 0; i < 8; i++) {
        long n = collector_next(&col, buf, sizeof(buf), 0);
        check_session_message(buf, (size_t)n, msgs[i]);
    }
    wait_counter(sl_syslog_sent, s, 8);
    sl_syslog_close(s);
    sl_syslog_shutdown();
    /* The sender closed its connection after the last whole frame. */
    assert_int_equal(collector_next(&col, buf, sizeof(buf), 1), -1);
    assert_int_equal(col.accepts, 1);
    collector_stop(&col);
}

static void test_batching(void **state)
{
    (void)state;
    collector_t col;
    uint16_t port;
    collector_start(&col, 0, &port);
    sl_syslog_cfg_t c = cfg_for(port, SL_SYSLOG_TCP);
    c.batch_size = 5;
    c.flush_interval_ms = 3600000;
    sl_syslog_t *s = sl_syslog_open(&c);
    assert_non_null(s);
    for (int i = 0; i < 12; i++) {
        char msg[16];
        snprintf(msg, sizeof(msg), "m%d", i);
        sl_syslog_send(s, SL_SYSLOG_INFO, "b", NULL, msg);
    }
    char buf[4096];
    parsed_t p;
    for (int i = 0; i < 10; i++) {
        long n = collector_next(&col, buf, sizeof(buf), 0);
        must_parse(buf, (size_t)n, &p);
        char want[16];
        snprintf(want, sizeof(want), "m%d", i);
        assert_string_equal(p.msg, want);
    }
    /* Two full batches went out; the last two wait for a third batch or the interval (an hour). */
    wait_counter(sl_syslog_sent, s, 10);
    /* Close flushes them. */
    sl_syslog_close(s);
    sl_syslog_shutdown();
    for (int i = 10; i < 12; i++) {
        long n = collector_next(&col, buf, sizeof(buf), 0);
        must_parse(buf, (size_t)n, &p);
        char want[16];
        snprintf(want, sizeof(want), "m%d", i);
        assert_string_equal(p.msg, want);
    }
    assert_int_equal(collector_next(&col, buf, sizeof(buf), 1), -1);
    collector_stop(&col);
}

static void test_flush_interval(void **state)
{
    (void)state;
    uint16_t port;
    int fd = bound_socket(AF_INET, SOCK_DGRAM, 0, &port);
    sl_syslog_cfg_t c = cfg_for(port, SL_SYSLOG_UDP);
    c.batch_size = 1000;
    c.flush_interval_ms = 20;
    sl_syslog_t *s = sl_syslog_open(&c);
    assert_non_null(s);
    /* Far from a full batch: the interval sends them, with the handle still open. */
    for (int i = 0; i < 3; i++)
        sl_syslog_send(s, SL_SYSLOG_NOTICE, "f", NULL, "tick");
    char buf[4096];
    for (int i = 0; i < 3; i++) {
        size_t n = udp_recv(fd, buf, sizeof(buf));
        parsed_t p;
        must_parse(buf, n, &p);
        assert_int_equal(p.pri, 16 * 8 + SL_SYSLOG_NOTICE);
        assert_string_equal(p.msg, "tick");
    }
    wait_counter(sl_syslog_sent, s, 3);
    sl_syslog_close(s);
    sl_syslog_shutdown();
    close(fd);
}

/* With no collector, the queue holds max_queued messages and drops the rest at once; they all
 * go out, in order, when a collector starts listening. */
static void test_drop_bound_then_delivery(void **state)
{
    (void)state;
    uint16_t port = free_port();
    sl_syslog_cfg_t c = cfg_for(port, SL_SYSLOG_TCP);
    c.batch_size = 8;
    c.flush_interval_ms = 1;
    c.max_queued = 50;
    sl_syslog_t *s = sl_syslog_open(&c);
    assert_non_null(s);
    for (int i = 0; i < 500; i++) {
        char msg[16];
        snprintf(msg, sizeof(msg), "q%d", i);
        sl_syslog_send(s, SL_SYSLOG_INFO, "d", NULL, msg);
    }
    /* Counted when send returns: the sender waits for nothing. */
    assert_int_equal(sl_syslog_dropped(s), 450);
    assert_int_equal(sl_syslog_sent(s), 0);

    collector_t col;
    uint16_t got;
    collector_start(&col, port, &got);
    assert_int_equal(got, port);
    char buf[4096];
    for (int i = 0; i < 50; i++) {
        long n = collector_next(&col, buf, sizeof(buf), 0);
        parsed_t p;
        must_parse(buf, (size_t)n, &p);
        char want[16];
        snprintf(want, sizeof(want), "q%d", i);
        assert_string_equal(p.msg, want);
    }
    wait_counter(sl_syslog_sent, s, 50);
    /* Room again. */
    sl_syslog_send(s, SL_SYSLOG_INFO, "d", NULL, "after");
    long n = collector_next(&col, buf, sizeof(buf), 0);
    parsed_t p;
    must_parse(buf, (size_t)n, &p);
    assert_string_equal(p.msg, "after");
    assert_int_equal(sl_syslog_dropped(s), 450);
    sl_syslog_close(s);
    sl_syslog_shutdown();
    collector_stop(&col);
}

/* The collector goes away and comes back on the same port: the sender notices the closed
 * connection, keeps what it could not send and delivers it on a new connection. */
static void test_reconnect(void **state)
{
    (void)state;
    collector_t col;
    uint16_t port, got;
    collector_start(&col, 0, &port);
    sl_syslog_cfg_t c = cfg_for(port, SL_SYSLOG_TCP);
    sl_syslog_t *s = sl_syslog_open(&c);
    assert_non_null(s);
    char buf[4096];
    parsed_t p;
    sl_syslog_send(s, SL_SYSLOG_INFO, "r", NULL, "before");
    long n = collector_next(&col, buf, sizeof(buf), 0);
    must_parse(buf, (size_t)n, &p);
    assert_string_equal(p.msg, "before");
    wait_counter(sl_syslog_sent, s, 1);

    collector_stop(&col);
    for (int i = 0; i < 5; i++) {
        char msg[16];
        snprintf(msg, sizeof(msg), "down%d", i);
        sl_syslog_send(s, SL_SYSLOG_INFO, "r", NULL, msg);
    }
    collector_start(&col, port, &got);
    for (int i = 0; i < 5; i++) {
        n = collector_next(&col, buf, sizeof(buf), 0);
        must_parse(buf, (size_t)n, &p);
        char want[16];
        snprintf(want, sizeof(want), "down%d", i);
        assert_string_equal(p.msg, want);
    }
    wait_counter(sl_syslog_sent, s, 6);
    assert_int_equal(sl_syslog_dropped(s), 0);
    sl_syslog_close(s);
    sl_syslog_shutdown();
    assert_int_equal(collector_next(&col, buf, sizeof(buf), 1), -1);
    collector_stop(&col);
}

/* Two handles on one destination, as a reload makes them: one queue and one connection, so
 * closing the old handle neither loses nor repeats what it queued. */
static void test_shared_sender(void **state)
{
    (void)state;
    collector_t col;
    uint16_t port;
    collector_start(&col, 0, &port);
    sl_syslog_cfg_t c = cfg_for(port, SL_SYSLOG_TCP);
    c.batch_size = 100;
    c.flush_interval_ms = 3600000;
    c.app_name = "old";
    sl_syslog_t *a = sl_syslog_open(&c);
    assert_non_null(a);
    for (int i = 0; i < 3; i++)
        sl_syslog_send(a, SL_SYSLOG_INFO, "s", NULL, "from-old");
    c.app_name = "new";
    c.facility = 3;
    sl_syslog_t *b = sl_syslog_open(&c);
    assert_non_null(b);
    assert_ptr_not_equal(a, b);
    sl_syslog_close(a);
    for (int i = 0; i < 2; i++)
        sl_syslog_send(b, SL_SYSLOG_INFO, "s", NULL, "from-new");
    /* A different transport is another destination. */
    uint16_t uport;
    int ufd = bound_socket(AF_INET, SOCK_DGRAM, port, &uport);
    sl_syslog_cfg_t uc = cfg_for(port, SL_SYSLOG_UDP);
    sl_syslog_t *u = sl_syslog_open(&uc);
    assert_non_null(u);
    sl_syslog_send(u, SL_SYSLOG_INFO, "s", NULL, "udp");
    char buf[4096];
    size_t un = udp_recv(ufd, buf, sizeof(buf));
    parsed_t p;
    must_parse(buf, un, &p);
    assert_string_equal(p.msg, "udp");
    wait_counter(sl_syslog_sent, u, 1);
    assert_int_equal(sl_syslog_sent(b), 0);
    sl_syslog_close(u);

    sl_syslog_close(b);
    sl_syslog_shutdown();
    for (int i = 0; i < 5; i++) {
        long n = collector_next(&col, buf, sizeof(buf), 0);
        must_parse(buf, (size_t)n, &p);
        assert_string_equal(p.app, i < 3 ? "old" : "new");
        assert_int_equal(p.pri, i < 3 ? 16 * 8 + 6 : 3 * 8 + 6);
        assert_string_equal(p.msg, i < 3 ? "from-old" : "from-new");
    }
    assert_int_equal(collector_next(&col, buf, sizeof(buf), 1), -1);
    assert_int_equal(col.accepts, 1);
    collector_stop(&col);
    close(ufd);
}

/* Close with the collector absent ends within its timeout, counting what it could not send;
 * shutdown then returns. */
static void test_close_when_down(void **state)
{
    (void)state;
    sl_syslog_cfg_t c = cfg_for(free_port(), SL_SYSLOG_TCP);
    c.close_timeout_ms = 50;
    sl_syslog_t *s = sl_syslog_open(&c);
    assert_non_null(s);
    for (int i = 0; i < 10; i++)
        sl_syslog_send(s, SL_SYSLOG_INFO, "c", NULL, "lost");
    assert_int_equal(sl_syslog_dropped(s), 0);
    sl_syslog_close(s);
    sl_syslog_shutdown();
}

typedef struct {
    sl_syslog_t *s;
    int id;
} writer_t;

static void *writer_main(void *arg)
{
    writer_t *w = arg;
    for (int i = 0; i < 250; i++) {
        char msg[32];
        snprintf(msg, sizeof(msg), "w%d %d", w->id, i);
        sl_syslog_send(w->s, SL_SYSLOG_INFO, "w", NULL, msg);
    }
    return NULL;
}

static void test_concurrent_senders(void **state)
{
    (void)state;
    collector_t col;
    uint16_t port;
    collector_start(&col, 0, &port);
    sl_syslog_cfg_t c = cfg_for(port, SL_SYSLOG_TCP);
    c.batch_size = 32;
    c.flush_interval_ms = 5;
    sl_syslog_t *s = sl_syslog_open(&c);
    assert_non_null(s);
    pthread_t th[4];
    writer_t w[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (writer_t){s, i};
        assert_int_equal(pthread_create(&th[i], NULL, writer_main, &w[i]), 0);
    }
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    int next[4] = {0};
    char buf[4096];
    for (int i = 0; i < 1000; i++) {
        long n = collector_next(&col, buf, sizeof(buf), 0);
        parsed_t p;
        must_parse(buf, (size_t)n, &p);
        int id, seq;
        assert_int_equal(sscanf(p.msg, "w%d %d", &id, &seq), 2);
        assert_true(id >= 0 && id < 4);
        /* Each thread's messages arrive in the order it sent them. */
        assert_int_equal(seq, next[id]);
        next[id]++;
    }
    wait_counter(sl_syslog_sent, s, 1000);
    assert_int_equal(sl_syslog_dropped(s), 0);
    sl_syslog_close(s);
    sl_syslog_shutdown();
    assert_int_equal(collector_next(&col, buf, sizeof(buf), 1), -1);
    collector_stop(&col);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_format_fields),
        cmocka_unit_test(test_format_nilvalue),
        cmocka_unit_test(test_format_pri),
        cmocka_unit_test(test_timestamp),
        cmocka_unit_test(test_sd_escaping),
        cmocka_unit_test(test_truncation),
        cmocka_unit_test(test_sd_bound),
        cmocka_unit_test(test_open_invalid),
        cmocka_unit_test(test_udp),
        cmocka_unit_test(test_udp_ipv6),
        cmocka_unit_test(test_tcp_octet_counting),
        cmocka_unit_test(test_batching),
        cmocka_unit_test(test_flush_interval),
        cmocka_unit_test(test_drop_bound_then_delivery),
        cmocka_unit_test(test_reconnect),
        cmocka_unit_test(test_shared_sender),
        cmocka_unit_test(test_close_when_down),
        cmocka_unit_test(test_concurrent_senders),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
