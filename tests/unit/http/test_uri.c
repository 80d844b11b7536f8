#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "http/uri.h"

/* ---- path ------------------------------------------------------------------------------- */

/* Normalises in with flags and checks the result against want (NULL: refused with code why).
 * Every accepted result is also checked to be its own normal form. */
static void path_is(const char *in, unsigned flags, const char *want, const char *why)
{
    sl_buf_t b = SL_BUF_INIT;
    const char *code = "unset";
    sl_buf_puts(&b, "Q"); /* appends: what is there stays */
    size_t before = b.len;
    int rc = sl_path_normalize(in, strlen(in), &b, flags, &code);
    if (want) {
        if (rc != 0) fail_msg("%s: refused (%s), want %s", in, code, want);
        if (b.len - before != strlen(want) || memcmp(b.data + before, want, strlen(want)) != 0)
            fail_msg("%s: got %.*s, want %s", in, (int)(b.len - before), b.data + before, want);
        assert_int_equal(b.data[b.len], '\0');
        assert_memory_equal(b.data, "Q", 1);
        sl_buf_t again = SL_BUF_INIT;
        assert_int_equal(sl_path_normalize(b.data + before, b.len - before, &again, flags, NULL), 0);
        assert_int_equal(again.len, b.len - before);
        assert_memory_equal(again.data, b.data + before, again.len);
        sl_buf_free(&again);
    } else {
        if (rc == 0) fail_msg("%s: accepted as %.*s, want %s", in, (int)(b.len - before), b.data + before, why);
        assert_int_equal(rc, -EINVAL);
        assert_string_equal(code, why);
        assert_int_equal(b.len, before);
    }
    sl_buf_free(&b);
}

#define OK(in, want) path_is(in, 0, want, NULL)
#define NO(in, why) path_is(in, 0, NULL, why)

static void test_path_unchanged(void **state)
{
    (void)state;
    OK("/", "/");
    OK("/a", "/a");
    OK("/a/b/", "/a/b/");
    OK("/Admin/Secret.TXT", "/Admin/Secret.TXT");   /* case is the upstream's business */
    OK("/a;v=1/b;x", "/a;v=1/b;x");                 /* ';' parameters are segment bytes */
    OK("/!$&'()*+,;=:@-._~", "/!$&'()*+,;=:@-._~"); /* every pchar that is not an escape */
    OK("/a..b/c.", "/a..b/c.");                     /* dots inside a segment are not dot segments */
    OK("/...", "/...");
    OK("/a/.../b", "/a/.../b");
    OK("/.well-known/x", "/.well-known/x");
    OK("/..a/b", "/..a/b");
    OK("", "/"); /* RFC 9112 3.2.1 */
}

static void test_path_decodes_unreserved(void **state)
{
    (void)state;
    OK("/%61dmin", "/admin");
    OK("/ad%6Din", "/admin");
    OK("/ad%6din", "/admin");
    OK("/%41%5a%7e%2D%5f%30%39", "/AZ~-_09");
    OK("/%2e%2E%2ea", "/...a");
    /* reserved and non-ASCII escapes stay encoded, with upper-case hex */
    OK("/a%2cb", "/a%2Cb");
    OK("/a%3fb%23c", "/a%3Fb%23c");
    OK("/%c3%a9t%C3%A9", "/%C3%A9t%C3%A9");
    OK("/%20", "/%20");
    OK("/%7f%01%ff", "/%7F%01%FF");
    OK("/%25", "/%25");
    OK("/%252e%252e/x", "/%252e%252e/x"); /* one level of decoding only; %25 stays */
    OK("/%2561dmin", "/%2561dmin");
    /* overlong UTF-8 for '.' is not unreserved, so it is never decoded into a dot segment */
    OK("/%c0%ae%c0%ae/admin", "/%C0%AE%C0%AE/admin");
    OK("/a/%c0%ae%c0%ae/admin", "/a/%C0%AE%C0%AE/admin");
    OK("/%e0%80%ae/x", "/%E0%80%AE/x");
}

