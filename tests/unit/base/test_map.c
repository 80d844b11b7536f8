/* base/map.h: borrowed and owned keys, delete by backward shift, growth, the LRU order,
 * keys with every byte value. A reference model checks long random runs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "base/map.h"

/* Every entry is reachable from its home slot: no empty slot between them (what backward-shift
 * deletion must keep), the count matches, and the LRU list links every entry once. */
static void check_invariants(const sl_map_t *m)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < m->cap; i++) {
        const sl_map_entry_t *e = &m->slots[i];
        if (!e->key) continue;
        n++;
        assert_int_equal(e->hash, sl_map_hash(m, e->key, e->key_len));
        for (uint32_t j = (uint32_t)e->hash & (m->cap - 1); j != i; j = (j + 1) & (m->cap - 1))
            assert_non_null(m->slots[j].key);
    }
    assert_int_equal(n, m->len);
    if (!(m->flags & SL_MAP_LRU)) return;
    uint32_t seen = 0;
    const sl_map_entry_t *prev = NULL;
    for (const sl_map_entry_t *e = sl_map_newest(m); e; prev = e, e = sl_map_older(m, e)) {
        assert_true(++seen <= m->len);
        if (prev)
            assert_ptr_equal(&m->slots[e->newer], prev);
        else
            assert_int_equal(e->newer, SL_MAP_NONE);
    }
    assert_int_equal(seen, m->len);
    if (m->len) assert_ptr_equal(&m->slots[m->oldest], prev);
}

static void test_borrowed(void **state)
{
    (void)state;
    static const char *const words[] = {"api.example.com", "/users", "/users/", "", "x"};
    sl_map_t m;
    sl_map_init(&m);
    assert_null(sl_map_get(&m, "x", 1));
    for (size_t i = 0; i < 5; i++)
        *sl_map_slot(&m, words[i], strlen(words[i])) = (void *)(i + 1);
    for (size_t i = 0; i < 5; i++) {
        assert_ptr_equal(sl_map_get(&m, words[i], strlen(words[i])), (void *)(i + 1));
        /* Borrowed: the entry holds the caller's pointer itself. */
        sl_map_entry_t *e =
            (sl_map_entry_t *)((char *)sl_map_slot(&m, words[i], strlen(words[i])) - offsetof(sl_map_entry_t, value));
        assert_ptr_equal(e->key, words[i]);
    }
    assert_int_equal(sl_map_len(&m), 5);
    sl_map_free(&m);
    assert_int_equal(sl_map_len(&m), 0);
    assert_null(sl_map_get(&m, "x", 1));

    sl_map_t zero; /* all zero is an empty map too */
    memset(&zero, 0, sizeof(zero));
    *sl_map_slot(&zero, "k", 1) = &zero;
    assert_ptr_equal(sl_map_get(&zero, "k", 1), &zero);
    sl_map_free(&zero);
}

static void test_owned_copies_keys(void **state)
{
    (void)state;
    sl_map_t m;
    sl_map_init_with(&m, SL_MAP_OWNED, 0);
    char buf[32];
    for (int i = 0; i < 100; i++) {
        int n = snprintf(buf, sizeof(buf), "key-%d", i);
        *sl_map_slot(&m, buf, (size_t)n) = (void *)(intptr_t)(i + 1);
    }
    memset(buf, 'z', sizeof(buf)); /* the map must not have kept the buffer */
    for (int i = 0; i < 100; i++) {
        int n = snprintf(buf, sizeof(buf), "key-%d", i);
        assert_ptr_equal(sl_map_get(&m, buf, (size_t)n), (void *)(intptr_t)(i + 1));
    }
    size_t it = 0, count = 0;
    for (sl_map_entry_t *e; (e = sl_map_next(&m, &it));) {
        assert_int_equal(strlen(e->key), e->key_len); /* a C string as well */
        assert_memory_equal(e->key, "key-", 4);
        count++;
    }
    assert_int_equal(count, 100);
    /* An existing key keeps its entry: the slot comes back with its value. */
    assert_ptr_equal(*sl_map_slot(&m, "key-7", 5), (void *)(intptr_t)8);
    assert_int_equal(sl_map_len(&m), 100);
    sl_map_free(&m); /* ASan checks that every copy is freed */
}

