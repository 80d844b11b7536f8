/* A generic document tree (map / list / scalar) that remembers where every node was written.
 * YAML and JSON are both read into it, so validation (schema.h) sees one shape and can point
 * every error at FILE:LINE:COL. Internal to config/: the rest of sluice sees only sl_config_t. */
#ifndef SL_CONFIG_NODE_H
#define SL_CONFIG_NODE_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "base/arena.h"
#include "config/config.h"

/* Hard limits that keep hostile or fuzzed input cheap. */
#define SL_CONFIG_MAX_BYTES (16u * 1024u * 1024u)
#define SL_CONFIG_MAX_DEPTH 64
/* Collection stops after this many errors (one more says so). */
#define SL_CONFIG_MAX_ERRORS 200

typedef enum { SL_NODE_SCALAR, SL_NODE_MAP, SL_NODE_SEQ } sl_node_kind_t;

typedef struct sl_config_node sl_config_node_t;
struct sl_config_node {
    sl_node_kind_t kind;
    int line, col; /* 1-based; col counts bytes */
    /* Scalars: the text (NUL-terminated, may be "" ) and whether it was quoted. A plain scalar
     * "", "~" or "null" is YAML's null. */
    const char *str;
    size_t len;
    int quoted;
    int bad; /* an error was already reported for this scalar (e.g. unset ${VAR}): stay quiet */
    /* Collections: children in order. A map's children carry their key. */
    sl_config_node_t *first, *last;
    size_t n;
    sl_config_node_t *next;
    const char *key; /* set on the children of a map */
    int key_line, key_col;
};

/* Where errors go while loading one source (errors.c). The errors it adds to errs stay sorted
 * by position (line 0, the file-level errors, first; equal positions in the order reported),
 * and it keeps the first SL_CONFIG_MAX_ERRORS of the file, followed by one "too many errors". */
typedef struct sl_config_diag {
    const char *file;
    sl_config_errors_t *errs;
    size_t n_errors; /* errors reported through this diag, kept or not */
    size_t start;    /* index in errs->items of the first error this diag added */
    size_t n_kept;
    uint64_t pos[SL_CONFIG_MAX_ERRORS]; /* line << 32 | col of each kept error */
} sl_config_diag_t;

/* Adds the formatted message as one error of d's file at line:col (line 0: no position) about
 * the field path (NULL: none), in its place by position. */
void sl_config_diag_add(sl_config_diag_t *d, int line, int col, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
void sl_config_diag_vadd(sl_config_diag_t *d, int line, int col, const char *path, const char *fmt, va_list ap)
    __attribute__((format(printf, 5, 0)));

/* Parse YAML / JSON text into a tree allocated in a. Return 0 and *root (NULL for an empty
 * document), or -1 after reporting every syntax problem found through d. */
int sl_node_parse_yaml(sl_arena_t *a, const char *data, size_t len, sl_config_node_t **root, sl_config_diag_t *d);
int sl_node_parse_json(sl_arena_t *a, const char *data, size_t len, sl_config_node_t **root, sl_config_diag_t *d);

/* Returns 1 for a plain null scalar ("", "~", "null", "Null", "NULL") or a NULL node. */
int sl_node_is_null(const sl_config_node_t *n);

/* Returns the kind as a noun for messages: "a map", "a list", "a string", "null". */
const char *sl_node_kind_name(const sl_config_node_t *n);

/* Returns the value of key in map n, or NULL (also when n is NULL or not a map). */
const sl_config_node_t *sl_node_get(const sl_config_node_t *n, const char *key);

/* Validates the tree into cfg (the top level in config.c, the sections in *_schema.c and in
 * the files of the policies and plugins they configure): every repeated key of every map
 * reported and dropped, ${VAR} / ${VAR:-default} substituted in every scalar value (keys are
 * left alone), defaults filled, everything kept copied into cfg->arena. tree is the arena the
 * tree lives in (substituted text goes there). Returns 0, or -1 after reporting every problem
 * through d. root may be NULL (empty document). */
int sl_config_validate(sl_config_t *cfg, sl_arena_t *tree, sl_config_node_t *root, sl_config_diag_t *d);

#endif
