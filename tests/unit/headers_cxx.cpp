// The public headers compile as C++ and link from a C++ program.
#include <sonde.h>
#include <cstdio>
#include <cstring>

int main()
{
    if (std::strcmp(sonde_version(), SONDE_VERSION_STRING) != 0) {
        std::printf("version mismatch: %s vs %s\n", sonde_version(), SONDE_VERSION_STRING);
        return 1;
    }
    if (std::strcmp(sonde_err_name(SONDE_EINVAL), "SONDE_EINVAL") != 0) {
        std::printf("err name mismatch: %s\n", sonde_err_name(SONDE_EINVAL));
        return 1;
    }
    std::printf("ok: headers compile as C++\n");
    return 0;
}
