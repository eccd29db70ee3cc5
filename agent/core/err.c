#include "core/err.h"

const char *lk_strerror(int err)
{
    switch (err) {
    case LK_OK:
        return "success";
#define LK__ERR_CASE(name, code, msg)                                          \
    case LK_##name:                                                            \
        return msg;
        LK_ERR_MAP(LK__ERR_CASE)
#undef LK__ERR_CASE
    }
    return "unknown error";
}
