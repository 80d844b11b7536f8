/* libFuzzer target for the HTTP/1 framing checker (src/http/h1_scan.c). The first byte picks
 * request or response and the body framing announced after the head; the rest is the message.
 * The checker is run on the whole input at once and one byte at a time: it must never read
 * past what it is given, never consume more than it is given, and reach the same verdict (same
 * bytes consumed, same phase, same refusal) however the input is split, as a network splits it. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/h1_scan.h"

typedef struct {
    ssize_t used; /* bytes consumed, or -1 */
    uint8_t phase;
} verdict_t;

static verdict_t run(const uint8_t *p, size_t n, size_t step, int response, int body)
{
    sl_h1_scan_t s;
    sl_h1_scan_reset(&s);
    s.response = (uint8_t)response;
    size_t off = 0;
    while (off < n) {
        size_t k = n - off < step ? n - off : step;
        /* A copy of exactly k bytes, so that ASan sees any read beyond them. */
        char *piece = malloc(k);
        memcpy(piece, p + off, k);
        ssize_t r = sl_h1_scan(&s, piece, k);
        free(piece);
        if (r < 0) return (verdict_t){-1, s.phase};
        if ((size_t)r > k) abort();
        off += (size_t)r;
        if ((size_t)r < k) {
            if (s.phase == SL_SCAN_HEAD_DONE) {
                sl_h1_scan_body(&s, body == 0 ? SL_SCAN_BODY_NONE : body == 1 ? SL_SCAN_BODY_LENGTH : SL_SCAN_BODY_CHUNKED,
                                body == 1 ? 7 : 0);
                continue;
            }
            break; /* the message is over */
        }
    }
    return (verdict_t){(ssize_t)off, s.phase};
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    int response = data[0] & 1, body = (data[0] >> 1) % 3;
    verdict_t whole = run(data + 1, size - 1, size, response, body);
    verdict_t bytes = run(data + 1, size - 1, 1, response, body);
    if (whole.used != bytes.used || whole.phase != bytes.phase) abort();
    return 0;
}
