/* base/keeper.h: states found by (type, key), shared while compatible, destroyed at the last
 * release; gets on one thread while other threads release, as generations do. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "base/keeper.h"

#define ALIVE 0x5ee5
#define DEAD 0xdead

/* A state remembers the settings it was made with; settings are an int, and states are
 * compatible with settings of the same tens (11 and 19 agree, 11 and 21 do not). */
typedef struct thing {
    int magic;
    int settings;
    atomic_int uses;
} thing_t;

static atomic_int created, destroyed;
static int fail_create;

static void *thing_create(const void *settings)
{
    if (fail_create) return NULL;
    thing_t *t = calloc(1, sizeof(*t));
    t->magic = ALIVE;
    t->settings = *(const int *)settings;
    atomic_fetch_add(&created, 1);
    return t;
}

static int thing_compatible(const void *state, const void *settings)
{
    const thing_t *t = state;
    assert_int_equal(t->magic, ALIVE);
    return t->settings / 10 == *(const int *)settings / 10;
}

static void thing_destroy(void *state)
{
    thing_t *t = state;
    assert_int_equal(t->magic, ALIVE); /* once only */
    t->magic = DEAD;
    atomic_fetch_add(&destroyed, 1);
    free(t);
}

static const sl_keep_type_t things = {
    .name = "thing", .create = thing_create, .compatible = thing_compatible, .destroy = thing_destroy};
/* Same ops, another type: its keys are its own. */
static const sl_keep_type_t others = {
    .name = "other", .create = thing_create, .compatible = thing_compatible, .destroy = thing_destroy};
/* Without compatible: one state per key whatever the settings. */
static const sl_keep_type_t plain = {.name = "plain", .create = thing_create, .destroy = thing_destroy};

static void *get(const sl_keep_type_t *type, const char *key, int settings)
{
    return sl_keep_get(type, key, strlen(key), &settings);
}

static int setup(void **state)
{
    (void)state;
    atomic_store(&created, 0);
    atomic_store(&destroyed, 0);
    fail_create = 0;
    return 0;
}

static void test_shared_while_compatible(void **state)
{
    (void)state;
    thing_t *a = get(&things, "svc/route", 11);
    assert_non_null(a);
    assert_int_equal(sl_keep_refs(a), 1);
    thing_t *b = get(&things, "svc/route", 19); /* a reload with compatible settings */
    assert_ptr_equal(a, b);
    assert_int_equal(a->settings, 11); /* the state was not remade */
    assert_int_equal(sl_keep_refs(a), 2);
    assert_int_equal(sl_keep_count(&things), 1);
    sl_keep_release(a); /* the old generation goes */
    assert_int_equal(atomic_load(&destroyed), 0);
    assert_int_equal(sl_keep_refs(b), 1);
    sl_keep_release(b);
    assert_int_equal(atomic_load(&destroyed), 1);
    assert_int_equal(sl_keep_count(&things), 0);
    assert_int_equal(sl_keep_refs(b), 0);
    /* Released for good: the next get starts over. */
    thing_t *c = get(&things, "svc/route", 11);
    assert_int_equal(atomic_load(&created), 2);
    sl_keep_release(c);
    sl_keep_release(NULL);
}

static void test_incompatible_settings_get_new_state(void **state)
{
    (void)state;
    thing_t *old = get(&things, "k", 11);
    thing_t *fresh = get(&things, "k", 21);
    assert_ptr_not_equal(old, fresh);
    assert_int_equal(sl_keep_count(&things), 2);
    /* Both stay findable by their own settings while their generations live. */
    thing_t *again_old = get(&things, "k", 15), *again_fresh = get(&things, "k", 25);
    assert_ptr_equal(again_old, old);
    assert_ptr_equal(again_fresh, fresh);
    sl_keep_release(again_old);
    sl_keep_release(again_fresh);
    sl_keep_release(old); /* the old generation's state goes, the new one's stays */
    assert_int_equal(atomic_load(&destroyed), 1);
    assert_ptr_equal(get(&things, "k", 29), fresh);
    sl_keep_release(fresh);
    sl_keep_release(fresh);
    assert_int_equal(atomic_load(&destroyed), 2);
    assert_int_equal(sl_keep_count(&things), 0);
}

