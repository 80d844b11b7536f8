/* sluice command line: run, validate, version. */
#include <stdio.h>
#include <string.h>

#include "config/config.h"
#include "runtime/server.h"
#include "sl_build_info.h" /* SL_BUILD_COMMIT, generated at build time */

static void usage(FILE *f)
{
    fprintf(f, "usage: sluice run -c FILE     start the gateway on FILE (YAML or JSON)\n"
               "       sluice validate FILE   check FILE; print every error as FILE:LINE:COL: field: message\n"
               "       sluice version         print the version and the commit it was built from\n"
               "                              (also --version, -v)\n"
               "       sluice --help          this text\n");
}

static int cmd_validate(const char *path)
{
    sl_config_t *cfg = NULL;
    sl_config_errors_t errs = {0};
    if (sl_config_load_file(path, &cfg, &errs) != 0) {
        char line[SL_CONFIG_ERROR_TEXT_MAX];
        for (size_t i = 0; i < errs.n; i++) fprintf(stderr, "%s\n", sl_config_errors_text(&errs, i, line));
        sl_config_errors_free(&errs);
        return 1;
    }
    printf("%s: ok\n", path);
    sl_config_free(cfg);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(cmd, "version") || !strcmp(cmd, "--version") || !strcmp(cmd, "-v")) {
        if (argc > 2) {
            fprintf(stderr, "sluice %s: unexpected argument '%s'\n", cmd, argv[2]);
            return 2;
        }
        /* One line, the same for all three spellings: "sluice 0.1.0 (commit 1a2b3c4d5e6f)". */
        printf("sluice %s (commit %s)\n", SL_VERSION, SL_BUILD_COMMIT);
        return 0;
    }
    if (!strcmp(cmd, "validate") && argc == 3) return cmd_validate(argv[2]);
    if (!strcmp(cmd, "run")) {
        const char *path = NULL;
        for (int i = 2; i < argc; i++) {
            if ((!strcmp(argv[i], "-c") || !strcmp(argv[i], "--config")) && i + 1 < argc) path = argv[++i];
            else {
                fprintf(stderr, "sluice run: unexpected argument '%s'\n", argv[i]);
                usage(stderr);
                return 2;
            }
        }
        if (!path) {
            fprintf(stderr, "sluice run: missing -c FILE\n");
            usage(stderr);
            return 2;
        }
        return sl_server_run(path);
    }
    usage(stderr);
    return 2;
}
