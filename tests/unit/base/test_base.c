#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "base/arena.h"
#include "base/buf.h"
#include "base/cidr.h"
#include "base/common.h"
#include "base/list.h"
#include "base/map.h"
#include "base/time.h"

static void test_durations(void **state)
{
    (void)state;
    uint64_t ms;
    assert_int_equal(sl_parse_duration_ms("500ms", &ms), 0);
    assert_int_equal(ms, 500);
    assert_int_equal(sl_parse_duration_ms("10s", &ms), 0);
    assert_int_equal(ms, 10000);
    assert_int_equal(sl_parse_duration_ms("1m", &ms), 0);
    assert_int_equal(ms, 60000);
    assert_int_equal(sl_parse_duration_ms("1h", &ms), 0);
    assert_int_equal(ms, 3600000);
    assert_int_equal(sl_parse_duration_ms("7", &ms), 0);
    assert_int_equal(ms, 7000);
    assert_int_equal(sl_parse_duration_ms("0.1", &ms), 0);
    assert_int_equal(ms, 100);
    assert_int_equal(sl_parse_duration_ms("1h30m", &ms), 0);
    assert_int_equal(ms, 5400000);
    assert_int_equal(sl_parse_duration_ms("1m30s", &ms), 0);
    assert_int_equal(ms, 90000);
    assert_int_equal(sl_parse_duration_ms("1.5s", &ms), 0);
    assert_int_equal(ms, 1500);
    assert_int_equal(sl_parse_duration_ms("1h1m1s1ms", &ms), 0);
    assert_int_equal(ms, 3661001);
    assert_int_equal(sl_parse_duration_ms("0.000001h", &ms), -EDOM); /* 3.6 ms */
    assert_int_equal(sl_parse_duration_ms("0.0000001h", &ms), -EDOM);
    assert_int_equal(sl_parse_duration_ms("0.001500000000s", &ms), -EDOM); /* past 9 digits */
    assert_int_equal(sl_parse_duration_ms("0.0015000s", &ms), -EDOM);
    assert_int_equal(sl_parse_duration_ms("0.002000s", &ms), 0);
    assert_int_equal(ms, 2);
    assert_int_equal(sl_parse_duration_ms("", &ms), -EINVAL);
    assert_int_equal(sl_parse_duration_ms("1d", &ms), -EINVAL);
    assert_int_equal(sl_parse_duration_ms("1s1m", &ms), -EINVAL);
    assert_int_equal(sl_parse_duration_ms("1s 1ms", &ms), -EINVAL);
    assert_int_equal(sl_parse_duration_ms("-1s", &ms), -ERANGE);
    assert_int_equal(sl_parse_duration_ms("99999999999999999999s", &ms), -ERANGE);
    assert_int_equal(sl_parse_duration_ms("5124095577h", &ms), -ERANGE);
    assert_int_equal(sl_parse_duration_ms("5124095576h1s", &ms), 0);
    assert_int_equal(sl_parse_duration_ms("5124095576h110s", &ms), -ERANGE);
}

typedef struct item {
    int n;
    sl_list_t link;
} item_t;

static void test_list(void **state)
{
    (void)state;
    sl_list_t head;
    sl_list_init(&head);
    assert_true(sl_list_empty(&head));
    item_t it[4] = {{.n = 0}, {.n = 1}, {.n = 2}, {.n = 3}};
    sl_list_push(&head, &it[1].link);      /* 1 */
    sl_list_push(&head, &it[0].link);      /* 0 1 */
    sl_list_push_tail(&head, &it[2].link); /* 0 1 2 */
    sl_list_push_tail(&head, &it[3].link); /* 0 1 2 3 */
    int want = 0;
    for (sl_list_t *n = head.next; n != &head; n = n->next) assert_int_equal(sl_container_of(n, item_t, link)->n, want++);
    assert_int_equal(want, 4);
    sl_list_remove(&it[1].link);
    sl_list_remove(&it[1].link); /* a removed node is empty: removing it again changes nothing */
    int order[] = {0, 2, 3}, i = 0;
    for (sl_list_t *n = head.next; n != &head; n = n->next) assert_int_equal(sl_container_of(n, item_t, link)->n, order[i++]);
    assert_int_equal(i, 3);
    sl_list_remove(&it[0].link);
    sl_list_remove(&it[2].link);
    sl_list_remove(&it[3].link);
    assert_true(sl_list_empty(&head));
}

