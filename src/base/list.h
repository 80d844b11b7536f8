/* Intrusive doubly linked list: a sl_list_t embedded in each element, a head that is a
 * sl_list_t of its own (empty when it points at itself), sl_container_of to get back to the
 * element. No allocation; every operation is O(1). */
#ifndef SL_BASE_LIST_H
#define SL_BASE_LIST_H

typedef struct sl_list {
    struct sl_list *prev, *next;
} sl_list_t;

static inline void sl_list_init(sl_list_t *l)
{
    l->prev = l->next = l;
}
static inline int sl_list_empty(const sl_list_t *l)
{
    return l->next == l;
}
/* Inserts n first, right after head. */
static inline void sl_list_push(sl_list_t *head, sl_list_t *n)
{
    n->next = head->next;
    n->prev = head;
    head->next->prev = n;
    head->next = n;
}
/* Unlinks n and leaves it empty, so removing it twice is harmless. */
static inline void sl_list_remove(sl_list_t *n)
{
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->prev = n->next = n;
}

/* Inserts n last, right before head. */
static inline void sl_list_push_tail(sl_list_t *head, sl_list_t *n)
{
    n->prev = head->prev;
    n->next = head;
    head->prev->next = n;
    head->prev = n;
}

#endif
