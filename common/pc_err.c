#include "pc_err.h"

const char *pc_strerror(int code)
{
    switch (code) {
    case PC_OK: return "success";
#define PC_ERR_TEXT(name, num, text) case name: return text;
    PC_ERR_TABLE(PC_ERR_TEXT)
#undef PC_ERR_TEXT
    }
    return "unknown error";
}

const char *pc_errname(int code)
{
    switch (code) {
    case PC_OK: return "PC_OK";
#define PC_ERR_NAME(name, num, text) case name: return #name;
    PC_ERR_TABLE(PC_ERR_NAME)
#undef PC_ERR_NAME
    }
    return "PC_E?";
}
