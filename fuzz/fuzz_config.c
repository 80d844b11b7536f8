/* libFuzzer target: the configuration loader on arbitrary bytes, as YAML and as JSON. Every
 * config and error list is freed, so LeakSanitizer catches anything the loader drops. */
#include <stddef.h>
#include <stdint.h>

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
        sl_config_errors_free(&errs);
    }
    return 0;
}