static void test_delete_and_reinsert(void **state)
{
    (void)state;
    enum { N = 5000 };
    sl_map_t m;
    sl_map_init_with(&m, SL_MAP_OWNED, 0);
    char buf[32];
    for (int i = 0; i < N; i++)
        *sl_map_slot(&m, buf, (size_t)snprintf(buf, sizeof(buf), "k%d", i)) = (void *)(intptr_t)(i + 1);
    for (int i = 0; i < N; i += 2) {
        void *v = NULL;
        assert_int_equal(sl_map_del(&m, buf, (size_t)snprintf(buf, sizeof(buf), "k%d", i), &v), 1);
        assert_ptr_equal(v, (void *)(intptr_t)(i + 1));
        assert_int_equal(sl_map_del(&m, buf, strlen(buf), &v), 0); /* gone already */
    }
    check_invariants(&m);
    assert_int_equal(sl_map_len(&m), N / 2);
    for (int i = 0; i < N; i++) {
        void *v = sl_map_get(&m, buf, (size_t)snprintf(buf, sizeof(buf), "k%d", i));
        if (i % 2)
            assert_ptr_equal(v, (void *)(intptr_t)(i + 1));
        else
            assert_null(v);
    }
    uint32_t cap = m.cap;
    for (int i = 0; i < N; i += 2) {
        void **slot = sl_map_slot(&m, buf, (size_t)snprintf(buf, sizeof(buf), "k%d", i));
        assert_null(*slot); /* a deleted key comes back new */
        *slot = (void *)(intptr_t)-i;
    }
    assert_int_equal(m.cap, cap); /* deletes freed their slots: no growth to reinsert */
    check_invariants(&m);
    for (int i = 0; i < N; i++)
        assert_ptr_equal(sl_map_get(&m, buf, (size_t)snprintf(buf, sizeof(buf), "k%d", i)),
                         (void *)(intptr_t)(i % 2 ? i + 1 : -i));
    /* Delete everything: empty again, and usable. */
    for (int i = 0; i < N; i++)
        assert_int_equal(sl_map_del(&m, buf, (size_t)snprintf(buf, sizeof(buf), "k%d", i), NULL), 1);
    assert_int_equal(sl_map_len(&m), 0);
    for (uint32_t i = 0; i < m.cap; i++)
        assert_null(m.slots[i].key);
    *sl_map_slot(&m, "again", 5) = &m;
    assert_ptr_equal(sl_map_get(&m, "again", 5), &m);
    sl_map_free(&m);
}

static void test_growth(void **state)
{
    (void)state;
    enum { N = 100000 };
    sl_map_t m;
    sl_map_init_with(&m, SL_MAP_OWNED | SL_MAP_SEEDED, 0);
    for (uint32_t i = 0; i < N; i++) {
        *sl_map_slot(&m, (const char *)&i, sizeof(i)) = (void *)(uintptr_t)(i + 1);
        assert_true((uint64_t)m.len * 4 <= (uint64_t)m.cap * 3); /* load stays under 3/4 */
    }
    assert_int_equal(m.cap & (m.cap - 1), 0);
    for (uint32_t i = 0; i < N; i++)
        assert_ptr_equal(sl_map_get(&m, (const char *)&i, sizeof(i)), (void *)(uintptr_t)(i + 1));
    uint32_t miss = N;
    assert_null(sl_map_get(&m, (const char *)&miss, sizeof(miss)));
    check_invariants(&m);
    sl_map_free(&m);
}

/* Random inserts, deletes and lookups over a small key space (so that runs of colliding slots
 * form and break up), checked against an array after every step. */
