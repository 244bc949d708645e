/* common.h - small macros every module uses. */
#ifndef GOPULSE_COMMON_H
#define GOPULSE_COMMON_H

#include <stddef.h>

#define GOPULSE_VERSION "0.1.0"

#define UNUSED(x) ((void)(x))
#define MUSTCHECK __attribute__((warn_unused_result))
#define PRINTF(a, b) __attribute__((format(printf, a, b)))
#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
/* clang-format off */
#define container_of(ptr, type, member) \
	((type *)(void *)((char *)(ptr) - offsetof(type, member)))
/* clang-format on */

#endif
