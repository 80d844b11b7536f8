/* libFuzzer target: the configuration loader on arbitrary bytes, as YAML and as JSON, and every
 * error it reports in both of its forms (text and JSON). Every config and error list is freed,
 * so LeakSanitizer catches anything the loader drops. */
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "config/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* The name picks the parser: ".json" forces JSON, otherwise the content decides. */
    static const char *const names[] = {"fuzz.yaml", "fuzz.json"};
    for (size_t i = 0; i < 2; i++) {
        sl_config_t *cfg = NULL;
        sl_config_errors_t errs = {0};
        if (sl_config_load_buffer(names[i], (const char *)data, size, &cfg, &errs) == 0) {
            /* Touch what consumers read, so a bad pointer in a "valid" config shows up here. */
            volatile size_t sink = cfg->gateway.http.n_listen;
            for (size_t s = 0; s < cfg->n_services; s++)
                for (size_t r = 0; r < cfg->services[s].n_routes; r++)
                    sink += cfg->services[s].routes[r].n_paths;
            (void)sink;
            sl_config_free(cfg);
        }
        /* Every error stays one line of text, whatever bytes it quotes, ... */
        char line[SL_CONFIG_ERROR_TEXT_MAX];
        for (size_t e = 0; e < errs.n; e++)
            for (const char *p = sl_config_errors_text(&errs, e, line); *p; p++)
                if ((unsigned char)*p < 0x20 || *p == 0x7f) abort();
        json_t *j = sl_config_errors_json(&errs);
        /* ... and makes valid JSON. */
        char *s = json_dumps(j, 0);
        if (!s || json_array_size(j) != errs.n) abort();
        for (size_t e = 0; e < errs.n; e++)
            if (json_object_size(json_array_get(j, e)) != 5) abort();
        free(s);
        json_decref(j);
        sl_config_errors_free(&errs);
    }
    return 0;
}
