/* Process log (errors, warnings, lifecycle) to stderr. The access log lives in observe/. */
#ifndef SL_BASE_LOG_H
#define SL_BASE_LOG_H

typedef enum { SL_LOG_DEBUG, SL_LOG_INFO, SL_LOG_WARN, SL_LOG_ERROR } sl_log_level_t;
typedef enum { SL_LOG_TEXT, SL_LOG_JSON } sl_log_format_t;

/* Messages below this level are dropped; default SL_LOG_INFO. Any thread. */
void sl_log_set_level(sl_log_level_t level);
/* Text ("2026-12-03T08:01:02.345Z [info] message") or one JSON object per line
 * ({"time":"...","level":"info","msg":"message"}); default text. Any thread. */
void sl_log_set_format(sl_log_format_t format);
void sl_log(sl_log_level_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define sl_log_debug(...) sl_log(SL_LOG_DEBUG, __VA_ARGS__)
#define sl_log_info(...) sl_log(SL_LOG_INFO, __VA_ARGS__)
#define sl_log_warn(...) sl_log(SL_LOG_WARN, __VA_ARGS__)
#define sl_log_error(...) sl_log(SL_LOG_ERROR, __VA_ARGS__)

#endif
