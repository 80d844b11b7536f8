#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "http/h1_scan.h"

/* Runs the checker over msg[0..n) in pieces of step bytes, as reads would bring them; the body
 * after the head is chunked when chunked is set, else there is none. Returns 1 when the whole
 * message was accepted and ended where msg ends, 0 when it was refused, -1 when it is unfinished
 * or ended early. */
static int verdict(const char *msg, size_t n, int response, int chunked, size_t step)
{
    sl_h1_scan_t s;
    sl_h1_scan_reset(&s);
    s.response = (uint8_t)response;
    size_t off = 0;
    while (off < n) {
        size_t k = n - off < step ? n - off : step;
        char piece[1024];
        assert_true(k <= sizeof(piece));
        memcpy(piece, msg + off, k); /* exactly k bytes, as a read's buffer would end */
        ssize_t r = sl_h1_scan(&s, piece, k);
        if (r < 0) return 0;
        assert_true((size_t)r <= k);
        off += (size_t)r;
        if (s.phase == SL_SCAN_HEAD_DONE)
            sl_h1_scan_body(&s, chunked ? SL_SCAN_BODY_CHUNKED : SL_SCAN_BODY_NONE, 0);
        else if ((size_t)r < k)
            return -1;
    }
    return s.phase == SL_SCAN_DONE ? 1 : -1;
}

/* The verdict on a message, the same whether it comes in one read or a byte at a time (the
 * checker takes whole lines at once where it can, and byte by byte where a read cuts one). */
static int check(const char *msg, size_t n, int response, int chunked)
{
    int whole = verdict(msg, n, response, chunked, n);
    for (size_t step = 1; step <= 17; step += 8) {
        int split = verdict(msg, n, response, chunked, step);
        if (split != whole)
            fail_msg("%.*s: verdict %d in one read, %d in reads of %zu bytes", (int)n, msg, whole, split, step);
    }
    return whole;
}