static void test_map(void **state)
{
    (void)state;
    sl_map_t m;
    sl_map_init(&m);
    static char keys[5000][16];
    for (int i = 0; i < 5000; i++) {
        snprintf(keys[i], sizeof(keys[i]), "k%d", i);
        *sl_map_slot(&m, keys[i], strlen(keys[i])) = keys[i];
    }
    assert_int_equal(m.len, 5000);
    for (int i = 0; i < 5000; i++) assert_ptr_equal(sl_map_get(&m, keys[i], strlen(keys[i])), keys[i]);
    assert_null(sl_map_get(&m, "nope", 4));
    assert_null(sl_map_get(&m, "k1", 1)); /* a prefix of a key is another key */
    sl_map_free(&m);
}

static void test_buf_json(void **state)
{
    (void)state;
    sl_buf_t b = SL_BUF_INIT;
    sl_buf_json_escape(&b, "a\"b\\c\n\x01", 7);
    assert_string_equal(sl_buf_cstr(&b), "a\\\"b\\\\c\\n\\u0001");
    sl_buf_free(&b);
}

static void test_arena(void **state)
{
    (void)state;
    sl_arena_t a;
    sl_arena_init(&a, 64);
    char *big = sl_arena_alloc(&a, 10000);
    memset(big, 1, 10000);
    char *s = sl_arena_strdup(&a, "hello");
    assert_string_equal(s, "hello");
    for (int i = 0; i < 1000; i++) assert_non_null(sl_arena_calloc(&a, 24));
    sl_arena_reset(&a);
}

static void test_cidr_set(void **state)
{
    (void)state;
    sl_cidr_set_t set;
    sl_cidr_set_init(&set);
    const char *entries[] = {"10.0.0.0/8", "192.168.1.7", "2001:db8::/32", "0.0.0.0/32"};
    for (size_t i = 0; i < 4; i++) {
        sl_ip_t ip;
        int prefix;
        assert_int_equal(sl_cidr_parse(entries[i], &ip, &prefix), 0);
        sl_cidr_set_add(&set, &ip, prefix);
    }
    /* 10,000 more entries do not change the answers (and lookups stay per prefix length). */
    char buf[32];
    for (int i = 0; i < 10000; i++) {
        snprintf(buf, sizeof(buf), "172.16.%d.%d/32", i / 256, i % 256);
        sl_ip_t ip;
        int prefix;
        assert_int_equal(sl_cidr_parse(buf, &ip, &prefix), 0);
        sl_cidr_set_add(&set, &ip, prefix);
    }
    struct {
        const char *ip;
        int in;
    } cases[] = {{"10.1.2.3", 1},   {"11.0.0.1", 0},        {"192.168.1.7", 1}, {"192.168.1.8", 0},
                 {"2001:db8::1", 1}, {"2001:db9::1", 0},     {"::ffff:10.9.9.9", 1}, {"172.16.39.15", 1},
                 {"172.16.39.16", 0}, {"0.0.0.0", 1}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        sl_ip_t ip;
        assert_int_equal(sl_ip_parse(cases[i].ip, strlen(cases[i].ip), &ip), 0);
        assert_int_equal(sl_cidr_set_contains(&set, &ip), cases[i].in);
    }
    sl_ip_t ip;
    int prefix;
    assert_int_equal(sl_cidr_parse("10.0.0.0/33", &ip, &prefix), -1);
    assert_int_equal(sl_cidr_parse("10.0.0/8", &ip, &prefix), -1);
    assert_int_equal(sl_cidr_parse("::1/129", &ip, &prefix), -1);
    assert_int_equal(sl_cidr_parse("10.0.0.0/", &ip, &prefix), -1);
    assert_int_equal(sl_ip_parse("not-an-ip", 9, &ip), -1);
    sl_cidr_set_free(&set);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_durations),
        cmocka_unit_test(test_list),
        cmocka_unit_test(test_map),
        cmocka_unit_test(test_buf_json),
        cmocka_unit_test(test_arena),
        cmocka_unit_test(test_cidr_set),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