static void test_random_against_model(void **state)
{
    (void)state;
    enum { KEYS = 700, STEPS = 60000 };
    static intptr_t model[KEYS]; /* 0: absent */
    unsigned flags[] = {SL_MAP_OWNED, SL_MAP_OWNED | SL_MAP_LRU | SL_MAP_SEEDED};
    srand(7);
    for (size_t f = 0; f < 2; f++) {
        memset(model, 0, sizeof(model));
        sl_map_t m;
        sl_map_init_with(&m, flags[f], 0);
        size_t live = 0;
        for (int step = 0; step < STEPS; step++) {
            int k = rand() % KEYS, op = rand() % 3;
            char key[16];
            size_t n = (size_t)snprintf(key, sizeof(key), "%d", k);
            if (op == 0) {
                void **slot = sl_map_slot(&m, key, n);
                assert_ptr_equal(*slot, (void *)model[k]);
                if (!model[k]) live++;
                model[k] = step + 1;
                *slot = (void *)model[k];
            } else if (op == 1) {
                void *v = NULL;
                int had = sl_map_del(&m, key, n, &v);
                assert_int_equal(had, model[k] != 0);
                if (had) assert_ptr_equal(v, (void *)model[k]), live--;
                model[k] = 0;
            } else {
                assert_ptr_equal(sl_map_get(&m, key, n), (void *)model[k]);
            }
            assert_int_equal(sl_map_len(&m), live);
            if (step % 5000 == 0) check_invariants(&m);
        }
        check_invariants(&m);
        for (int k = 0; k < KEYS; k++) {
            char key[16];
            assert_ptr_equal(sl_map_get(&m, key, (size_t)snprintf(key, sizeof(key), "%d", k)), (void *)model[k]);
        }
        sl_map_free(&m);
    }
}

static void assert_order(const sl_map_t *m, const char *want)
{
    char got[64] = "";
    for (const sl_map_entry_t *e = sl_map_newest(m); e; e = sl_map_older(m, e))
        strncat(got, e->key, 1);
    assert_string_equal(got, want);
}

static void test_lru_order_and_eviction(void **state)
{
    (void)state;
    sl_map_t m;
    sl_map_init_with(&m, SL_MAP_OWNED | SL_MAP_LRU, 0);
    assert_null(sl_map_newest(&m));
    assert_int_equal(sl_map_evict(&m, NULL), 0);
    *sl_map_slot(&m, "a", 1) = (void *)1;
    *sl_map_slot(&m, "b", 1) = (void *)2;
    *sl_map_slot(&m, "c", 1) = (void *)3;
    assert_order(&m, "cba");
    sl_map_slot(&m, "a", 1); /* found: most recent now */
    assert_order(&m, "acb");
    assert_ptr_equal(sl_map_get(&m, "b", 1), (void *)2); /* a plain get leaves the order alone */
    assert_order(&m, "acb");
    sl_map_del(&m, "c", 1, NULL);
    assert_order(&m, "ab");
    void *v = NULL;
    assert_int_equal(sl_map_evict(&m, &v), 1);
    assert_ptr_equal(v, (void *)2); /* b, the least recently used */
    assert_order(&m, "a");
    assert_int_equal(sl_map_evict(&m, &v), 1);
    assert_ptr_equal(v, (void *)1);
    assert_order(&m, "");
    assert_int_equal(sl_map_evict(&m, &v), 0);
    sl_map_free(&m);

    /* With a capacity: a new key pushes out the least recently used one. */
    sl_map_init_with(&m, SL_MAP_OWNED | SL_MAP_LRU, 3);
    *sl_map_slot(&m, "a", 1) = (void *)1;
    *sl_map_slot(&m, "b", 1) = (void *)2;
    *sl_map_slot(&m, "c", 1) = (void *)3;
    sl_map_slot(&m, "a", 1);
    *sl_map_slot(&m, "d", 1) = (void *)4; /* b goes */
    assert_order(&m, "dac");
    assert_null(sl_map_get(&m, "b", 1));
    assert_int_equal(sl_map_len(&m), 3);
    sl_map_slot(&m, "c", 1); /* finding one at capacity evicts nothing */
    assert_order(&m, "cda");
    *sl_map_slot(&m, "e", 1) = (void *)5; /* a goes */
    assert_order(&m, "ecd");
    check_invariants(&m);
    sl_map_free(&m);
}