static int is_tchar(int b)
{
    return (b >= '0' && b <= '9') || (b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z') ||
           (b && strchr("!#$%&'*+-.^_`|~", b));
}

/* RFC 9110 5.5: field-vchar, SP, HTAB, obs-text. */
static int is_value_byte(int b)
{
    return b == '\t' || (b >= 0x20 && b != 0x7f);
}

/* Where one byte goes in a message and which bytes the grammar lets stand there. Every part is
 * long enough (over 16 bytes on both sides of the byte) for the checker's wide reads to meet it
 * at every offset. */
typedef struct {
    const char *name;
    const char *before, *after;
    int response, chunked;
    int (*allowed)(int b);
} place_t;

static int method_ok(int b)
{
    return is_tchar(b);
}

static int target_ok(int b) /* visible ASCII; a space would make a fourth part */
{
    return b >= 0x21 && b <= 0x7e;
}

static int name_ok(int b) /* a ':' ends the name early, and what follows is a good value */
{
    return is_tchar(b) || b == ':';
}

static int status_ok(int b) /* a tab is refused even in the reason phrase (see h1_scan.c) */
{
    return b >= 0x20 && b != 0x7f;
}

#define HDRS "Host: example.com\r\nAccept: */*\r\n"
static const place_t places[] = {
    {"method", "GETGETGETGETGETGETGET", "GETGETGETGETGETGETGET /p HTTP/1.1\r\n" HDRS "\r\n", 0, 0, method_ok},
    {"target", "GET /aaaaaaaaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbbbbbbbbbbb HTTP/1.1\r\n" HDRS "\r\n", 0, 0, target_ok},
    {"version", "GET / HTTP/1.1aaaaaaaaaaaaaaaaaaaa", "aaaaaaaaaaaaaaaaaaa\r\n" HDRS "\r\n", 0, 0, target_ok},
    {"field name", "GET / HTTP/1.1\r\nX-Aaaaaaaaaaaaaaaaaaaaa", "Bbbbbbbbbbbbbbbbbbbbbbbb: v\r\n" HDRS "\r\n", 0, 0, name_ok},
    {"field value", "GET / HTTP/1.1\r\nX-A: aaaaaaaaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbbbbbbbbbb\r\n" HDRS "\r\n", 0, 0, is_value_byte},
    {"status line", "HTTP/1.1 200 Okaaaaaaaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbbbbbbbbbb\r\nServer: x\r\n\r\n", 1, 0, status_ok},
    {"response field value", "HTTP/1.1 200 OK\r\nServer: aaaaaaaaaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbbbbbbb\r\n\r\n", 1, 0,
     is_value_byte},
    {"trailer name", "POST / HTTP/1.1\r\n" HDRS "\r\n1\r\nx\r\n0\r\nX-Aaaaaaaaaaaaaaaaaaaaaaa", "Bbbbbbbbbbbbbbbbbbbbb: v\r\n\r\n",
     0, 1, name_ok},
    {"trailer value", "POST / HTTP/1.1\r\n" HDRS "\r\n1\r\nx\r\n0\r\nX-A: aaaaaaaaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbbbbbbbb\r\n\r\n",
     0, 1, is_value_byte},
};

/* Every byte value at every offset of a 16-byte stretch of every part: accepted exactly when
 * the grammar allows it there, and with the same verdict however the reads split the message. */
static void test_every_byte_everywhere(void **state)
{
    (void)state;
    for (size_t p = 0; p < sizeof(places) / sizeof(places[0]); p++) {
        const place_t *pl = &places[p];
        for (size_t shift = 0; shift < 16; shift++) {
            for (int b = 0; b < 256; b++) {
                char msg[512];
                size_t bl = strlen(pl->before) - shift; /* the byte replaces the part's last bytes */
                memcpy(msg, pl->before, bl);
                msg[bl] = (char)b;
                size_t al = strlen(pl->after);
                memcpy(msg + bl + 1, pl->after, al);
                int v = check(msg, bl + 1 + al, pl->response, pl->chunked);
                int want = pl->allowed(b) ? 1 : 0;
                if (v != want)
                    fail_msg("%s: byte 0x%02x at offset %zu: verdict %d, want %d", pl->name, b, bl, v, want);
            }
        }
    }
}

/* Lines whose CR, LF or colon fall at every offset of a read: the line-at-once way and the
 * byte-wise way agree on good and bad messages alike. */
static void test_line_ends(void **state)
{
    (void)state;
    static const char *good[] = {
        "GET /a/b?c=d HTTP/1.1\r\nHost: h\r\nX-Long-Name-For-Wide-Reads: some value with spaces and\ttabs\r\n\r\n",
        "\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n", /* an empty line before the request line (RFC 9112 2.2) */
        "GET / HTTP/1.1\r\nHost: h\r\nEmpty:\r\nX: \xc3\xa9t\xc3\xa9\r\n\r\n",
    };
    static const char *bad[] = {
        "GET / HTTP/1.1\nHost: h\r\n\r\n",                 /* bare LF after the request line */
        "GET / HTTP/1.1\r\nHost: h\n\r\n",                 /* bare LF after a field line */
        "GET / HTTP/1.1\r\nHost: h\r\nX: a\rb\r\n\r\n",    /* bare CR in a value */
        "GET / HTTP/1.1\r\nHost: h\r\nX : a\r\n\r\n",      /* space before the colon */
        "GET / HTTP/1.1\r\nHost: h\r\n folded\r\n\r\n",    /* obs-fold */
        "GET / HTTP/1.1\r\nHost: h\r\nNo colon here\r\n\r\n",
        "GET  / HTTP/1.1\r\nHost: h\r\n\r\n",              /* two spaces */
        "GET / HTTP/1.1 \r\nHost: h\r\n\r\n",              /* a space after the version */
        "GET /\r\nHost: h\r\n\r\n",                         /* no version */
        "GET / HTTP/1.1\r\n:h\r\n\r\n",                     /* empty field name */
        "GET / HTTP/1.1\r\nHost: h\r\n\r\r\n",             /* CR CR LF ending the head */
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        if (check(good[i], strlen(good[i]), 0, 0) != 1) fail_msg("refused: %s", good[i]);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (check(bad[i], strlen(bad[i]), 0, 0) != 0) fail_msg("accepted: %s", bad[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_byte_everywhere),
        cmocka_unit_test(test_line_ends),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