static void test_keys_and_types_apart(void **state)
{
    (void)state;
    thing_t *a = get(&things, "a", 1), *b = get(&things, "b", 1), *o = get(&others, "a", 1);
    assert_ptr_not_equal(a, b);
    assert_ptr_not_equal(a, o);
    /* Keys are bytes: a NUL inside one is part of it. */
    int s = 1;
    thing_t *n1 = sl_keep_get(&things, "x\0y", 3, &s), *n2 = sl_keep_get(&things, "x\0z", 3, &s),
            *n3 = sl_keep_get(&things, "x", 1, &s), *n4 = sl_keep_get(&things, "", 0, &s);
    assert_ptr_not_equal(n1, n2);
    assert_ptr_not_equal(n1, n3);
    assert_ptr_not_equal(n3, n4);
    assert_ptr_equal(sl_keep_get(&things, "x\0y", 3, &s), n1);
    sl_keep_release(n1);
    /* Without compatible, settings do not matter. */
    thing_t *p = get(&plain, "a", 1);
    assert_ptr_equal(get(&plain, "a", 99), p);
    assert_int_equal(sl_keep_count(&plain), 1);
    thing_t *all[] = {a, b, o, n1, n2, n3, n4, p, p};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        sl_keep_release(all[i]);
    assert_int_equal(atomic_load(&created), atomic_load(&destroyed));
    assert_int_equal(sl_keep_count(&things) + sl_keep_count(&others) + sl_keep_count(&plain), 0);
}

static void test_find_and_failed_create(void **state)
{
    (void)state;
    int s = 5;
    assert_null(sl_keep_find(&things, "f", 1, &s)); /* find makes nothing */
    assert_int_equal(atomic_load(&created), 0);
    fail_create = 1;
    assert_null(sl_keep_get(&things, "f", 1, &s));
    assert_int_equal(sl_keep_count(&things), 0);
    fail_create = 0;
    thing_t *t = sl_keep_get(&things, "f", 1, &s);
    assert_ptr_equal(sl_keep_find(&things, "f", 1, &s), t);
    int other = 50;
    assert_null(sl_keep_find(&things, "f", 1, &other)); /* not compatible */
    assert_int_equal(sl_keep_refs(t), 2);
    sl_keep_release(t);
    sl_keep_release(t);
    assert_int_equal(atomic_load(&destroyed), 1);
}

/* A state that holds a state of another type, as a syslog destination record holds a
 * handle of its sender: create and destroy use the keeper themselves. */
typedef struct holder {
    thing_t *inner;
} holder_t;

static void *holder_create(const void *settings)
{
    holder_t *h = calloc(1, sizeof(*h));
    h->inner = sl_keep_get(&things, "inner", 5, settings);
    return h;
}

static void holder_destroy(void *state)
{
    holder_t *h = state;
    sl_keep_release(h->inner);
    free(h);
}

static const sl_keep_type_t holders = {.name = "holder", .create = holder_create, .destroy = holder_destroy};

static void count_cb(void *state, void *ctx)
{
    assert_int_equal(((thing_t *)state)->magic, ALIVE);
    ++*(int *)ctx;
}

static void test_nested_and_each(void **state)
{
    (void)state;
    thing_t *t = get(&things, "inner", 1);
    holder_t *h = get(&holders, "h", 1);
    assert_ptr_equal(h->inner, t);
    assert_int_equal(sl_keep_refs(t), 2);
    thing_t *t2 = get(&things, "two", 1);
    int n = 0;
    sl_keep_each(&things, count_cb, &n);
    assert_int_equal(n, 2);
    sl_keep_release(t);
    sl_keep_release(h); /* releases inner in its destroy: the last reference */
    assert_int_equal(sl_keep_count(&things), 1);
    assert_int_equal(sl_keep_count(&holders), 0);
    sl_keep_release(t2);
    n = 0;
    sl_keep_each(&things, count_cb, &n);
    assert_int_equal(n, 0);
}

/* Generations built on one thread and released on others: the builder asks for every key of a
 * new generation (the settings change now and then, as a reload does), hands the generation to
 * the releasers and keeps going; a releaser checks that every state it holds is alive, then
 * drops the generation. Every state made is destroyed exactly once, never while held. */