/* The order survives growth and the entries that deletes move. */
static void test_lru_order_through_growth(void **state)
{
    (void)state;
    enum { N = 3000 };
    static int order[N]; /* model: keys newest first */
    size_t n = 0;
    sl_map_t m;
    sl_map_init_with(&m, SL_MAP_OWNED | SL_MAP_LRU | SL_MAP_SEEDED, 0);
    srand(11);
    for (int step = 0; step < 4 * N; step++) {
        int k = rand() % N;
        char key[16];
        size_t len = (size_t)snprintf(key, sizeof(key), "%d", k);
        size_t at = n;
        for (size_t i = 0; i < n; i++)
            if (order[i] == k) at = i;
        if (rand() % 4 == 0) {
            assert_int_equal(sl_map_del(&m, key, len, NULL), at < n);
            if (at < n) memmove(&order[at], &order[at + 1], (n - at - 1) * sizeof(int)), n--;
            continue;
        }
        *sl_map_slot(&m, key, len) = (void *)(intptr_t)(k + 1);
        if (at == n) n++;
        memmove(&order[1], &order[0], at * sizeof(int));
        order[0] = k;
    }
    check_invariants(&m);
    size_t i = 0;
    for (const sl_map_entry_t *e = sl_map_newest(&m); e; e = sl_map_older(&m, e), i++) {
        assert_true(i < n);
        assert_int_equal(atoi(e->key), order[i]);
        assert_ptr_equal(e->value, (void *)(intptr_t)(order[i] + 1));
    }
    assert_int_equal(i, n);
    /* Evicting all of them goes oldest first. */
    for (size_t j = n; j-- > 0;) {
        void *v;
        assert_int_equal(sl_map_evict(&m, &v), 1);
        assert_ptr_equal(v, (void *)(intptr_t)(order[j] + 1));
    }
    assert_int_equal(sl_map_len(&m), 0);
    sl_map_free(&m);
}

/* Keys are bytes: every value, NUL included, anywhere in the key, and the empty key. */
static void test_keys_with_every_byte(void **state)
{
    (void)state;
    sl_map_t m;
    sl_map_init_with(&m, SL_MAP_OWNED, 0);
    for (int b = 0; b < 256; b++) {
        char one = (char)b;
        *sl_map_slot(&m, &one, 1) = (void *)(intptr_t)(b + 1);
        char two[3] = {'a', (char)b, 'z'};
        *sl_map_slot(&m, two, 3) = (void *)(intptr_t)(1000 + b);
    }
    *sl_map_slot(&m, "", 0) = (void *)-1;
    assert_int_equal(sl_map_len(&m), 513);
    for (int b = 0; b < 256; b++) {
        char one = (char)b;
        assert_ptr_equal(sl_map_get(&m, &one, 1), (void *)(intptr_t)(b + 1));
        char two[3] = {'a', (char)b, 'z'};
        assert_ptr_equal(sl_map_get(&m, two, 3), (void *)(intptr_t)(1000 + b));
    }
    assert_ptr_equal(sl_map_get(&m, "", 0), (void *)-1);
    /* A NUL ends no key: "a\0" is neither "a" nor "a\0z"'s prefix. */
    assert_null(sl_map_get(&m, "a\0", 2));
    assert_null(sl_map_get(&m, "a\0z\0", 4));
    char two[3] = {'a', 0, 'z'};
    assert_int_equal(sl_map_del(&m, two, 3, NULL), 1);
    assert_null(sl_map_get(&m, two, 3));
    char nul = 0;
    assert_ptr_equal(sl_map_get(&m, &nul, 1), (void *)1);
    assert_int_equal(sl_map_del(&m, "", 0, NULL), 1);
    assert_null(sl_map_get(&m, "", 0));
    check_invariants(&m);
    sl_map_free(&m);
}

static void test_seeded_hash(void **state)
{
    (void)state;
    sl_map_t a, b, plain;
    sl_map_init_with(&a, SL_MAP_SEEDED, 0);
    sl_map_init_with(&b, SL_MAP_SEEDED, 0);
    sl_map_init(&plain);
    /* Two seeds agree on a key with probability 2^-64. */
    assert_int_not_equal(sl_map_hash(&a, "10.0.0.1", 8), sl_map_hash(&b, "10.0.0.1", 8));
    assert_int_equal(sl_map_hash(&plain, "10.0.0.1", 8), sl_hash_bytes("10.0.0.1", 8));
    assert_int_equal(sl_map_hash(&a, "10.0.0.1", 8), sl_map_hash(&a, "10.0.0.1", 8));
    sl_map_free(&a);
    sl_map_free(&b);
    sl_map_free(&plain);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_borrowed),
        cmocka_unit_test(test_owned_copies_keys),
        cmocka_unit_test(test_delete_and_reinsert),
        cmocka_unit_test(test_growth),
        cmocka_unit_test(test_random_against_model),
        cmocka_unit_test(test_lru_order_and_eviction),
        cmocka_unit_test(test_lru_order_through_growth),
        cmocka_unit_test(test_keys_with_every_byte),
        cmocka_unit_test(test_seeded_hash),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
