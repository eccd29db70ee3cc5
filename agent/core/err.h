/* Error codes shared by every module: 0 is success, failures are negative. */
#ifndef LK_CORE_ERR_H
#define LK_CORE_ERR_H

/* XX(name, message). Extend at the end; codes are not part of any wire format. */
#define LK_ERR_MAP(XX)                                                         \
    XX(ENOMEM, -1, "out of memory")                                            \
    XX(EINVAL, -2, "invalid argument")                                         \
    XX(EAGAIN, -3, "queue full, try again later")                              \
    XX(E2BIG, -4, "size limit exceeded")                                       \
    XX(EPROTO, -5, "malformed input")                                          \
    XX(EUTF8, -6, "invalid UTF-8 in a string field")                           \
    XX(EIO, -7, "input/output error")                                          \
    XX(ENOENT, -8, "not found")                                                \
    XX(ECONFIG, -9, "invalid configuration")                                   \
    XX(ECANCELED, -10, "canceled")                                             \
    XX(ECLOSED, -11, "closed")                                                 \
    XX(ESYS, -12, "system call failed")                                        \
    XX(EUNSUPPORTED, -13, "not supported")                                     \
    XX(EEXIST, -14, "already exists")                                         \
    XX(EMEMLIMIT, -15, "memory limit reached")                                 \
    XX(EFULL, -16, "no space left")                                            \
    XX(ERESERVED, -17, "name reserved")

enum lk_err {
    LK_OK = 0,
#define LK__ERR_ENUM(name, code, msg) LK_##name = (code),
    LK_ERR_MAP(LK__ERR_ENUM)
#undef LK__ERR_ENUM
};

/* Returns a static message for |err| (any int; unknown codes get a generic text). */
const char *lk_strerror(int err);

#endif
