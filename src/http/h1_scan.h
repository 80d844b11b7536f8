/* The request framing checker: reads a client's raw bytes ahead of llhttp and refuses what
 * RFC 9112 forbids, since Debian's llhttp 8.1 lets some of it through (a CR followed by any byte
 * taken as a line end, a bare LF, obs-fold, junk after chunk data, control bytes in values).
 *
 * It knows the grammar of a message's lines, not their meaning: the head (request line and
 * header lines), then, once the caller tells it the framing llhttp found, the body (a length
 * to skip, or chunk-size lines, chunk data, the CRLF after it, and the trailer section). It
 * stops at the end of the head and at the end of the message, so bytes of the next pipelined
 * message are never read as this one's. The caller resets it at each message boundary. */
#ifndef SL_HTTP_H1_SCAN_H
#define SL_HTTP_H1_SCAN_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Longest chunk-size line (size and extensions) accepted. */
#define SL_CHUNK_LINE_MAX 4096

enum {
    SL_SCAN_HEAD,       /* request line and header lines */
    SL_SCAN_HEAD_DONE,  /* the empty line was seen: waiting for sl_h1_scan_body() */
    SL_SCAN_SIZE,       /* a chunk-size line */
    SL_SCAN_DATA,       /* chunk data */
    SL_SCAN_DATA_CRLF,  /* the CRLF after chunk data */
    SL_SCAN_TRAILER,    /* trailer lines after the last chunk */
    SL_SCAN_LENGTH,     /* a Content-Length body */
    SL_SCAN_DONE,       /* the message is over */
};

enum { SL_SCAN_BODY_NONE, SL_SCAN_BODY_LENGTH, SL_SCAN_BODY_CHUNKED };

typedef struct sl_h1_scan {
    uint8_t phase; /* SL_SCAN_* */
    uint8_t prev;  /* previous byte of the current line ('\r' when a LF must follow) */
    uint8_t part;  /* request line: 0 method, 1 target, 2 version; header line: 0 name, 1 value;
                      chunk-size line: 0 digits, 1 whitespace before ';', 2 extensions */
    uint8_t lines; /* lines of the head seen (0 until the request line is complete) */
    uint8_t response; /* the first line is a status line (set after sl_h1_scan_reset) */
    uint32_t col;  /* bytes in the current line (CR excluded) */
    uint64_t left; /* bytes of chunk data or body still to skip; chunk size being read */
} sl_h1_scan_t;

/* Starts a new message. A response's scanner sets response = 1 after this: its status line
 * is "HTTP-version SP status SP reason", whose reason phrase may hold spaces; its body may also
 * be delimited by the connection's close (SL_SCAN_BODY_LENGTH of UINT64_MAX). */
void sl_h1_scan_reset(sl_h1_scan_t *s);

/* Reads up to n bytes of p. Returns how many it consumed: fewer than n when the head or the
 * message ended inside p (phase SL_SCAN_HEAD_DONE or SL_SCAN_DONE), n otherwise; -1 when the
 * bytes break RFC 9112's grammar (the caller answers 400 and closes). In SL_SCAN_HEAD_DONE and
 * SL_SCAN_DONE it consumes nothing. */
ssize_t sl_h1_scan(sl_h1_scan_t *s, const char *p, size_t n);

/* After the head: the body framing (SL_SCAN_BODY_*) and, for a length, its size. */
void sl_h1_scan_body(sl_h1_scan_t *s, int kind, uint64_t length);

#endif