static void test_path_dot_segments(void **state)
{
    (void)state;
    OK("/a/b/..", "/a/");
    OK("/a/b/../", "/a/");
    OK("/a/./b", "/a/b");
    OK("/a/b/.", "/a/b/");
    OK("/a/b/./", "/a/b/");
    OK("/.", "/");
    OK("/./", "/");
    OK("/a/..", "/");
    OK("/a/../", "/");
    OK("/./admin", "/admin");
    OK("/admin/.", "/admin/");
    OK("/x/../admin", "/admin");
    OK("/a/b/c/../../d", "/a/d");
    OK("/a/b/../../c", "/c");
    OK("/a/./../b", "/b");
    OK("/a/%2e%2E/b", "/b");
    OK("/a/%2e/b", "/a/b");
    OK("/a/b/%2e", "/a/b/");
    OK("/%2E/admin", "/admin");
    OK("/x/.%2e/admin", "/admin");
    OK("/x/%2E./admin", "/admin");
    OK("/a/b/%2e%2e", "/a/");
    OK("/a/.b/..", "/a/");
}

static void test_path_above_root(void **state)
{
    (void)state;
    NO("/..", "path_above_root");
    NO("/../", "path_above_root");
    NO("/../admin", "path_above_root");
    NO("/%2e%2e/admin", "path_above_root");
    NO("/%2E%2e/x", "path_above_root");
    NO("/a/../..", "path_above_root");
    NO("/a/../../b", "path_above_root");
    NO("/./../a", "path_above_root");
    NO("//../a", "path_above_root"); /* the merged "//" is one slash: nothing to remove */
}

static void test_path_slashes(void **state)
{
    (void)state;
    OK("//admin", "/admin");
    OK("//admin/secret.txt", "/admin/secret.txt");
    OK("/a//b///c", "/a/b/c");
    OK("/a//", "/a/");
    OK("//", "/");
    OK("/a//..", "/");
    OK("/a/.//b", "/a/b");
    path_is("//admin", SL_PATH_KEEP_SLASHES, "//admin", NULL);
    path_is("/a//b///c", SL_PATH_KEEP_SLASHES, "/a//b///c", NULL);
    /* RFC 3986 5.2.4 on empty segments: ".." removes the empty one */
    path_is("/a//..", SL_PATH_KEEP_SLASHES, "/a/", NULL);
    path_is("/a/.//b", SL_PATH_KEEP_SLASHES, "/a//b", NULL);
    path_is("//..", SL_PATH_KEEP_SLASHES, "/", NULL);
    path_is("//../a", SL_PATH_KEEP_SLASHES, "/a", NULL);
    path_is("/%61//%62", SL_PATH_KEEP_SLASHES, "/a//b", NULL);
}

static void test_path_encoded_slash(void **state)
{
    (void)state;
    NO("/a/..%2fadmin/secret.txt", "path_encoded_slash");
    NO("/a/..%2Fadmin", "path_encoded_slash");
    NO("/admin%2f", "path_encoded_slash");
    NO("/%2F", "path_encoded_slash");
    NO("/%5cadmin", "path_encoded_slash");
    NO("/a%5Cb", "path_encoded_slash");
    NO("/admin%00.txt", "path_encoded_nul");
    NO("/%00", "path_encoded_nul");
    /* kept as escapes: never decoded, so never a segment boundary or part of a dot segment */
    unsigned k = SL_PATH_KEEP_ESCAPED_SLASHES;
    path_is("/a/..%2fadmin", k, "/a/..%2Fadmin", NULL);
    path_is("/a/..%2fadmin/..", k, "/a/", NULL);
    path_is("/admin%2f", k, "/admin%2F", NULL);
    path_is("/%5cadmin", k, "/%5Cadmin", NULL);
    path_is("/..%5c", k, "/..%5C", NULL);
    path_is("/%2e%2e%2f", k, "/..%2F", NULL);
    path_is("/admin%00.txt", k, NULL, "path_encoded_nul");
    path_is("/admin%00.txt", k | SL_PATH_KEEP_SLASHES, NULL, "path_encoded_nul");
}