enum { KEYS = 24, GENERATIONS = 400, RELEASERS = 3 };

typedef struct gen {
    thing_t *states[KEYS];
    struct gen *next;
} gen_t;

static pthread_mutex_t q_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t q_cond = PTHREAD_COND_INITIALIZER;
static gen_t *queue;
static int done;

static void *releaser(void *arg)
{
    (void)arg;
    for (;;) {
        pthread_mutex_lock(&q_lock);
        while (!queue && !done)
            pthread_cond_wait(&q_cond, &q_lock);
        gen_t *g = queue;
        if (g) queue = g->next;
        pthread_mutex_unlock(&q_lock);
        if (!g) return NULL;
        for (size_t k = 0; k < KEYS; k++) {
            assert_int_equal(g->states[k]->magic, ALIVE);
            atomic_fetch_add(&g->states[k]->uses, 1);
            sl_keep_release(g->states[k]);
        }
        free(g);
    }
}

static void test_threads(void **state)
{
    (void)state;
    pthread_t t[RELEASERS];
    done = 0;
    for (int i = 0; i < RELEASERS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, releaser, NULL), 0);
    thing_t *last[KEYS] = {0};
    for (int g = 0; g < GENERATIONS; g++) {
        gen_t *gen = calloc(1, sizeof(*gen));
        for (int k = 0; k < KEYS; k++) {
            char key[16];
            snprintf(key, sizeof(key), "route-%d", k);
            /* Each key's settings change every (k + 3) generations. */
            int settings = g / (k + 3) * 10;
            gen->states[k] = get(&things, key, settings);
            assert_non_null(gen->states[k]);
            assert_int_equal(gen->states[k]->magic, ALIVE);
            assert_int_equal(gen->states[k]->settings / 10, settings / 10);
            /* Compatible settings keep the state while some generation holds it; the builder
             * holds the previous one here, so the state is the previous generation's. */
            if (last[k] && last[k]->settings / 10 == settings / 10) assert_ptr_equal(gen->states[k], last[k]);
            if (last[k]) sl_keep_release(last[k]);
            last[k] = gen->states[k];
            sl_keep_get(&things, key, strlen(key), &settings); /* the builder's own hold on it */
        }
        pthread_mutex_lock(&q_lock);
        gen->next = queue;
        queue = gen;
        pthread_cond_signal(&q_cond);
        pthread_mutex_unlock(&q_lock);
    }
    for (int k = 0; k < KEYS; k++)
        sl_keep_release(last[k]);
    pthread_mutex_lock(&q_lock);
    done = 1;
    pthread_cond_broadcast(&q_cond);
    pthread_mutex_unlock(&q_lock);
    for (int i = 0; i < RELEASERS; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(sl_keep_count(&things), 0);
    assert_int_equal(atomic_load(&created), atomic_load(&destroyed));
    /* Fewer states than gets: compatible generations shared them. */
    assert_true(atomic_load(&created) < GENERATIONS * KEYS / 2);
}

/* Every thread gets and releases the same keys at once: the counts stay exact. */
static void *churn(void *arg)
{
    int settings = (int)(intptr_t)arg;
    for (int i = 0; i < 2000; i++) {
        thing_t *a = get(&things, "hot", settings), *b = get(&things, "hot", settings);
        assert_ptr_equal(a, b);
        assert_int_equal(a->magic, ALIVE);
        sl_keep_release(a);
        assert_int_equal(b->magic, ALIVE);
        sl_keep_release(b);
    }
    return NULL;
}

static void test_threads_get_and_release(void **state)
{
    (void)state;
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&t[i], NULL, churn, (void *)(intptr_t)(i % 2 * 10)), 0);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(sl_keep_count(&things), 0);
    assert_int_equal(atomic_load(&created), atomic_load(&destroyed));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_shared_while_compatible, setup),
        cmocka_unit_test_setup(test_incompatible_settings_get_new_state, setup),
        cmocka_unit_test_setup(test_keys_and_types_apart, setup),
        cmocka_unit_test_setup(test_find_and_failed_create, setup),
        cmocka_unit_test_setup(test_nested_and_each, setup),
        cmocka_unit_test_setup(test_threads, setup),
        cmocka_unit_test_setup(test_threads_get_and_release, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