static void test_path_refused(void **state)
{
    (void)state;
    NO("a", "path_not_absolute");
    NO("*", "path_not_absolute");
    NO("%2fa", "path_not_absolute");
    NO("http://x/", "path_not_absolute");
    NO("/a%", "path_bad_escape");
    NO("/a%2", "path_bad_escape");
    NO("/a%g0", "path_bad_escape");
    NO("/a%0g", "path_bad_escape");
    NO("/a%%30", "path_bad_escape");
    NO("/a% 1", "path_bad_escape");
    static const char *const raw[] = {" ", "\t", "\r", "\n", "\x7f", "\x01", "\x80", "\xc3\xa9", "\xff", "\"", "#",
                                      "<", ">",  "?",  "[",  "\\",   "]",    "^",    "`",        "{",    "|",  "}"};
    char p[16];
    for (size_t i = 0; i < sizeof(raw) / sizeof(raw[0]); i++) {
        snprintf(p, sizeof(p), "/a%sb", raw[i]);
        NO(p, "path_bad_char");
        snprintf(p, sizeof(p), "/%s", raw[i]);
        NO(p, "path_bad_char");
        snprintf(p, sizeof(p), "//x/.%s", raw[i]); /* in the general pass too */
        NO(p, "path_bad_char");
    }
    /* a NUL byte inside the given length */
    sl_buf_t b = SL_BUF_INIT;
    const char *code = NULL;
    assert_int_equal(sl_path_normalize("/a\0b", 4, &b, 0, &code), -EINVAL);
    assert_string_equal(code, "path_bad_char");
    /* err_code may be NULL */
    assert_int_equal(sl_path_normalize("/..", 3, &b, 0, NULL), -EINVAL);
    assert_int_equal(b.len, 0);
    sl_buf_free(&b);
}

/* The route-bypass corpus: every spelling of /admin/... a client may send either comes out as
 * the /admin path the router sees, or is refused. */
static void test_path_bypass_corpus(void **state)
{
    (void)state;
    OK("/%61dmin/secret.txt", "/admin/secret.txt");
    OK("//admin/secret.txt", "/admin/secret.txt");
    OK("/./admin", "/admin");
    OK("/admin/.", "/admin/");
    OK("/x/../admin", "/admin");
    OK("/%2E/admin", "/admin");
    OK("/ad%6Din", "/admin");
    OK("/%41dmin", "/Admin"); /* case is kept: a different path */
    OK("/%2e/%2E//./%61%64%6d%69%6e/x/%2E%2e/secret.txt", "/admin/secret.txt");
    OK("/.//admin", "/admin");
    OK("///./admin", "/admin");
    OK("/foo/..//admin", "/admin");
    NO("/a/..%2fadmin/secret.txt", "path_encoded_slash");
    NO("/%2e%2e/admin", "path_above_root");
    NO("/admin%2f", "path_encoded_slash");
    NO("/%5cadmin", "path_encoded_slash");
    NO("/admin%00.txt", "path_encoded_nul");
    NO("/\\admin", "path_bad_char");
    NO("/admin\\..\\x", "path_bad_char");
    NO("/%%32%65%%32%65/admin", "path_bad_escape");
    OK("/%c0%ae/admin", "/%C0%AE/admin");
}

static void test_path_no_allocation_with_room(void **state)
{
    (void)state;
    char store[64];
    sl_buf_t b = {store, 0, sizeof(store)};
    const char *in = "//a/./b/%2e%2e/%63";
    assert_int_equal(sl_path_normalize(in, strlen(in), &b, 0, NULL), 0);
    assert_ptr_equal(b.data, store); /* would have been realloc'd otherwise */
    assert_string_equal(b.data, "/a/c");
    b.len = 0;
    assert_int_equal(sl_path_normalize("/plain/path", 11, &b, 0, NULL), 0);
    assert_ptr_equal(b.data, store);
    assert_string_equal(b.data, "/plain/path");
}

/* ---- host ------------------------------------------------------------------------------- */

static void host_is(const char *in, const char *want, int want_port)
{
    char out[SL_HOST_OUT_CAP(64)];
    size_t len = 12345;
    int port = 12345;
    int rc = sl_host_normalize(in, strlen(in), out, sizeof(out), &len, &port);
    if (rc != 0) fail_msg("host '%s': refused, want %s", in, want);
    if (len != strlen(want) || memcmp(out, want, len) != 0)
        fail_msg("host '%s': got '%.*s', want '%s'", in, (int)len, out, want);
    assert_int_equal(out[len], '\0');
    assert_int_equal(port, want_port);
    /* the result is its own normal form */
    char again[SL_HOST_OUT_CAP(64)];
    size_t alen = 0;
    assert_int_equal(sl_host_normalize(out, len, again, sizeof(again), &alen, NULL), 0);
    assert_int_equal(alen, len);
    assert_memory_equal(again, out, len);
}

static void host_bad(const char *in, size_t n)
{
    char out[SL_HOST_OUT_CAP(64)];
    size_t len = 0;
    int port = 12345;
    if (sl_host_normalize(in, n, out, sizeof(out), &len, &port) != -EINVAL)
        fail_msg("host '%.*s': not refused", (int)n, in);
}

#define HOST_NO(s) host_bad(s, strlen(s))

static void test_host_names(void **state)
{
    (void)state;
    host_is("example.com", "example.com", -1);
    host_is("ADMIN.internal:8080", "admin.internal", 8080);
    host_is("Admin.Internal", "admin.internal", -1);
    host_is("admin.internal.", "admin.internal", -1);
    host_is("admin.internal.:80", "admin.internal", 80);
    host_is("localhost", "localhost", -1);
    host_is("a_b-c.d", "a_b-c.d", -1);
    host_is("x", "x", -1);
    host_is("x:", "x", -1); /* empty port: no port */
    host_is("x:0", "x", 0);
    host_is("x:65535", "x", 65535);
    host_is("x:00080", "x", 80);
    host_is("9x.example", "9x.example", -1);
    host_is("example.9x", "example.9x", -1);
    host_is("0xfoo.com", "0xfoo.com", -1);
}

static void test_host_ip(void **state)
{
    (void)state;
    host_is("127.0.0.1", "127.0.0.1", -1);
    host_is("127.0.0.1:8080", "127.0.0.1", 8080);
    host_is("0.0.0.0", "0.0.0.0", -1);
    host_is("255.255.255.255", "255.255.255.255", -1);
    host_is("1.2.3.4.", "1.2.3.4", -1);
    host_is("[::1]:80", "[::1]", 80);
    host_is("[::1]", "[::1]", -1);
    host_is("[0:0::1]", "[::1]", -1);
    host_is("[0000:0000:0000:0000:0000:0000:0000:0001]:443", "[::1]", 443);
    host_is("[2001:DB8::A]", "[2001:db8::a]", -1);
    host_is("[::ffff:127.0.0.1]", "[::ffff:127.0.0.1]", -1);
    host_is("[::ffff:7f00:1]", "[::ffff:127.0.0.1]", -1);
    host_is("[::1]:", "[::1]", -1);
    /* numbers that resolvers read as addresses but are not dotted quads */
    HOST_NO("127.1");
    HOST_NO("0177.0.0.1");
    HOST_NO("0x7f.0.0.1");
    HOST_NO("127.0.0.01");
    HOST_NO("2130706433");
    HOST_NO("0x7f000001");
    HOST_NO("1.2.3.256");
    HOST_NO("1.2.3.4.5");
    HOST_NO("1.2.3");
    HOST_NO("example.123");
    HOST_NO("example.0x1");
    /* IP literals */
    HOST_NO("[]");
    HOST_NO("[::1");
    HOST_NO("::1");
    HOST_NO("[::1]x");
    HOST_NO("[::1]:8a");
    HOST_NO("[::1]]");
    HOST_NO("[127.0.0.1]");
    HOST_NO("[v1.abc]");
    HOST_NO("[fe80::1%25eth0]");
    HOST_NO("[fe80::1%eth0]");
    HOST_NO("[::1 ]");
    HOST_NO("[1:2:3:4:5:6:7:8:9]");
    HOST_NO("[::1]:99999");
    HOST_NO("[0000000000000000000000000000000000000000000000000000000000::1]");
}

static void test_host_refused(void **state)
{
    (void)state;
    HOST_NO("");
    HOST_NO(".");
    HOST_NO("..");
    HOST_NO("a..");
    HOST_NO(".a");
    HOST_NO("a..b");
    HOST_NO(":80");
    HOST_NO(".:80");
    HOST_NO("admin.internal ");
    HOST_NO(" admin.internal");
    HOST_NO("admin.internal\t");
    HOST_NO("admin.internal :80");
    HOST_NO("admin.internal: 80");
    HOST_NO("admin.internal:80 ");
    HOST_NO("a b");
    HOST_NO("a/b");
    HOST_NO("a,b");
    HOST_NO("a\\b");
    HOST_NO("x:1@admin.internal");
    HOST_NO("user@admin.internal");
    HOST_NO("admin.internal:99999");
    HOST_NO("admin.internal:65536");
    HOST_NO("admin.internal:8a");
    HOST_NO("admin.internal:-1");
    HOST_NO("admin.internal:+80");
    HOST_NO("admin.internal:80:80");
    HOST_NO("admin.internal:0x50");
    HOST_NO("a%2eb");
    HOST_NO("%61dmin.internal");
    HOST_NO("a!b");
    HOST_NO("a;b");
    HOST_NO("a=b");
    HOST_NO("a*b");
    HOST_NO("*.example.com");
    HOST_NO("a?b");
    HOST_NO("a#b");
    HOST_NO("\xc3\xa9.example");
    HOST_NO("a\rb");
    host_bad("admin\0.internal", 15);
    host_bad("[::1\0/x]", 8); /* inet_pton would stop at the NUL */
    host_bad("[::1]\0", 6);
}

static void test_host_out_cap(void **state)
{
    (void)state;
    char out[16];
    size_t len = 0;
    int port = 0;
    assert_int_equal(sl_host_normalize("example.com", 11, out, 11, &len, &port), 0); /* exact fit, no NUL */
    assert_int_equal(len, 11);
    assert_memory_equal(out, "example.com", 11);
    assert_int_equal(sl_host_normalize("example.com", 11, out, 10, &len, &port), -ENOSPC);
    assert_int_equal(sl_host_normalize("[::ffff:0:1]", 12, out, 16, &len, &port), 0);
    assert_int_equal(len, 16);
    assert_memory_equal(out, "[::ffff:0.0.0.1]", 16);
    assert_int_equal(sl_host_normalize("[::ffff:0:1]", 12, out, 15, &len, &port), -ENOSPC);
    /* an invalid value is -EINVAL whatever the room */
    assert_int_equal(sl_host_normalize("a b", 3, out, 1, &len, &port), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_path_unchanged),
        cmocka_unit_test(test_path_decodes_unreserved),
        cmocka_unit_test(test_path_dot_segments),
        cmocka_unit_test(test_path_above_root),
        cmocka_unit_test(test_path_slashes),
        cmocka_unit_test(test_path_encoded_slash),
        cmocka_unit_test(test_path_refused),
        cmocka_unit_test(test_path_bypass_corpus),
        cmocka_unit_test(test_path_no_allocation_with_room),
        cmocka_unit_test(test_host_names),
        cmocka_unit_test(test_host_ip),
        cmocka_unit_test(test_host_refused),
        cmocka_unit_test(test_host_out_cap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
